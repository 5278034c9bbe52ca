"""Scores of a representation against the simulator's truth (simulated worlds only). Pure numpy/pandas.

Two questions per latent table (one row per frame of one camera: ``expnum``, ``mjd`` and latent
columns ``z0..``):

1. **Does the latent encode the true state?** For every state term of the truth table (the 12
   field terms of ``optics.FIELD_TERMS``, px at the detector's edge, and the lamp brightnesses) a
   ridge regressor from the latent to the term is fitted on the training nights and scored by R^2
   on the test nights; the night split is the training split (``arcray.model.split``), so a
   latent is never scored on a night its model saw. The penalty is chosen by cross-validation over
   whole training nights. A term's **edge effect** is its spread
   across the scored frames (standard deviation of the coefficient, px at the edge): a term that
   moves lines by less than a tenth of a pixel is not expected to be recovered.
2. **Where does a reconstruction put the lines?** A decoded line vector (``arcray.model.linevec``)
   gives each (fiber, line) a centre and width; ``line_rms`` compares them with the true centres
   of that frame's state (``optics.line_positions``), RMS over the alive fibers' slots, in px.
   ``true_line_vectors`` gives the truth in the vector's own form (the noiseless measurement), so
   the measured vectors' own error against it is the floor no reconstruction can go under.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from arcray.errors import InputError
from arcray.model.linevec import LineIndex
from arcray.model.split import split_codes
from arcray.optics import FIELD_TERMS, Field, line_positions, traces

LAMP_TERMS = ("lamp_Ne", "lamp_HgCd", "lamp_HeAr")


def state_terms(truth: pd.DataFrame) -> list[str]:
    """The state terms of ``truth`` that have values (field terms first, then lamps)."""
    return [t for t in FIELD_TERMS + LAMP_TERMS if t in truth and truth[t].notna().any()]


def edge_effects(truth: pd.DataFrame, terms: list[str] | None = None) -> pd.Series:
    """Spread (std across rows) of each term; px at the detector's edge for field terms, NaN for
    lamps (their unit is a brightness, not a displacement)."""
    terms = terms or state_terms(truth)
    return pd.Series({t: float(truth[t].std()) if t in FIELD_TERMS else np.nan for t in terms})


def latent_columns(latents: pd.DataFrame) -> list[str]:
    cols = [c for c in latents.columns if c.startswith("z") and c[1:].isdigit()]
    if not cols:
        raise InputError("latent table has no z0, z1, ... columns")
    return sorted(cols, key=lambda c: int(c[1:]))


def join_truth(latents: pd.DataFrame, truth: pd.DataFrame, camera: str) -> pd.DataFrame:
    """Latent rows of ``camera`` with their truth row (clean, non-Hartmann arcs only)."""
    t = truth[(truth["camera"] == camera) & (truth["flavor"] == "arc")]
    if "hartmann" in t:
        t = t[t["hartmann"].fillna("Out").isin(["Out", "", "None"])]
    if "fault" in t:
        t = t[t["fault"].isna()]
    keep = [c for c in t.columns if c not in latents.columns or c == "expnum"]
    return latents.merge(t[keep], on="expnum", how="inner")


def _features(z: np.ndarray, degree: int) -> np.ndarray:
    if degree == 1:
        return z
    i, j = np.triu_indices(z.shape[1])
    return np.hstack([z, z[:, i] * z[:, j]])


ALPHAS = tuple(np.logspace(-4, 3, 15))  # ridge penalties (standardised latents), chosen per term by CV


def _ridge_fit(X: np.ndarray, Y: np.ndarray, alpha: float):
    """Ridge on standardised ``X`` for every column of ``Y`` at once; returns ``predict(X)``."""
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    Xs = (X - mu) / sd
    ym = Y.mean(0)
    w = np.linalg.solve(Xs.T @ Xs + alpha * len(X) * np.eye(X.shape[1]), Xs.T @ (Y - ym))
    return lambda Xn: ((Xn - mu) / sd) @ w + ym


def _choose_alphas(X: np.ndarray, Y: np.ndarray, nights: np.ndarray, folds: int = 5) -> np.ndarray:
    """Per column of ``Y`` the penalty with the lowest cross-validated error, folds of whole nights
    (frames of one night are correlated)."""
    uniq = np.unique(nights)
    k = min(folds, len(uniq))
    if k < 2:
        return np.full(Y.shape[1], 1e-2)
    fold_of = {n: i % k for i, n in enumerate(uniq)}
    f = np.array([fold_of[n] for n in nights])
    err = np.zeros((len(ALPHAS), Y.shape[1]))
    for i, a in enumerate(ALPHAS):
        for j in range(k):
            tr, te = f != j, f == j
            err[i] += ((_ridge_fit(X[tr], Y[tr], a)(X[te]) - Y[te]) ** 2).sum(0)
    return np.asarray(ALPHAS)[err.argmin(0)]


def r2_per_term(joined: pd.DataFrame, *, terms: list[str] | None = None, eval_splits=(2,),
                degree: int = 1) -> pd.DataFrame:
    """R^2 of the ridge latent -> term regressor, fitted on the training nights (split 0; penalty
    by cross-validation over whole nights) and scored on ``eval_splits`` (default: test nights;
    ``(1, 2)`` pools val and test). One row per term: ``r2``, ``edge_px`` (spread of the term on
    the scored frames, px at the edge; NaN for lamps), ``n_train``, ``n_eval``."""
    terms = terms or state_terms(joined)
    X = _features(joined[latent_columns(joined)].to_numpy(float), degree)
    split = split_codes(joined["mjd"].to_numpy())
    nights = joined["mjd"].to_numpy()
    rows = []
    for t in terms:
        y = joined[t].to_numpy(float)
        tr, te = (split == 0) & np.isfinite(y), np.isin(split, eval_splits) & np.isfinite(y)
        r2 = np.nan
        if tr.sum() >= 3 and te.sum() >= 2:
            a = _choose_alphas(X[tr], y[tr, None], nights[tr])[0]
            pred = _ridge_fit(X[tr], y[tr, None], a)(X[te])[:, 0]
            ss = float(((y[te] - y[te].mean()) ** 2).sum())
            r2 = 1.0 - float(((y[te] - pred) ** 2).sum()) / ss if ss > 0 else np.nan
        rows.append({"term": t, "r2": r2, "edge_px": float(np.std(y[te])) if t in FIELD_TERMS and te.any()
                     else np.nan, "n_train": int(tr.sum()), "n_eval": int(te.sum())})
    return pd.DataFrame(rows)


def true_line_vectors(index: LineIndex, truth_rows: pd.DataFrame) -> np.ndarray:
    """``[N, D]`` line vectors of the true state of each truth row (dx, dy, sigma of every slot)."""
    out = np.empty((len(truth_rows), index.size), np.float32)
    fibers = np.arange(index.n_fibers)
    x0, y0 = index.nominal()
    for i, (_, row) in enumerate(truth_rows.iterrows()):
        field = Field.from_array([float(row[t]) for t in FIELD_TERMS])
        x, y, s = line_positions(index.camera, field, fibers, list(index.line_ids))
        out[i] = np.concatenate([x.ravel() - x0, y.ravel() - y0, s.ravel()])
    return out


def alive_slots(index: LineIndex) -> np.ndarray:
    """``[K]`` bool: the slot's fiber is alive (dead fibers have no true line to compare)."""
    alive = traces(index.camera).alive[: index.n_fibers]
    return np.repeat(alive, index.n_lines)


