"""QA limits file, traffic lights, dated references, WAVEMID; the tables fit their Arrow schemas."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from arcray import optics
from arcray.errors import ConfigError
from arcray.instrument import wavelength_of_row
from arcray.measure import MeasureConfig, QAReference, measure_frame, qa
from arcray.measure.schema import FRAME_SCHEMA, LINE_SCHEMA, TRACE_SCHEMA
from arcray.measure.synthetic import arc_electrons, flat_electrons, raw_source, to_raw


def test_packaged_limits_hold_the_calibration_state_values():
    lim = qa.load_limits()
    assert lim.version == "boss-qa-limits-v1"
    for cam in ("b1", "r1", "b2", "r2"):
        arc, flat = lim.for_frame(cam, "arc"), lim.for_frame(cam, "flat")
        assert arc["WSIGMA"].judge(1.25) == "green" and arc["WSIGMA"].judge(1.27) == "yellow"
        assert arc["WSIGMA"].judge(1.31) == "red" and flat["XSIGMA"].judge(1.31) == "red"
        assert arc["BESTCORR"].judge(0.80) == "green" and arc["BESTCORR"].judge(0.70) == "yellow"
        assert arc["BESTCORR"].judge(0.60) == "red"
        assert flat["NGOODFIBER"].judge(498) == "green" and flat["NGOODFIBER"].judge(491) == "yellow"
        assert flat["NGOODFIBER"].judge(490) == "red"
        lo, hi = (14, 13) if cam[0] == "b" else (32, 30)
        assert arc["NLAMPS"].judge(lo) == "green" and arc["NLAMPS"].judge(lo - 1) in ("yellow", "red")
        assert arc["NLAMPS"].judge(hi) != "red" and arc["NLAMPS"].judge(hi - 1) == "red"
    assert lim.for_frame("b1", "arc")["WAVEMID"].judge(4913) == "green"
    assert lim.for_frame("b1", "arc")["WAVEMID"].judge(4900) == "yellow"
    assert lim.for_frame("b1", "arc")["WAVEMID"].judge(4930) == "red"
    assert lim.for_frame("r1", "arc")["WAVEMID"].judge(7980) == "yellow"
    assert "WAVEMID" not in lim.for_frame("b2", "arc")  # no LCO values in calibration-state.md
    assert lim.for_frame("b1", "arc")["WSIGMA"].judge(float("nan")) == "red"


def test_judge_is_the_worst_quantity():
    rules = qa.load_limits().for_frame("b1", "arc")
    status, per, reasons = qa.judge({"WSIGMA": 1.0, "NLAMPS": 13, "BESTCORR": 0.9, "WAVEMID": 4913.0}, rules)
    assert status == "yellow" and per["NLAMPS"] == "yellow" and reasons == "NLAMPS=13 yellow"
    status, _, reasons = qa.judge({"WSIGMA": None, "NLAMPS": 40, "BESTCORR": 0.9, "WAVEMID": 4913.0}, rules)
    assert status == "red" and reasons == "WSIGMA=nan red"


def test_bad_limits_files_are_one_line_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[b1.arc]\nWSIGMA = { green = [1.3, 1.2], yellow = [0, 1.3] }\n")
    with pytest.raises(ConfigError, match="lo 1.3 > hi 1.2"):
        qa.load_limits(str(bad))
    bad.write_text("[b1.arc]\nWSIGMA = { green = [0, 1.2], yellow = [0, 1.3] }\n")
    with pytest.raises(ConfigError, match="no 'version'"):
        qa.load_limits(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        qa.load_limits(str(tmp_path / "missing.toml"))


def test_wavemid_is_quickwaves_central_pixel_and_follows_b0():
    nominal = qa.wavemid("b1", None)
    h = 4112
    rows = np.array([h // 2 - 1, h // 2])
    s = optics.traces("b1").s[[249, 250]]
    expect = np.mean(wavelength_of_row("b1", rows[None, :] - optics.LINE_CURVATURE_PX * s[:, None] ** 2))
    assert nominal == pytest.approx(expect, abs=1e-9)
    shifted = qa.wavemid("b1", np.array([1.0, 0.0, 0.0, 0.0]))  # lines 1 px higher: bluer at the centre
    disp = wavelength_of_row("b1", h / 2) - wavelength_of_row("b1", h / 2 - 1)
    assert shifted - nominal == pytest.approx(-disp, rel=1e-3)


def test_dated_references_and_fratio():
    refs = (QAReference(camera="b1", flavor="arc", mjd=60000, expnum=353032, exptime=4.09, wavemid=4903.77),
            QAReference(camera="b1", flavor="arc", mjd=60500, expnum=370000, exptime=4.09, median_flux=1e5,
                        wavemid=4970.0))
    cfg = MeasureConfig(references=refs)
    assert cfg.reference_for("b1", "arc", 59999) is None
    assert cfg.reference_for("b1", "arc", 60200).expnum == 353032
    assert cfg.reference_for("b1", "arc", 60708).expnum == 370000
    assert cfg.reference_for("r1", "arc", 60708) is None
    assert qa.fratio(2e5, 8.18, refs[1]) == pytest.approx(1.0)
    assert qa.fratio(2e5, 8.18, refs[0]) is None and qa.fratio(2e5, None, refs[1]) is None
    src = raw_source(to_raw(arc_electrons("b1", optics.Field(b0=0.5)).electrons, "b1"), "b1")
    meta = dict(camera="b1", mjd=60708, expnum=3, flavor="arc", EXPTIME=4.09)
    fr = measure_frame(src, meta, cfg).frame
    assert fr["w_shift_ref"] == "60500/370000" and fr["w_shift"] == pytest.approx(fr["WAVEMID"] - 4970.0)
    assert fr["fratio"] == pytest.approx(fr["median_flux"] / 1e5) and fr["fratio_ref"] == "60500/370000"
    plain = measure_frame(src, meta).frame  # no reference: against the nominal model, no fratio
    assert plain["w_shift_ref"] == "nominal" and plain["fratio"] is None
    assert plain["w_shift"] == pytest.approx(plain["WAVEMID"] - qa.wavemid("b1", None))
    assert plain["w_shift"] < -0.3  # lines 0.5 px higher: the centre is bluer


def test_records_fit_the_arrow_schemas():
    meta = dict(camera="r2", mjd=60900, expnum=7, flavor="arc", EXPTIME=45.0)
    arc = measure_frame(raw_source(to_raw(arc_electrons("r2", optics.Field()).electrons, "r2"), "r2"), meta)
    flat = measure_frame(raw_source(to_raw(flat_electrons("r2", optics.Field()).electrons, "r2"), "r2"),
                         {**meta, "expnum": 8, "flavor": "flat"})
    lines = pa.table(arc.lines, schema=LINE_SCHEMA)
    traces = pa.table(flat.traces, schema=TRACE_SCHEMA)
    frames = pa.Table.from_pylist([arc.frame, flat.frame], schema=FRAME_SCHEMA)
    assert set(arc.frame) == set(FRAME_SCHEMA.names) and set(arc.lines) == set(LINE_SCHEMA.names)
    assert lines.num_rows == 500 * int(np.unique(arc.lines["line"]).size) and traces.num_rows == 500 * 16
    assert frames.column("nlamps_hgcd").to_pylist() == [None, None]  # LCO has no HgCd lamp
    assert frames.column("nlamps_hear").to_pylist()[0] is not None
    for schema in (LINE_SCHEMA, TRACE_SCHEMA, FRAME_SCHEMA):
        for field in schema:
            assert field.metadata and b"unit" in field.metadata and field.metadata[b"doc"], field.name
    assert not any(isinstance(v, float) and math.isnan(v) for v in arc.frame.values())  # nulls, never NaN
