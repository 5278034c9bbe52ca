"""``arcray embed``: encode every calibrated frame with its camera's registered model (Ray Data).

One ``read_parquet`` over the calibrated files of every camera with a model (listed, in
(camera, mjd, expnum) order), then ``map_batches(EncodeActor, compute=ActorPoolStrategy(...))``
(one GPU per actor when the cluster has GPUs): each actor loads the models once, cuts the model's
view out of each frame (``View.extract_table``, the same function training uses), encodes it and
measures the masked reconstruction MSE (normalised units). The stage streams: the driver iterates
the small result blocks (keys, metadata, ``z0..z{L-1}``, ``recon_mse``) as they come, in input
order, and appends each to its camera's Parquet file (one row group a block, ``ParquetStream``),
renamed into place at ``Layout.latents_file(camera, flavor, latent)`` when the stream ends. Neither
the driver nor the object store ever holds every frame's latents.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray.analysis.latents import latent_names
from arcray.errors import InputError
from arcray.instrument import CAMERAS
from arcray.io import exists, list_files, provenance
from arcray.parquet_stream import ParquetStream
from arcray.paths import Layout
from arcray.stages import StageSummary
from arcray.tensors import is_tensor

log = logging.getLogger(__name__)

# Ray Data's Parquet reader packs files into blocks of up to 128 MiB (~34 calibrated frames of
# ~3.8 MB in memory) and ignores override_num_blocks; a few such blocks in flight filled a small
# object store. 32 MiB blocks (~8 frames, one actor batch) keep what a stage holds small.
BLOCK_BYTES = 32 * 2**20

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

    def __call__(self, batch: pa.Table) -> pa.Table:
        from arcray.analysis.scores import frame_mse

        # Arrow in, Arrow out: the metadata keep their Parquet types (no pandas round trip that
        # turns an int column with a null into floats in one block and not in the next).
        out = batch.select([c for c in self.keep if c in batch.column_names])
        cams = np.asarray(batch.column("camera").to_pylist(), dtype=object)
        z_all, mse = None, np.full(len(cams), np.nan)
        for cam in pd.unique(cams):
            rows = np.flatnonzero(cams == cam)
            lm = self.models[cam]
            x, m = lm.view.extract_table(batch.take(rows))
            z = lm.encode(x)
            rec = lm.decode(z)
            mse[rows] = frame_mse(lm.normaliser.forward(rec), lm.normaliser.forward(x), m)
            if z_all is None:
                z_all = np.full((len(cams), z.shape[1]), np.nan, np.float32)
            z_all[rows] = z
        for j, name in enumerate(latent_names(z_all.shape[1])):
            out = out.append_column(name, pa.array(z_all[:, j], pa.float32()))
        return out.append_column("recon_mse", pa.array(mse, pa.float64()))


def _pool(n_actors: int):
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    size = max(1, min(n_actors, gpus) if gpus else n_actors)
    # Two batches in flight per actor (Ray's default is 4): the object store then holds about
    # 2 x actors x batch_size frames of input (a calibrated frame is ~3.8 MB in memory), however
    # many frames the stage reads. With 4, a 192 MiB store spilled every frame (tests/test_scale_streaming).
    return ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=2), (1 if gpus else 0)


def frame_files(layout: Layout, flavor: str, cameras, max_frames: int | None = None) -> dict[str, list[str]]:
    """Camera -> its calibrated ``flavor`` files in (mjd, expnum) order (the first ``max_frames``)."""
    out = {}
    for cam, part in calibrated_dirs(layout, flavor, cameras).items():
        files = list_files(part, ".parquet")[:max_frames or None]
        if files:
            out[cam] = files
    return out


def embed(root: str, *, flavor: str = "arc", latent: int = 2, cameras=None, n_actors: int = 2,
          batch_size: int = 8, max_frames: int | None = None) -> StageSummary:
    """Encode the calibrated frames of every camera with a model (``outputs``: camera -> latents)."""
    t0 = time.perf_counter()
    layout = Layout(root)
    dirs = model_dirs(layout, flavor, latent, cameras)
    if not dirs:
        raise InputError(f"no registered {flavor!r} model with latent={latent} under {layout.models}")
    files = frame_files(layout, flavor, dirs, max_frames)
    if not files:
        raise InputError(f"no calibrated {flavor!r} frames under {layout.calibrated} for "
                         f"cameras {', '.join(dirs)}")
    # One pipeline over every camera (one read, one actor pool that holds every camera's model),
    # so the pool's start-up (imports, model loading) is paid once, not per camera. Blocks come
    # back in input order (preserve_order), so each camera's file is written sorted, as before.
    paths = [f for cam in files for f in files[cam]]
    with frame_blocks(ordered=True):
        return _embed(layout, files, paths, dirs, flavor, latent, n_actors, batch_size, t0)


@contextmanager
def frame_blocks(ordered: bool = False):
    """Ray Data settings of the stages that stream calibrated frames, restored on exit:
    blocks of ``BLOCK_BYTES`` and, with ``ordered``, blocks in input order."""
    import ray

    ctx = ray.data.DataContext.get_current()
    saved = ctx.target_max_block_size, ctx.execution_options.preserve_order
    ctx.target_max_block_size = BLOCK_BYTES
    ctx.execution_options.preserve_order = ordered or saved[1]
    try:
        yield ctx
    finally:
        ctx.target_max_block_size, ctx.execution_options.preserve_order = saved


def _embed(layout, files, paths, dirs, flavor, latent, n_actors, batch_size, t0) -> StageSummary:
    import ray

    from arcray.model.split import split_labels

    ds = ray.data.read_parquet(paths, partitioning=None)
    keep = scalar_columns(ds.schema().base_schema)
    if "camera" not in keep:
        raise InputError(f"calibrated frames under {layout.calibrated} have no camera column")
    compute, gpus = _pool(n_actors)
    out = ds.map_batches(EncodeActor, fn_constructor_kwargs={"dirs": {c: dirs[c] for c in files}, "keep": keep},
                         batch_format="pyarrow", batch_size=batch_size, compute=compute,
                         num_gpus=gpus, num_cpus=0 if gpus else 1)
    streams = {cam: ParquetStream(layout.latents_file(cam, flavor, latent),
                                  provenance(None, ["embed"], model_dir=dirs[cam], flavor=flavor, latent=latent))
               for cam in files}
    ok = False
    try:
        for block in out.iter_batches(batch_format="pyarrow", batch_size=None):
            cams = np.asarray(block.column("camera").to_pylist(), dtype=object)
            for cam in pd.unique(cams):
                part = block.filter(pa.array(cams == cam))
                part = part.append_column("split", pa.array(split_labels(part.column("mjd").to_numpy())))
                streams[cam].write(part.append_column("latent", pa.array(np.full(part.num_rows, int(latent)))))
        ok = True
    finally:
        for s in streams.values():
            s.close(ok=ok)
    written = {cam: layout.latents_file(cam, flavor, latent) for cam, s in streams.items() if s.rows}
    for cam in written:
        log.info("embedded %d %s frames of %s -> %s", streams[cam].rows, flavor, cam, written[cam])
    n = sum(s.rows for s in streams.values())
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

