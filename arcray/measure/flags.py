"""Bit flags of one measured line or trace point (``flags`` column, uint16; 0 = used).

A row with any flag set is not used by the field fits nor counted in the QA quantities; the flags
say why (several may be set at once). Lines blended with a listed neighbour are not candidates at
all (``lines.candidate_lines``), so they have no rows.
"""

from __future__ import annotations

DEAD_FIBER = 1  # the fiber is dead in the instrument model: not measured
EDGE = 2  # the stamp was pushed inwards by the detector edge by more than 1 px
SATURATED = 4  # a saturated pixel lies within core_px of the predicted centre: not measured
MASKED = 8  # a pixel not read or on a bad column lies within core_px: not measured
NOT_CONVERGED = 16  # the profile fit failed (non-finite, width at a bound, centre off the stamp)
LOW_SNR = 32  # flux S/N below min_snr (a lamp that is out, a dark fiber, a faint line)
OFFSET = 64  # centre farther than max_offset_px from its prediction (another line or fiber)
REJECTED = 128  # rejected by the field fit (residual > reject_px on either axis, or clip_sigma)
FAINT = 256  # flats: flux below good_fiber_flux_fraction of the median over fibers at that row
WIDTH = 512  # width farther than max_width_dev_px from the pilot's width field (noise or a neighbour)

NAMES = {DEAD_FIBER: "dead_fiber", EDGE: "edge", SATURATED: "saturated", MASKED: "masked",
         NOT_CONVERGED: "not_converged", LOW_SNR: "low_snr", OFFSET: "offset", REJECTED: "rejected",
         FAINT: "faint", WIDTH: "width"}


def describe(flags: int) -> str:
    """``'saturated|low_snr'`` for a flag value (``''`` for 0)."""
    return "|".join(name for bit, name in NAMES.items() if flags & bit)
