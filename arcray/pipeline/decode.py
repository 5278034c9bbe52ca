"""Decode latents in batch (Ray Data actors) and score them against the actual frames.

Input: the long table of ``arcray.analysis.study.predict_latents`` (one row per frame and model,
``autoencoder`` = the actual latent). ``read_parquet`` on exactly the calibrated files of those
frames, then ``map_batches(DecodeActor, compute=ActorPoolStrategy(...))``: each actor holds the
camera models and the (small) prediction table, decodes every model's latent of each frame in one
batch and returns per (frame, model) the masked MSE (normalised units), the line shift ``dy, dx``
(px, native detector pixels) against the actual frame, and the decoded frame (electrons).
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

    def __init__(self, dirs: dict[str, str], preds: pd.DataFrame):
        import torch

        from arcray.model.store import load_model

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.models = {cam: load_model(d, device=dev) for cam, d in dirs.items()}
        self.zc = z_columns(preds)
        self.preds = {k: g for k, g in preds.groupby(["camera", "expnum"])}

    def __call__(self, batch: pa.Table) -> dict:
        cams = np.asarray(batch.column("camera").to_pylist(), dtype=object)
        parts = [self._camera(batch, cams, cam) for cam in pd.unique(cams) if cam in self.models]
        parts = [p for p in parts if p is not None]
        if not parts:
            return {"camera": np.zeros(0, object), "image": np.zeros((0, 1, 1), np.float32)}
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
        return {"camera": p["camera"].to_numpy(object), "mjd": p["mjd"].to_numpy(np.int64),
                "expnum": p["expnum"].to_numpy(np.int64), "split": p["split"].to_numpy(object),
                "model": p["model"].to_numpy(object), "mse": mse, "dy": sh[:, 0], "dx": sh[:, 1],
                "image": dec.astype(np.float32)}


def decode_and_score(root: str, long: pd.DataFrame, model_dirs: dict[str, str], *, flavor: str = "arc",
                     n_actors: int = 2, batch_size: int = 16) -> pd.DataFrame:
    """Per (frame, model): ``mse, dy, dx`` and the decoded ``image``; ``dy, dx`` = model minus actual."""
    import ray

    from arcray.pipeline.embed import _pool

    layout = Layout(root)
    cams = sorted(set(long["camera"]) & set(model_dirs))
    if not cams:
        raise InputError("no predicted frame has a registered model to decode with")
    frames = long[long["camera"].isin(cams)][["camera", "mjd", "expnum"]].drop_duplicates()
    files = [layout.calibrated_frame(c, flavor, m, e) for c, m, e in frames.itertuples(index=False)]
    ds = ray.data.read_parquet(files, partitioning=None)
    compute, gpus = _pool(n_actors)
    out = ds.map_batches(DecodeActor, fn_constructor_kwargs={"dirs": {c: model_dirs[c] for c in cams},
                                                             "preds": long[long["camera"].isin(cams)]},
                         batch_format="pyarrow", batch_size=batch_size, compute=compute,
                         num_gpus=gpus, num_cpus=0 if gpus else 1)
    rows = out.take_all()
    df = pd.DataFrame({k: [r[k] for r in rows] for k in ("camera", "mjd", "expnum", "split", "model",
                                                          "mse", "dy", "dx", "image")})
    return df.sort_values(["camera", "mjd", "expnum", "model"]).reset_index(drop=True)
