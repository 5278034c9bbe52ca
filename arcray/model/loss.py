"""Reconstruction loss that leaves masked pixels out (saturated, not read, bad columns)."""

from __future__ import annotations

import numpy as np
import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over good pixels only (``mask`` 1 = bad). Same shape for all three."""
    err = (pred.float() - target.float()) ** 2
    if mask is None:
        return err.mean()
    good = (mask == 0).to(err.dtype)
    return (err * good).sum() / good.sum().clamp_min(1.0)


def masked_sse_count(pred: torch.Tensor, target: torch.Tensor,
                     mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of squared errors over good pixels, number of good pixels)``: for exact averaging
    across batches and workers."""
    err = (pred.float() - target.float()) ** 2
    if mask is None:
        return err.sum(), torch.tensor(float(err.numel()))
    good = (mask == 0).to(err.dtype)
    return (err * good).sum(), good.sum()


def masked_mse_np(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> float:
    """numpy twin of ``masked_mse`` (used to score PCA in the same metric)."""
    err = (np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2
    if mask is None:
        return float(err.mean())
    good = np.asarray(mask) == 0
    return float(err[good].sum() / max(good.sum(), 1))
