"""The regression study on a latents table (pure: DataFrames in, DataFrames out).

``predict_latents`` fits every regressor per camera on the training nights and predicts the latent
of every frame; the result is a long table (one row per frame and model, ``model = autoencoder``
holding the actual latent, so reconstructions and predictions are decoded and scored the same
way). ``state_estimates`` maps latents to the simulator's true state (a map fitted on the training
frames' actual latents), so every model's prediction can be scored against the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from arcray.analysis.latents import z_columns
from arcray.analysis.regress import REGRESSORS, fit_regressor, metadata_columns
from arcray.errors import InputError

KEYS = ["camera", "flavor", "mjd", "expnum"]


def usable(lat: pd.DataFrame) -> pd.DataFrame:
    """Frames the study uses: not Hartmann sub-frames, with a finite latent."""
    ok = np.isfinite(lat[z_columns(lat)].to_numpy(dtype=float)).all(1)
    if "is_hartmann" in lat.columns:
        ok &= ~lat["is_hartmann"].fillna(False).astype(bool).to_numpy()
    return lat[ok].reset_index(drop=True)


def predict_latents(lat: pd.DataFrame, kinds=REGRESSORS, *, alpha: float | None = None, seed: int = 0,
                    columns: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """``(long predictions, {camera: {kind: LatentRegressor}})``; long has KEYS, split, model, z*."""
    lat = usable(lat)
    zc = z_columns(lat)
    keys = [k for k in KEYS if k in lat.columns] + ["split"]
    parts, fitted = [], {}
    for cam, g in lat.groupby("camera", sort=True):
        g = g.sort_values(["mjd", "expnum"]).reset_index(drop=True)
        Z = g[zc].to_numpy(dtype=np.float64)
        train = (g["split"] == "train").to_numpy()
        if train.sum() < 3:
            raise InputError(f"camera {cam}: only {int(train.sum())} training frames; cannot regress")
        cols = columns or metadata_columns(g[train])
        parts.append(g[keys].assign(model="autoencoder").join(g[zc]))
        fitted[cam] = {}
        for kind in kinds:
            reg = fit_regressor(kind, g[train].reset_index(drop=True), Z[train], columns=cols,
                                alpha=alpha, seed=seed)
            fitted[cam][kind] = reg
            pred = reg.predict(g, Z) if kind == "refarc" else reg.predict(g)
            parts.append(g[keys].assign(model=kind).join(pd.DataFrame(pred, columns=zc)))
    return pd.concat(parts, ignore_index=True), fitted


def state_estimates(long: pd.DataFrame, truth: pd.DataFrame,
                    params=("dx", "dy", "sigma", "A")) -> pd.DataFrame:
    """Per row of ``long``, the state implied by its latent (map fitted per camera on train AE rows)."""
    from arcray.analysis.scores import fit_state_map

    zc = z_columns(long)
    params = [p for p in params if p in truth.columns]
    out = []
    for cam, g in long.groupby("camera"):
        ae = g[(g["model"] == "autoencoder") & (g["split"] == "train")]
        ref = ae.merge(truth[["camera", "expnum", *params]], on=["camera", "expnum"])
        if len(ref) < 5:
            continue
        f = fit_state_map(ref[zc].to_numpy(float), ref[params].to_numpy(float))
        est = pd.DataFrame(f.predict(g[zc].to_numpy(float)), columns=params, index=g.index)
        out.append(g[["camera", "mjd", "expnum", "split", "model"]].join(est))
    if not out:
        raise InputError("no camera has enough training frames matching the truth table")
    return pd.concat(out, ignore_index=True)
