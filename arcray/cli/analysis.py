"""`arcray embed`, `arcray analyze`, `arcray regress`, `arcray report`: the latent study."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.errors import ConfigError

Root = Annotated[str, typer.Option("--root", help="Pipeline root (Layout): calibrated/, models/, latents/...")]
Flavor = Annotated[str, typer.Option("--flavor", help="arc or flat.")]
Latent = Annotated[int, typer.Option("--latent", help="Latent size of the registered models to use.")]
Cameras = Annotated[Optional[str], typer.Option("--camera", help="Comma-separated cameras (default: all with a model).")]
Address = Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: local).")]
Actors = Annotated[int, typer.Option("--actors", help="Size of the Ray Data actor pool.")]
Smoke = Annotated[bool, typer.Option("--smoke", help="A few frames only (CI).")]


def _cams(text: str | None) -> list[str] | None:
    if not text or text == "all":
        return None
    from arcray.instrument import CAMERAS

    cams = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in cams if c not in CAMERAS]
    if bad:
        raise ConfigError(f"unknown camera(s) {', '.join(bad)}; choose from {', '.join(CAMERAS)}")
    return cams


def _check(flavor: str, latent: int) -> None:
    if flavor not in ("arc", "flat"):
        raise ConfigError(f"--flavor must be arc or flat, got {flavor!r}")
    if latent < 1:
        raise ConfigError(f"--latent must be >= 1, got {latent}")


@app.command("embed")
def embed_cmd(root: Root = ".", flavor: Flavor = "arc", latent: Latent = 2, camera: Cameras = None,
              actors: Actors = 2, address: Address = None, smoke: Smoke = False) -> None:
    """Encode every calibrated frame with its camera's registered model into the latents dataset."""
    _check(flavor, latent)
    cams = _cams(camera)
    from arcray.pipeline.embed import embed
    from arcray.raycluster import ensure_ray

    ensure_ray(address)
    out = embed(root, flavor=flavor, latent=latent, cameras=cams, n_actors=1 if smoke else actors,
                max_frames=16 if smoke else None)
    for cam, path in out.items():
        typer.echo(f"{cam}: {path}")


@app.command("analyze")
def analyze_cmd(root: Root = ".", flavor: Flavor = "arc", latent: Latent = 2, smoke: Smoke = False) -> None:
    """Latent scatter, Pearson matrix, drift and out-of-distribution frames (figures + tables)."""
    _check(flavor, latent)
    from arcray.pipeline.analysis import run_analyze

    out = run_analyze(root, flavor=flavor, latent=latent)
    typer.echo(f"analysis: {len(out)} artefacts written")


@app.command("regress")
def regress_cmd(root: Root = ".", flavor: Flavor = "arc", latent: Latent = 2,
                regressors: Annotated[str, typer.Option("--regressors", help="Comma-separated: linear,ridge,gbr,refarc.")]
                = "linear,ridge,gbr,refarc",
                truth: Annotated[Optional[str], typer.Option("--truth", help="Simulated world's truth.parquet (scores vs the true state).")] = None,
                actors: Actors = 2, address: Address = None, smoke: Smoke = False) -> None:
    """Fit metadata -> latent regressors per camera, decode predictions in batch, score them."""
    _check(flavor, latent)
    from arcray.analysis.regress import REGRESSORS

    kinds = [k.strip() for k in regressors.split(",") if k.strip()]
    bad = [k for k in kinds if k not in REGRESSORS]
    if bad or not kinds:
        raise ConfigError(f"unknown regressor(s) {', '.join(bad) or '(none)'}; choose from {', '.join(REGRESSORS)}")
    if smoke:
        kinds = [k for k in kinds if k != "gbr"] or ["linear"]
    from arcray.analysis.scores import mse_pivot
    from arcray.pipeline.analysis import run_regress
    from arcray.raycluster import ensure_ray

    ensure_ray(address)
    res = run_regress(root, flavor=flavor, latent=latent, kinds=kinds, truth=truth,
                      n_actors=1 if smoke else actors)
    typer.echo(mse_pivot(res["scores"], "mse").to_string(float_format=lambda v: f"{v:.4g}"))
    typer.echo(mse_pivot(res["scores"], "px").to_string(float_format=lambda v: f"{v:.3f}"))


@app.command("report")
def report_cmd(root: Root = ".", smoke: Smoke = False) -> None:
    """Write the static HTML report (index.html + figures) from whatever stages have run."""
    from arcray.report.html import build_report

    typer.echo(build_report(root).line())
