"""Entry point of the ``arcray`` console script: registers every stage, maps errors to exits."""

from __future__ import annotations

import importlib
import sys

import typer

from arcray import __version__
from arcray.cli.apps import app
from arcray.errors import ArcrayError

# Stage modules, each owning its commands. Imported for their side effect of registering.
STAGE_MODULES = (
    "arcray.cli.sim",
    "arcray.cli.sim_serve",
    "arcray.cli.scrape",
    "arcray.cli.download",
    "arcray.cli.calibrate",
    "arcray.cli.measure",
    "arcray.cli.train",
    "arcray.cli.analysis",
    "arcray.cli.demo",
    "arcray.cli.cluster",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"arcray {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """arcray: scrape, download, calibrate, train, analyse and report BOSS calibration frames."""


def _register() -> None:
    for name in STAGE_MODULES:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Usage errors are Click's (exit 2); library errors become one line + exit code.

    Inside ``terminal_session`` the first Ray connection prints one ``ray: ...`` line (dashboard,
    log directory) and Ray's native stderr goes to that log directory (``arcray.raycluster``)."""
    from arcray.raycluster import terminal_session

    _register()
    try:
        with terminal_session(lambda line: typer.echo(line, err=True)):
            app(args=argv, prog_name="arcray")
    except ArcrayError as exc:
        typer.secho(f"arcray: error: {exc}", err=True, fg="red")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("arcray: interrupted", err=True)
        sys.exit(130)
