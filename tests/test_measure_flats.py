"""Flats with a known field: trace centres and widths per fiber, XSIGMA, NGOODFIBER, the x terms."""

from __future__ import annotations

import numpy as np
import pytest

from arcray import optics
from arcray.measure import flags as F, measure_frame
from arcray.measure.synthetic import flat_electrons, raw_source, throughputs, to_raw

FIELD = optics.Field(a0=-0.8, a1=0.2, a2=0.15, a3=-0.1, s0=1.12, su=-0.06, sv=0.05, sr=0.08)


def _flat(camera, field, expnum, **kw):
    painted = flat_electrons(camera, field, seed=expnum, **kw)
    src = raw_source(to_raw(painted.electrons, camera, seed=expnum), camera)
    return measure_frame(src, dict(camera=camera, mjd=60708, expnum=expnum, flavor="flat", EXPTIME=25.1))


@pytest.fixture(scope="module")
def flat():
    return _flat("b1", FIELD, 21)


def test_trace_centres_and_x_terms(flat):
    t, fr = flat.traces, flat.frame
    used = t["used"]
    fib = t["fiber"].astype(int) - 1
    truth = optics.trace_x("b1", fib, t["row"], FIELD)
    err = t["x"][used] - truth[used]
    assert used.sum() > 0.97 * 497 * 16 and np.abs(err).max() < 0.1 and np.sqrt(np.mean(err ** 2)) < 0.01
    u = np.array([-1, 1, -1, 1, 0.0])
    v = np.array([-1, -1, 1, 1, 0.0])
    fit = optics.Field.from_mapping({k: fr[k] for k in ("a0", "a1", "a2", "a3")})
    assert np.abs(fit.dx(u, v) - FIELD.dx(u, v)).max() < 0.02
    assert fr["b0"] is None and fr["shift_y"] is None  # a flat cannot show the row terms
    assert abs(fr["trace_shift"] - np.median(truth[used] - t["x_nom"][used])) < 0.01


def test_trace_widths_xsigma_and_width_field(flat):
    t, fr = flat.traces, flat.frame
    used = t["used"]
    u, v = optics.normalised("b1", t["x_nom"], t["row"])
    s_true = FIELD.sigma(u, v)
    q = (t["row"] >= 2056) * 2 + (t["x_nom"] >= 2048)
    for i in range(4):
        assert abs(fr[f"XSIGMA_Q{i}"] - np.median(s_true[used & (q == i)])) < 0.02
    assert fr["XSIGMA"] == max(fr[f"XSIGMA_Q{i}"] for i in range(4)) and fr["XSIGMA_status"] == "green"
    for term in ("s0", "su", "sv", "sr"):
        assert abs(fr[term] - getattr(FIELD, term)) < 0.01, term


def test_ngoodfiber_counts_dead_and_dark_fibers(flat):
    assert flat.frame["NGOODFIBER"] == 497  # APO: 3 dead fibers
    assert flat.frame["NGOODFIBER_status"] == "yellow"  # opLimits: "3 or more fibers missing"
    thru = throughputs("b1")
    thru[[10, 250, 251, 400]] = [0.0, 0.0, 0.05, 0.0]  # 3 dark, 1 at 5 %: 7 missing in all
    dark = _flat("b1", optics.Field(), 22, throughput=thru)
    assert dark.frame["NGOODFIBER"] == 493 and dark.frame["NGOODFIBER_status"] == "yellow"
    rows = dark.traces["fiber"] == 252
    assert ((dark.traces["flags"][rows] & (F.FAINT | F.LOW_SNR)) != 0).all()


def test_flat_without_light_is_red():
    src = raw_source(to_raw(np.zeros((4112, 4096), np.float32), "b1"), "b1")
    fr = measure_frame(src, dict(camera="b1", mjd=60708, expnum=23, flavor="flat", EXPTIME=25.1)).frame
    assert fr["NGOODFIBER"] == 0 and fr["status"] == "red" and fr["a0"] is None
