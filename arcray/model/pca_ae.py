"""An autoencoder that starts AT the PCA solution and learns a nonlinear correction on top of it.

``PCAResAutoencoder`` (arch ``pca_res``) works on the residual from the training mean image
(normalised units; the mean is a buffer saved with the weights):

    z     = W_e (y - mean) + E(y - mean)            (linear projection + conv encoder correction)
    y_hat = S_{s(z)}(mean + W_d z) + D(z)           (shifted linear basis + conv correction)

``S_s`` moves an image by a sub-pixel shift ``s(z) = W_s z + b_s`` (rows, columns): arc lines and
fiber traces move rigidly with the spectrograph state (dy, dx), which a linear basis can only
follow to first order.

``init_from_pca`` sets ``mean``, ``W_e`` (principal components / their training std: whitened
latents) and ``W_d`` (components x std) from a ``PCAModel`` fitted on the training images at the
same latent size, and the last layers of ``E``, ``D`` and ``s`` are zero-initialised, so before training
the model reproduces PCA's reconstruction exactly and training can only move it downhill on the
training loss. No normalisation layers (batches of a few frames), so behaviour is the same in
train and eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from arcray.errors import InputError


def _encoder_convs(ch: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in, c_out in zip([1] + ch[:-1], ch):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.SiLU()]
    return nn.Sequential(*layers)


def _decoder_convs(ch: list[int]) -> nn.Sequential:
    rev = ch[::-1]
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(rev, rev[1:] + [1])):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
        if i < len(rev) - 1:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def shift_images(img: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Images ``[N, H, W]`` moved by ``shift`` ``[N, 2]`` = (rows, columns) pixels, sub-pixel
    (bicubic, edges extended). A zero shift returns the images unchanged."""
    n, h, w = img.shape
    rows = torch.arange(h, dtype=img.dtype, device=img.device)
    cols = torch.arange(w, dtype=img.dtype, device=img.device)
    gy = (rows[None, :, None] - shift[:, 0, None, None]) * (2.0 / (h - 1)) - 1.0
    gx = (cols[None, None, :] - shift[:, 1, None, None]) * (2.0 / (w - 1)) - 1.0
    grid = torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)
    out = nn.functional.grid_sample(img.unsqueeze(1), grid, mode="bicubic",
                                    padding_mode="border", align_corners=True)
    return out.squeeze(1)


class PCAResAutoencoder(nn.Module):
    """Images ``[N, H, W]`` (or ``[N, 1, H, W]``, normalised units) <-> latents ``[N, latent]``."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg.validate()
        h, w, lat = cfg.height, cfg.width_px, cfg.latent
        n_pix = h * w
        ch = cfg.channels()
        f = 2 ** cfg.depth
        self._bottom = (ch[-1], h // f, w // f)
        n_flat = ch[-1] * self._bottom[1] * self._bottom[2]
        self.register_buffer("mean", torch.zeros(n_pix))
        self.enc_lin = nn.Linear(n_pix, lat, bias=False)
        self.dec_lin = nn.Linear(lat, n_pix, bias=False)
        self.enc_conv = _encoder_convs(ch)
        self.enc_out = nn.Linear(n_flat, lat)
        self.dec_in = nn.Sequential(nn.Linear(lat, n_flat), nn.SiLU())
        self.dec_conv = _decoder_convs(ch)
        self.shift = nn.Linear(lat, 2)  # (dy, dx) pixels applied to the linear reconstruction
        for last in (self.enc_out, self.dec_conv[-1], self.shift):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.squeeze(1)
        r = x.flatten(1) - self.mean.to(x.dtype)
        conv = self.enc_out(self.enc_conv(r.view(-1, 1, *x.shape[1:])).flatten(1))
        return self.enc_lin(r) + conv

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h, w = self.cfg.height, self.cfg.width_px
        lin = shift_images((self.dec_lin(z) + self.mean.to(z.dtype)).view(-1, h, w),
                           self.shift(z))
        corr = self.dec_conv(self.dec_in(z).view(z.shape[0], *self._bottom)).squeeze(1)
        return lin + corr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def init_from_pca(self, pca, y_train: np.ndarray | None = None) -> "PCAResAutoencoder":
        """Start at ``pca`` (a ``PCAModel`` at this latent size on these images). With
        ``y_train`` the latents are whitened (unit variance on the training images)."""
        if pca.components.shape != (self.cfg.latent, self.cfg.height * self.cfg.width_px):
            raise InputError(f"PCA of shape {pca.components.shape} does not fit a latent-"
                             f"{self.cfg.latent} {self.cfg.height}x{self.cfg.width_px} model")
        mean, enc, dec = pca_weights(pca, y_train)
        self.mean.copy_(mean)
        self.enc_lin.weight.copy_(enc)
        self.dec_lin.weight.copy_(dec)
        return self


def pca_weights(pca, y_train: np.ndarray | None = None):
    """``(mean [P], W_e [latent, P], W_d [P, latent])`` float32 tensors of a linear autoencoder
    equal to ``pca``; with ``y_train`` (images in PCA's shape) the latents are whitened."""
    comps = np.asarray(pca.components, np.float64)
    std = np.ones(len(comps))
    if y_train is not None and len(y_train) > 1:
        std = pca.encode(y_train).std(0)
    std = np.where(std > 1e-8, std, 1.0)
    return (torch.as_tensor(pca.mean, dtype=torch.float32),
            torch.as_tensor(comps / std[:, None], dtype=torch.float32),
            torch.as_tensor((comps * std[:, None]).T, dtype=torch.float32))


def init_model_from_data(model: nn.Module, y_train: np.ndarray, mask: np.ndarray | None = None):
    """Data-dependent initialisation of ``model`` from normalised training samples (a no-op for
    models without one: those without ``init_from_pca``). Samples of several windows
    ``[N, K, H, W]`` are fitted as one ``[N, K*H, W]`` image. Returns ``model``."""
    if hasattr(model, "init_from_data"):  # line vectors (arcray.model.line_ae)
        return model.init_from_data(y_train, mask)
    if not hasattr(model, "init_from_pca"):
        return model
    from arcray.model.pca import fit_pca

    y = np.asarray(y_train, np.float64)
    if y.ndim == 4:
        y = y.reshape(len(y), -1, y.shape[-1])
        mask = None if mask is None else np.asarray(mask).reshape(y.shape)
    pca = fit_pca(y, model.cfg.latent, mask)
    if mask is not None:  # masked pixels count as the mean, as in PCA's own encode
        y = np.where(np.asarray(mask) != 0, pca.mean.reshape(y.shape[1:]), y)
    return model.init_from_pca(pca, y)
