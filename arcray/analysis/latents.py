"""The latent columns of every latents table: ``z0 .. z{L-1}`` (float32), one per latent dimension.

``arcray embed`` writes them (``latent_names``), every reader finds them (``z_columns``): the
analysis, the regressors, the decoder and the report. Pure.
"""

from __future__ import annotations

import pandas as pd

from arcray.errors import InputError


def latent_names(n: int) -> list[str]:
    """``["z0", ..., "z{n-1}"]``."""
    return [f"z{i}" for i in range(int(n))]


def is_latent_column(name: str) -> bool:
    return name[:1] == "z" and name[1:].isdigit()


def z_columns(df: pd.DataFrame) -> list[str]:
    """The latent columns of ``df`` in dimension order (``InputError`` when it has none)."""
    cols = sorted((c for c in df.columns if is_latent_column(c)), key=lambda c: int(c[1:]))
    if not cols:
        raise InputError("latents table has no z0.. columns")
    return cols
