"""PCA at latent size l: the linear baseline (as Excalibur uses), scored in the same metric.

Fitted on normalised training images (masked pixels replaced by the per-pixel training mean so
they carry no weight in the components); scored with ``masked_mse_np`` on normalised images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arcray.errors import InputError
from arcray.model.loss import masked_mse_np


@dataclass
class PCAModel:
    mean: np.ndarray        # [P]
    components: np.ndarray  # [latent, P], orthonormal rows
    shape: tuple[int, int]

    @property
    def latent(self) -> int:
        return self.components.shape[0]

    def encode(self, y: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Normalised images ``[N, H, W]`` -> ``[N, latent]``; masked pixels count as the mean."""
        flat = np.asarray(y, np.float64).reshape(len(y), -1)
        if mask is not None:
            bad = np.asarray(mask).reshape(len(y), -1) != 0
            flat = np.where(bad, self.mean, flat)
        return (flat - self.mean) @ self.components.T

    def decode(self, z: np.ndarray) -> np.ndarray:
        flat = np.asarray(z, np.float64) @ self.components + self.mean
        return flat.reshape(len(z), *self.shape).astype(np.float32)


def fit_pca(y: np.ndarray, latent: int, mask: np.ndarray | None = None) -> PCAModel:
    """Fit on normalised training images ``y`` [N, H, W]; ``mask`` 1 = bad pixel."""
    y = np.asarray(y, np.float64)
    if y.ndim != 3 or len(y) < 2:
        raise InputError(f"PCA needs at least 2 images [N, H, W], got shape {y.shape}")
    flat = y.reshape(len(y), -1).copy()
    if mask is not None:
        bad = np.asarray(mask).reshape(len(y), -1) != 0
        good = ~bad
        mean = (flat * good).sum(0) / np.maximum(good.sum(0), 1)
        flat[bad] = np.broadcast_to(mean, flat.shape)[bad]
    mean = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    k = min(int(latent), vt.shape[0])
    comps = np.zeros((int(latent), flat.shape[1]))
    comps[:k] = vt[:k]
    return PCAModel(mean=mean, components=comps, shape=tuple(y.shape[1:]))


def pca_loss(train_y: np.ndarray, test_y: np.ndarray, latent: int, train_mask=None,
             test_mask=None) -> float:
    """Masked MSE (normalised units) of PCA(latent) fitted on train, evaluated on test."""
    model = fit_pca(train_y, latent, train_mask)
    return masked_mse_np(model.decode(model.encode(test_y, test_mask)), test_y, test_mask)
