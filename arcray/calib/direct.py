"""Views straight from raw ADU: windows and the binned view without the full electron frame. Pure.

The fast path of ``calibrate_frame`` when the full frame is not stored (``full_frame='none'``,
the default): materialising 17 M float32 electrons (67 MB) only to cut 8 windows and bin it costs
more than reading the frame. Here

- a window is a box of the trimmed frame calibrated from the raw amp regions it overlaps by the
  verbs the full path runs on the whole frame (``steps.electrons_of_box``, ``steps.mask_of_box``:
  ``float32(raw - bias) * float32(gain)``; rows not read = 0 e-), so windows and their masks are
  bit-identical to the full path's;
- a binned pixel is ``gain / f**2 * (S - f * sum(bias of its read rows))`` with ``S`` the exact
  integer sum of its raw ADU over read rows (an 8x8 sum of uint16 is exact in float32/uint32):
  one pass over uint16 instead of three over float32. It equals the full path's float32 mean up to
  float32 rounding (the full path's own summation error, ~``2 f eps`` of the block's mean
  ``|e-|``);
- the binned mask is computed only for amps that hold a flag (saturated pixel, row not read, bad
  column) inside the binned square; otherwise it is zero, like the full path's.

Requires every amp boundary inside the binned square to fall on a block edge (true for all four
cameras with the default 4096 square and 8x8 blocks); ``binned_aligned`` says so, and
``calibrate_frame`` falls back to the full path otherwise.
"""

from __future__ import annotations

import numpy as np

from arcray.calib import steps
from arcray.calib.views import bin_mask, block_sum, central_square
from arcray.instrument import CameraGeometry


def cut_windows_raw(raw: np.ndarray, geo: CameraGeometry, biases: list[np.ndarray], gains: tuple[float, ...],
                    unread: np.ndarray, origins: list[tuple[int, int]], size: int, *, saturation_adu: int,
                    bad_columns: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``(windows float32 e- [n, size, size], masks uint8)`` at ``origins`` (trimmed px), from raw ADU:
    each window is a box of the trimmed frame calibrated by the same verbs as the full frame.

    ``biases[i]``: amp i's bias as returned by ``steps.bias_level`` (ADU, (1, 1) or (nrows, 1)).
    """
    win = np.empty((len(origins), size, size), np.float32)
    msk = np.empty((len(origins), size, size), np.uint8)
    for i, (r0, c0) in enumerate(origins):
        box = (r0, r0 + size, c0, c0 + size)
        steps.electrons_of_box(raw, geo, biases, gains, unread, box, out=win[i])
        steps.mask_of_box(raw, geo, saturation_adu=saturation_adu, unread=unread, bad_columns=bad_columns,
                          box=box, out=msk[i])
    return win, msk


def _square_box(geo: CameraGeometry, size: int) -> tuple[int, int, int, int]:
    rs, cs = central_square(geo.trimmed_shape, size)
    return rs.start, rs.stop, cs.start, cs.stop


def binned_aligned(geo: CameraGeometry, size: int, factor: int) -> bool:
    """True when every amp's part of the central ``size`` square starts and ends on block edges."""
    if size % factor:
        return False
    for part in steps.trim_regions(geo, _square_box(geo, size)):
        rows, cols = part.local
        if any(e % factor for e in (rows.start, rows.stop, cols.start, cols.stop)):
            return False
    return True


def binned_view_raw(raw: np.ndarray, geo: CameraGeometry, biases: list[np.ndarray], gains: tuple[float, ...],
                    unread: np.ndarray, *, size: int, factor: int, bad_fraction: float, saturation_adu: int,
                    bad_columns: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``(binned e- float32, binned mask uint8)`` of the central ``size`` square, from raw ADU.

    Same meaning as ``views.binned_view`` on the full frame (see the module docstring for the
    arithmetic); requires ``binned_aligned(geo, size, factor)``.
    """
    nb = size // factor
    binned = np.empty((nb, nb), np.float32)
    bmask = np.zeros((nb, nb), np.uint8)
    for part in steps.trim_regions(geo, _square_box(geo, size)):
        amp, (rrs, rcs), (lr, lc) = part.amp, part.raw, part.local
        loc = (slice(lr.start // factor, lr.stop // factor), slice(lc.start // factor, lc.stop // factor))
        block, rows = raw[rrs, rcs], unread[rrs]
        read = ~rows
        if rows.any():
            block = block.copy()
            block[rows] = 0
        sums = block_sum(block, factor, np.uint32)
        bias = biases[amp.amp]
        bias = bias if bias.shape[0] == 1 else bias[rrs.start - amp.rows.start:rrs.stop - amp.rows.start]
        b = np.broadcast_to(bias[:, 0].astype(np.float64), read.shape)
        bias_sum = factor * np.where(read, b, 0.0).reshape(-1, factor).sum(axis=1)  # per block row
        # the gain of ``steps.apply_gain``, folded into the block mean in float64 (see docstring)
        binned[loc] = (sums - bias_sum[:, None]) * (float(np.float32(gains[amp.amp])) / (factor * factor))
        steps.record("gain")
        flagged = rows.any() or any(rcs.start <= c < rcs.stop for c in bad_columns) \
            or int(block.max()) >= steps.saturation_threshold(saturation_adu)
        if flagged:
            m = steps.mask_region(raw, amp, saturation_adu=saturation_adu, unread=unread,
                                  bad_columns=bad_columns, region=part.raw)
            bmask[loc] = bin_mask(m, factor, bad_fraction)
    return binned, bmask
