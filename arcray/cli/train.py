"""`arcray train` and `arcray tune`: per-camera autoencoders on Ray Train / Ray Tune."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.cli.options import (Cameras, Flavor, MaxFailuresOpt, Progress, RayAddress, Root, check_flavor,
                                csv, floats, ints, smoke_option, workers_option)
from arcray.errors import ConfigError

Out = Annotated[Optional[str], typer.Option(
    "--out", help="A different root to write models/, runs/, tune/ and the training figures to "
                  "(default: --root).")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", min=1, help="Maximum epochs.")]
Workers = Annotated[int, workers_option("Ray Train workers per training run (DDP)")]
Smoke = Annotated[bool, smoke_option("one epoch of the tiny model on at most 64 frames per split")]
Crop = Annotated[str, typer.Option("--crop", help="row0,col0,h,w of the window, 'none' (whole "
                                                   "window) or empty (the central 64x64).")]
Window = Annotated[int, typer.Option("--window", help="Window index.")]
Downsample = Annotated[int, typer.Option("--downsample", help="Block-mean factor.")]


def _crop(text: str):
    """``(crop, crop_size)``: explicit box, the whole window, or the central 64 px (default)."""
    if text.strip() == "":
        return None, 64
    if text.strip().lower() == "none":
        return None, None
    vals = ints(text, "--crop")
    if len(vals) != 4:
        raise ConfigError(f"--crop must have 4 integers, got {text!r}")
    return tuple(vals), 64


def _base(flavor, arch, latent, epochs, workers, smoke, crop, window, downsample, lr):
    from arcray.training.config import TrainConfig, view_of_arch

    box, size = _crop(crop)
    kw = dict(flavor=check_flavor(flavor), arch=arch, latent=latent, workers=workers, crop=box,
              crop_size=size, window=window, downsample=downsample, lr=lr, view=view_of_arch(arch))
    if smoke:
        kw.update(epochs=1, max_frames=64)
    if epochs is not None:
        kw["epochs"] = epochs
    try:
        return TrainConfig(**kw)
    except ValueError as exc:
        raise ConfigError(f"bad training options: {exc.errors()[0]['msg']}") from None


def _cameras(root: str, cameras, flavor: str) -> list[str]:
    from arcray.training.data import list_cameras

    return list(cameras) if cameras else list_cameras(root, flavor)


@app.command()
def train(root: Root, out: Out = None, cameras: Cameras = None, flavor: Flavor = "arc",
          latent: Annotated[int, typer.Option("--latent", help="Latent size (1..64).")] = 4,
          arch: Annotated[str, typer.Option("--arch", help="pca_res, small3, deep_res, tiny (one window), "
                                                           "grid_res (the detector grid) or line_mlp (line vectors).")] = "pca_res",
          lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 3e-4,
          epochs: Epochs = None, workers: Workers = 1, crop: Crop = "", window: Window = 0,
          downsample: Downsample = 1, max_failures: MaxFailuresOpt = None, address: RayAddress = None,
          smoke: Smoke = False) -> None:
    """Train one autoencoder per camera (Ray Train) and register it in ROOT/models/."""
    from arcray.raycluster import ensure_ray
    from arcray.training.trainer import train_cameras

    base = _base(flavor, "tiny" if smoke else arch, latent, epochs, workers, smoke, crop, window,
                 downsample, lr)
    cams = _cameras(root, cameras, flavor)
    ensure_ray(address)
    summary = train_cameras(root, out or root, base, cams)
    for cam, res in summary.results.items():
        m = res["metrics"]
        typer.echo(f"{cam} {flavor} latent={latent}: val_loss={m['val_loss']:.4g} "
                   f"epochs={m['epochs_run']} -> {res['model_dir']}")
    typer.echo(summary.line())
    max_failures.check(summary)


@app.command()
def tune(root: Root, out: Out = None, cameras: Cameras = None, flavor: Flavor = "arc",
         latents: Annotated[str, typer.Option("--latents", help="Latent sizes, e.g. 1,2,4,8.")] = "1,2,4,8",
         archs: Annotated[str, typer.Option("--archs", help="Architectures, comma-separated.")] = "pca_res",
         views: Annotated[Optional[str], typer.Option(
             "--views", help="Representations searched, comma-separated: window0, grid, lines (each "
                             "with the --archs that read it, or its default architecture). "
                             "Default: the views of --archs.")] = None,
         lrs: Annotated[str, typer.Option("--lrs", help="Learning rates, comma-separated.")] = "0.0003",
         epochs: Epochs = None, workers: Workers = 1, crop: Crop = "", window: Window = 0,
         downsample: Downsample = 1, max_failures: MaxFailuresOpt = None, address: RayAddress = None,
         smoke: Smoke = False, progress: Progress = None) -> None:
    """Ray Tune over camera x latent x arch x lr (ASHA within one camera and latent size);
    registers the best model per camera and latent size; failed trials are rows of
    ROOT/tune/results.parquet."""
    from arcray.progress import progress_bar
    from arcray.raycluster import ensure_ray
    from arcray.training.tune import tune_cameras

    from arcray.training.config import archs_for_views

    lat, arch_list, lr_list = ints(latents, "--latents"), list(csv(archs)), floats(lrs, "--lrs")
    if views is not None:
        try:
            arch_list = archs_for_views(list(csv(views)), arch_list)
        except ValueError as exc:
            raise ConfigError(f"--views: {exc}") from None
    if smoke:
        lat, arch_list, lr_list = lat[:2], ["tiny"], lr_list[:1]
    if not lat or not arch_list or not lr_list:
        raise ConfigError("need at least one latent size, architecture and learning rate")
    base = _base(flavor, arch_list[0], lat[0], epochs, workers, smoke, crop, window, downsample, lr_list[0])
    cams = _cameras(root, cameras, flavor)
    ensure_ray(address)
    n_trials = len(cams) * len(lat) * len(arch_list) * len(lr_list)
    with progress_bar("tune", n_trials, unit="trials", enabled=progress) as advance:
        summary = tune_cameras(root, out or root, base, cams, latents=lat, archs=arch_list, lrs=lr_list,
                               progress=advance)
    best = summary.table[summary.table["registered"]].sort_values(["camera", "latent"])
    for _, r in best.iterrows():
        typer.echo(f"{r['camera']} latent={r['latent']} [{r['view']}]: {r['arch']} lr={r['lr']:g} "
                   f"val={r['best_val_loss']:.4g} test={r['test_loss']:.4g} "
                   f"pca_val={r['pca_val_loss']:.4g}")
    typer.echo(summary.line())
    max_failures.check(summary)
