"""Invertible normalisation of electron images that keeps the full dynamic range.

``y = asinh(x / scale) / gain``: linear (``x / (scale * gain)``) for faint pixels, logarithmic
for bright lines, so a line near saturation and the read-noise floor both stay visible and the
map is exactly invertible (``x = scale * sinh(gain * y)``). ``scale`` (electrons) is fitted per
camera on training pixels (a robust noise-level estimate); ``gain`` brings the brightest
training pixels to ``y ~ 1``. The fitted parameters are saved with the model (``to_dict``).
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
