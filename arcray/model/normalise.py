"""Invertible normalisation of electron images that keeps the full dynamic range.

``y = asinh(x / scale) / gain``: linear (``x / (scale * gain)``) for faint pixels, logarithmic
for bright lines, so a line near saturation and the read-noise floor both stay visible and the
map is exactly invertible (``x = scale * sinh(gain * y)``). ``scale`` (electrons) is fitted per
camera on training pixels (a robust noise-level estimate); ``gain`` brings the brightest
training pixels to ``y ~ 1``. The fitted parameters are saved with the model (``to_dict``).

Line vectors (``arcray.model.linevec``: displacements and widths in px, not electrons) use
``StandardNormaliser``: ``y = (x - mean_g) / std_g`` with one (mean, std) per contiguous block
``g`` of the vector (the dx, dy and sigma_y blocks), fitted on unmasked training values. One
scale per block, not per feature: the loss stays a px-squared metric within each block, and a
slot whose value hardly moves is not blown up to unit variance (its scatter is noise).

``normaliser_from_dict`` rebuilds either from its ``to_dict`` (dispatch on ``kind``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from arcray.errors import InputError


@dataclass(frozen=True)
class AsinhNormaliser:
    """``y = asinh(x / scale) / gain``; ``scale`` in electrons, ``gain`` dimensionless."""

    scale: float = 1.0
    gain: float = 1.0
    kind: str = "asinh"

    @classmethod
    def fit(cls, x: np.ndarray, mask: np.ndarray | None = None, *, scale_floor: float = 1.0,
            top_quantile: float = 0.999) -> "AsinhNormaliser":
        """Fit on training images ``x`` (electrons, any shape); ``mask`` 1 = bad (ignored)."""
        x = np.asarray(x, dtype=np.float64)
        good = x[np.asarray(mask) == 0] if mask is not None else x.ravel()
        good = good[np.isfinite(good)]
        if good.size == 0:
            raise InputError("cannot fit the normaliser: no unmasked finite training pixels")
        med = np.median(good)
        mad = 1.4826 * np.median(np.abs(good - med))  # robust noise level (electrons)
        scale = float(max(mad, scale_floor))
        top = float(np.quantile(np.abs(good), top_quantile))
        gain = float(max(np.arcsinh(top / scale), 1e-3))
        return cls(scale=scale, gain=gain)

    def forward(self, x):
        """Electrons -> normalised units (numpy array or torch tensor)."""
        if isinstance(x, np.ndarray):
            return (np.arcsinh(x / self.scale) / self.gain).astype(np.float32, copy=False)
        import torch

        return torch.asinh(x / self.scale) / self.gain

    def inverse(self, y):
        """Normalised units -> electrons (numpy array or torch tensor)."""
        if isinstance(y, np.ndarray):
            return (self.scale * np.sinh(np.asarray(y, np.float64) * self.gain)).astype(np.float32)
        import torch

        return self.scale * torch.sinh(y * self.gain)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AsinhNormaliser":
        if d.get("kind", "asinh") != "asinh":
            raise InputError(f"unknown normaliser kind {d.get('kind')!r}")
        return cls(scale=float(d["scale"]), gain=float(d["gain"]))


@dataclass(frozen=True)
class StandardNormaliser:
    """``y = (x - mean[g]) / std[g]`` for the features of block ``g`` (the vector's last axis is
    cut into ``len(mean)`` equal contiguous blocks); ``mean``/``std`` in the input's unit."""

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    kind: str = "standard"

    @classmethod
    def fit(cls, x: np.ndarray, mask: np.ndarray | None = None, *, groups: int = 1,
            std_floor: float = 1e-6) -> "StandardNormaliser":
        """Fit on training vectors ``x`` ``[N, D]`` (or ``[N, 1, D]``); ``mask`` 1 = bad (ignored)."""
        x = np.asarray(x, np.float64)
        x = x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(1, -1)
        good = np.isfinite(x) if mask is None else (np.asarray(mask).reshape(x.shape) == 0) & np.isfinite(x)
        d = x.shape[1]
        if groups < 1 or d % groups:
            raise InputError(f"cannot cut {d} features into {groups} equal blocks")
        mean, std = [], []
        for g in range(groups):
            sl = slice(g * d // groups, (g + 1) * d // groups)
            vals = x[:, sl][good[:, sl]]
            if vals.size == 0:
                raise InputError(f"cannot fit the normaliser: no unmasked finite training values in block {g}")
            mean.append(float(vals.mean()))
            std.append(float(max(vals.std(), std_floor)))
        return cls(mean=tuple(mean), std=tuple(std))

    def _per_feature(self, d: int):
        g = len(self.mean)
        if d % g:
            raise InputError(f"a {d}-feature vector does not cut into {g} blocks")
        return np.repeat(np.asarray(self.mean), d // g), np.repeat(np.asarray(self.std), d // g)

    def forward(self, x):
        """Input units -> normalised units (numpy array or torch tensor, features on the last axis)."""
        mean, std = self._per_feature(x.shape[-1])
        if isinstance(x, np.ndarray):
            return ((np.asarray(x, np.float64) - mean) / std).astype(np.float32)
        import torch

        return (x - torch.as_tensor(mean, dtype=x.dtype, device=x.device)) / torch.as_tensor(
            std, dtype=x.dtype, device=x.device)

    def inverse(self, y):
        """Normalised units -> input units (numpy array or torch tensor)."""
        mean, std = self._per_feature(y.shape[-1])
        if isinstance(y, np.ndarray):
            return (np.asarray(y, np.float64) * std + mean).astype(np.float32)
        import torch

        return y * torch.as_tensor(std, dtype=y.dtype, device=y.device) + torch.as_tensor(
            mean, dtype=y.dtype, device=y.device)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "StandardNormaliser":
        if d.get("kind") != "standard":
            raise InputError(f"unknown normaliser kind {d.get('kind')!r}")
        return cls(mean=tuple(float(v) for v in d["mean"]), std=tuple(float(v) for v in d["std"]))


NORMALISERS = {"asinh": AsinhNormaliser, "standard": StandardNormaliser}


def normaliser_from_dict(d: dict):
    """The normaliser saved as ``d`` (``to_dict``): ``kind`` ``"asinh"`` (default, older models)
    or ``"standard"``."""
    kind = d.get("kind", "asinh")
    if kind not in NORMALISERS:
        raise InputError(f"unknown normaliser kind {kind!r}; choose one of {sorted(NORMALISERS)}")
    return NORMALISERS[kind].from_dict(d)