def line_rms(index: LineIndex, vectors: np.ndarray, true_vectors: np.ndarray,
             mask: np.ndarray | None = None) -> pd.DataFrame:
    """Per frame RMS (px) of ``vectors`` minus ``true_vectors`` over the alive slots (and, with
    ``mask`` 1 = bad, only the unmasked ones): ``x``, ``y``, ``xy`` (2-D distance) and ``sigma``."""
    v, t = np.atleast_2d(vectors).astype(np.float64), np.atleast_2d(true_vectors).astype(np.float64)
    if v.shape != t.shape or v.shape[1] != index.size:
        raise InputError(f"vectors {v.shape} and truth {t.shape} do not fit the {index.size}-value index")
    k = index.n_slots
    alive = alive_slots(index)
    good = np.broadcast_to(np.concatenate([alive] * 3), v.shape).copy()
    if mask is not None:
        good &= np.atleast_2d(mask) == 0
    d2 = np.where(good, (v - t) ** 2, np.nan)
    with np.errstate(invalid="ignore"):
        ex, ey, es = (np.nanmean(d2[:, i * k:(i + 1) * k], 1) for i in range(3))
    return pd.DataFrame({"x": np.sqrt(ex), "y": np.sqrt(ey), "xy": np.sqrt(ex + ey), "sigma": np.sqrt(es)})


