"""Frames whose latent vector or reconstruction error is out of distribution.

Two robust tests, per camera, each against a reference set (by default all frames of the camera):

- the reconstruction error's robust z-score, ``(e - median) / (1.4826 MAD)``, one-sided (large only);
- the latent vector's Mahalanobis distance to the reference's median, with a covariance estimated
  from the reference frames inside the central 90 % of a first pass (so outliers do not inflate it).
  For ``L`` dimensions the squared distance is compared with the chi-square quantile ``p`` so the
  threshold does not depend on the latent size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from arcray.errors import InputError

MAD_SCALE = 1.4826


def robust_z(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """``(x - median(ref)) / (1.4826 MAD(ref))``; a zero MAD falls back to the standard deviation."""
    x = np.asarray(x, dtype=np.float64)
    ref = x if ref is None else np.asarray(ref, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return np.full(x.shape, np.nan)
    med = np.median(ref)
    scale = MAD_SCALE * np.median(np.abs(ref - med))
    if not scale > 0:
        scale = ref.std()
    if not scale > 0:
        return np.zeros(x.shape)
    return (x - med) / scale


def mahalanobis(Z: np.ndarray, ref: np.ndarray | None = None, *, trim: float = 0.9) -> np.ndarray:
    """Robust Mahalanobis distance of each row of ``Z`` to the reference rows."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim == 1:
        Z = Z[:, None]
    ref = Z if ref is None else np.asarray(ref, dtype=np.float64).reshape(-1, Z.shape[1])
    ref = ref[np.isfinite(ref).all(1)]
    if len(ref) < Z.shape[1] + 2:
        raise InputError(f"need at least {Z.shape[1] + 2} reference frames for a Mahalanobis distance")
    centre = np.median(ref, axis=0)
    d = _maha(ref, centre, np.cov(ref, rowvar=False))
    core = ref[d <= np.quantile(d, trim)]
    if len(core) >= Z.shape[1] + 2:
        centre = core.mean(0)
        d_core = _maha(core, centre, np.cov(core, rowvar=False))
        # rescale so the core's distances match a full Gaussian's (consistency factor)
        from scipy.stats import chi2

        k = Z.shape[1]
        scale = np.median(d_core**2) / chi2.ppf(0.5 * trim, k) if np.median(d_core) > 0 else 1.0
        return _maha(Z, centre, np.cov(core, rowvar=False) * max(scale, 1e-12))
    return _maha(Z, centre, np.cov(ref, rowvar=False))


def _maha(Z: np.ndarray, centre: np.ndarray, cov) -> np.ndarray:
    cov = np.atleast_2d(cov)
    cov = cov + np.eye(len(cov)) * 1e-9 * max(np.trace(cov), 1e-12)
    inv = np.linalg.pinv(cov)
    d = Z - centre
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, inv, d), 0.0))


def flag_frames(df: pd.DataFrame, Z: np.ndarray, *, recon_col: str = "recon_mse", group: str = "camera",
                z_max: float = 5.0, p: float = 0.999) -> pd.DataFrame:
    """Per-frame table: ``recon_z``, ``latent_d``, ``latent_d_max``, ``flagged`` and ``reason``.

    Rows in the order of ``df``; computed per ``group`` (camera). ``p`` is the chi-square quantile
    for the latent test, ``z_max`` the robust-z limit for the reconstruction error.
    """
    from scipy.stats import chi2

    Z = np.asarray(Z, dtype=np.float64).reshape(len(df), -1)
    out = pd.DataFrame(index=df.index)
    out["recon_z"] = np.nan
    out["latent_d"] = np.nan
    groups = df[group].to_numpy() if group in df.columns else np.zeros(len(df), object)
    limit = float(np.sqrt(chi2.ppf(p, Z.shape[1])))
    for g in pd.unique(groups):
        m = groups == g
        if recon_col in df.columns:
            out.loc[m, "recon_z"] = robust_z(df.loc[m, recon_col].to_numpy(dtype=np.float64))
        if m.sum() >= Z.shape[1] + 2:
            out.loc[m, "latent_d"] = mahalanobis(Z[m])
    out["latent_d_max"] = limit
    bad_r = out["recon_z"].to_numpy() > z_max
    bad_l = out["latent_d"].to_numpy() > limit
    out["flagged"] = bad_r | bad_l
    reason = np.where(bad_r & bad_l, "reconstruction+latent",
                      np.where(bad_r, "reconstruction", np.where(bad_l, "latent", "")))
    out["reason"] = reason
    return out
