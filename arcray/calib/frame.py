"""``calibrate_frame``: raw ADU + header -> electrons, masks, windows, binned view, metadata. Pure.

Steps, in order: ``unread_rows`` -> ``overscan:<method>`` -> ``trim`` -> ``gain`` -> ``mask`` ->
``views``; the verbs of ``arcray.calib.steps`` record them as they run (``steps.recording``), and
that list is ``CalibratedFrame.steps`` and the Parquet provenance.
No value is ever clipped: saturated pixels keep their electrons and are masked; pixels of rows
that were not read are set to 0 e- and masked ``NOT_READ``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arcray.calib import direct, steps
from arcray.calib.config import CalibConfig
from arcray.calib.metadata import extract_metadata
from arcray.calib.views import binned_view, cut_windows, window_origins
from arcray.instrument import GEOMETRY, RAW_SHAPE, gains as instrument_gains


@dataclass(frozen=True)
class CalibratedFrame:
    """A calibrated frame. Images are float32 electrons on the trimmed frame ``[row, col]``."""

    meta: dict[str, Any]  # one metadata row (see arcray.calib.metadata)
    electrons: np.ndarray | None  # float32 [rows, cols] trimmed (None: calibrated without it)
    mask: np.ndarray | None  # uint8 bit flags, same shape (None with electrons)
    windows: np.ndarray  # float32 [n_win, size, size]
    windows_mask: np.ndarray  # uint8 [n_win, size, size]
    window_origins: list[tuple[int, int]]  # (row0, col0) in the trimmed frame
    window_names: list[str]
    binned: np.ndarray  # float32 [binned_size/bin, binned_size/bin]
    binned_mask: np.ndarray  # uint8
    bias_adu: tuple[float, ...]  # mean bias per amp (ADU)
    gains: tuple[float, ...]  # e-/ADU per amp
    steps: tuple[str, ...] = field(default=())
    # What a measurement needs to calibrate stamps from the raw ADU (``arcray.measure.RawSource``):
    # the bias applied per amp (ADU, (1, 1) or (nrows, 1) as ``steps.bias_level`` returns it) and
    # the raw rows that were not read.
    bias_levels: tuple[np.ndarray, ...] = field(default=())
    unread: np.ndarray | None = None

    @property
    def camera(self) -> str:
        return self.meta["camera"]

    @property
    def trimmed_shape(self) -> tuple[int, int]:
        return GEOMETRY[self.camera].trimmed_shape


def _biases(raw: np.ndarray, geo, cs, unread: np.ndarray) -> tuple[list[np.ndarray], tuple[float, ...]]:
    """Per amp: the bias applied (ADU, (1, 1) or (nrows, 1)) and its mean over read rows."""
    levels, means = [], []
    for amp in geo.amps:
        bias = steps.bias_level(raw, amp, method=cs.overscan, read_rows=~unread,
                                transient_cols=geo.transient_cols)
        rows = unread[amp.rows]
        per_row = bias[:, 0] if bias.shape[0] == rows.size else np.broadcast_to(bias[:, 0], rows.shape)
        levels.append(bias)
        means.append(float(per_row[~rows].mean()) if (~rows).any() else 0.0)
    return levels, tuple(means)


def calibrate_frame(raw: np.ndarray, header: dict[str, Any], config: CalibConfig | None = None, *,
                    camera: str | None = None, expnum: int | None = None,
                    keep_frame: bool = True) -> CalibratedFrame:
    """Calibrate all four amps of ``raw`` (uint16 ADU, 4224 x 4352); ``raw`` is not modified.

    ``camera``/``expnum`` (from the file name) override the header's. ``keep_frame=False``: the
    views are computed straight from the raw ADU (``arcray.calib.direct``; windows and masks
    bit-identical, binned view equal up to float32 rounding) and ``electrons``/``mask`` are None.
    Raises ``InputError`` for a wrong shape or missing required keywords.
    """
    from arcray.errors import InputError

    config = config or CalibConfig()
    if raw.shape != RAW_SHAPE:
        raise InputError(f"wrong shape: {raw.shape} (rows, cols), expected {RAW_SHAPE}")
    meta = extract_metadata(header, camera=camera, expnum=expnum)
    cam = meta["camera"]
    geo = GEOMETRY[cam]
    cs = config.for_camera(cam)
    gains = tuple(cs.gains or instrument_gains(cam, meta["mjd"]))
    with steps.recording() as ran:
        unread = steps.unread_rows(raw, header, geo)
        levels, bias_means = _biases(raw, geo, cs, unread)
        views = _views(raw, geo, config, cs, levels, gains, unread, keep_frame)
        steps.record(f"views:windows{config.window_size},binned{config.bin_factor}")
    electrons, mask, windows, windows_mask, origins, binned, binned_mask = views
    return CalibratedFrame(
        meta=meta, electrons=electrons, mask=mask, windows=windows, windows_mask=windows_mask,
        window_origins=origins, window_names=[w.name for w in cs.windows],
        binned=binned, binned_mask=binned_mask, bias_adu=bias_means, gains=gains, steps=tuple(ran),
        bias_levels=tuple(levels), unread=unread,
    )


def _views(raw, geo, config: CalibConfig, cs, levels, gains, unread, keep_frame: bool):
    """``(electrons, mask, windows, windows_mask, origins, binned, binned_mask)``: from the full
    frame, or (``keep_frame=False``, aligned binning) straight from the raw ADU."""
    size = config.window_size
    origins = window_origins(geo.camera, cs.windows, size)
    masks = dict(saturation_adu=cs.saturation_adu, bad_columns=cs.bad_columns)
    bin_args = dict(size=config.binned_size, factor=config.bin_factor, bad_fraction=config.binned_bad_fraction)
    if not keep_frame and direct.binned_aligned(geo, config.binned_size, config.bin_factor):
        windows, windows_mask = direct.cut_windows_raw(raw, geo, levels, gains, unread, origins, size, **masks)
        binned, binned_mask = direct.binned_view_raw(raw, geo, levels, gains, unread, **bin_args, **masks)
        return None, None, windows, windows_mask, origins, binned, binned_mask
    electrons = steps.electrons_of_box(raw, geo, levels, gains, unread)
    mask = steps.frame_mask(raw, geo, unread=unread, **masks)
    windows, windows_mask = cut_windows(electrons, origins, size), cut_windows(mask, origins, size)
    binned, binned_mask = binned_view(electrons, mask, **bin_args)
    return electrons, mask, windows, windows_mask, origins, binned, binned_mask
