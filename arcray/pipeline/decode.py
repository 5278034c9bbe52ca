"""Decode latents in batch (Ray Data actors) and score them against the actual frames.

Input: the long table of ``arcray.analysis.study.predict_latents`` (one row per frame and model,
``autoencoder`` = the actual latent). ``read_parquet`` on exactly the calibrated files of those
frames, then ``map_batches(DecodeActor, compute=ActorPoolStrategy(...))``: each actor holds the
camera models and the (small) prediction table, decodes every model's latent of each frame in one
batch and returns per (frame, model) the masked MSE (normalised units), the line shift ``dy, dx``
(px, native detector pixels) against the actual frame and, only when asked (``images=True``, for
the few frames a report shows), the decoded frame (electrons). The driver iterates the result
blocks as they come and keeps their scalars only: a decoded image is ~16 KB a (frame, model), so
collecting every image (as this stage once did) grew the driver and the object store with the
archive (10 GB for 100,000 frames and 6 models).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray.analysis.latents import z_columns
from arcray.errors import InputError
from arcray.paths import Layout


def pixel_scale(view) -> float:
    """Native detector pixels per model-input pixel."""
    return float(view.downsample) * (8.0 if view.column == "binned" else 1.0)


def shift_tile(shape) -> int:
    return int(max(16, min(64, min(shape) // 2)))


class DecodeActor:
    """Per batch of calibrated rows: decode each listed model's latent, score vs the actual frame."""

    def __init__(self, dirs: dict[str, str], preds: pd.DataFrame, images: bool = True):
        import torch

        from arcray.model.store import load_model

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.models = {cam: load_model(d, device=dev) for cam, d in dirs.items()}
        self.zc = z_columns(preds)
        self.preds = {k: g for k, g in preds.groupby(["camera", "expnum"])}
        self.images = images

    def __call__(self, batch: pa.Table) -> dict:
        cams = np.asarray(batch.column("camera").to_pylist(), dtype=object)
        parts = [self._camera(batch, cams, cam) for cam in pd.unique(cams) if cam in self.models]
        parts = [p for p in parts if p is not None]
        if not parts:
            empty = {"camera": np.zeros(0, object)}
            return {**empty, "image": np.zeros((0, 1, 1), np.float32)} if self.images else empty
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _camera(self, batch: pa.Table, cams: np.ndarray, cam: str) -> dict | None:
        from arcray.analysis.lineshift import batch_shifts
        from arcray.analysis.scores import frame_mse
        lm = self.models[cam]
        rows = np.flatnonzero(cams == cam)
        x, m = lm.view.extract_table(batch.take(rows))
        exps = np.asarray(batch.column("expnum").to_pylist())[rows]
        idx, preds = [], []
        for i, exp in enumerate(exps):
            p = self.preds.get((cam, int(exp)))
            if p is not None:
                idx += [i] * len(p)
                preds.append(p)
        if not preds:
            return None
        p = pd.concat(preds, ignore_index=True)
        idx = np.asarray(idx)
        dec = lm.decode(p[self.zc].to_numpy(np.float32))
        act, msk = x[idx], m[idx]
        mse = frame_mse(lm.normaliser.forward(dec), lm.normaliser.forward(act), msk)
        sh = batch_shifts(act, dec, pixel_scale=pixel_scale(lm.view), tile=shift_tile(x.shape[1:]))
        out = {"camera": p["camera"].to_numpy(object), "mjd": p["mjd"].to_numpy(np.int64),
               "expnum": p["expnum"].to_numpy(np.int64), "split": p["split"].to_numpy(object),
               "model": p["model"].to_numpy(object), "mse": mse, "dy": sh[:, 0], "dx": sh[:, 1]}
        if self.images:
            out["image"] = dec.astype(np.float32)
        return out


SCALARS = ("camera", "mjd", "expnum", "split", "model", "mse", "dy", "dx")


def decode_and_score(root: str, long: pd.DataFrame, model_dirs: dict[str, str], *, flavor: str = "arc",
                     n_actors: int = 2, batch_size: int = 8, images: bool = True) -> pd.DataFrame:
    """Per (frame, model): ``mse, dy, dx`` (``dy, dx`` = model minus actual) and, with ``images``,
    the decoded ``image``. Pass ``images=False`` for every frame and ``True`` for the few shown."""
    from arcray.pipeline.embed import frame_blocks

    layout = Layout(root)
    cams = sorted(set(long["camera"]) & set(model_dirs))
    if not cams:
        raise InputError("no predicted frame has a registered model to decode with")
    frames = long[long["camera"].isin(cams)][["camera", "mjd", "expnum"]].drop_duplicates()
    files = [layout.calibrated_frame(c, flavor, m, e) for c, m, e in frames.itertuples(index=False)]
    with frame_blocks():
        return _decode(files, cams, long, model_dirs, n_actors, batch_size, images)


def _decode(files, cams, long, model_dirs, n_actors, batch_size, images) -> pd.DataFrame:
    import ray

    from arcray.pipeline.embed import _pool

    ds = ray.data.read_parquet(files, partitioning=None)
    compute, gpus = _pool(n_actors)
    out = ds.map_batches(DecodeActor, fn_constructor_kwargs={"dirs": {c: model_dirs[c] for c in cams},
                                                             "preds": long[long["camera"].isin(cams)],
                                                             "images": images},
                         batch_format="pyarrow", batch_size=batch_size, compute=compute,
                         num_gpus=gpus, num_cpus=0 if gpus else 1)
    parts = []
    for block in out.iter_batches(batch_format="numpy", batch_size=None):
        if not len(block["camera"]):
            continue
        part = pd.DataFrame({k: block[k] for k in SCALARS})
        if images:
            part["image"] = list(np.asarray(block["image"], np.float32))
        parts.append(part)
    cols = [*SCALARS, "image"] if images else list(SCALARS)
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    return df.sort_values(["camera", "mjd", "expnum", "model"]).reset_index(drop=True)
