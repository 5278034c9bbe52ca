"""Arcs with a known field: the per-line table, the fitted fields and the QA quantities."""

from __future__ import annotations

import numpy as np
import pytest

from arcray import optics
from arcray.measure import FrameSource, MeasureConfig, flags as F, measure_frame
from arcray.measure.lines import lines_for
from arcray.measure.synthetic import arc_electrons, raw_source, throughputs, to_raw

AFFINE = optics.Field(a0=0.45, a1=0.18, a2=-0.12, a3=0.07, b0=-0.6, b1=0.11, b2=0.22, b3=-0.09,
                      s0=1.05, su=0.05, sv=-0.04, sr=0.06)
EDGES = [(-1, -1), (-1, 1), (1, -1), (1, 1), (0, -1), (0, 1), (-1, 0), (1, 0)]


def _meta(camera, expnum, flavor="arc", **kw):
    return dict(camera=camera, mjd=60708, expnum=expnum, flavor=flavor, EXPTIME=4.09, **kw)


def _measure(camera, field, expnum=1, reference=None, config=None, **paint):
    painted = arc_electrons(camera, field, seed=expnum, **paint)
    src = raw_source(to_raw(painted.electrons, camera, seed=expnum), camera)
    return measure_frame(src, _meta(camera, expnum), config, reference), painted


def _truth(camera, field, m):
    ids = np.asarray(m.lines["line"]).reshape(500, -1)[0]
    x, y, s = optics.line_positions(camera, field, line_ids=ids)
    return x.ravel(), y.ravel(), s.ravel()


@pytest.fixture(scope="module")
def affine_arc():
    return _measure("b1", AFFINE, expnum=11)


def _edge_errors(frame, field):
    fit = optics.Field.from_mapping({k: v for k, v in frame.items() if v is not None})
    u, v = np.array(EDGES, float).T
    return np.abs(fit.dx(u, v) - field.dx(u, v)).max(), np.abs(fit.dy(u, v) - field.dy(u, v)).max()


def test_affine_and_quadratic_field_recovered_at_the_edges(affine_arc):
    m, _ = affine_arc
    ex, ey = _edge_errors(m.frame, AFFINE)
    assert ex < 0.02 and ey < 0.02, (ex, ey)
    fr = m.frame
    assert abs(fr["s0"] - AFFINE.s0) < 0.01 and abs(fr["su"] - AFFINE.su) < 0.01
    assert fr["field_n_used"] > 0.95 * 497 * len(lines_for("b1", MeasureConfig()).ids)


