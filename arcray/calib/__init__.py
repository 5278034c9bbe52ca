"""Calibration of raw sdR frames (pure: numpy/pyarrow, no Ray).

- ``reader.read_raw(path_or_bytes) -> RawFrame(data uint16 [4224, 4352], header dict)``
- ``steps``: ``bias_level``, ``subtract_overscan``, ``trim``, ``apply_gain``, ``unread_rows``,
  ``frame_mask`` (bit flags ``SATURATED=1``, ``NOT_READ=2``, ``BAD_COLUMN=4``)
- ``views``: ``window_origins``, ``cut_windows``, ``binned_view``
- ``metadata.extract_metadata(header)``: per-observatory keyword table -> typed columns
- ``frame.calibrate_frame(raw, header, config) -> CalibratedFrame`` (float32 electrons)
- ``table.frame_table`` / ``open_calibrated`` / ``tensor_to_numpy``: the Parquet dataset
- ``config.CalibConfig``: the stage's typed config; ``testing.make_raw_frame``: known-answer frames
"""
