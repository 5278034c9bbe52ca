"""Arrow schemas of the measurement tables, with units (pyarrow types only; no I/O here).

``measure_frame`` returns plain columns (dict of numpy arrays for the per-line / per-trace
tables, one dict of scalars for the per-frame row) whose names and types are these schemas';
``pa.table(columns, schema=LINE_SCHEMA)`` / ``pa.Table.from_pylist([frame], schema=FRAME_SCHEMA)``
build the tables (``tests/test_measure_frame.py`` does). Every field's metadata holds its ``unit``
and a one-line ``doc``; the ``flags`` bits are ``arcray.measure.flags``.
"""

from __future__ import annotations

import pyarrow as pa

from arcray.optics import FIELD_TERMS, TERMS_X, TERMS_Y


def _f(name: str, typ: pa.DataType, unit: str, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata={"unit": unit, "doc": doc})


_KEYS = [
    _f("camera", pa.string(), "", "b1, r1, b2 or r2", False),
    _f("mjd", pa.int32(), "d", "MJD of the night", False),
    _f("expnum", pa.int64(), "", "exposure number", False),
]

LINE_SCHEMA = pa.schema(_KEYS + [
    _f("fiber", pa.int16(), "", "fiber, 1-based (1..500)", False),
    _f("line", pa.int16(), "", "index of the line in arcray.optics.lines(camera)", False),
    _f("wave", pa.float64(), "A", "air wavelength of the line"),
    _f("lamp", pa.string(), "", "lamp that emits it (Ne, HgCd, HeAr)"),
    _f("x_nom", pa.float64(), "px", "nominal column (trimmed frame, 0-based pixel centres)"),
    _f("y_nom", pa.float64(), "px", "nominal row"),
    _f("x", pa.float64(), "px", "measured column: the trace centre at the line's row (NaN: not measured)"),
    _f("y", pa.float64(), "px", "measured row of the line"),
    _f("x_err", pa.float32(), "px", "1-sigma uncertainty of x (noise model)"),
    _f("y_err", pa.float32(), "px", "1-sigma uncertainty of y"),
    _f("sigma_x", pa.float32(), "px", "Gaussian width across fibers (trace width)"),
    _f("sigma_y", pa.float32(), "px", "Gaussian width along rows (line width, BOSS WSIGMA's)"),
    _f("sigma_y_err", pa.float32(), "px", "1-sigma uncertainty of sigma_y"),
    _f("flux", pa.float32(), "e-", "line flux"),
    _f("flux_err", pa.float32(), "e-", "1-sigma uncertainty of flux"),
    _f("snr", pa.float32(), "", "flux / flux_err"),
    _f("background", pa.float32(), "e-/px", "constant under the line"),
    _f("flags", pa.uint16(), "", "bit flags (arcray.measure.flags); 0 = used", False),
    _f("used", pa.bool_(), "", "kept by the field fit against the nominal model", False),
    _f("x_res", pa.float32(), "px", "x minus the fitted field (against the nominal model) there"),
    _f("y_res", pa.float32(), "px", "y minus the fitted field there"),
])

TRACE_SCHEMA = pa.schema(_KEYS + [
    _f("fiber", pa.int16(), "", "fiber, 1-based (1..500)", False),
    _f("row", pa.int32(), "px", "trimmed row of the sample (centre of the summed rows)", False),
    _f("x_nom", pa.float64(), "px", "nominal trace centre"),
    _f("x", pa.float64(), "px", "measured trace centre (NaN: not measured)"),
    _f("x_err", pa.float32(), "px", "1-sigma uncertainty of x"),
    _f("sigma", pa.float32(), "px", "Gaussian trace width across fibers (BOSS XSIGMA's)"),
    _f("sigma_err", pa.float32(), "px", "1-sigma uncertainty of sigma"),
    _f("flux", pa.float32(), "e-", "flux per row"),
    _f("flux_err", pa.float32(), "e-", "1-sigma uncertainty of flux"),
    _f("snr", pa.float32(), "", "flux / flux_err"),
    _f("flags", pa.uint16(), "", "bit flags (arcray.measure.flags); 0 = used", False),
    _f("used", pa.bool_(), "", "kept by the field fit", False),
    _f("x_res", pa.float32(), "px", "x minus the fitted field there"),
])

