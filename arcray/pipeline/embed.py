"""``arcray embed``: encode every calibrated frame with its camera's registered model (Ray Data).

One ``read_parquet`` over ``calibrated/camera=<cam>/flavor=<flavor>/`` of every camera with a model,
then ``map_batches(EncodeActor, compute=ActorPoolStrategy(...))`` (one GPU per actor when the cluster
has GPUs): each actor loads the models once, cuts the model's view out of each frame
(``View.extract_table``, the same function training uses), encodes it and measures the masked
reconstruction MSE (normalised units). The driver collects the small result (keys, metadata,
``z0..z{L-1}``, ``recon_mse``) and writes one Parquet file per (camera, flavor, latent) atomically
at ``Layout.latents_file(camera, flavor, latent)``.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray.analysis.latents import latent_names
from arcray.errors import InputError
from arcray.instrument import CAMERAS
from arcray.io import atomic_write_parquet, exists, provenance
from arcray.paths import Layout
from arcray.stages import StageSummary
from arcray.tensors import is_tensor

log = logging.getLogger(__name__)

TENSOR_COLUMNS = ("windows", "windows_mask", "binned", "binned_mask", "frame", "frame_mask")


def model_dirs(layout: Layout, flavor: str, latent: int, cameras=None) -> dict[str, str]:
    """Cameras (all, or the given ones) that have a registered model -> its directory."""
    return {cam: layout.model_dir(cam, flavor, latent) for cam in cameras or CAMERAS
            if exists(layout.model_meta(cam, flavor, latent))}


def calibrated_dirs(layout: Layout, flavor: str, cameras) -> dict[str, str]:
    """Cameras with calibrated ``flavor`` frames -> their partition (``Layout.calibrated_partition``)."""
    return {cam: layout.calibrated_partition(cam, flavor) for cam in cameras
            if exists(layout.calibrated_partition(cam, flavor))}


def scalar_columns(schema: pa.Schema) -> list[str]:
    """Every column that is not a tensor (keys, metadata, flags)."""
    return [f.name for f in schema if f.name not in TENSOR_COLUMNS and not is_tensor(f.type)]


class EncodeActor:
    """Loads each camera's model once; turns a pyarrow batch of calibrated rows into latents."""

    def __init__(self, dirs: dict[str, str], keep: list[str]):
        import torch

        from arcray.model.store import load_model

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.models = {cam: load_model(d, device=dev) for cam, d in dirs.items()}
        self.keep = keep

    def __call__(self, batch: pa.Table) -> pd.DataFrame:
        from arcray.analysis.scores import frame_mse

        df = batch.select([c for c in self.keep if c in batch.column_names]).to_pandas()
        cams = df["camera"].to_numpy()
        z_all, mse = None, np.full(len(df), np.nan)
        for cam in pd.unique(cams):
            rows = np.flatnonzero(cams == cam)
            lm = self.models[cam]
            x, m = lm.view.extract_table(batch.take(rows))
            z = lm.encode(x)
            rec = lm.decode(z)
            mse[rows] = frame_mse(lm.normaliser.forward(rec), lm.normaliser.forward(x), m)
            if z_all is None:
                z_all = np.full((len(df), z.shape[1]), np.nan, np.float32)
            z_all[rows] = z
        for j, name in enumerate(latent_names(z_all.shape[1])):
            df[name] = z_all[:, j]
        df["recon_mse"] = mse
        return df


def _pool(n_actors: int):
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    size = max(1, min(n_actors, gpus) if gpus else n_actors)
    return ray.data.ActorPoolStrategy(size=size), (1 if gpus else 0)


def embed(root: str, *, flavor: str = "arc", latent: int = 2, cameras=None, n_actors: int = 2,
          batch_size: int = 64, max_frames: int | None = None) -> StageSummary:
    """Encode the calibrated frames of every camera with a model (``outputs``: camera -> latents)."""
    import ray

    from arcray.model.split import split_labels

    t0 = time.perf_counter()
    layout = Layout(root)
    dirs = model_dirs(layout, flavor, latent, cameras)
    if not dirs:
        raise InputError(f"no registered {flavor!r} model with latent={latent} under {layout.models}")
    data = calibrated_dirs(layout, flavor, dirs)
    if not data:
        raise InputError(f"no calibrated {flavor!r} frames under {layout.calibrated} for "
                         f"cameras {', '.join(dirs)}")
    # One pipeline over every camera (one read, one actor pool that holds every camera's model),
    # so the pool's start-up (imports, model loading) is paid once, not per camera.
    ds = ray.data.read_parquet(list(data.values()), partitioning=None)
    keep = scalar_columns(ds.schema().base_schema)
    if "camera" not in keep:
        raise InputError(f"calibrated frames under {layout.calibrated} have no camera column")
    if max_frames:
        ds = ds.limit(max_frames * len(data))
    compute, gpus = _pool(n_actors)
    out = ds.map_batches(EncodeActor, fn_constructor_kwargs={"dirs": {c: dirs[c] for c in data}, "keep": keep},
                         batch_format="pyarrow", batch_size=batch_size, compute=compute,
                         num_gpus=gpus, num_cpus=0 if gpus else 1)
    frames = out.to_pandas()
    written = {}
    for cam in data:
        df = frames[frames["camera"] == cam].sort_values(["mjd", "expnum"]).reset_index(drop=True)
        if df.empty:
            continue
        df["split"] = split_labels(df["mjd"])
        df["latent"] = int(latent)
        dest = layout.latents_file(cam, flavor, latent)
        atomic_write_parquet(dest, pa.Table.from_pandas(df, preserve_index=False),
                             provenance(None, ["embed"], model_dir=dirs[cam], flavor=flavor, latent=latent))
        written[cam] = dest
        log.info("embedded %d %s frames of %s -> %s", len(df), flavor, cam, dest)
    n = int(frames["camera"].isin(list(written)).sum())
    return StageSummary(stage="embed", n_ok=n, seconds=time.perf_counter() - t0, unit="frames",
                        notes=(f"{', '.join(written)} -> {layout.latents}",), outputs=written)


def read_latents(root: str, *, flavor: str = "arc", latent: int = 2, cameras=None) -> pd.DataFrame:
    """All cameras' latents of (flavor, latent) as one DataFrame (``InputError`` when none)."""
    import pyarrow.parquet as pq

    layout, parts = Layout(root), []
    for cam in cameras or CAMERAS:
        p = layout.latents_file(cam, flavor, latent)
        if exists(p):
            parts.append(pq.read_table(p).to_pandas())
    if not parts:
        raise InputError(f"no latents for flavor={flavor!r} latent={latent} under {layout.latents}; "
                         "run `arcray embed` first")
    return pd.concat(parts, ignore_index=True)

