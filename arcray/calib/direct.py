"""Views straight from raw ADU: windows and the binned view without the full electron frame. Pure.

The fast path of ``calibrate_frame`` when the full frame is not stored (``full_frame='none'``,
the default): materialising 17 M float32 electrons (67 MB) only to cut 8 windows and bin it costs
more than reading the frame. Here

- a window is calibrated pixel by pixel from the raw amp regions it overlaps, with exactly the
  operations of the full path (``float32(raw - bias) * float32(gain)``; rows not read = 0 e-),
  so windows and their masks are bit-identical to the full path's;
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

from arcray.calib.steps import BAD_COLUMN, NOT_READ
from arcray.calib.views import bin_mask, block_sum, central_square
from arcray.instrument import AmpGeometry, CameraGeometry


def _overlap(a: slice, start: int, stop: int) -> tuple[int, int]:
    return max(a.start, start), min(a.stop, stop)


def _amp_box(amp: AmpGeometry, r0: int, r1: int, c0: int, c1: int):
    """Part of the trimmed box ``[r0:r1, c0:c1]`` on ``amp``: (trimmed rows, trimmed cols, raw
    rows, raw cols) as slices, or None when they do not overlap."""
    tr0, tr1 = _overlap(amp.trim_rows, r0, r1)
    tc0, tc1 = _overlap(amp.trim_cols, c0, c1)
    if tr0 >= tr1 or tc0 >= tc1:
        return None
    dr, dc = amp.rows.start - amp.trim_rows.start, amp.cols.start - amp.trim_cols.start
    return slice(tr0, tr1), slice(tc0, tc1), slice(tr0 + dr, tr1 + dr), slice(tc0 + dc, tc1 + dc)


def _amp_bias_rows(bias: np.ndarray, amp: AmpGeometry, raw_rows: slice) -> np.ndarray:
    """The bias (ADU, float32 column vector) of ``raw_rows`` of ``amp`` (shape (1, 1) or (n, 1))."""
    if bias.shape[0] == 1:
        return bias
    return bias[raw_rows.start - amp.rows.start:raw_rows.stop - amp.rows.start]


def _mask_block(raw_block: np.ndarray, unread_rows: np.ndarray, raw_cols: slice, saturation_adu: int,
                bad_columns: tuple[int, ...], out: np.ndarray) -> None:
    """Flags of a raw block into ``out`` (uint8, same shape): as ``steps.frame_mask``."""
    np.greater_equal(raw_block, min(saturation_adu, 65535), out=out.view(bool))
    if unread_rows.any():
        out[unread_rows] |= NOT_READ
    for c in bad_columns:
        if raw_cols.start <= c < raw_cols.stop:
            out[:, c - raw_cols.start] |= BAD_COLUMN


def cut_windows_raw(raw: np.ndarray, geo: CameraGeometry, biases: list[np.ndarray], gains: tuple[float, ...],
                    unread: np.ndarray, origins: list[tuple[int, int]], size: int, *, saturation_adu: int,
                    bad_columns: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``(windows float32 e- [n, size, size], masks uint8)`` at ``origins`` (trimmed px), from raw ADU.

    ``biases[i]``: amp i's bias as returned by ``steps.bias_level`` (ADU, (1, 1) or (nrows, 1)).
    """
    win = np.empty((len(origins), size, size), np.float32)
    msk = np.empty((len(origins), size, size), np.uint8)
    for i, (r0, c0) in enumerate(origins):
        for amp, bias, gain in zip(geo.amps, biases, gains):
            box = _amp_box(amp, r0, r0 + size, c0, c0 + size)
            if box is None:
                continue
            trs, tcs, rrs, rcs = box
            loc = (slice(trs.start - r0, trs.stop - r0), slice(tcs.start - c0, tcs.stop - c0))
            block, out = raw[rrs, rcs], win[i][loc]
            np.subtract(block, _amp_bias_rows(bias, amp, rrs), out=out, dtype=np.float32, casting="unsafe")
            np.multiply(out, np.float32(gain), out=out, dtype=np.float32, casting="unsafe")
            rows = unread[rrs]
            if rows.any():
                out[rows] = 0.0
            _mask_block(block, rows, rcs, saturation_adu, bad_columns, msk[i][loc])
    return win, msk


def binned_aligned(geo: CameraGeometry, size: int, factor: int) -> bool:
    """True when every amp's part of the central ``size`` square starts and ends on block edges."""
    rs, cs = central_square(geo.trimmed_shape, size)
    if size % factor:
        return False
    for amp in geo.amps:
        box = _amp_box(amp, rs.start, rs.stop, cs.start, cs.stop)
        if box is None:
            continue
        trs, tcs = box[0], box[1]
        edges = (trs.start - rs.start, trs.stop - rs.start, tcs.start - cs.start, tcs.stop - cs.start)
        if any(e % factor for e in edges):
            return False
    return True


def binned_view_raw(raw: np.ndarray, geo: CameraGeometry, biases: list[np.ndarray], gains: tuple[float, ...],
                    unread: np.ndarray, *, size: int, factor: int, bad_fraction: float, saturation_adu: int,
                    bad_columns: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``(binned e- float32, binned mask uint8)`` of the central ``size`` square, from raw ADU.

    Same meaning as ``views.binned_view`` on the full frame (see the module docstring for the
    arithmetic); requires ``binned_aligned(geo, size, factor)``.
    """
    rs, cs = central_square(geo.trimmed_shape, size)
    nb = size // factor
    binned = np.empty((nb, nb), np.float32)
    bmask = np.zeros((nb, nb), np.uint8)
    for amp, bias, gain in zip(geo.amps, biases, gains):
        box = _amp_box(amp, rs.start, rs.stop, cs.start, cs.stop)
        if box is None:
            continue
        trs, tcs, rrs, rcs = box
        loc = (slice((trs.start - rs.start) // factor, (trs.stop - rs.start) // factor),
               slice((tcs.start - cs.start) // factor, (tcs.stop - cs.start) // factor))
        block, rows = raw[rrs, rcs], unread[rrs]
        read = ~rows
        if rows.any():
            block = block.copy()
            block[rows] = 0
        sums = block_sum(block, factor, np.uint32)
        b = np.broadcast_to(_amp_bias_rows(bias, amp, rrs)[:, 0].astype(np.float64), read.shape)
        bias_sum = factor * np.where(read, b, 0.0).reshape(-1, factor).sum(axis=1)  # per block row
        e = (sums - bias_sum[:, None]) * (float(np.float32(gain)) / (factor * factor))
        binned[loc] = e
        flagged = rows.any() or any(rcs.start <= c < rcs.stop for c in bad_columns) \
            or int(block.max()) >= min(saturation_adu, 65535)
        if flagged:
            m = np.empty(block.shape, np.uint8)
            _mask_block(raw[rrs, rcs], rows, rcs, saturation_adu, bad_columns, m)
            bmask[loc] = bin_mask(m, factor, bad_fraction)
    return binned, bmask
