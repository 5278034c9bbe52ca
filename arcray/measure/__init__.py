"""Measurement of the calibration state on every arc and flat (pure numpy/scipy; no Ray, no I/O).

    from arcray.measure import MeasureConfig, RawSource, measure_frame
    m = measure_frame(RawSource(raw, geometry, biases, gains, unread, saturation_adu=65535), meta)
    m.frame   # one row of schema.FRAME_SCHEMA: fitted field, BOSS QA values, traffic light
    m.lines   # arcs: columns of schema.LINE_SCHEMA, one row per (fiber, candidate line)
    m.traces  # flats: columns of schema.TRACE_SCHEMA, one row per (fiber, sample row)

- ``source``: where pixels come from (``FrameSource`` full frame, ``RawSource`` raw ADU);
- ``offsets``: the global shift by cross-correlation, BESTCORR;
- ``lines`` / ``traces``: the per-line / per-trace measurements (``profiles``: the fitter);
- ``field``: robust fits of the displacement and width fields (arc2trace's rejection);
- ``qa``: the BOSS QA quantities and traffic lights from the versioned limits file;
- ``gaps``: background and noise per amplifier quadrant between the fiber bundles;
- ``flags_reasons``: ``judge_frames`` flags each frame with its cause (no_light, lamp_out, amp_noisy,
  scattered_light, focus, overexposed, unknown, clean) against reference nights;
- ``frame``: ``measure_frame`` and ``ReferenceArc``; ``schema``: the Arrow schemas (units);
- ``flags``: the per-line bit flags; ``config``: ``MeasureConfig``;
- ``synthetic``: known-answer arcs and flats for tests and benchmarks.
"""

from arcray.measure.config import MeasureConfig, QAReference
from arcray.measure.frame import FrameMeasurement, ReferenceArc, empty_frame_row, measure_frame
from arcray.measure.source import FrameSource, PixelSource, RawSource

__all__ = ["FrameMeasurement", "FrameSource", "MeasureConfig", "PixelSource", "QAReference", "RawSource",
           "ReferenceArc", "empty_frame_row", "measure_frame"]
