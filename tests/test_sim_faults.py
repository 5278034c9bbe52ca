"""Instrument faults: each kind visible in the raw pixels of its frame, absent from clean frames, never
in the header; drawn at the world's fault rate and labelled in the truth."""

from __future__ import annotations

from collections import Counter
from datetime import date
from functools import lru_cache

import numpy as np
import pytest

from arcray import optics
from arcray.instrument import GEOMETRY, READ_NOISE_E, SATURATION_ADU, gains
from arcray.sim.frames import render_frame
from arcray.sim.instrument_faults import FAULT_KINDS, Fault
from arcray.sim.light import line_flux
from arcray.sim.schedule import build_schedule
from arcray.sim.state import apply_fault, simulate_states
from arcray.sim.world import SimWorld, WorldSpec

SEED = 4
CAM = "b1"
FAULTS = {
    "lamp_out": Fault("lamp_out", (CAM,), (("lamp_index", 1),)),  # HgCd
    "no_light": Fault("no_light", (CAM,)),
    "amp_noisy": Fault("amp_noisy", (CAM,), (("amp", 2), ("mode", "read"), ("factor", 3.5))),
    "amp_pattern": Fault("amp_noisy", (CAM,), (("amp", 1), ("mode", "pattern"), ("pattern_adu", 6.0),
                                               ("period_px", 23.0))),
    "scattered_light": Fault("scattered_light", (CAM,), (("glow_e", 300.0), ("u", 0.8), ("v", -0.9),
                                                         ("scale_px", 1000.0))),
    "focus_jump": Fault("focus_jump", (CAM,), (("jump_px", 0.2),)),
    "overexposed": Fault("overexposed", (CAM,), (("factor", 3.0),)),
}


@lru_cache(maxsize=None)
def night():
    exps = build_schedule(date(2023, 12, 1), 1, SEED, "apo")
    return exps, simulate_states(exps, SEED, fault_rate=0.0)


def exposure(flavor):
    return next(e for e in night()[0] if e.flavor == flavor and not e.is_hartmann and e.design_id != -999)


@lru_cache(maxsize=None)
def frame(flavor, fault=None):
    exp = exposure(flavor)
    state = night()[1][(exp.expnum, CAM)]
    if fault:
        state = apply_fault(state, FAULTS[fault], exp)
    data, header = render_frame(CAM, exp, state, SEED)
    data.setflags(write=False)
    return data, header, state


def _light_adu(data):
    """Trimmed frame minus each amp's overscan median (ADU, float)."""
    geo = GEOMETRY[CAM]
    out = np.zeros(geo.trimmed_shape)
    for amp in geo.amps:
        out[amp.trim_rows, amp.trim_cols] = data[amp.rows, amp.cols] - np.median(data[amp.rows, amp.overscan_cols])
    return out


def signatures(data, state) -> dict[str, float]:
    """What a frame's pixels say (the state gives the line positions only)."""
    img = _light_adu(data)
    g = gains(CAM, 60280)
    noise = max(float(data[a.rows, a.overscan_cols].std()) / (READ_NOISE_E[CAM] / g[a.amp])
                for a in GEOMETRY[CAM].amps)
    from scipy.ndimage import median_filter

    rows = np.arange(0, img.shape[0], 32)
    last, first = np.arange(19, 499, 20), np.arange(20, 500, 20)  # fibers either side of a bundle gap
    gap_x = (optics.trace_x(CAM, last[None, :], rows[:, None]) + optics.trace_x(CAM, first[None, :], rows[:, None])) / 2
    gap_light = img[rows[:, None], np.rint(gap_x).astype(int)]  # 8 px from the nearest trace
    glow = float(median_filter(gap_light, size=5).max())
    ll = optics.lines(CAM)
    fibers = np.flatnonzero(optics.traces(CAM).alive)[::5]
    x, y, _ = optics.line_positions(CAM, state.field, fibers)
    box = [img[int(round(yy)) - 4:int(round(yy)) + 5, int(round(xx)) - 3:int(round(xx)) + 4].sum()
           for xx, yy in zip(x.ravel(), y.ravel())]
    box = np.asarray(box).reshape(x.shape).sum(0)
    lamp = np.array(ll.lamp)
    want = line_flux(CAM)[lamp == "HgCd"].sum() / line_flux(CAM)[lamp == "Ne"].sum()
    hg_ne = float(box[lamp == "HgCd"].sum() / max(box[lamp == "Ne"].sum(), 1.0) / want)
    return {"light_p999": float(np.percentile(img, 99.9)), "noise": noise, "glow": glow, "hg_ne": hg_ne,
            "saturated": float((data == SATURATION_ADU).sum())}


