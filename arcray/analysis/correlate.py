"""Pearson correlation of header metadata with each latent dimension (the study's heatmap)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from arcray.analysis.latents import latent_names
from arcray.errors import InputError


def pearson_matrix(meta: pd.DataFrame, Z: np.ndarray, *, columns: list[str] | None = None,
                   min_pairs: int = 3) -> pd.DataFrame:
    """``[metadata column x latent dim]`` Pearson r, computed pairwise over non-missing rows.

    A column with fewer than ``min_pairs`` values or no variance gives NaN (not 0: "unknown" is not
    "uncorrelated").
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim == 1:
        Z = Z[:, None]
    if len(meta) != len(Z):
        raise InputError(f"metadata has {len(meta)} rows but latents {len(Z)}")
    if columns is None:
        columns = [c for c in meta.columns if pd.api.types.is_numeric_dtype(meta[c])
                   and not pd.api.types.is_bool_dtype(meta[c])]
    out = np.full((len(columns), Z.shape[1]), np.nan)
    for i, c in enumerate(columns):
        x = meta[c].to_numpy(dtype=np.float64, na_value=np.nan)
        for j in range(Z.shape[1]):
            ok = np.isfinite(x) & np.isfinite(Z[:, j])
            if ok.sum() < min_pairs:
                continue
            a = x[ok] - x[ok].mean()
            b = Z[ok, j] - Z[ok, j].mean()
            den = np.sqrt((a * a).sum() * (b * b).sum())
            if den > 0:
                out[i, j] = float((a * b).sum() / den)
    return pd.DataFrame(out, index=list(columns), columns=latent_names(Z.shape[1]))


def top_correlations(matrix: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The ``k`` (metadata, latent) pairs with the largest ``|r|``: columns metadata, latent, r."""
    s = matrix.stack().rename("r").reset_index()
    s.columns = ["metadata", "latent", "r"]
    return s.reindex(s["r"].abs().sort_values(ascending=False).index).head(k).reset_index(drop=True)
