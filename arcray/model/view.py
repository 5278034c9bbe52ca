"""Which part of a calibrated frame a model sees, and the one function that extracts it.

A ``View`` names the calibrated column (``windows`` or ``binned``), the window (``window``: one
index) or windows (``windows``: several indices, read together), a crop and an integer block-mean
downsampling factor. Training and ``arcray embed`` both call ``View.extract`` so a model always
receives exactly the input it was trained on.

Crops: ``crop = (row0, col0, h, w)`` in the image's pixels, or ``centred = s``: the central
``s`` x ``s`` square of each window whatever the window size (``crop`` wins when both are given).
A crop that does not fit the image but is centred in a larger square (a model trained on the
earlier 256-px windows, crop ``(96, 96, 64, 64)``, read on 128-px windows) is re-centred on the
image: the same pixels of the detector, since a window is centred on the same point.

Named views (``View.named``): ``window0`` the central 64x64 of window 0 (the bright-line window of
the first wavelength at bundle 5, the model view before issue 14); ``grid`` the central 64x64 of
every detector-grid window (names starting with ``arcray.calib.config.GRID_PREFIX``) ->
``x [N, n_win, 64, 64]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from arcray.errors import InputError
from arcray.tensors import to_ndarray

COLUMNS = ("windows", "binned")
IMAGE_VIEWS = ("window0", "grid")  # names ``View.named`` knows; "lines" is a line-vector reader
GRID_PREFIX = "grid_"  # = arcray.calib.config.GRID_PREFIX (no calib import in the model layer)


@dataclass(frozen=True)
class View:
    """``column``; ``window`` (index into ``windows``) or ``windows`` (several indices, read
    together: ``x [N, n_win, h, w]``); ``crop`` (row0, col0, h, w) or ``centred`` (side of the
    central square) or neither (whole image); ``downsample`` (block-mean factor, 1 = native);
    ``name`` (the named view it was made from, or "")."""

    column: str = "windows"
    window: int = 0
    crop: tuple[int, int, int, int] | None = (96, 96, 64, 64)
    downsample: int = 1
    windows: tuple[int, ...] | None = None
    centred: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.column not in COLUMNS:
            raise InputError(f"view column must be one of {COLUMNS}, got {self.column!r}")
        if self.downsample < 1:
            raise InputError(f"downsample must be >= 1, got {self.downsample}")
        if self.windows is not None:
            object.__setattr__(self, "windows", tuple(int(v) for v in self.windows))
            if self.column != "windows" or not self.windows or min(self.windows) < 0:
                raise InputError(f"several windows need column 'windows' and indices >= 0, "
                                 f"got {self.column!r} {self.windows}")
        if self.centred is not None and (self.centred < 1 or self.centred % self.downsample):
            raise InputError(f"centred crop must be >= 1 and a multiple of the downsampling "
                             f"factor, got {self.centred}")
        if self.crop is not None:
            object.__setattr__(self, "crop", tuple(int(v) for v in self.crop))
            if len(self.crop) != 4 or min(self.crop) < 0 or min(self.crop[2:]) < 1:
                raise InputError(f"crop must be (row0, col0, h, w) >= 0, got {self.crop}")
            if self.crop[2] % self.downsample or self.crop[3] % self.downsample:
                raise InputError("crop size must be a multiple of the downsampling factor")

    @classmethod
    def named(cls, name: str, window_names: list[str] | None = None, *, size: int = 64) -> "View":
        """The named view ``name`` (``IMAGE_VIEWS``) with ``size`` x ``size`` central crops;
        ``grid`` picks its windows from the dataset's ``window_names``."""
        if name == "window0":
            return cls(column="windows", window=0, crop=None, centred=size, name=name)
        if name == "grid":
            idx = tuple(i for i, n in enumerate(window_names or ()) if str(n).startswith(GRID_PREFIX))
            if not idx:
                raise InputError("the calibrated frames carry no detector-grid windows "
                                 f"('{GRID_PREFIX}*'): recalibrate them with this arcray")
            return cls(column="windows", window=0, crop=None, centred=size, windows=idx, name=name)
        raise InputError(f"unknown view {name!r}; image views are {IMAGE_VIEWS}")

    @property
    def multi(self) -> bool:
        """True when the view reads several windows (``x [N, n_win, h, w]``)."""
        return self.windows is not None

    @property
    def mask_column(self) -> str:
        return f"{self.column}_mask"

    def extract(self, images: np.ndarray, mask: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """From a batch of column values (``windows`` [N, n_win, H, W] or ``binned`` [N, H, W])
        return ``(x float32 electrons, mask uint8, 1 = bad)``: ``[N, h, w]``, or
        ``[N, n_sel, h, w]`` for a view of several windows."""
        x = _stack(images)
        m = np.zeros(x.shape, np.uint8) if mask is None else _stack(mask).astype(np.uint8)
        if self.column == "windows":
            if x.ndim != 4:
                raise InputError(f"'windows' must be [N, n_win, H, W], got shape {x.shape}")
            sel = list(self.windows) if self.multi else [self.window]
            if max(sel) >= x.shape[1]:
                raise InputError(f"window {max(sel)} out of range (frame has {x.shape[1]})")
            x, m = (x[:, sel], m[:, sel]) if self.multi else (x[:, sel[0]], m[:, sel[0]])
        elif x.ndim != 3:
            raise InputError(f"'binned' must be [N, H, W], got shape {x.shape}")
        r0, c0, h, w = self._crop_box(x.shape[-2], x.shape[-1])
        x, m = x[..., r0:r0 + h, c0:c0 + w], m[..., r0:r0 + h, c0:c0 + w]
        bad = ~np.isfinite(x)
        x, m = np.where(bad, 0.0, x).astype(np.float32), (m | bad).astype(np.uint8)
        if x.ndim == 4:
            n, k = x.shape[:2]
            xd, md = _downsample(x.reshape(n * k, *x.shape[2:]), m.reshape(n * k, *m.shape[2:]),
                                 self.downsample)
            return xd.reshape(n, k, *xd.shape[1:]), md.reshape(n, k, *md.shape[1:])
        return _downsample(x, m, self.downsample)

    def _crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(row0, col0, h, w)`` of the crop on a ``height`` x ``width`` image."""
        if self.crop is None and self.centred is None:
            return 0, 0, height, width
        if self.crop is None:
            s = self.centred
            if s > height or s > width:
                raise InputError(f"centred crop {s} exceeds the image size {(height, width)}")
            return (height - s) // 2, (width - s) // 2, s, s
        r0, c0, h, w = self.crop
        if r0 + h > height or c0 + w > width:
            big_h, big_w = 2 * r0 + h, 2 * c0 + w  # the square it was centred in, if it was
            if h <= height and w <= width and big_h > height and big_w > width:
                return (height - h) // 2, (width - w) // 2, h, w
            raise InputError(f"crop {self.crop} exceeds the image size {(height, width)}")
        return r0, c0, h, w

    def extract_row(self, row: dict) -> tuple[np.ndarray, np.ndarray]:
        """One calibrated row (dict of column -> value) -> ``(x, mask)`` of one frame."""
        img = np.asarray(row[self.column])[None]
        msk = row.get(self.mask_column)
        x, m = self.extract(img, None if msk is None else np.asarray(msk)[None])
        return x[0], m[0]

    def extract_table(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """A pyarrow Table of calibrated rows -> ``(x, mask)`` (shapes as ``extract``)."""
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
        d["windows"] = list(self.windows) if self.windows is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "View":
        """Also reads the views stored before ``windows``/``centred``/``name`` existed."""
        crop, wins = d.get("crop"), d.get("windows")
        return cls(column=d.get("column", "windows"), window=int(d.get("window", 0)),
                   crop=tuple(crop) if crop else None, downsample=int(d.get("downsample", 1)),
                   windows=tuple(wins) if wins is not None else None,
                   centred=d.get("centred"), name=d.get("name", ""))


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
