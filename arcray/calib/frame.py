"""``calibrate_frame``: raw ADU + header -> electrons, masks, windows, binned view, metadata. Pure.

Steps, in order (recorded in ``CalibratedFrame.steps`` and the Parquet provenance):
``unread_rows`` -> ``overscan:<method>`` -> ``trim`` -> ``gain`` -> ``mask`` -> ``views``.
No value is ever clipped: saturated pixels keep their electrons and are masked; pixels of rows
that were not read are set to 0 e- and masked ``NOT_READ``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arcray.calib import steps
from arcray.calib.config import CalibConfig
from arcray.calib.metadata import extract_metadata
from arcray.calib.views import binned_view, cut_windows, window_origins
from arcray.instrument import GEOMETRY, RAW_SHAPE, gains as instrument_gains


@dataclass(frozen=True)
class CalibratedFrame:
    """A calibrated frame. Images are float32 electrons on the trimmed frame ``[row, col]``."""

    meta: dict[str, Any]  # one metadata row (see arcray.calib.metadata)
    electrons: np.ndarray  # float32 [rows, cols] trimmed
    mask: np.ndarray  # uint8 bit flags, same shape
    windows: np.ndarray  # float32 [n_win, size, size]
    windows_mask: np.ndarray  # uint8 [n_win, size, size]
    window_origins: list[tuple[int, int]]  # (row0, col0) in the trimmed frame
    window_names: list[str]
    binned: np.ndarray  # float32 [binned_size/bin, binned_size/bin]
    binned_mask: np.ndarray  # uint8
    bias_adu: tuple[float, ...]  # mean bias per amp (ADU)
    gains: tuple[float, ...]  # e-/ADU per amp
    steps: tuple[str, ...] = field(default=())

    @property
    def camera(self) -> str:
        return self.meta["camera"]


def calibrate_frame(raw: np.ndarray, header: dict[str, Any], config: CalibConfig | None = None, *,
                    camera: str | None = None, expnum: int | None = None) -> CalibratedFrame:
    """Calibrate all four amps of ``raw`` (uint16 ADU, 4224 x 4352); ``raw`` is not modified.

    ``camera``/``expnum`` (from the file name) override the header's. Raises ``InputError`` for
    a wrong shape or missing required keywords.
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
    unread = steps.unread_rows(raw, header, geo)
    electrons = np.empty(geo.trimmed_shape, np.float32)
    biases = []
    for amp, gain in zip(geo.amps, gains):
        out = electrons[amp.trim_rows, amp.trim_cols]
        bias = steps.bias_level(raw, amp, method=cs.overscan, read_rows=~unread,
                                transient_cols=geo.transient_cols)
        np.subtract(raw[amp.rows, amp.cols], bias, out=out, dtype=np.float32, casting="unsafe")
        steps.apply_gain(out, gain, out=out)
        rows = unread[amp.rows]
        if rows.any():
            out[rows] = 0.0
        per_row = bias[:, 0] if bias.shape[0] == rows.size else np.broadcast_to(bias[:, 0], rows.shape)
        biases.append(float(per_row[~rows].mean()) if (~rows).any() else 0.0)
    mask = steps.frame_mask(raw, geo, saturation_adu=cs.saturation_adu, unread=unread,
                            bad_columns=cs.bad_columns)
    size = config.window_size
    origins = window_origins(cam, cs.windows, size)
    binned, binned_mask = binned_view(electrons, mask, size=config.binned_size, factor=config.bin_factor,
                                      bad_fraction=config.binned_bad_fraction)
    return CalibratedFrame(
        meta=meta, electrons=electrons, mask=mask,
        windows=cut_windows(electrons, origins, size), windows_mask=cut_windows(mask, origins, size),
        window_origins=origins, window_names=[w.name for w in cs.windows],
        binned=binned, binned_mask=binned_mask, bias_adu=tuple(biases), gains=gains,
        steps=("unread_rows", f"overscan:{cs.overscan}", "trim", "gain", "mask:saturation,not_read,"
               "bad_columns", f"views:windows{size},binned{config.bin_factor}"),
    )
