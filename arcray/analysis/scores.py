"""Scores of reconstructions and decoded predictions: the study's MSE table and the physical errors.

The per-frame table (``long``) has one row per (frame, model): ``camera, mjd, expnum, split, model``
(``autoencoder`` for the reconstruction, else the regressor's name), ``mse`` (normalised units,
masked), ``dy``, ``dx`` (px, native detector pixels: the line shift of the model's frame relative
to the actual frame). ``score_table`` aggregates it per camera, model and split.

On the simulated world ``truth.parquet`` gives the true state and its hidden part (what no header
value explains). Two floors follow from it, per camera and split:

- ``floor_meta_px``: RMS of the hidden (dy, dx) about its mean — the px error of a perfect
  metadata-only predictor;
- ``floor_ref_px``: RMS of the change of the hidden (dy, dx) since the night's previous frame — the
  error of a perfect reference-arc predictor (it knows the previous arc's state exactly); the
  night's first frame has no reference, so there the metadata floor applies (as the model falls
  back on metadata alone).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from arcray.errors import InputError

KEYS = ["camera", "mjd", "expnum"]


def frame_mse(pred: np.ndarray, actual: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-frame mean squared error over good pixels (``mask`` 1 = bad) of two ``[N, H, W]`` stacks."""
    pred = np.asarray(pred, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if pred.shape != actual.shape:
        raise InputError(f"prediction shape {pred.shape} differs from actual {actual.shape}")
    good = np.ones(pred.shape, bool) if mask is None else (np.asarray(mask) == 0)
    se = np.where(good, (pred - actual) ** 2, 0.0).reshape(len(pred), -1).sum(1)
    n = good.reshape(len(pred), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, se / n, np.nan)


def _rms(x: pd.Series) -> float:
    x = x.to_numpy(dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x**2))) if x.size else float("nan")


def score_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per (camera, model, split): ``n, mse, n_px, px_dy, px_dx, px`` (RMS px over the ``n_px`` frames
    whose shift could be measured; ``px`` = RMS of the 2-D shift)."""
    need = {"camera", "model", "split", "mse", "dy", "dx"}
    missing = need - set(long.columns)
    if missing:
        raise InputError(f"per-frame scores lack columns: {', '.join(sorted(missing))}")
    d = long.assign(r2=long["dy"] ** 2 + long["dx"] ** 2)
    g = d.groupby(["camera", "model", "split"], sort=True)
    out = g.agg(n=("mse", "size"), mse=("mse", "mean")).reset_index()
    out["n_px"] = g["r2"].count().to_numpy()
    out["px_dy"] = g["dy"].apply(_rms).to_numpy()
    out["px_dx"] = g["dx"].apply(_rms).to_numpy()
    out["px"] = np.sqrt(g["r2"].mean().to_numpy())  # pandas mean skips NaN
    return out


def mse_pivot(scores: pd.DataFrame, value: str = "mse") -> pd.DataFrame:
    """The study's table: rows (camera, model), columns train / val / test."""
    p = scores.pivot_table(index=["camera", "model"], columns="split", values=value)
    return p.reindex(columns=[c for c in ("train", "val", "test") if c in p.columns])


def _hidden_increments(t: pd.DataFrame, col: str) -> np.ndarray:
    t = t.sort_values(["camera", "mjd", "expnum"])
    inc = t.groupby(["camera", "mjd"])[col].diff()
    return inc.to_numpy(dtype=np.float64)


def truth_floors(truth: pd.DataFrame, frames: pd.DataFrame) -> pd.DataFrame:
    """Per (camera, split): ``floor_meta_px`` and ``floor_ref_px`` on the given frames.

    ``frames`` has ``camera, mjd, expnum, split`` (the frames that were scored); ``truth`` the
    simulator's table with ``dx_hidden`` and ``dy_hidden``.
    """
    need = {"camera", "expnum", "dx_hidden", "dy_hidden"}
    if need - set(truth.columns):
        raise InputError(f"truth table lacks columns: {', '.join(sorted(need - set(truth.columns)))}")
    f = frames[KEYS + ["split"]].drop_duplicates()
    t = f.merge(truth[["camera", "expnum", "dx_hidden", "dy_hidden"]], on=["camera", "expnum"], how="inner")
    if t.empty:
        raise InputError("no scored frame matches the truth table (camera, expnum)")
    t = t.sort_values(["camera", "mjd", "expnum"]).reset_index(drop=True)
    t["ddy"] = _hidden_increments(t, "dy_hidden")
    t["ddx"] = _hidden_increments(t, "dx_hidden")
    rows = []
    for (cam, split), g in t.groupby(["camera", "split"]):
        hy = g["dy_hidden"] - g["dy_hidden"].mean()
        hx = g["dx_hidden"] - g["dx_hidden"].mean()
        first = g["ddy"].isna().to_numpy()
        ry = np.where(first, hy, g["ddy"].to_numpy(float))
        rx = np.where(first, hx, g["ddx"].to_numpy(float))
        rows.append({"camera": cam, "split": split, "n": len(g),
                     "floor_meta_dy": _rms(hy), "floor_meta_dx": _rms(hx),
                     "floor_meta_px": float(np.sqrt(np.mean(hy**2 + hx**2))),
                     "floor_ref_px": float(np.sqrt(np.mean(ry**2 + rx**2)))})
    return pd.DataFrame(rows)


def state_errors(long_state: pd.DataFrame, truth: pd.DataFrame,
                 params=("dx", "dy", "sigma", "A")) -> pd.DataFrame:
    """RMS error of a state estimate against the truth per (camera, model, split).

    ``long_state`` has ``camera, expnum, model, split`` and one column per estimated parameter
    (e.g. from a linear map latent -> state fitted on training frames).
    """
    cols = [p for p in params if p in long_state.columns and p in truth.columns]
    if not cols:
        raise InputError("no state parameter in common between the estimates and the truth")
    m = long_state.merge(truth[["camera", "expnum", *cols]], on=["camera", "expnum"],
                         suffixes=("", "_true"))
    for p in cols:
        m[f"err_{p}"] = m[p] - m[f"{p}_true"]
    g = m.groupby(["camera", "model", "split"])
    out = g.size().rename("n").reset_index()
    for p in cols:
        out[f"rms_{p}"] = g[f"err_{p}"].apply(_rms).to_numpy()
    return out


def fit_state_map(Z: np.ndarray, state: np.ndarray):
    """A linear-in-features map latent -> true state (quadratic terms, ridge), fitted on train."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    return make_pipeline(StandardScaler(), PolynomialFeatures(2), Ridge(alpha=1e-3)).fit(Z, state)
