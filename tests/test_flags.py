"""Flags with reasons (``arcray.measure.flags_reasons``) and the gap background/noise they read
(``arcray.measure.gaps``): known-answer frames of every fault kind get the right reason, clean frames
stay clean.

Pixels: one noiseless synthetic arc (painted per lamp, so a lamp can be left out) and one flat of
b1, painted once per module; each fault is made from them as the simulator makes it
(``arcray.sim.instrument_faults``): a lamp's lines left out, no light, one quadrant's read noise
x5, a Gaussian glow, the focus widened by convolving with a Gaussian (sigma adds in quadrature),
light x5 with the saturated pixels masked. The reference nights are the clean frame's row with the
small night-to-night scatter of a real camera.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from arcray import optics
from arcray.instrument import GEOMETRY, READ_NOISE_E
from arcray.measure import FrameSource, measure_frame
from arcray.measure.flags_reasons import FLAGS, FlagLimits, judge_by_night, judge_frames
from arcray.measure.gaps import measure_gaps
from arcray.measure.synthetic import arc_electrons, flat_electrons
from arcray.sim.instrument_faults import glow

CAM = "b1"
S0 = 1.05
SAT_E = 65000.0


def _noisy(img: np.ndarray, seed: int, rn: float = READ_NOISE_E[CAM]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sd = np.sqrt(np.maximum(img, 0.0) + np.float32(rn * rn))
    return (img + sd * rng.standard_normal(img.shape, dtype=np.float32)).astype(np.float32)


@pytest.fixture(scope="module")
def painted():
    field = optics.Field(s0=S0)
    ne = arc_electrons(CAM, field, lamp_scale={"HgCd": 0.0}, noise=False).electrons  # Ne + unassigned lines
    hg = arc_electrons(CAM, field, lamp_scale={"Ne": 0.0}, unassigned_scale=0.0, noise=False).electrons
    flat = flat_electrons(CAM, field, noise=False).electrons
    return {"ne": ne, "hg": hg, "flat": flat}


def _measure(img, mask, flavor, expnum, exptime=None):
    meta = dict(camera=CAM, mjd=60400, expnum=expnum, flavor=flavor, EXPTIME=exptime or (4.0 if flavor == "arc" else 25.0))
    return measure_frame(FrameSource(img, mask), meta).frame


def _amp_slices(amp: int):
    a = GEOMETRY[CAM].amps[0]
    rows = slice(0, a.trim_rows.stop) if amp < 2 else slice(a.trim_rows.stop, None)
    cols = slice(0, a.trim_cols.stop) if amp % 2 == 0 else slice(a.trim_cols.stop, None)
    return rows, cols


def _faulty(light: np.ndarray, kind: str, seed: int):
    """(electrons, mask) of ``light`` (noiseless e-) with the fault ``kind``."""
    mask = None
    if kind == "no_light":
        light = np.zeros_like(light)
    elif kind == "scattered_light":
        light = light + glow({"glow_e": 400.0, "u": 0.3, "v": -0.4, "scale_px": 1200.0}, light.shape)
    elif kind == "focus":
        light = gaussian_filter(light, sigma=np.sqrt(1.35 ** 2 - S0 ** 2))  # s0 1.05 -> 1.35 px
    elif kind == "overexposed":
        light = light * 5.0
    img = _noisy(light, seed)
    if kind == "amp_noisy":
        rows, cols = _amp_slices(2)
        rng = np.random.default_rng(seed + 1)
        img[rows, cols] += rng.standard_normal(img[rows, cols].shape, dtype=np.float32) * np.float32(4 * READ_NOISE_E[CAM])
    if kind == "overexposed":
        mask = (img >= SAT_E).astype(np.uint8)
        img = np.minimum(img, SAT_E)
    return img, mask


@pytest.fixture(scope="module")
def rows(painted):
    """Measured rows: clean arc and flat, and one per (flavor, fault kind)."""
    arc = painted["ne"] + painted["hg"]
    out = {("arc", "clean"): _measure(_noisy(arc, 1), None, "arc", 100),
           ("flat", "clean"): _measure(_noisy(painted["flat"], 2), None, "flat", 101)}
    out[("arc", "lamp_out")] = _measure(_noisy(painted["ne"], 3), None, "arc", 102)
    for i, kind in enumerate(("no_light", "amp_noisy", "scattered_light", "focus", "overexposed")):
        out[("arc", kind)] = _measure(*_faulty(arc, kind, 10 + i), "arc", 110 + i)
        out[("flat", kind)] = _measure(*_faulty(painted["flat"], kind, 20 + i), "flat", 120 + i)
    return out


def _reference(clean: dict, flavor: str, seed: int = 5) -> pd.DataFrame:
    """Six reference nights of two frames each: the clean row with a real camera's scatter."""
    rng = np.random.default_rng(seed)
    refs = []
    for k in range(12):
        r = dict(clean)
        r.update(mjd=60390 + k // 2, expnum=1000 + k, flavor=flavor)
        r["s0"] = clean["s0"] + 0.03 * (k // 2 - 2.5) / 2.5 + rng.normal(0, 0.01)
        r["median_flux"] = clean["median_flux"] * (1 + rng.normal(0, 0.03))
        for q in range(4):
            r[f"gap_noise_Q{q}"] = clean[f"gap_noise_Q{q}"] * (1 + rng.normal(0, 0.02))
        r["gap_bkg_max"] = clean["gap_bkg_max"] + rng.normal(0, 0.2)
        refs.append(r)
    return pd.DataFrame(refs)


def _night(clean: dict, frame: dict, seed: int = 7) -> pd.DataFrame:
    """The tested night: the frame between two clean frames each side."""
    rng = np.random.default_rng(seed)
    night = []
    for k in range(5):
        r = dict(frame) if k == 2 else dict(clean, s0=clean["s0"] + rng.normal(0, 0.01))
        r.update(mjd=60400, expnum=2000 + k)
        night.append(r)
    return pd.DataFrame(night)


@pytest.mark.parametrize("flavor,kind,want", [
    ("arc", "clean", "clean"), ("flat", "clean", "clean"),
    ("arc", "lamp_out", "lamp_out"),
    ("arc", "no_light", "no_light"), ("flat", "no_light", "no_light"),
    ("arc", "amp_noisy", "amp_noisy"), ("flat", "amp_noisy", "amp_noisy"),
    ("arc", "scattered_light", "scattered_light"), ("flat", "scattered_light", "scattered_light"),
    ("arc", "focus", "focus"), ("flat", "focus", "focus"),
    ("arc", "overexposed", "overexposed"), ("flat", "overexposed", "overexposed"),
])
def test_each_fault_gets_its_reason(rows, flavor, kind, want):
    clean = rows[(flavor, "clean")]
    out = judge_frames(_night(clean, rows[(flavor, kind)]), _reference(clean, flavor))
    assert list(out.flag) == ["clean", "clean", want, "clean", "clean"], out.flag_detail.tolist()
    got = out.iloc[2]
    assert set(out.flag) <= set(FLAGS)
    if want == "clean":
        assert got.flag_action is None
    else:
        assert got.flag_detail and got.flag_action.startswith(f"{CAM} 00002002 {flavor}: ")


def test_lamp_out_names_the_lamp_and_the_numbers(rows):
    clean = rows[("arc", "clean")]
    got = judge_frames(_night(clean, rows[("arc", "lamp_out")]), _reference(clean, "arc")).iloc[2]
    assert got.flag_detail.startswith("nlamps_hgcd=0 (reference 14) while Ne has 20 lines")
    assert "HgCd lines missing" in got.flag_action and "retake the arc" in got.flag_action


def test_amp_noisy_names_the_quadrant(rows):
    clean = rows[("flat", "clean")]
    got = judge_frames(_night(clean, rows[("flat", "amp_noisy")]), _reference(clean, "flat")).iloc[2]
    assert got.flag_detail.startswith("gap_noise_Q2=") and "amplifier 2 noisy" in got.flag_action


def test_gaps_see_the_glow_and_the_noisy_quadrant(rows):
    clean, glowing, noisy = rows[("arc", "clean")], rows[("arc", "scattered_light")], rows[("arc", "amp_noisy")]
    assert abs(clean["gap_bkg_max"]) < 3 and all(abs(clean[f"gap_bkg_Q{q}"]) < 1 for q in range(4))
    assert all(abs(clean[f"gap_noise_Q{q}"] - READ_NOISE_E[CAM]) < 0.15 for q in range(4))
    assert glowing["gap_bkg_max"] > 300
    ratio = noisy["gap_noise_Q2"] / READ_NOISE_E[CAM]
    assert 3.5 < ratio < 4.6 and all(abs(noisy[f"gap_noise_Q{q}"] - READ_NOISE_E[CAM]) < 0.15 for q in (0, 1, 3))


def test_gaps_follow_the_shift_and_stay_off_the_traces(painted):
    img = _noisy(painted["flat"], 3)
    shifted = np.zeros_like(img)
    shifted[:, 3:] = img[:, :-3]  # traces 3 px to the right
    g = measure_gaps(FrameSource(shifted), CAM, dx=3.0)
    assert all(abs(g[f"gap_noise_Q{q}"] - READ_NOISE_E[CAM]) < 0.2 for q in range(4)), g


def test_reference_never_comes_from_the_tested_night(rows):
    clean = rows[("arc", "clean")]
    night = _night(clean, rows[("arc", "lamp_out")])
    # the tested night offered as its own reference: dropped, so nothing to compare with
    alone = judge_frames(night, night)
    assert alone.flag.iloc[2] != "lamp_out"
    assert "no reference" in alone.flag_detail.iloc[0]
    both = judge_by_night(pd.concat([night, _reference(clean, "arc")], ignore_index=True))
    assert both.set_index("expnum").flag[2002] == "lamp_out"
    assert (both.set_index("expnum").drop(2002).flag == "clean").all()


def test_unmeasured_and_out_of_distribution_frames_are_unknown(rows):
    clean = rows[("arc", "clean")]
    failed = dict(clean, measured=False, reason="profile fit failed")
    odd = dict(clean, recon_z=25.0)
    out = judge_frames(_night(clean, failed), _reference(clean, "arc"))
    assert out.flag.iloc[2] == "unknown" and "profile fit failed" in out.flag_detail.iloc[2]
    out = judge_frames(_night(clean, odd), _reference(clean, "arc"))
    assert out.flag.iloc[2] == "unknown" and "reconstruction error z=25.0" in out.flag_detail.iloc[2]
    strict = judge_frames(_night(clean, odd), _reference(clean, "arc"), flag_limits=FlagLimits(unknown_recon_z=30))
    assert strict.flag.iloc[2] == "clean"


def test_frames_measurement_skips_on_purpose_are_not_judged(rows):
    from arcray.measure.frame import HARTMANN_REASON

    clean = rows[("arc", "clean")]
    hart = dict(clean, measured=False, reason=HARTMANN_REASON)
    sci = dict(clean, measured=False, flavor="science", reason="flavor 'science' is not measured")
    night = _night(clean, hart)
    night = pd.concat([night, pd.DataFrame([dict(sci, mjd=60400, expnum=2009)])], ignore_index=True)
    out = judge_frames(night, _reference(clean, "arc"))
    assert out.flag.iloc[[2, 5]].isna().all()
    assert (out.flag.drop([2, 5]) == "clean").all()


def test_latent_scores_compare_a_night_with_the_other_nights():
    from arcray.measure.flags_reasons import latent_scores

    rng = np.random.default_rng(3)
    n = 60
    lat = pd.DataFrame({"camera": "b1", "flavor": "arc", "mjd": 60300 + np.arange(n) // 5, "expnum": np.arange(n),
                        "z0": rng.normal(0, 1, n), "z1": rng.normal(0, 1, n),
                        "recon_mse": 1e-3 * (1 + 0.05 * rng.normal(0, 1, n))})
    lat.loc[57, ["z0", "z1", "recon_mse"]] = [30.0, -30.0, 5e-3]  # night 60311: one odd frame
    s = latent_scores(lat, [60311]).set_index("expnum")
    assert list(s.index) == [55, 56, 57, 58, 59]
    assert s.recon_z[57] > 50 and s.latent_d[57] > 2 * s.latent_d_max[57]
    rest = s.drop(57)
    assert (rest.recon_z.abs() < 5).all() and (rest.latent_d < rest.latent_d_max).all()
