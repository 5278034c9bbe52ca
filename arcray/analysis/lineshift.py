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


def _xcorr(ref: np.ndarray, img: np.ndarray) -> np.ndarray:
    """Cross-correlation ``c[s] = sum_y ref[y] img[y + s]`` (zero padded, fft-shifted to centre)."""
    h, w = ref.shape
    shape = (2 * h, 2 * w)
    fr = np.fft.rfft2(ref, shape)
    fi = np.fft.rfft2(img, shape)
    c = np.fft.irfft2(np.conj(fr) * fi, shape)
    return np.fft.fftshift(c)


def tile_shift(ref: np.ndarray, img: np.ndarray, *, max_shift: int = 8) -> tuple[float, float, float]:
    """``(dy, dx, peak)`` of ``img`` relative to ``ref`` in one tile; ``peak`` = normalised correlation."""
    a = np.asarray(ref, dtype=np.float64)
    b = np.asarray(img, dtype=np.float64)
    a = a - a.mean()
    b = b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if norm <= 0 or not np.isfinite(norm):
        return float("nan"), float("nan"), 0.0
    c = _xcorr(a, b)
    cy, cx = c.shape[0] // 2, c.shape[1] // 2
    m = int(max_shift)
    sub = c[cy - m: cy + m + 1, cx - m: cx + m + 1]
    iy, ix = np.unravel_index(int(np.argmax(sub)), sub.shape)
    y, x = cy - m + iy, cx - m + ix
    fy = _subpixel(c[y - 1, x], c[y, x], c[y + 1, x])
    fx = _subpixel(c[y, x - 1], c[y, x], c[y, x + 1])
    return float(y - cy + fy), float(x - cx + fx), float(c[y, x] / norm)


def _tiles(shape: tuple[int, int], tile: int | tuple[int, int]) -> list[tuple[slice, slice]]:
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    h, w = shape
    th, tw = min(th, h), min(tw, w)
    return [(slice(y, y + th), slice(x, x + tw))
            for y in range(0, h - th + 1, th) for x in range(0, w - tw + 1, tw)]


def _median_tile_shift(ref: np.ndarray, img: np.ndarray, tile, max_shift: int,
                       min_peak: float) -> tuple[float, float]:
    dys, dxs = [], []
    for sy, sx in _tiles(ref.shape, tile):
        dy, dx, peak = tile_shift(ref[sy, sx], img[sy, sx], max_shift=min(max_shift, min(ref[sy, sx].shape) // 2 - 1))
        if peak >= min_peak and np.isfinite(dy):
            dys.append(dy)
            dxs.append(dx)
    if not dys:
        return float("nan"), float("nan")
    return float(np.median(dys)), float(np.median(dxs))


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
