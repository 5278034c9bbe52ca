"""An autoencoder over every window of a detector grid, starting AT the PCA solution (arch ``grid_res``).

Input ``[N, K, H, W]``: the central crops of the ``K`` grid windows of a frame (normalised units),
whose centres sit at ``positions`` ``(u, v)`` (detector columns and rows mapped to -1..1). One
latent per frame sees the whole detector, so it can hold the camera's magnification, rotation
and focus tilt, which a single window cannot tell from a plain shift.

    z     = W_e (y - mean) + mean_k  E_k(y_k - mean_k, u_k, v_k)
    y_hat_k = S_{s_k(z)}(mean_k + (W_d z)_k) + D(z, u_k, v_k)

``W_e``/``W_d``/``mean``: PCA over all ``K x H x W`` pixels at once (``init_from_pca``, whitened
latents, as ``arcray.model.pca_ae``). ``E``: a convolutional encoder shared by every window, fed the
window's residual and its position, averaged over windows. ``S_s`` moves window ``k``'s linear
reconstruction by a sub-pixel shift ``s_k = C(z) . q(u_k, v_k)``, a smooth field over the
detector: ``q = (1, u, v, u^2, uv, v^2)`` for each of (rows, columns), 12 coefficients from the
latent (offset, magnification/rotation, tilt/curvature; ``calibration-state.md`` section 2). ``D``: a
shared transposed-conv decoder of (latent, position). The last layers of ``E``, ``C`` and ``D`` are
zero-initialised: before training the model IS PCA, so training moves it downhill from there.
No normalisation layers (batches of a few frames): same behaviour in train and eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from arcray.errors import InputError
from arcray.model.pca_ae import _decoder_convs, _encoder_convs, pca_weights, shift_images

N_FIELD = 6  # terms of the quadratic shift field q(u, v)
# Learning-rate factor of the PCA path (W_e, W_d). Adam moves every weight by about the learning
# rate per step whatever its gradient's size, so a projection of K x H x W = 65536 pixels would
# move a latent by ~lr x sum|residual| (several units) per step and throw the model off its PCA
# start; at 1/100 the PCA path is refined slowly while the shift field and corrections learn.
LINEAR_LR_FACTOR = 0.01


def field_basis(pos: torch.Tensor) -> torch.Tensor:
    """``[K, 2]`` positions (u, v) -> ``[K, 6]`` = (1, u, v, u^2, uv, v^2)."""
    u, v = pos[:, 0], pos[:, 1]
    return torch.stack([torch.ones_like(u), u, v, u * u, u * v, v * v], dim=1)


class GridAutoencoder(nn.Module):
    """Grid crops ``[N, K, H, W]`` (normalised units) <-> latents ``[N, latent]``."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg.validate()
        k, h, w, lat = cfg.n_windows, cfg.height, cfg.width_px, cfg.latent
        ch = cfg.channels()
        f = 2 ** cfg.depth
        self._bottom = (ch[-1], h // f, w // f)
        n_flat = ch[-1] * self._bottom[1] * self._bottom[2]
        hidden = 4 * ch[-1]
        self.register_buffer("mean", torch.zeros(k * h * w))
        self.register_buffer("pos", torch.tensor(cfg.positions, dtype=torch.float32).view(k, 2))
        self.enc_lin = nn.Linear(k * h * w, lat, bias=False)
        self.dec_lin = nn.Linear(lat, k * h * w, bias=False)
        self.enc_conv = _encoder_convs(ch)
        self.enc_win = nn.Sequential(nn.Linear(n_flat + 2, hidden), nn.SiLU(), nn.Linear(hidden, lat))
        self.shift = nn.Linear(lat, 2 * N_FIELD)  # (rows, columns) x q(u, v) coefficients
        self.dec_in = nn.Sequential(nn.Linear(lat + 2, n_flat), nn.SiLU())
        self.dec_conv = _decoder_convs(ch)
        for last in (self.enc_win[-1], self.shift, self.dec_conv[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def _pos(self, n: int, dtype) -> torch.Tensor:
        return self.pos.to(dtype)[None].expand(n, -1, -1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        n, k, h, w = x.shape
        r = x.flatten(1) - self.mean.to(x.dtype)
        feats = self.enc_conv(r.view(n * k, 1, h, w)).flatten(1).view(n, k, -1)
        per = self.enc_win(torch.cat([feats, self._pos(n, feats.dtype)], dim=2))
        return self.enc_lin(r) + per.mean(1)

    def window_shifts(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, K, 2]`` (rows, columns) px: the shift field of latents ``z`` at each window."""
        coef = self.shift(z).view(len(z), 2, N_FIELD)
        return torch.einsum("nct,kt->nkc", coef, field_basis(self.pos.to(coef.dtype)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        k, h, w = self.cfg.n_windows, self.cfg.height, self.cfg.width_px
        base = (self.dec_lin(z) + self.mean.to(z.dtype)).view(n * k, h, w)
        lin = shift_images(base, self.window_shifts(z).reshape(n * k, 2).to(base.dtype))
        zin = torch.cat([z[:, None].expand(n, k, -1), self._pos(n, z.dtype)], dim=2)
        corr = self.dec_conv(self.dec_in(zin).view(n * k, *self._bottom))
        return (lin + corr.squeeze(1)).view(n, k, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups: the PCA path at ``lr x LINEAR_LR_FACTOR``, the rest at ``lr``."""
        lin = [self.enc_lin.weight, self.dec_lin.weight]
        ids = {id(p) for p in lin}
        return [{"params": [p for p in self.parameters() if id(p) not in ids], "lr": lr},
                {"params": lin, "lr": lr * LINEAR_LR_FACTOR}]

    @torch.no_grad()
    def init_from_pca(self, pca, y_train: np.ndarray | None = None) -> "GridAutoencoder":
        """Start at ``pca`` (a ``PCAModel`` over all the grid's pixels at this latent size)."""
        k, h, w = self.cfg.n_windows, self.cfg.height, self.cfg.width_px
        if pca.components.shape != (self.cfg.latent, k * h * w):
            raise InputError(f"PCA of shape {pca.components.shape} does not fit a latent-"
                             f"{self.cfg.latent} model of {k} windows of {h}x{w}")
        mean, enc, dec = pca_weights(pca, None if y_train is None else y_train.reshape(len(y_train), k * h, w))
        self.mean.copy_(mean)
        self.enc_lin.weight.copy_(enc)
        self.dec_lin.weight.copy_(dec)
        return self
