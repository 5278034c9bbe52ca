"""Calibration of raw sdR frames (pure: numpy/pyarrow, no Ray).

- ``reader.read_raw(path_or_bytes) -> RawFrame(data uint16 [4224, 4352], header dict)``
- ``steps``: the verbs, with ``out=`` buffers: ``unread_rows``, ``bias_level``,
  ``subtract_overscan``, ``trim_regions``, ``apply_gain``, ``blank_rows``, ``mask_region`` (bit
  flags ``SATURATED=1``, ``NOT_READ=2``, ``BAD_COLUMN=4``), chained by ``electrons_of_box`` and
  ``mask_of_box``; ``recording()`` collects the steps that ran (provenance)
- ``views``: ``window_origins``, ``cut_windows``, ``binned_view``; ``direct``: the same views
  straight from the raw ADU (the default, fast path)
- ``metadata.extract_metadata(header)``: per-observatory keyword table -> typed columns
- ``frame.calibrate_frame(raw, header, config) -> CalibratedFrame`` (float32 electrons)
- ``table.frame_table`` / ``open_calibrated``: the Parquet dataset (tensors: ``arcray.tensors``)
- ``config.CalibConfig``: the stage's typed config. Known-answer frames: ``arcray.testing.frames``
"""