def pooled_rms(per_frame: pd.DataFrame) -> dict[str, float]:
    """RMS over frames of per-frame RMS values (the RMS over every scored line of every frame
    when frames hold equally many lines)."""
    return {c: float(np.sqrt(np.nanmean(per_frame[c].to_numpy() ** 2))) for c in per_frame.columns}


# -- line positions in decoded image windows ----------------------------------------------------
def window_line_points(camera: str, field: Field, origins, size: int, line_ids=None, *,
                       margin: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true lines inside each ``size`` x ``size`` crop at ``origins`` (``(row0, col0)`` per
    window, trimmed frame): ``(window index, column, row)`` in the crop's pixels, at least
    ``margin`` px from its edges (alive fibers only)."""
    alive = np.flatnonzero(traces(camera).alive)
    x, y, _ = line_positions(camera, field, alive, line_ids)
    x, y = x.ravel(), y.ravel()
    ks, cs, rs = [], [], []
    for k, (r0, c0) in enumerate(origins):
        cx, ry = x - c0, y - r0
        ok = (cx >= margin) & (cx <= size - 1 - margin) & (ry >= margin) & (ry <= size - 1 - margin)
        ks.append(np.full(ok.sum(), k))
        cs.append(cx[ok])
        rs.append(ry[ok])
    return np.concatenate(ks).astype(int), np.concatenate(cs), np.concatenate(rs)


def centroids(images: np.ndarray, k: np.ndarray, col: np.ndarray, row: np.ndarray, *,
              half: tuple[int, int] = (2, 3)) -> tuple[np.ndarray, np.ndarray]:
    """Background-subtracted centroid (column, row) of windows ``images[k]`` ``[K, h, w]`` in a
    box of half-width ``half`` = (columns, rows) around each rounded point."""
    hx, hy = half
    c0, r0 = np.rint(col).astype(int), np.rint(row).astype(int)
    dc, dr = np.arange(-hx, hx + 1), np.arange(-hy, hy + 1)
    rr = np.clip(r0[:, None, None] + dr[None, :, None], 0, images.shape[-2] - 1)
    cc = np.clip(c0[:, None, None] + dc[None, None, :], 0, images.shape[-1] - 1)
    box = np.asarray(images, np.float64)[k[:, None, None], rr, cc]
    box = np.clip(box - box.min(axis=(1, 2), keepdims=True), 0, None)
    tot = np.maximum(box.sum(axis=(1, 2)), 1e-12)
    return (c0 + (box.sum(1) * dc).sum(1) / tot, r0 + (box.sum(2) * dr).sum(1) / tot)


def window_line_shift(images: np.ndarray, reference: np.ndarray, points) -> tuple[np.ndarray, np.ndarray]:
    """Centroid of each line in ``images`` minus its centroid in ``reference`` (the noiseless
    light: the same box truncation and blending, so only the reconstruction's error is left), px."""
    k, col, row = points
    cx, cy = centroids(images, k, col, row)
    rx, ry = centroids(reference, k, col, row)
    return cx - rx, cy - ry
