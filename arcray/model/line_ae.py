"""A small non-linear autoencoder of line vectors (``arcray.model.linevec``) that starts AT PCA.

``LineAutoencoder`` (kind ``line_mlp``, arch ``line_mlp``) works on normalised line vectors
``[N, D]`` (or ``[N, 1, D]``: a one-row "image", ``cfg.height == 1``, ``D = cfg.width_px``):

    z     = W_e (y - mean) + E(y - mean)      (linear projection + MLP correction)
    y_hat = mean + W_d z + G(z)                (linear basis + MLP correction)

``E`` and ``G`` are MLPs with ``cfg.depth`` hidden layers of ``cfg.width`` units (SiLU); their last
layers are zero-initialised. ``init_from_pca`` sets ``mean``, ``W_e`` (components / their training
std: whitened latents) and ``W_d`` from a ``PCAModel`` of the same latent size, so before training
the model reproduces PCA exactly and training can only move it downhill on the training loss (the
same construction as ``pca_ae.PCAResAutoencoder`` for images).

Masked slots: ``encode``/``forward`` take an optional ``mask`` (1 = bad) and then read a masked value
as the training mean (as ``PCAModel.encode`` does); without it they see the vector's fill value.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from arcray.errors import ConfigError, InputError

KIND = "line_mlp"
ARCH = {"depth": 1, "width": 64, "blocks": 0, "height": 1, "kind": KIND}  # the ARCHS entry


def _mlp(n_in: int, n_out: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = n_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.SiLU()]
        d = width
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


class LineAutoencoder(nn.Module):
    """Line vectors ``[N, D]`` (or ``[N, 1, D]``, normalised units) <-> latents ``[N, latent]``."""

    def __init__(self, cfg):
        super().__init__()
        if not 1 <= cfg.latent <= 64:
            raise ConfigError(f"latent size must be in 1..64, got {cfg.latent}")
        if cfg.depth < 0 or cfg.width < 1 or cfg.width_px < 1 or cfg.height != 1:
            raise ConfigError(f"a line autoencoder needs depth >= 0, width >= 1 and a 1 x D input, "
                              f"got depth={cfg.depth} width={cfg.width} input {cfg.height}x{cfg.width_px}")
        self.cfg = cfg
        d, lat = cfg.width_px, cfg.latent
        self.register_buffer("mean", torch.zeros(d))
        self.enc_lin = nn.Linear(d, lat, bias=False)
        self.dec_lin = nn.Linear(lat, d, bias=False)
        self.enc_mlp = _mlp(d, lat, cfg.width, cfg.depth)
        self.dec_mlp = _mlp(lat, d, cfg.width, cfg.depth)
        for last in (self.enc_mlp[-1], self.dec_mlp[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def encode(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = y.reshape(len(y), -1)
        mean = self.mean.to(y.dtype)
        if mask is not None:
            y = torch.where(mask.reshape(y.shape) != 0, mean, y)
        r = y - mean
        return self.enc_lin(r) + self.enc_mlp(r)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean.to(z.dtype) + self.dec_lin(z) + self.dec_mlp(z)

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(y, mask)).reshape(y.shape)

    @torch.no_grad()
    def init_from_pca(self, pca, y_train: np.ndarray | None = None) -> "LineAutoencoder":
        """Start at ``pca`` (a ``PCAModel`` of this latent size on these vectors); with ``y_train``
        (masked values already replaced by the mean) the latents are whitened."""
        comps = np.asarray(pca.components, np.float64)
        if comps.shape != (self.cfg.latent, self.cfg.width_px):
            raise InputError(f"PCA of shape {comps.shape} does not fit a latent-{self.cfg.latent} "
                             f"{self.cfg.width_px}-value line model")
        std = np.ones(len(comps))
        if y_train is not None and len(y_train) > 1:
            std = pca.encode(np.asarray(y_train).reshape(len(y_train), 1, -1)).std(0)
        std = np.where(std > 1e-8, std, 1.0)
        self.mean.copy_(torch.as_tensor(np.ravel(pca.mean), dtype=torch.float32))
        self.enc_lin.weight.copy_(torch.as_tensor(comps / std[:, None], dtype=torch.float32))
        self.dec_lin.weight.copy_(torch.as_tensor((comps * std[:, None]).T, dtype=torch.float32))
        return self

    def init_from_data(self, y_train: np.ndarray, mask: np.ndarray | None = None) -> "LineAutoencoder":
        """Fit PCA on normalised training vectors ``[N, D]`` (mask 1 = bad) and start there."""
        from arcray.model.pca import fit_pca

        y = np.asarray(y_train, np.float64).reshape(len(y_train), 1, -1)
        m = None if mask is None else np.asarray(mask).reshape(y.shape)
        pca = fit_pca(y, self.cfg.latent, m)
        if m is not None:
            y = np.where(m != 0, pca.mean.reshape(1, 1, -1), y)
        return self.init_from_pca(pca, y)


def init_line_model_from_data(model: nn.Module, y_train: np.ndarray, mask: np.ndarray | None = None):
    """``model.init_from_data`` for a ``LineAutoencoder`` (a no-op for other models); returns it."""
    if isinstance(model, LineAutoencoder):
        model.init_from_data(y_train, mask)
    return model
