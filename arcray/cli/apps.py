"""The Typer applications that every ``arcray.cli.<stage>`` module adds its commands to.

Each stage module does ``from arcray.cli.apps import app`` and decorates its command(s); the
module list in ``arcray.cli.main`` imports them. No stage module imports another.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="arcray",
    help="Calibration-frame autoencoders for the SDSS-V BOSS spectrographs, on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sim_app = typer.Typer(help="The simulated SDSS world: render it, serve it.", no_args_is_help=True)
jobs_app = typer.Typer(help="Ray jobs on a cluster: list, status, logs, stop.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(jobs_app, name="jobs")
