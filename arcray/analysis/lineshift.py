"""The physical error of a predicted frame: how far its lines sit from the actual frame's, in px.

Convention (frames indexed ``[row, col]``): rows run along the traces (wavelength, ``dy``), columns
across them (fibers, ``dx``). ``measure_shift(ref, img)`` returns ``(dy, dx)`` such that
``img[y, x] ~= ref[y - dy, x - dx]``: positive when ``img``'s lines sit at larger row/column.

Method: the frame is cut into tiles (windows along and across the traces); in each tile the
mean-removed images are cross-correlated (FFT, circular with zero padding), the integer peak is
found within ``max_shift`` and refined to sub-pixel by a three-point Gaussian (log-parabola) fit in
each axis, falling back to a plain parabola where the log is undefined. The frame's shift is the
median over tiles with enough signal, which is robust to a cosmic ray or a dead fiber.
"""

from __future__ import annotations

import numpy as np

from arcray.errors import InputError


def _subpixel(cm: float, c0: float, cp: float) -> float:
    """Offset of the peak from the centre sample given three samples (Gaussian, else parabolic)."""
    if cm > 0 and c0 > 0 and cp > 0:
        lm, l0, lp = np.log(cm), np.log(c0), np.log(cp)
        den = lm - 2.0 * l0 + lp
        if den < 0:
            return float(np.clip(0.5 * (lm - lp) / den, -0.5, 0.5))
    den = cm - 2.0 * c0 + cp
    if den >= 0:
        return 0.0
    return float(np.clip(0.5 * (cm - cp) / den, -0.5, 0.5))


def _peaks(c: np.ndarray, norm: np.ndarray, max_shift: int):
    """Sub-pixel ``(dy, dx, peak)`` per tile from centred correlations ``c [T, 2h, 2w]``."""
    t, hh, ww = c.shape
    cy, cx, m = hh // 2, ww // 2, int(max_shift)
    sub = c[:, cy - m: cy + m + 1, cx - m: cx + m + 1].reshape(t, -1)
    iy, ix = np.unravel_index(np.argmax(sub, axis=1), (2 * m + 1, 2 * m + 1))
    y, x = cy - m + iy, cx - m + ix
    k = np.arange(t)
    dy = np.empty(t)
    dx = np.empty(t)
    for i in range(t):
        dy[i] = y[i] - cy + _subpixel(c[i, y[i] - 1, x[i]], c[i, y[i], x[i]], c[i, y[i] + 1, x[i]])
        dx[i] = x[i] - cx + _subpixel(c[i, y[i], x[i] - 1], c[i, y[i], x[i]], c[i, y[i], x[i] + 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        peak = np.where(norm > 0, c[k, y, x] / norm, 0.0)
    return dy, dx, peak


def _xcorr_tiles(a: np.ndarray, b: np.ndarray, max_shift: int):
    """Cross-correlate stacks of tiles ``[T, h, w]`` (mean removed, zero padded): ``(dy, dx, peak)``."""
    a = a - a.mean(axis=(1, 2), keepdims=True)
    b = b - b.mean(axis=(1, 2), keepdims=True)
    norm = np.sqrt((a * a).sum((1, 2)) * (b * b).sum((1, 2)))
    shape = (2 * a.shape[1], 2 * a.shape[2])
    c = np.fft.irfft2(np.conj(np.fft.rfft2(a, shape)) * np.fft.rfft2(b, shape), shape)
    c = np.fft.fftshift(c, axes=(1, 2))
    return _peaks(c, norm, max_shift)


def _tiles(shape: tuple[int, int], tile: int | tuple[int, int]) -> list[tuple[slice, slice]]:
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    h, w = shape
    th, tw = min(th, h), min(tw, w)
    return [(slice(y, y + th), slice(x, x + tw))
            for y in range(0, h - th + 1, th) for x in range(0, w - tw + 1, tw)]


def _median_tile_shift(ref: np.ndarray, img: np.ndarray, tile, max_shift: int,
                       min_peak: float) -> tuple[float, float]:
    tiles = _tiles(ref.shape, tile)
    a = np.stack([ref[s] for s in tiles])
    b = np.stack([img[s] for s in tiles])
    m = min(max_shift, min(a.shape[1:]) // 2 - 1)
    dy, dx, peak = _xcorr_tiles(a, b, m)
    ok = (peak >= min_peak) & np.isfinite(dy) & np.isfinite(dx)
    if not ok.any():
        return float("nan"), float("nan")
    return float(np.median(dy[ok])), float(np.median(dx[ok]))


def measure_shift(ref: np.ndarray, img: np.ndarray, *, tile: int | tuple[int, int] = 64,
                  max_shift: int = 8, min_peak: float = 0.3, refine: int = 2) -> tuple[float, float]:
    """Median ``(dy, dx)`` in px of ``img`` relative to ``ref`` over tiles; NaN if no tile has signal.

    ``min_peak`` is the normalised correlation a tile needs to count (empty tiles are skipped).
    ``refine`` iterations shift ``img`` back by the estimate (cubic spline) and measure the residual,
    which removes the bias of the three-point peak fit (to ~0.01 px on Gaussian lines).
    """
    from scipy.ndimage import shift as nd_shift

    ref = np.asarray(ref, dtype=np.float64)
    img = np.asarray(img, dtype=np.float64)
    if ref.shape != img.shape or ref.ndim != 2:
        raise InputError(f"measure_shift needs two 2-D frames of one shape, got {ref.shape} and {img.shape}")
    if min(ref.shape) < 3:
        raise InputError(f"frame too small to measure a shift: {ref.shape}")
    dy, dx = _median_tile_shift(ref, img, tile, max_shift, min_peak)
    for _ in range(int(refine)):
        if not (np.isfinite(dy) and np.isfinite(dx)):
            break
        back = nd_shift(img, (-dy, -dx), order=3, mode="nearest")
        ry, rx = _median_tile_shift(ref, back, tile, 2, min_peak)
        if not (np.isfinite(ry) and np.isfinite(rx)):
            break
        dy, dx = dy + ry, dx + rx
    return dy, dx


def batch_shifts(ref: np.ndarray, img: np.ndarray, *, pixel_scale: float = 1.0, **kwargs) -> np.ndarray:
    """``[N, 2]`` array of ``(dy, dx)`` per frame pair of two ``[N, H, W]`` stacks, in native px.

    ``pixel_scale`` converts the frames' pixels to native detector pixels (8 for a frame binned 8x8).
    """
    ref = np.asarray(ref)
    img = np.asarray(img)
    if ref.shape != img.shape or ref.ndim != 3:
        raise InputError(f"batch_shifts needs two [N, H, W] stacks of one shape, got {ref.shape} and {img.shape}")
    out = np.array([measure_shift(r, i, **kwargs) for r, i in zip(ref, img)], dtype=np.float64)
    return out.reshape(len(ref), 2) * float(pixel_scale)
