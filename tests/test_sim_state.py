"""The whole-detector state of the simulated world (calibration-state.md §2), states only, no pixels."""

from __future__ import annotations

import math
from datetime import date
from functools import lru_cache

import numpy as np
import pytest

from arcray.optics import FIELD_TERMS
from arcray.sim.schedule import SITES, build_schedule, mjd_of
from arcray.sim.state import COEFFS, HIDDEN_SD, HIDDEN_TAU_H, header_field, simulate_states


@lru_cache(maxsize=None)
def world(nights=40, seed=2, scale=1.0, obs="apo"):
    start = date(2023, 12, 1) if obs == "apo" else date(2025, 6, 1)
    exps = build_schedule(start, nights, seed, obs)
    return exps, simulate_states(exps, seed, fault_rate=0.0, hidden_scale=scale)


def _hidden(exps, states, cam):
    return np.array([states[(e.expnum, cam)].field_hidden for e in exps])


@pytest.mark.parametrize("obs", ["apo", "lco"])
def test_hidden_walks_have_the_spec_sizes_half_shared(obs):
    exps, states = world(obs=obs)
    b, r = SITES[obs].cameras
    hb, hr = _hidden(exps, states, b), _hidden(exps, states, r)
    for k, term in enumerate(FIELD_TERMS):
        for h in (hb, hr):
            assert h[:, k].std() == pytest.approx(HIDDEN_SD[term], rel=0.3), term
    shared = [np.corrcoef(hb[:, k], hr[:, k])[0, 1] for k in range(len(FIELD_TERMS))]
    assert np.mean(shared) == pytest.approx(0.5, abs=0.1) and min(shared) > 0.15


def test_hidden_walks_decorrelate_over_six_hours():
    exps, states = world()
    h = _hidden(exps, states, "b1") / np.array([HIDDEN_SD[t] for t in FIELD_TERMS])
    t = np.array([mjd_of(e.date_obs) * 24 for e in exps])
    i, j = np.triu_indices(len(exps), 1)
    for lo, hi, want in ((0.0, 0.5, math.exp(-0.25 / HIDDEN_TAU_H)), (5.0, 7.0, math.exp(-1.0))):
        sel = (t[j] - t[i] >= lo) & (t[j] - t[i] < hi)
        corr = np.mean([np.corrcoef(h[i[sel], k], h[j[sel], k])[0, 1] for k in range(h.shape[1])])
        assert corr == pytest.approx(want, abs=0.12), (lo, hi)


def test_hidden_scale_zero_leaves_only_the_header_part():
    exps, states = world(nights=3, scale=0.0)
    for e in exps[::5]:
        for cam in e.cameras:
            s = states[(e.expnum, cam)]
            assert s.field_hidden == (0.0,) * 12 and s.field == header_field(cam, e)
            hid = dict(s.lamps_hidden)
            assert all(v == 0.0 for lp, v in hid.items() if lp != "HgCd")  # the mercury warm-up stays
            assert hid.get("HgCd", 0.0) <= 0.0


def test_header_parts_follow_their_drivers():
    exps, _ = world(nights=20)
    cam, c = "b1", COEFFS["b1"]
    ref = SITES["apo"].coll_ref
    T = np.array([e.extra["T_true"] for e in exps])
    f = np.array([header_field(cam, e).as_array() for e in exps])
    col = {t: f[:, k] for k, t in enumerate(FIELD_TERMS)}
    np.testing.assert_allclose(col["a1"], c.m_T * (T - c.T_nom))
    np.testing.assert_allclose(col["b2"], c.d_T * (T - c.T_nom))
    np.testing.assert_allclose(col["a3"], c.bow_T * (T - c.T_nom))
    tip = np.array([(e.colla - e.collb) - (ref[0] - ref[1]) for e in exps])
    tilt = np.array([(e.colla + e.collb) / 2 - e.collc - ((ref[0] + ref[1]) / 2 - ref[2]) for e in exps])
    np.testing.assert_allclose(col["sv"], c.k_sv * tip / 100)
    np.testing.assert_allclose(col["su"], c.k_su * tilt / 100)
    assert np.ptp(tip) > 10 and np.ptp(tilt) > 10  # the collimator's tip and tilt both move
    alt = np.radians([e.extra["env"]["ALT"] for e in exps])
    rot = np.radians([e.extra["env"]["ROTPOS"] for e in exps])
    np.testing.assert_allclose(col["a2"], c.ga2 * (np.cos(alt) - 0.5) + c.ra2 * np.sin(rot))
    np.testing.assert_allclose(col["b1"], c.gb1 * (np.sin(alt) - np.sin(np.pi / 3)) + c.rb1 * np.cos(rot))
    assert col["s0"].max() <= 1.30


def test_every_term_matters_at_the_tenth_of_a_pixel_and_quadratics_stay_small():
    exps, states = world(nights=14, seed=0)
    cal = [states[(e.expnum, cam)] for e in exps if e.flavor in ("arc", "flat") for cam in e.cameras]
    f = np.array([s.field.as_array() for s in cal])
    for k, term in enumerate(FIELD_TERMS):
        lo, hi = np.percentile(f[:, k], [1, 99])
        assert hi - lo > 0.1, term  # it moves something by 0.1 px at the edge over the world
    for term in ("a3", "b3"):
        assert np.abs(f[:, FIELD_TERMS.index(term)]).max() <= 0.15 + 3 * HIDDEN_SD[term]


def test_lamps_per_site_and_the_mercury_warm_up():
    exps, states = world()
    arcs = [e for e in exps if e.flavor == "arc"]
    lamps = {lp for e in arcs for lp, _ in states[(e.expnum, "b1")].lamps}
    assert lamps == {"Ne", "HgCd"}
    flat = next(e for e in exps if e.flavor == "flat")
    assert dict(states[(flat.expnum, "b1")].lamps).keys() == {"FF"}
    lco_exps, lco_states = world(nights=3, obs="lco")
    arc = next(e for e in lco_exps if e.flavor == "arc")
    assert dict(lco_states[(arc.expnum, "b2")].lamps).keys() == {"Ne", "HeAr"}
    ne = np.array([dict(states[(e.expnum, "b1")].lamps_hidden)["Ne"] for e in arcs])
    assert ne.std() == pytest.approx(math.hypot(0.02, 0.02), rel=0.35)
    # without walks and noise only the mercury warm-up is hidden: always a deficit, smaller for the
    # Right door that follows the Left within a minute with the lamps left on
    exps, states = world(nights=10, scale=0.0)
    deficit = {e.expnum: -dict(states[(e.expnum, "b1")].lamps_hidden)["HgCd"] for e in exps if e.flavor == "arc"}
    assert all(0.0 < d < 0.25 for d in deficit.values())
    pairs = [(a, b) for a, b in zip(exps, exps[1:]) if a.hartmann == "Left" and b.hartmann == "Right"]
    assert len(pairs) >= 10 and all(deficit[b.expnum] < deficit[a.expnum] for a, b in pairs)
