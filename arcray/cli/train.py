"""`arcray train` and `arcray tune`: per-camera autoencoders on Ray Train / Ray Tune."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.errors import ConfigError

Data = Annotated[str, typer.Option("--data", "--root", help="Root holding calibrated/ (Layout root).")]
Out = Annotated[Optional[str], typer.Option("--out", help="Output root (models/, runs/, tune/, "
                                                          "analysis/); default: the --data root.")]
Camera = Annotated[str, typer.Option("--camera", help="b1, r1, b2, r2 or 'all'.")]
Flavor = Annotated[str, typer.Option("--flavor", help="arc or flat.")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs.")]
Workers = Annotated[int, typer.Option("--workers", help="Ray Train workers per run.")]
Address = Annotated[Optional[str], typer.Option("--address", help="Ray cluster address.")]
Smoke = Annotated[bool, typer.Option("--smoke", help="One epoch, few frames, tiny model.")]
Crop = Annotated[str, typer.Option("--crop", help="row0,col0,h,w of the window, or 'none'.")]


def _crop(text: str):
    if text.strip().lower() in ("none", ""):
        return None
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--crop must be row0,col0,h,w or none, got {text!r}") from None
    if len(vals) != 4:
        raise ConfigError(f"--crop must have 4 integers, got {text!r}")
    return vals


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None


def _base(camera, flavor, arch, latent, epochs, workers, smoke, crop, window, downsample, lr):
    from arcray.training.config import TrainConfig

    kw = dict(camera=camera, flavor=flavor, arch=arch, latent=latent, workers=workers,
              crop=_crop(crop), window=window, downsample=downsample, lr=lr)
    if smoke:
        kw.update(epochs=1, max_frames=64)
    if epochs is not None:
        kw["epochs"] = epochs
    try:
        return TrainConfig(**kw)
    except ValueError as exc:
        raise ConfigError(f"bad training options: {exc.errors()[0]['msg']}") from None


def _cameras(data: str, camera: str, flavor: str) -> list[str]:
    from arcray.training.data import list_cameras

    return list_cameras(data, flavor) if camera == "all" else [camera]


@app.command()
def train(data: Data, out: Out = None, camera: Camera = "b1", flavor: Flavor = "arc",
          latent: Annotated[int, typer.Option(help="Latent size (1..64).")] = 4,
          arch: Annotated[str, typer.Option(help="pca_res, small3, deep_res or tiny.")] = "pca_res",
          lr: Annotated[float, typer.Option(help="Learning rate.")] = 3e-4,
          epochs: Epochs = None, workers: Workers = 1, crop: Crop = "96,96,64,64",
          window: Annotated[int, typer.Option(help="Window index.")] = 0,
          downsample: Annotated[int, typer.Option(help="Block-mean factor.")] = 1,
          address: Address = None, smoke: Smoke = False) -> None:
    """Train one autoencoder per camera (Ray Train) and register it in the model store."""
    from arcray.raycluster import ensure_ray
    from arcray.training.trainer import train_camera

    out = out or data
    base = _base(camera if camera != "all" else "b1", flavor, "tiny" if smoke else arch, latent,
                 epochs, workers, smoke, crop, window, downsample, lr)
    ensure_ray(address)
    for cam in _cameras(data, camera, flavor):
        res = train_camera(data, out, base.model_copy(update={"camera": cam}))
        m = res["metrics"]
        typer.echo(f"{cam} {flavor} latent={latent}: val_loss={m['val_loss']:.4g} "
                   f"epochs={m['epochs_run']} -> {res['model_dir']}")


@app.command()
def tune(data: Data, out: Out = None, camera: Camera = "all", flavor: Flavor = "arc",
         latents: Annotated[str, typer.Option(help="Latent sizes, e.g. 1,2,4,8.")] = "1,2,4,8",
         archs: Annotated[str, typer.Option(help="Architectures, comma-separated.")] = "pca_res",
         lrs: Annotated[str, typer.Option(help="Learning rates, comma-separated.")] = "0.0003",
         epochs: Epochs = None, workers: Workers = 1, crop: Crop = "96,96,64,64",
         window: Annotated[int, typer.Option(help="Window index.")] = 0,
         downsample: Annotated[int, typer.Option(help="Block-mean factor.")] = 1,
         address: Address = None, smoke: Smoke = False) -> None:
    """Ray Tune over camera x latent x arch x lr (ASHA within one camera and latent size);
    registers the best model per camera and latent size."""
    from arcray.raycluster import ensure_ray
    from arcray.training.tune import tune_cameras

    out = out or data
    lat = _ints(latents, "--latents")
    arch_list = [a.strip() for a in archs.split(",") if a.strip()]
    try:
        lr_list = [float(v) for v in lrs.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--lrs must be comma-separated numbers, got {lrs!r}") from None
    if smoke:
        lat, arch_list, lr_list = lat[:2], ["tiny"], lr_list[:1]
    if not lat or not arch_list or not lr_list:
        raise ConfigError("need at least one latent size, architecture and learning rate")
    base = _base("b1", flavor, arch_list[0], lat[0], epochs, workers, smoke, crop, window,
                 downsample, lr_list[0])
    ensure_ray(address)
    table = tune_cameras(data, out, base, _cameras(data, camera, flavor), latents=lat,
                         archs=arch_list, lrs=lr_list)
    best = table[table["registered"]].sort_values(["camera", "latent"])
    for _, r in best.iterrows():
        typer.echo(f"{r['camera']} latent={r['latent']}: {r['arch']} lr={r['lr']:g} "
                   f"val={r['best_val_loss']:.4g} test={r['test_loss']:.4g} "
                   f"pca_val={r['pca_val_loss']:.4g}")
