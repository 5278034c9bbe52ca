"""`arcray calibrate`: raw sdR frames -> the calibrated Parquet dataset (Ray Data)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.cli.options import MaxFailuresOpt, Progress, RayAddress, Root, smoke_option, workers_option
from arcray.errors import ConfigError


@app.command("calibrate")
def calibrate(
    root: Root,
    raw: Annotated[Optional[str], typer.Option(
        "--raw", help="Frames to calibrate: a directory tree of sdR-*.fit.gz, or a downloads table / "
                      "manifest (.parquet). Default: ROOT's downloaded frames (raw/).")] = None,
    overscan: Annotated[str, typer.Option("--overscan", help="Bias: 'median' (per amp) or 'row'.")] = "median",
    full_frame: Annotated[str, typer.Option("--full-frame", help="Also store the full frame: none, "
                                                                 "float32 (67 MB/frame), float16.")] = "none",
    measure: Annotated[bool, typer.Option(
        "--measure/--no-measure", help="Also measure every arc and flat while it is in memory: lines, "
                                       "traces, fields, BOSS QA (ROOT/measure/).")] = True,
    workers: Annotated[int, workers_option("calibration actors (1 CPU each)")] = 2,
    max_failures: MaxFailuresOpt = None,
    address: RayAddress = None,
    smoke: Annotated[bool, smoke_option("the first few frames only")] = False,
    progress: Progress = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Recalibrate every frame, also those whose output is up to date (same source "
                        "file size and mtime, same options); by default those are reused.")] = False,
    wait: Annotated[float, typer.Option(
        "--wait", metavar="SECONDS", help="If another calibrate runs on ROOT, wait this long for it "
                                          "before refusing (default 0: refuse at once).")] = 0.0,
) -> None:
    """Calibrate raw frames (overscan, gain, masks, no clipping) into ROOT/calibrated/ and measure
    each arc and flat (ROOT/measure/); bad frames are listed in ROOT/calibrated_failures.parquet.
    Up-to-date frames are reused (--force recalibrates them); one calibrate per ROOT at a time."""
    from pydantic import ValidationError

    from arcray.calib.config import CalibConfig
    from arcray.measure.config import MeasureConfig
    from arcray.paths import Layout
    from arcray.pipeline.calibrate import frame_inputs, run_calibrate
    from arcray.progress import progress_bar

    try:
        cfg = CalibConfig(overscan=overscan, full_frame=full_frame)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"bad calibrate options: --{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if not wait >= 0:
        raise ConfigError(f"--wait must be a number of seconds >= 0, got {wait}")
    layout = Layout(root)
    source = raw or layout.raw_root
    total = len(frame_inputs(source, smoke=smoke))
    with progress_bar("calibrate", total, unit="frames", enabled=progress) as advance:
        summary = run_calibrate(source, layout, cfg, workers=workers, smoke=smoke, progress=advance,
                                address=address, measure=MeasureConfig() if measure else None,
                                force=force, wait_s=wait)
    typer.echo(summary.line())
    max_failures.check(summary)