def line_width(data, state) -> float:
    """Median row-width of the bright isolated lines at their true positions."""
    img = _light_adu(data)
    rows = optics.lines(CAM).row
    iso = np.flatnonzero([np.min(np.abs(np.delete(rows, i) - rows[i])) > 12 for i in range(rows.size)])
    fibers = np.flatnonzero(optics.traces(CAM).alive)[::4]
    x, y, _ = (a.ravel() for a in optics.line_positions(CAM, state.field, fibers, iso))
    keep = (y > 20) & (y < img.shape[0] - 20)
    x, y = x[keep], y[keep]
    r = np.rint(y).astype(int)[:, None, None] + np.arange(-7, 8)[None, :, None]
    c = np.rint(x).astype(int)[:, None, None] + np.arange(-3, 4)[None, None, :]
    prof = img[r, c].sum(-1)
    bright = (prof.max(1) > 3000) & (prof.max(1) < 150000)
    rr = r[bright, :, 0]
    p = prof[bright]
    m = (p * rr).sum(1) / p.sum(1)
    return float(np.median(np.sqrt((p * (rr - m[:, None]) ** 2).sum(1) / p.sum(1) - 1 / 12)))


FIRES = {  # what flags each fault from the pixels
    "no_light": lambda s: s["light_p999"] < 100,
    "lamp_out": lambda s: s["hg_ne"] < 0.1,
    "amp_noisy": lambda s: s["noise"] > 2.0,
    "amp_pattern": lambda s: s["noise"] > 2.0,
    "scattered_light": lambda s: s["glow"] > 80,
    "overexposed": lambda s: s["saturated"] > 1000,
}


@pytest.mark.parametrize("kind", sorted(FIRES))
def test_fault_visible_in_its_arc_and_absent_from_the_clean_one(kind):
    clean = signatures(*frame("arc")[0::2])
    faulty = signatures(*frame("arc", kind)[0::2])
    assert FIRES[kind](faulty), (kind, faulty)
    assert not FIRES[kind](clean), (kind, clean)
    assert 0.6 < clean["hg_ne"] < 1.5 and clean["noise"] < 1.3 and clean["glow"] < 10


def test_focus_jump_widens_the_lines_with_no_header_change():
    data, header, state = frame("arc", "focus_jump")
    clean_data, clean_header, clean_state = frame("arc")
    assert state.field.s0 == pytest.approx(clean_state.field.s0 + 0.2)
    assert line_width(data, state) - line_width(clean_data, clean_state) > 0.15
    for key in clean_header:  # the instrument wrote the same header
        if key not in ("CHECKSUM", "DATASUM"):
            assert header[key] == clean_header[key], key


@pytest.mark.parametrize("kind", ["no_light", "overexposed"])
def test_flat_faults_show_in_the_pixels(kind):
    clean, faulty = signatures(*frame("flat")[0::2]), signatures(*frame("flat", kind)[0::2])
    assert FIRES[kind](faulty) and not FIRES[kind](clean)
    assert frame("flat", kind)[1]["EXPTIME"] == frame("flat")[1]["EXPTIME"]


def test_faults_drawn_at_the_rate_labelled_and_independent_of_the_rest():
    clean = SimWorld(WorldSpec(start="2023-12-01", nights=6, seed=SEED, fault_rate=0.0))
    some = SimWorld(WorldSpec(start="2023-12-01", nights=6, seed=SEED, fault_rate=0.25))
    assert [e.expnum for e in clean.exposures] == [e.expnum for e in some.exposures]
    truth = some.truth_table().to_pandas()
    cal = truth[truth["flavor"].isin(["arc", "flat"])]
    faulty = cal[cal["fault"].notna()]
    exp_rate = faulty["expnum"].nunique() / cal["expnum"].nunique()
    assert 0.15 < exp_rate < 0.35
    assert set(faulty["fault"]) == set(FAULT_KINDS)
    assert truth[~truth["flavor"].isin(["arc", "flat"])]["fault"].isna().all()
    assert (faulty[faulty["flavor"] == "flat"]["fault"] != "lamp_out").all()
    one_cam = faulty.groupby("expnum")["camera"].nunique()
    kinds = faulty.groupby("expnum")["fault"].first()
    assert (one_cam[kinds.isin(["amp_noisy", "focus_jump"])] == 1).all()
    assert (one_cam[~kinds.isin(["amp_noisy", "focus_jump"])] == 2).all()
    # clean frames keep exactly the state they have in a fault-free world
    for key, st in some.states.items():
        if not st.fault:
            assert st == clean.states[key]
    details = faulty.dropna(subset=["fault_detail"])
    assert set(details["fault"]) == set(FAULT_KINDS) - {"no_light"} and details["fault_detail"].str.contains("=").all()
    c = Counter(SimWorld(WorldSpec(start="2023-12-01", nights=6, seed=SEED)).truth_table()
                .to_pandas()["fault"].dropna())
    assert 0 < sum(c.values()) < 0.1 * len(cal)  # the default: a few per cent
