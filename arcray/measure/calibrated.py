"""Measure a frame while calibration holds it: the bridge from ``calib`` to ``measure``. Pure.

Calibration does not keep the full electron frame (67 MB of float32) unless asked; measurement
reads only stamps, so it calibrates them from the raw ADU with the very biases, gains, unread rows,
saturation level and bad columns calibration applied (``RawSource``: bit-identical to the full
frame). When the full frame was kept, its pixels are used directly (``FrameSource``).

A measurement that raises does not fail the calibrated frame: its row says
``measured=False, reason='measurement failed: ...'`` (calibration's output stays valid).
"""

from __future__ import annotations

import numpy as np

from arcray.calib.config import CalibConfig
from arcray.calib.frame import CalibratedFrame
from arcray.instrument import GEOMETRY
from arcray.measure.config import MeasureConfig
from arcray.measure.frame import FrameMeasurement, empty_frame_row, measure_frame
from arcray.measure.source import FrameSource, PixelSource, RawSource

FAILED_PREFIX = "measurement failed: "


def pixel_source(raw: np.ndarray, cf: CalibratedFrame, config: CalibConfig) -> PixelSource:
    """The pixels of ``cf`` as a measurement reads them (see the module docstring)."""
    if cf.electrons is not None:
        return FrameSource(cf.electrons, cf.mask)
    cs = config.for_camera(cf.camera)
    if cf.unread is None or len(cf.bias_levels) != 4:
        raise ValueError("calibrated frame carries no bias levels / unread rows to measure from raw ADU")
    return RawSource(raw, GEOMETRY[cf.camera], list(cf.bias_levels), cf.gains, cf.unread,
                     saturation_adu=cs.saturation_adu, bad_columns=cs.bad_columns)


def measure_calibrated(raw: np.ndarray, cf: CalibratedFrame, config: CalibConfig,
                       measure: MeasureConfig) -> FrameMeasurement:
    """``measure_frame`` of a frame calibration just produced; never raises for the frame's content."""
    try:
        return measure_frame(pixel_source(raw, cf, config), cf.meta, measure)
    except Exception as exc:  # noqa: BLE001 - a frame that cannot be measured is a row with a reason
        reason = f"{FAILED_PREFIX}{type(exc).__name__}: {exc}"[:500]
        return FrameMeasurement(empty_frame_row(cf.meta, measure, reason=reason))