_FIELD_DOC = "displacement/width field against the nominal model, px at the detector's edge (optics.Field)"
FRAME_SCHEMA = pa.schema(_KEYS + [
    _f("flavor", pa.string(), "", "arc or flat (others are not measured)", False),
    _f("exptime", pa.float64(), "s", "EXPTIME"),
    _f("measured", pa.bool_(), "", "False: not measured (see reason)", False),
    _f("reason", pa.string(), "", "why not measured, or a warning"),
    _f("status", pa.string(), "", "traffic light: green, yellow, red (worst judged QA quantity)"),
    _f("status_reasons", pa.string(), "", "non-green QA quantities, e.g. 'NLAMPS=9 red'"),
    _f("limits_version", pa.string(), "", "QA limits file the status comes from"),
    _f("config_hash", pa.string(), "", "MeasureConfig.config_hash()"),
    _f("shift_x", pa.float64(), "px", "global x shift found by cross-correlation"),
    _f("shift_y", pa.float64(), "px", "global y shift found by cross-correlation (arcs)"),
    *[_f(t, pa.float64(), "px", _FIELD_DOC) for t in FIELD_TERMS],
    *[_f(f"{t}_err", pa.float64(), "px", "1-sigma uncertainty of " + t) for t in FIELD_TERMS],
    _f("field_rms_x", pa.float64(), "px", "RMS x residual of the used points"),
    _f("field_rms_y", pa.float64(), "px", "RMS y residual of the used points (arcs)"),
    _f("field_n_used", pa.int32(), "", "points used by the displacement fit"),
    _f("field_n_rejected", pa.int32(), "", "measured points rejected (> reject_px or clip_sigma)"),
    _f("ref_mjd", pa.int32(), "d", "MJD of the reference arc (null: none given)"),
    _f("ref_expnum", pa.int64(), "", "exposure of the reference arc"),
    *[_f(f"ref_{t}", pa.float64(), "px", "displacement against the reference arc (arc2trace's "
         "6 affine terms a0 a1 a2 b0 b1 b2 + a3 b3)") for t in TERMS_X + TERMS_Y],
    _f("ref_rms_x", pa.float64(), "px", "RMS x residual against the reference-arc fit"),
    _f("ref_rms_y", pa.float64(), "px", "RMS y residual against the reference-arc fit"),
    _f("ref_n_used", pa.int32(), "", "lines used by the reference-arc fit"),
    _f("ref_n_rejected", pa.int32(), "", "lines rejected by it"),
    _f("WSIGMA", pa.float64(), "px", "largest per-quadrant median line width along rows (arcs)"),
    *[_f(f"WSIGMA_Q{q}", pa.float64(), "px", f"median line width, quadrant {q} (amp order)") for q in range(4)],
    _f("XSIGMA", pa.float64(), "px", "largest per-quadrant median trace width (flats)"),
    *[_f(f"XSIGMA_Q{q}", pa.float64(), "px", f"median trace width, quadrant {q} (amp order)") for q in range(4)],
    _f("NLAMPS", pa.int32(), "", "lamp lines used on >= nlamps_fiber_fraction of the alive fibers (arcs)"),
    _f("nlamps_ne", pa.int32(), "", "NLAMPS lines of the Ne lamp"),
    _f("nlamps_hgcd", pa.int32(), "", "NLAMPS lines of the HgCd lamp (APO)"),
    _f("nlamps_hear", pa.int32(), "", "NLAMPS lines of the HeAr lamp (LCO)"),
    _f("BESTCORR", pa.float64(), "", "arc-template correlation (fitarcimage)"),
    _f("WAVEMID", pa.float64(), "A", "wavelength at the central 2 fibers x 2 rows (quickwave)"),
    _f("w_shift", pa.float64(), "A", "WAVEMID minus the reference's"),
    _f("w_shift_ref", pa.string(), "", "reference of w_shift: 'nominal' or '<mjd>/<expnum>'"),
    _f("median_flux", pa.float64(), "e-", "arcs: median used line flux; flats: median trace flux per row"),
    _f("fratio", pa.float64(), "", "(median_flux / exptime) over the reference's"),
    _f("fratio_ref", pa.string(), "", "reference of fratio: '<mjd>/<expnum>' or null"),
    _f("NGOODFIBER", pa.int32(), "", "fibers used at >= good_fiber_rows_fraction of their rows (flats)"),
    _f("n_fibers_used", pa.int32(), "", "fibers with at least one used line or trace point"),
    _f("n_points_used", pa.int32(), "", "used (fiber, line) or (fiber, row) points"),
    _f("n_saturated", pa.int32(), "", "(fiber, line) points not measured because saturated"),
    *[_f(f"gap_bkg_Q{q}", pa.float64(), "e-/px", f"median background between fiber bundles, quadrant {q} "
         "(arcray.measure.gaps)") for q in range(4)],
    *[_f(f"gap_noise_Q{q}", pa.float64(), "e-/px", f"robust pixel noise between fiber bundles, quadrant {q}")
      for q in range(4)],
    _f("gap_bkg_max", pa.float64(), "e-/px", "largest background stamp between fiber bundles"),
    _f("trace_shift", pa.float64(), "px", "median x minus nominal of the used points"),
    *[_f(f"{q}_status", pa.string(), "", f"traffic light of {q} (null: not judged)")
      for q in ("WSIGMA", "XSIGMA", "NLAMPS", "BESTCORR", "WAVEMID", "NGOODFIBER")],
])
