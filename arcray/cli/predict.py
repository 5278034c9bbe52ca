"""`arcray predict`: every exposure of a night's calibration state and whether it needs an arc."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.cli.options import Cameras, Progress, Root, ints


@app.command("predict")
def predict_cmd(
    root: Root,
    mjd: Annotated[Optional[int], typer.Option("--mjd", help="Night (MJD) to predict, every exposure of it.")] = None,
    exposures: Annotated[Optional[str], typer.Option(
        "--exposures", help="Comma-separated exposure numbers: their nights are predicted, and the summary "
                            "counts these exposures.")] = None,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", help="px: an arc is needed when the 90 % bound of the predicted RMS line error exceeds it.")] = 0.2,
    history: Annotated[int, typer.Option(
        "--history", help="Nights the models are fitted on: the nearest to the night predicted "
                          "(0: every other night).")] = 30,
    evaluate: Annotated[bool, typer.Option(
        "--evaluate", help="Instead: score every night by models fitted without it; write ROOT/predict/eval/ "
                           "(tables, a night timeline per camera, residual quivers with --truth).")] = False,
    truth: Annotated[Optional[str], typer.Option(
        "--truth", help="With --evaluate: the simulated world's truth.parquet (scores vs the true field and "
                        "its floors; without it, vs the measured arcs).")] = None,
    cameras: Cameras = None,
    progress: Progress = None,
) -> None:
    """Predict the measured field (12 terms) of every exposure of a night from its header values and
    the night's earlier arcs, with models fitted on the other nights; write ROOT/predict/predictions/
    mjd=<MJD>.{parquet,fits} and ROOT/predict/scores.parquet (needs `arcray measure` first)."""
    from arcray.errors import InputError
    from arcray.pipeline.predict import run_evaluate, run_predict
    from arcray.progress import progress_bar

    if evaluate:
        if mjd is not None or exposures:
            raise InputError("--evaluate scores every night: give no --mjd or --exposures with it")
        with progress_bar("predict --evaluate", None, unit="camera-nights", enabled=progress) as advance:
            summary = run_evaluate(root, truth=truth, cameras=cameras, progress=advance)
        typer.echo(summary.line())
        return
    if truth is not None:
        raise InputError("--truth goes with --evaluate")
    exps = ints(exposures, "--exposures") if exposures else None
    with progress_bar("predict", None, unit="camera-nights", enabled=progress) as advance:
        summary = run_predict(root, mjd=mjd, exposures=exps, cameras=cameras, tolerance=tolerance, history=history,
                              progress=advance)
    typer.echo(summary.line())
