"""Background and noise of each amplifier quadrant, measured where no fiber's light falls.

The 500 fibers come in 25 bundles of 20 (``instrument.fiber_x``): between two bundles lies a gap of
~16 px (b) / ~13 px (r) centre to centre, so its middle is 6-8 px from the nearest trace, 6-8 trace
widths: no lamp or flat light of a healthy frame reaches it. Left of fiber 1 and right of fiber 500
the detector is dark too. Stamps of ``STAMP_ROWS`` x ``STAMP_COLS`` px centred on those gaps, at
``ROWS_PER_QUADRANT`` rows per quadrant, following the nominal traces' bow and tilt at that row and
the frame's measured global shift ``dx``, give per amplifier quadrant (amp order of
``field.quadrant``):

- ``gap_bkg_Q<i>`` (e-/px): the median of the stamps' medians: ~0 on a healthy frame, raised by
  scattered light (a smooth glow of hundreds of e-);
- ``gap_noise_Q<i>`` (e-/px): the robust standard deviation (half the 15.9-84.1 percentile range)
  of the pixels after subtracting each stamp's median: the read noise on a healthy frame (2-4 e-),
  several times it on an amplifier with raised read noise or pickup pattern noise.
- ``gap_bkg_max`` (e-/px): the largest stamp median of the frame (a glow centred anywhere).

Cost: ~200 stamps of 32 x 2 px (13 000 pixels), a few ms. Masked pixels (saturated, not read, bad
columns) are left out; a quadrant without pixels is NaN. Pure numpy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from arcray import optics
from arcray.instrument import FIBERS_PER_BUNDLE, GEOMETRY, N_FIBERS
from arcray.measure.source import PixelSource

STAMP_ROWS = 32  # px along wavelength per stamp
STAMP_COLS = 2  # px across fibers per stamp: the gap's middle, >= 5 px from any trace (~5 widths)
ROWS_PER_QUADRANT = 4  # stamp rows per quadrant (evenly spaced, away from the edges and the amp split)
EDGE_OFFSET_PX = 24.0  # stamps left of fiber 1 / right of fiber 500 sit this far outside them, px


@lru_cache(maxsize=8)
def _stamp_corners(camera: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nominal stamp centres ``(rows0, x_centre, quadrant)`` of the camera, before the shift."""
    from arcray.measure.field import quadrant

    h, w = optics.detector_size(camera)
    split = GEOMETRY[camera].amps[0].trim_rows.stop
    margin = STAMP_ROWS
    lows = np.linspace(margin, split - margin - STAMP_ROWS, ROWS_PER_QUADRANT)
    highs = np.linspace(split + margin, h - margin - STAMP_ROWS, ROWS_PER_QUADRANT)
    rows0 = np.round(np.concatenate([lows, highs])).astype(np.intp)
    yc = rows0 + STAMP_ROWS / 2.0
    last = np.arange(FIBERS_PER_BUNDLE - 1, N_FIBERS - 1, FIBERS_PER_BUNDLE)  # last fiber of each bundle
    a = optics.trace_x(camera, last[None, :], yc[:, None])
    b = optics.trace_x(camera, last[None, :] + 1, yc[:, None])
    left = optics.trace_x(camera, np.zeros((1, 1), np.intp), yc[:, None]) - EDGE_OFFSET_PX
    right = optics.trace_x(camera, np.full((1, 1), N_FIBERS - 1), yc[:, None]) + EDGE_OFFSET_PX
    xc = np.concatenate([left, (a + b) / 2.0, right], axis=1)  # [rows, gaps]
    rr = np.broadcast_to(rows0[:, None], xc.shape).ravel()
    xc = xc.ravel()
    keep = (xc - STAMP_COLS >= 0) & (xc + STAMP_COLS < w)
    q = quadrant(camera, xc, rr + STAMP_ROWS / 2.0)
    return rr[keep], xc[keep], q[keep]


def measure_gaps(source: PixelSource, camera: str, dx: float = 0.0) -> dict[str, float | None]:
    """``gap_bkg_Q*``, ``gap_noise_Q*`` and ``gap_bkg_max`` of one frame (see the module docstring);
    ``dx``: the frame's global shift across fibers, px (``offsets.x_offset``)."""
    rows0, xc, q = _stamp_corners(camera)
    w = optics.detector_size(camera)[1]
    dx = float(dx) if np.isfinite(dx) else 0.0
    cols0 = np.clip(np.round(xc + dx - STAMP_COLS / 2.0).astype(np.intp), 0, w - STAMP_COLS)
    e, m = source.stamps(rows0, cols0, STAMP_ROWS, STAMP_COLS)
    e = np.where(m == 0, e, np.nan).reshape(len(rows0), -1)
    good = np.isfinite(e).sum(axis=1) >= e.shape[1] // 2
    med = np.full(len(rows0), np.nan)
    if good.any():
        med[good] = np.nanmedian(e[good], axis=1)
    out: dict[str, float | None] = {}
    for i in range(4):
        sel = good & (q == i)
        if not sel.any():
            out[f"gap_bkg_Q{i}"] = out[f"gap_noise_Q{i}"] = None
            continue
        out[f"gap_bkg_Q{i}"] = float(np.median(med[sel]))
        resid = (e[sel] - med[sel, None]).ravel()
        resid = resid[np.isfinite(resid)]
        lo, hi = np.percentile(resid, [15.87, 84.13])
        out[f"gap_noise_Q{i}"] = float((hi - lo) / 2.0)
    out["gap_bkg_max"] = float(np.nanmax(med)) if good.any() else None
    return out
