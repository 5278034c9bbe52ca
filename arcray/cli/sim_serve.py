"""`arcray sim serve`: the simulated Mailman archive + SAS over a rendered world."""

from __future__ import annotations

import os
import signal
import threading
from typing import Annotated, Optional

import typer

from arcray.cli.apps import sim_app
from arcray.errors import InputError


@sim_app.command("serve")
def serve(
    root: Annotated[str, typer.Option("--root", help="Rendered world directory (arcray sim render --out).")],
    user: Annotated[str, typer.Option("--user", help="User name (e-mail) accepted by Mailman and the SAS.")],
    password_file: Annotated[str, typer.Option("--password-file", help="File holding the password.")],
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0 = any free port).")] = 8080,
    faults: Annotated[Optional[str], typer.Option(
        "--faults", help="Fault spec, e.g. 'error_rate=0.1,drop_rate=0.1,latency_ms=50,bandwidth_mbps=20'.")] = None,
) -> None:
    """Serve the Mailman private archive and the SAS of a rendered world until SIGTERM/Ctrl-C."""
    from arcray.credentials import _read_password_file
    from arcray.sim.server import ArchiveServer

    if not os.path.isdir(root):
        raise InputError(f"world directory {root} does not exist (run `arcray sim render --out {root}`)")
    server = ArchiveServer(root, user=user, password=_read_password_file(password_file), host=host,
                           port=port, faults=faults)
    typer.echo(f"mailman: {server.mailman_url}")
    typer.echo(f"sas:     {server.sas_url}")
    typer.echo(f"stats:   {server.base_url}/_sim/stats")
    if server.faults.active:
        typer.echo(f"faults:  {faults}")

    def _stop(signum, frame):  # shutdown() blocks until serve_forever returns: call it elsewhere
        threading.Thread(target=server.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    typer.echo("archive server stopped")