def test_every_line_is_identified_and_centroided(affine_arc):
    m, painted = affine_arc
    x, y, s = _truth("b1", AFFINE, m)
    used = m.lines["used"]
    ex, ey = m.lines["x"][used] - x[used], m.lines["y"][used] - y[used]
    assert np.abs(ex).max() < 0.25 and np.abs(ey).max() < 0.25  # no misidentified line
    snr = m.lines["snr"][used]
    hi = snr > 50
    assert np.sqrt(np.mean(ex[hi] ** 2)) < 0.03 and np.sqrt(np.mean(ey[hi] ** 2)) < 0.03
    pull = ex / m.lines["x_err"][used]
    assert 0.8 < np.std(pull) < 1.25  # the errors mean what they say
    flux = m.lines["flux"][used] / painted.flux[:, np.asarray(m.lines["line"][:used.size // 500])].ravel()[used]
    assert abs(np.median(flux) - 1) < 0.01


def test_quadrant_widths_and_qa(affine_arc):
    m, _ = affine_arc
    fr = m.frame
    _, _, s = _truth("b1", AFFINE, m)
    q = (np.asarray(m.lines["y_nom"]) >= 2056) * 2 + (np.asarray(m.lines["x_nom"]) >= 2048)
    for i in range(4):
        sel = m.lines["used"] & (q == i)
        assert abs(fr[f"WSIGMA_Q{i}"] - np.median(s[sel])) < 0.02
    assert fr["WSIGMA"] == max(fr[f"WSIGMA_Q{i}"] for i in range(4))
    assert fr["NLAMPS"] >= 30 and fr["NLAMPS_status"] == "green" and fr["WSIGMA_status"] == "green"
    assert fr["BESTCORR"] > 0.75 and fr["BESTCORR_status"] == "green"
    assert fr["nlamps_ne"] + fr["nlamps_hgcd"] == fr["NLAMPS"] and fr["nlamps_hear"] is None
    assert fr["measured"] and fr["limits_version"] == "boss-qa-limits-v1"


def test_one_lamp_out_gives_nlamps_below_the_limit_and_red():
    # r1: Ne gives 37 of its 42 candidate lines, the red cameras' NLAMPS limit is 30 (red)
    m, _ = _measure("r1", optics.Field(), expnum=12, lamp_scale={"Ne": 0.0})
    fr = m.frame
    assert fr["nlamps_ne"] == 0 and fr["NLAMPS"] == fr["nlamps_hgcd"] < 30
    assert fr["NLAMPS_status"] == "red" and fr["status"] == "red" and "NLAMPS" in fr["status_reasons"]
    lamp = np.asarray(m.lines["lamp"])
    ne = lamp == "Ne"
    assert m.lines["used"][ne].mean() < 0.001  # a handful of true blends with an unassigned line remain
    assert (m.lines["flags"][ne] & (F.LOW_SNR | F.NOT_CONVERGED | F.OFFSET | F.WIDTH) != 0).mean() > 0.99


def test_saturated_lines_are_flagged_and_excluded():
    m, _ = _measure("b1", optics.Field(s0=0.95), expnum=13, peak_e=200000.0)
    flags, used = m.lines["flags"], m.lines["used"]
    sat = (flags & F.SATURATED) != 0
    assert sat.sum() > 500 and m.frame["n_saturated"] == int(sat.sum())
    assert not used[sat].any() and np.isnan(m.lines["x"][sat]).all()
    # the saturated lines are the brightest ones; the others are unaffected
    x, y, _ = _truth("b1", optics.Field(s0=0.95), m)
    assert np.abs(m.lines["x"][used] - x[used]).max() < 0.25
    assert abs(m.frame["a0"]) < 0.01 and abs(m.frame["b0"]) < 0.01


def test_a_3px_global_shift_is_found_and_followed():
    field = optics.Field(a0=3.0, b0=-3.0, a1=0.1, b2=-0.1)
    m, _ = _measure("r1", field, expnum=14)
    fr = m.frame
    assert abs(fr["shift_x"] - 3.0) < 0.3 and abs(fr["shift_y"] + 3.0) < 0.3
    ex, ey = _edge_errors(fr, field)
    assert ex < 0.02 and ey < 0.02
    x, y, _ = _truth("r1", field, m)
    used = m.lines["used"]
    assert used.mean() > 0.9 and np.abs(m.lines["y"][used] - y[used]).max() < 0.25


def test_dead_and_dark_fibers():
    thru = throughputs("b1")
    thru[199] = 0.0  # fiber 200: alive in the model, dark in this frame
    m, _ = _measure("b1", AFFINE, expnum=15, throughput=thru)
    fiber, flags = m.lines["fiber"], m.lines["flags"]
    for dead in (79, 103, 349):
        rows = fiber == dead
        assert (flags[rows] & F.DEAD_FIBER).all() and np.isnan(m.lines["x"][rows]).all()
    dark = fiber == 200
    assert not m.lines["used"][dark].any() and ((flags[dark] & F.LOW_SNR) != 0).all()
    x, _, _ = _truth("b1", AFFINE, m)
    near = np.isin(fiber, (199, 201)) & m.lines["used"]
    pull = (m.lines["x"][near] - x[near]) / m.lines["x_err"][near]
    assert near.sum() > 50 and np.abs(pull).max() < 5 and np.std(pull) < 1.5
    assert m.frame["n_fibers_used"] == 496


def test_field_against_the_reference_arc(affine_arc):
    first, _ = affine_arc
    later = optics.Field(**{**AFFINE.as_dict(), "a0": 0.65, "a1": 0.1, "b0": -0.3, "b2": 0.3})
    m, _ = _measure("b1", later, expnum=16, reference=first.reference())
    fr = m.frame
    for t in ("a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"):
        assert abs(fr[f"ref_{t}"] - (getattr(later, t) - getattr(AFFINE, t))) < 0.01, t
    assert fr["ref_expnum"] == 11 and fr["ref_n_used"] > 10000 and fr["ref_rms_x"] < 0.05


def test_same_input_gives_the_same_rows(affine_arc):
    """A rerun, and the full-frame path (FrameSource over the calibrated frame), give the same rows."""
    first, _ = affine_arc
    painted = arc_electrons("b1", AFFINE, seed=11)
    src = raw_source(to_raw(painted.electrons, "b1", seed=11), "b1")
    electrons, mask = src.block(slice(None), slice(None))
    for again in (measure_frame(src, _meta("b1", 11)), measure_frame(FrameSource(electrons, mask), _meta("b1", 11))):
        assert again.frame == first.frame
        for k, col in first.lines.items():
            a, b = np.asarray(col), np.asarray(again.lines[k])
            assert (a == b).all() if a.dtype == object else np.array_equal(a, b, equal_nan=True), k


def test_frames_that_are_not_measured_say_why():
    src = raw_source(to_raw(np.zeros((4112, 4096), np.float32), "b1"), "b1")
    sci = measure_frame(src, _meta("b1", 17, flavor="science"))
    hart = measure_frame(src, _meta("b1", 18, is_hartmann=True))
    assert not sci.frame["measured"] and "science" in sci.frame["reason"] and sci.lines is None
    assert not hart.frame["measured"] and "Hartmann" in hart.frame["reason"]


def test_an_arc_without_light_is_red_not_an_error():
    src = raw_source(to_raw(arc_electrons("b1", optics.Field(), peak_e=0.0).electrons, "b1"), "b1")
    fr = measure_frame(src, _meta("b1", 19)).frame
    assert fr["measured"] and fr["status"] == "red" and fr["NLAMPS"] == 0 and fr["field_n_used"] == 0


def test_a_frame_with_every_pixel_masked_is_red_not_an_error():
    from arcray.instrument import GEOMETRY, gains
    from arcray.measure import RawSource

    raw = to_raw(arc_electrons("b1", optics.Field(), peak_e=0.0).electrons, "b1")
    bias = [np.full((1, 1), 1000.0, np.float32)] * 4
    src = RawSource(raw, GEOMETRY["b1"], bias, gains("b1", 60708), np.ones(4224, bool), saturation_adu=65535)
    m = measure_frame(src, _meta("b1", 20))
    assert m.frame["status"] == "red" and m.frame["n_points_used"] == 0 and m.frame["BESTCORR"] is None
    assert ((m.lines["flags"] & (F.MASKED | F.DEAD_FIBER)) != 0).all()
