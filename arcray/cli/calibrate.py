"""`arcray calibrate`: raw sdR frames -> the calibrated Parquet dataset (Ray Data)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.errors import ConfigError, PartialFailure


@app.command("calibrate")
def calibrate(
    raw: Annotated[str, typer.Option("--raw", help="Directory tree of sdR-*.fit.gz, or a downloads "
                                                   "table / manifest (.parquet).")],
    out: Annotated[str, typer.Option("--out", "--root", help="arcray data root; frames go to "
                                                             "<out>/calibrated/camera=/flavor=/mjd=/.")],
    overscan: Annotated[str, typer.Option("--overscan", help="Bias: 'median' (per amp) or 'row'.")] = "median",
    full_frame: Annotated[str, typer.Option("--full-frame", help="Also store the full frame: none, "
                                                                 "float32 (67 MB/frame), float16.")] = "none",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Calibration actors (1 CPU each).")] = 2,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster (default: local).")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Only the first few frames.")] = False,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar.")] = None,
) -> None:
    """Calibrate raw frames (overscan, gain, masks, no clipping); ends with `N ok, M failed`."""
    from pydantic import ValidationError

    from arcray.calib.config import CalibConfig
    from arcray.paths import Layout
    from arcray.pipeline.calibrate import SMOKE_FRAMES, discover_inputs, run_calibrate
    from arcray.progress import progress_bar

    try:
        cfg = CalibConfig(overscan=overscan, full_frame=full_frame)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"bad calibrate options: {err['loc'][0]}: {err['msg']}") from None
    layout = Layout(out)
    total = len(discover_inputs(raw))
    total = min(total, SMOKE_FRAMES) if smoke else total
    try:
        with progress_bar("calibrate", total, unit="frames", enabled=progress) as advance:
            summary = run_calibrate(raw, layout, cfg, workers=workers, smoke=smoke, progress=advance,
                                    address=address)
    except PartialFailure as exc:
        typer.echo(f"{exc.n_ok} ok, {exc.n_failed} failed")
        raise
    typer.echo(summary.line())
    typer.echo(f"calibrated dataset: {layout.calibrated}")
