"""`arcray embed`, `arcray analyze`, `arcray regress`, `arcray report`: the latent study."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.cli.options import (Cameras, Flavor, Latent, RayAddress, Root, check_flavor, check_latent, choices,
                                smoke_option, workers_option)

Workers = Annotated[int, workers_option("Ray Data actors (each holds every camera's model; a GPU each "
                                        "when the cluster has GPUs)")]


@app.command("embed")
def embed_cmd(root: Root, flavor: Flavor = "arc", latent: Latent = 2, cameras: Cameras = None,
              workers: Workers = 2, address: RayAddress = None,
              smoke: Annotated[bool, smoke_option("16 frames per camera, one actor")] = False) -> None:
    """Encode every calibrated frame with its camera's registered model into ROOT/latents/."""
    check_flavor(flavor), check_latent(latent)
    from arcray.pipeline.embed import embed
    from arcray.raycluster import ensure_ray

    ensure_ray(address)
    summary = embed(root, flavor=flavor, latent=latent, cameras=cameras, n_actors=1 if smoke else workers,
                    max_frames=16 if smoke else None)
    typer.echo(summary.line())


@app.command("analyze")
def analyze_cmd(root: Root, flavor: Flavor = "arc", latent: Latent = 2) -> None:
    """Latent scatter, Pearson matrix, drift and out-of-distribution frames (ROOT/analysis/)."""
    check_flavor(flavor), check_latent(latent)
    from arcray.pipeline.analysis import run_analyze

    typer.echo(run_analyze(root, flavor=flavor, latent=latent).line())


@app.command("regress")
def regress_cmd(root: Root, flavor: Flavor = "arc", latent: Latent = 2,
                regressors: Annotated[str, typer.Option("--regressors", help="Comma-separated: linear,ridge,gbr,refarc.")]
                = "linear,ridge,gbr,refarc",
                truth: Annotated[Optional[str], typer.Option("--truth", help="Simulated world's truth.parquet (scores vs the true state).")] = None,
                workers: Workers = 2, address: RayAddress = None,
                smoke: Annotated[bool, smoke_option("no gradient boosting, one decoding actor")] = False) -> None:
    """Fit metadata -> latent regressors per camera, decode predictions in batch, score them
    (ROOT/regress/)."""
    check_flavor(flavor), check_latent(latent)
    from arcray.analysis.regress import REGRESSORS

    kinds = list(choices(regressors, "--regressors", REGRESSORS))
    if smoke:
        kinds = [k for k in kinds if k != "gbr"] or ["linear"]
    from arcray.analysis.scores import mse_pivot
    from arcray.pipeline.analysis import run_regress
    from arcray.raycluster import ensure_ray

    ensure_ray(address)
    summary = run_regress(root, flavor=flavor, latent=latent, kinds=kinds, truth=truth,
                          n_actors=1 if smoke else workers)
    scores = summary.tables["scores"]
    typer.echo(mse_pivot(scores, "mse").to_string(float_format=lambda v: f"{v:.4g}"))
    typer.echo(mse_pivot(scores, "px").to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(summary.line())


@app.command("report")
def report_cmd(root: Root) -> None:
    """Write the static HTML report (ROOT/report/index.html + figures) from whatever stages have run."""
    from arcray.report.html import build_report

    typer.echo(build_report(root).line())
