"""`arcray measure`: the night pass over the measurements calibration wrote (reference-arc fits,
one table of every frame, optionally FITS)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.cli.options import Cameras, MaxFailuresOpt, Progress, Root, csv, ints
from arcray.errors import ConfigError


def parse_references(text: str | None) -> dict[tuple[str, int], int]:
    """``b1:60314:123,r1:60314:124`` -> ``{("b1", 60314): 123, ...}`` (``ConfigError`` otherwise)."""
    from arcray.instrument import CAMERAS

    out: dict[tuple[str, int], int] = {}
    for item in csv(text):
        parts = item.split(":")
        if len(parts) != 3 or parts[0] not in CAMERAS or not parts[1].isdigit() or not parts[2].isdigit():
            raise ConfigError(f"--references: {item!r} is not CAMERA:MJD:EXPNUM (cameras: {', '.join(CAMERAS)})")
        out[(parts[0], int(parts[1]))] = int(parts[2])
    return out


@app.command("measure")
def measure_cmd(
    root: Root,
    cameras: Cameras = None,
    mjds: Annotated[Optional[str], typer.Option(
        "--mjds", help="Comma-separated nights (MJD) to include (default: every measured night).")] = None,
    references: Annotated[Optional[str], typer.Option(
        "--references", metavar="CAM:MJD:EXPNUM,...",
        help="Comma-separated reference arcs, one per camera and night (default: each night's first "
             "good arc: measured, lamps and BESTCORR not red).")] = None,
    export_fits: Annotated[bool, typer.Option(
        "--export-fits", help="Also write the table as a FITS binary table (ROOT/measure/frames.fits).")] = False,
    max_failures: MaxFailuresOpt = None,
    progress: Progress = None,
) -> None:
    """Fit every measured arc against its night's reference arc (as arc2trace does) and write one table
    of every frame's fitted field, BOSS QA values and traffic light (ROOT/measure/frames.parquet).
    The per-frame measurements themselves are written by `arcray calibrate`."""
    from arcray.pipeline.measure import run_measure
    from arcray.progress import progress_bar

    refs = parse_references(references)
    nights = ints(mjds, "--mjds") if mjds else None
    with progress_bar("measure", None, unit="nights", enabled=progress) as advance:
        summary = run_measure(root, cameras=cameras, mjds=nights, references=refs, export_fits=export_fits,
                              progress=advance)
    typer.echo(summary.line())
    max_failures.check(summary)
