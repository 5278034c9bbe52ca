"""Entry point of the ``arcray`` console script: registers every stage, maps errors to exits."""

from __future__ import annotations

import importlib
import sys

import typer
from typer.exceptions import TyperException  # base of the usage errors of Typer's own Click

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
    "arcray.cli.predict",
    "arcray.cli.night",
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


def usage_line(exc: TyperException) -> str:
    """Click's usage error as arcray's one line: ``arcray: error: arcray calibrate: Invalid value for
    '--workers': ... (arcray calibrate --help)`` (Typer would draw a boxed panel over several lines)."""
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" ({ctx.command_path} --help)" if ctx is not None else ""
    message = " ".join(exc.format_message().split())
    return f"arcray: error: {where}{message}{hint}"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Usage errors (exit 2) and library errors (their exit code) become one line.

    Inside ``terminal_session`` the first Ray connection prints one ``ray: ...`` line (dashboard,
    log directory) and Ray's native stderr goes to that log directory (``arcray.raycluster``)."""
    from arcray.raycluster import terminal_session

    _register()
    try:
        with terminal_session(lambda line: typer.echo(line, err=True)):
            code = app(args=argv, prog_name="arcray", standalone_mode=False)
        # as Click's standalone mode did: every run ends in SystemExit (typer.Exit's code, else 0)
        sys.exit(code if isinstance(code, int) else 0)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group without a subcommand: its help
            exc.show()
        else:
            typer.secho(usage_line(exc), err=True, fg="red")
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        typer.echo("arcray: aborted", err=True)
        sys.exit(1)
    except ArcrayError as exc:
        typer.secho(f"arcray: error: {exc}", err=True, fg="red")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("arcray: interrupted", err=True)
        sys.exit(130)
