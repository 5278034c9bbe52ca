"""Where measurement reads its pixels: a full calibrated frame, or raw ADU calibrated on the fly.

Measurement only ever looks at small stamps around the lines and traces and at a few bands of
rows, so it does not need the full electron frame in memory (calibration does not keep it by
default: 67 MB of float32). A ``PixelSource`` hands out electrons (float32 e-) and the mask (uint8
bit flags of ``arcray.calib.steps``: 1 saturated, 2 not read, 4 bad column) of any set of
rectangles of the trimmed frame (0-based ``[row, col]``, end-exclusive).

- ``FrameSource``: over a full trimmed electron frame and its mask (``keep_frame=True``).
- ``RawSource``: over the raw uint16 ADU, with the per-amp biases (ADU, exactly as
  ``steps.bias_level`` returns them: shape ``(1, 1)`` or ``(nrows, 1)`` over the amp's raw rows),
  gains (e-/ADU), unread rows (bool per raw row), saturation level and bad RAW columns of the
  calibration. A pixel is ``float32(float32(raw) - bias) * float32(gain)`` and rows not read are
  0 e-: the operations of ``calib.frame._electrons`` and ``calib.direct``, so every stamp is
  bit-identical to the same stamp of the full frame (``tests/test_measure_source.py``).

On every camera the trimmed frame is one contiguous block of the raw frame (the four amps'
data regions touch), ``raw[r + row_offset, c + col_offset]``; the amps differ only in bias and
gain, so a raw stamp is one gather plus a per-pixel amp lookup.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from arcray.calib.steps import BAD_COLUMN, NOT_READ, SATURATED
from arcray.instrument import CameraGeometry


class PixelSource(Protocol):
    """Electrons and mask of rectangles of one camera's trimmed frame."""

    shape: tuple[int, int]  # (rows, cols) of the trimmed frame

    def stamps(self, rows0: np.ndarray, cols0: np.ndarray, nrows: int, ncols: int
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(electrons float32 [n, nrows, ncols], mask uint8 [n, nrows, ncols])`` of the
        rectangles whose lower-left corners are ``(rows0[i], cols0[i])``; every rectangle must lie
        on the frame (``ValueError`` otherwise)."""
        ...

    def block(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """``(electrons float32, mask uint8)`` of one rectangle (a copy)."""
        ...


def _check_inside(shape: tuple[int, int], rows0, cols0, nrows: int, ncols: int) -> None:
    if rows0.size and (rows0.min() < 0 or cols0.min() < 0 or rows0.max() + nrows > shape[0]
                       or cols0.max() + ncols > shape[1]):
        raise ValueError(f"stamps of {nrows}x{ncols} px must lie on the {shape} trimmed frame")


def _check_slices(shape: tuple[int, int], rows: slice, cols: slice) -> tuple[int, int, int, int]:
    r0, r1, _ = rows.indices(shape[0])
    c0, c1, _ = cols.indices(shape[1])
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"empty block {rows}, {cols}")
    return r0, r1, c0, c1


class FrameSource:
    """Pixels of a full trimmed electron frame (float32 e-) and its uint8 mask."""

    def __init__(self, electrons: np.ndarray, mask: np.ndarray | None = None):
        if electrons.ndim != 2:
            raise ValueError("electrons must be a 2-D trimmed frame")
        self.electrons = np.asarray(electrons, np.float32)
        self.mask = np.zeros(self.electrons.shape, np.uint8) if mask is None else np.asarray(mask, np.uint8)
        if self.mask.shape != self.electrons.shape:
            raise ValueError(f"mask {self.mask.shape} and frame {self.electrons.shape} differ")
        self.shape = self.electrons.shape

    def stamps(self, rows0, cols0, nrows: int, ncols: int) -> tuple[np.ndarray, np.ndarray]:
        rows0, cols0 = np.asarray(rows0, np.intp), np.asarray(cols0, np.intp)
        _check_inside(self.shape, rows0, cols0, nrows, ncols)
        e = sliding_window_view(self.electrons, (nrows, ncols))[rows0, cols0]
        m = sliding_window_view(self.mask, (nrows, ncols))[rows0, cols0]
        return e, m

    def block(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        r0, r1, c0, c1 = _check_slices(self.shape, rows, cols)
        return self.electrons[r0:r1, c0:c1].copy(), self.mask[r0:r1, c0:c1].copy()


class RawSource:
    """Pixels calibrated on the fly from raw ADU, bit-identical to the full calibrated frame."""

    def __init__(self, raw: np.ndarray, geometry: CameraGeometry, biases: list[np.ndarray],
                 gains: tuple[float, ...], unread: np.ndarray, *, saturation_adu: int,
                 bad_columns: tuple[int, ...] = ()):
        amps = geometry.amps
        if len(biases) != 4 or len(gains) != 4:
            raise ValueError("one bias and one gain per amp (4)")
        self.raw = raw
        self.shape = geometry.trimmed_shape
        self.row_offset = amps[0].rows.start - amps[0].trim_rows.start
        self.col_offset = amps[0].cols.start - amps[0].trim_cols.start
        for a in amps:  # the trimmed frame is one contiguous raw block (true for all four cameras)
            if (a.rows.start - a.trim_rows.start, a.cols.start - a.trim_cols.start) != (self.row_offset,
                                                                                        self.col_offset):
                raise ValueError(f"camera {geometry.camera}: amp {a.amp} is not contiguous with amp 0")
        self.split_row = amps[0].trim_rows.stop
        self.split_col = amps[0].trim_cols.stop
        nrow = self.shape[0]
        self._bias = np.empty((4, nrow), np.float32)  # ADU per (amp, trimmed row); rows of other amps unused
        for a, b in zip(amps, biases):
            b = np.asarray(b, np.float32)
            n = a.trim_rows.stop - a.trim_rows.start
            self._bias[a.amp, a.trim_rows] = b[:, 0] if b.shape[0] == n else b.reshape(-1)[0]
        self._gain = np.array([np.float32(g) for g in gains], np.float32)
        self._unread = np.asarray(unread, bool)[self.row_offset:self.row_offset + nrow]
        self._sat = min(int(saturation_adu), 65535)
        self._bad = np.zeros(self.shape[1], bool)  # trimmed columns holding a bad RAW column
        for c in bad_columns:
            t = c - self.col_offset
            if 0 <= t < self.shape[1]:
                self._bad[t] = True

    def _calibrate(self, adu: np.ndarray, rows: np.ndarray, cols: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Electrons and mask of ``adu`` (uint16 ``[n, nr, nc]``) at trimmed ``rows [n, nr]`` and
        ``cols [n, nc]``. A stamp inside one amp takes that amp's bias rows and gain as a whole;
        the few that straddle an amp boundary are calibrated pixel by pixel."""
        hi_r, hi_c = rows >= self.split_row, cols >= self.split_col
        amp_r, amp_c = hi_r[:, 0], hi_c[:, 0]
        one_amp = (hi_r == amp_r[:, None]).all(axis=1) & (hi_c == amp_c[:, None]).all(axis=1)
        amp = amp_r.astype(np.intp) * 2 + amp_c
        bias = self._bias[amp[:, None], rows][:, :, None]  # [n, nr, 1]
        gain = self._gain[amp][:, None, None]
        if not one_amp.all():  # straddling stamps: per-pixel amp
            bias = np.broadcast_to(bias, adu.shape).copy()
            gain = np.broadcast_to(gain, adu.shape).copy()
            s = np.flatnonzero(~one_amp)
            amp_px = hi_r[s][:, :, None].astype(np.intp) * 2 + hi_c[s][:, None, :]
            bias[s] = self._bias[amp_px, rows[s][:, :, None]]
            gain[s] = self._gain[amp_px]
        e = np.subtract(adu, bias, dtype=np.float32, casting="unsafe")  # float32(raw) - float32 bias
        np.multiply(e, gain, out=e)
        m = np.greater_equal(adu, self._sat).view(np.uint8)  # SATURATED == 1
        unread = self._unread[rows]
        if unread.any():
            e[np.broadcast_to(unread[:, :, None], e.shape)] = 0.0
            m |= (unread[:, :, None] * NOT_READ).astype(np.uint8)
        bad = self._bad[cols]
        if bad.any():
            m |= (bad[:, None, :] * BAD_COLUMN).astype(np.uint8)
        return e, m

    def stamps(self, rows0, cols0, nrows: int, ncols: int) -> tuple[np.ndarray, np.ndarray]:
        rows0, cols0 = np.asarray(rows0, np.intp), np.asarray(cols0, np.intp)
        _check_inside(self.shape, rows0, cols0, nrows, ncols)
        adu = sliding_window_view(self.raw, (nrows, ncols))[rows0 + self.row_offset, cols0 + self.col_offset]
        return self._calibrate(adu, rows0[:, None] + np.arange(nrows), cols0[:, None] + np.arange(ncols))

    def block(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        r0, r1, c0, c1 = _check_slices(self.shape, rows, cols)
        adu = self.raw[r0 + self.row_offset:r1 + self.row_offset, c0 + self.col_offset:c1 + self.col_offset]
        e, m = self._calibrate(adu[None], np.arange(r0, r1)[None], np.arange(c0, c1)[None])
        return e[0], m[0]
