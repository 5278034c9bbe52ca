"""Which part of a calibrated frame a model sees, and the one function that extracts it.

A ``View`` names the calibrated column (``windows`` or ``binned``), the window index (for
``windows``), a crop ``(row0, col0, height, width)`` in that image's pixels (``None`` = whole
image) and an integer block-mean downsampling factor. Training and ``arcray embed`` both call
``View.extract`` so a model always receives exactly the input it was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from arcray.errors import InputError
from arcray.tensors import to_ndarray

COLUMNS = ("windows", "binned")


@dataclass(frozen=True)
class View:
    """``column``; ``window`` (index into ``windows``); ``crop`` (row0, col0, h, w) or None;
    ``downsample`` (block-mean factor, 1 = native resolution)."""

    column: str = "windows"
    window: int = 0
    crop: tuple[int, int, int, int] | None = (96, 96, 64, 64)
    downsample: int = 1

    def __post_init__(self) -> None:
        if self.column not in COLUMNS:
            raise InputError(f"view column must be one of {COLUMNS}, got {self.column!r}")
        if self.downsample < 1:
            raise InputError(f"downsample must be >= 1, got {self.downsample}")
        if self.crop is not None:
            object.__setattr__(self, "crop", tuple(int(v) for v in self.crop))
            if len(self.crop) != 4 or min(self.crop) < 0 or min(self.crop[2:]) < 1:
                raise InputError(f"crop must be (row0, col0, h, w) >= 0, got {self.crop}")
            if self.crop[2] % self.downsample or self.crop[3] % self.downsample:
                raise InputError("crop size must be a multiple of the downsampling factor")

    @property
    def mask_column(self) -> str:
        return f"{self.column}_mask"

    def extract(self, images: np.ndarray, mask: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """From a batch of column values (``windows`` [N, n_win, H, W] or ``binned`` [N, H, W])
        return ``(x float32 [N, h, w] electrons, mask uint8 [N, h, w], 1 = bad)``."""
        x = _stack(images)
        m = np.zeros(x.shape, np.uint8) if mask is None else _stack(mask).astype(np.uint8)
        if self.column == "windows":
            if x.ndim != 4:
                raise InputError(f"'windows' must be [N, n_win, H, W], got shape {x.shape}")
            if not 0 <= self.window < x.shape[1]:
                raise InputError(f"window {self.window} out of range (frame has {x.shape[1]})")
            x, m = x[:, self.window], m[:, self.window]
        elif x.ndim != 3:
            raise InputError(f"'binned' must be [N, H, W], got shape {x.shape}")
        if self.crop is not None:
            r0, c0, h, w = self.crop
            if r0 + h > x.shape[1] or c0 + w > x.shape[2]:
                raise InputError(f"crop {self.crop} exceeds the image size {x.shape[1:]}")
            x, m = x[:, r0:r0 + h, c0:c0 + w], m[:, r0:r0 + h, c0:c0 + w]
        bad = ~np.isfinite(x)
        x, m = np.where(bad, 0.0, x).astype(np.float32), (m | bad).astype(np.uint8)
        return _downsample(x, m.astype(np.uint8), self.downsample)

    def extract_row(self, row: dict) -> tuple[np.ndarray, np.ndarray]:
        """One calibrated row (dict of column -> value) -> ``(x [h, w], mask [h, w])``."""
        img = np.asarray(row[self.column])[None]
        msk = row.get(self.mask_column)
        x, m = self.extract(img, None if msk is None else np.asarray(msk)[None])
        return x[0], m[0]

    def extract_table(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """A pyarrow Table of calibrated rows -> ``(x [N, h, w], mask [N, h, w])``."""
        return self.extract(*self.table_columns(table))

    def table_columns(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray | None]:
        """The view's column and its mask (None when absent) of a pyarrow Table, as numpy."""
        img = to_ndarray(table.column(self.column))
        msk = (to_ndarray(table.column(self.mask_column))
               if self.mask_column in table.column_names else None)
        return img, msk

    def to_dict(self) -> dict:
        d = asdict(self)
        d["crop"] = list(self.crop) if self.crop else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "View":
        crop = d.get("crop")
        return cls(column=d.get("column", "windows"), window=int(d.get("window", 0)),
                   crop=tuple(crop) if crop else None, downsample=int(d.get("downsample", 1)))


def _stack(a) -> np.ndarray:
    a = np.asarray(a) if not isinstance(a, np.ndarray) else a
    if a.dtype == object:  # ragged-typed Arrow batches arrive as arrays of arrays
        a = np.stack([np.asarray(v) for v in a])
    return a


def _downsample(x: np.ndarray, m: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Block mean over good pixels; a block is bad when more than half its pixels are bad."""
    if f == 1:
        return x, m
    n, h, w = x.shape
    h, w = h - h % f, w - w % f
    xb = x[:, :h, :w].reshape(n, h // f, f, w // f, f)
    gb = (m[:, :h, :w] == 0).reshape(n, h // f, f, w // f, f)
    ngood = gb.sum(axis=(2, 4))
    mean = (xb * gb).sum(axis=(2, 4)) / np.maximum(ngood, 1)
    bad = ngood * 2 < f * f
    return mean.astype(np.float32), bad.astype(np.uint8)
