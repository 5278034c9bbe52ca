"""The true calibration state of every (exposure, camera) (``shared/spec/calibration-state.md`` §2).

The state of one camera at one exposure (``CalibState``) is

- ``field``: the 12 terms of ``arcray.optics.Field`` (``a0..a3`` across fibers, ``b0..b3`` along
  wavelength, ``s0, su, sv, sr`` width; each in px, equal to the displacement or width change it
  causes at the detector's edge, ``sr`` at its corner);
- one brightness per lamp lit in the frame (relative to nominal): APO arcs ``Ne`` and ``HgCd``, LCO
  arcs ``Ne`` and ``HeAr``, flats ``FF`` (the quartz lamps); none for science, bias and dark frames;
- the hidden part of every number (what no header value explains) and the frame's fault, if any.

Every number is a header-driven part plus a hidden part. The header-driven part is a function of
header values (and of the true spectrograph temperature ``T``, which the MC1 sensors read with 0.05 C
noise rounded to 0.1 C: a small extra floor). Drivers, per camera coefficients in ``COEFFS``:

- ``dT = T - T0`` (first-version terms), ``dTn = T - T_nom`` (the other thermal terms), C;
- collimator (steps, relative to the site's reference position): piston ``(dA + dB + dC)/3``, tip
  ``dA - dB``, tilt ``(dA + dB)/2 - dC``; the observers move it after Hartmann tests;
- flexure: ``cos ALT - 0.5``, ``sin ALT - sin 60``, ``sin ROTPOS``, ``cos ROTPOS``; humidity ``H - 30`` %.

| term | header-driven part | edge displacement it produces (b1, 14-night December world) |
|---|---|---|
| ``a0`` | ``kTx dT + kH dH + (ABC sum)/63 + fx (cos ALT - .5) + rx cos ROTPOS`` | ~ +-0.6 px |
| ``b0`` | ``kTy dT + tip/31 + fy (sin ALT - sin 60) + ry sin ROTPOS`` | ~ +-1 px |
| ``a1`` | ``m_T dTn`` (magnification) | 0.10 px/C: 0.2-0.4 px over a night (2-4 C) |
| ``b2`` | ``d_T dTn`` (dispersion scale) | 0.106 px/C: 0.2-0.4 px over a night |
| ``a2`` | ``ga2 (cos ALT - .5) + ra2 sin ROTPOS`` (rotation/shear) | ~0.45 px range |
| ``b1`` | ``gb1 (sin ALT - sin 60) + rb1 cos ROTPOS`` | ~0.4 px range |
| ``a3``, ``b3`` | ``bow_T dTn``, ``curv_T dTn`` (trace bow, line curvature) | <= 0.1 px |
| ``s0`` | ``s0 + q (T - Tfocus)^2 + p (piston/100)^2``, at most 1.30 (focus) | 1.0-1.3 px |
| ``su``, ``sv`` | ``k_su tilt/100``, ``k_sv tip/100`` (collimator tip/tilt -> focus tilt) | 0.5, 0.4 px per 100 steps: ~ +-0.15 px |
| ``sr`` | ``sr0 + k_sr (T - Tfocus)`` (field curvature) | 0.0-0.1 px at the corner |
| lamps | ``fresh - loss_per_day * days since the lamp change`` (every 120 days) | 0.85-1.04 |

(``benchmarks/sim_state.py`` prints the measured range of every term over a 14-night world.)

Hidden part: an Ornstein-Uhlenbeck walk per number (``HIDDEN_TAU_H`` = 6 h correlation time, half of
its variance shared by the two cameras of a spectrograph, half their own) with the stationary s.d.
``HIDDEN_SD`` fixed by calibration-state.md §2 (a world option ``hidden_scale`` scales them all);
each lamp adds 2 % noise per exposure (half shared), and the mercury lamp (``HgCd``) warms up: it
reaches full brightness minutes after it is switched on, ``1 - HG_DEFICIT exp(-t_on / HG_TAU_S)``,
``t_on`` = the observers' lead time (30-180 s, no header records it) plus the time since the first
arc of a run of arcs taken with the lamps left on. Faults (``arcray.sim.instrument_faults``) act
through the hidden part. Flats carry the same field as arcs (they show the x and width terms);
bias, dark and science frames carry the field too (science sky lines follow it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from arcray.optics import FIELD_TERMS, LAMPS, Field
from arcray.sim.instrument_faults import DEFAULT_FAULT_RATE, Fault, describe, draw_faults
from arcray.sim.schedule import SITES, mjd_of
from arcray.sim.types import SimExposure

N_TERMS = len(FIELD_TERMS)
_ZERO = (0.0,) * N_TERMS


@dataclass(frozen=True)
class CalibState:
    """True state of one camera at one exposure (totals; ``*_hidden`` = total - header part)."""

    field: Field = Field()
    A: float = 1.0  # brightness of any lamp not named in ``lamps`` (the first-version ``A``)
    lamps: tuple[tuple[str, float], ...] = ()  # (lamp, relative brightness) lit in this frame
    field_hidden: tuple[float, ...] = _ZERO  # FIELD_TERMS order
    A_hidden: float = 0.0
    lamps_hidden: tuple[tuple[str, float], ...] = ()
    fault: str = ""
    fault_params: tuple[tuple[str, object], ...] = ()

    @classmethod
    def nominal(cls, dx: float = 0.0, dy: float = 0.0, sigma: float = 1.0, A: float = 1.0,
                **terms: float) -> "CalibState":
        """An explicit state with no hidden part (tests, examples): the first-version four numbers
        (``dx`` = ``a0``, ``dy`` = ``b0``, ``sigma`` = ``s0``, ``A`` every lamp) plus any other
        field term by name (``a1=0.3``)."""
        return cls(field=Field(a0=dx, b0=dy, s0=sigma, **terms), A=A)

    def brightness(self, lamp: str) -> float:
        """Relative brightness of ``lamp`` in this frame (``A`` when the state does not name it)."""
        return dict(self.lamps).get(lamp, self.A)

    @property
    def dx(self) -> float:
        return self.field.a0

    @property
    def dy(self) -> float:
        return self.field.b0

    @property
    def sigma(self) -> float:
        return self.field.s0

    @property
    def dx_hidden(self) -> float:
        return self.field_hidden[0]

    @property
    def dy_hidden(self) -> float:
        return self.field_hidden[4]

    @property
    def sigma_hidden(self) -> float:
        return self.field_hidden[8]

    @property
    def header_field(self) -> Field:
        return Field.from_array(self.field.as_array() - np.asarray(self.field_hidden))

    @property
    def fault_detail(self) -> str:
        return describe(self.fault_params)

    def as_dict(self) -> dict:
        """The first-version four numbers and their hidden parts."""
        return {"dx": self.dx, "dy": self.dy, "sigma": self.sigma, "A": self.A,
                "dx_hidden": self.dx_hidden, "dy_hidden": self.dy_hidden,
                "sigma_hidden": self.sigma_hidden, "A_hidden": self.A_hidden}


@dataclass(frozen=True)
class Coeffs:
    """Header-driven coefficients of one camera (simulator choices; units on each)."""

    T0: float  # C, where the first-version thermal shift terms vanish
    kTy: float  # px/C, b0
    kTx: float  # px/C, a0
    kH: float  # px per % humidity, a0
    fy: float  # px, b0 per unit of (sin ALT - sin 60)
    fx: float  # px, a0 per unit of (cos ALT - 0.5)
    ry: float  # px, b0 per unit of sin ROTPOS
    rx: float  # px, a0 per unit of cos ROTPOS
    s0: float  # px, best-focus width
    Tfocus: float  # C
    q: float  # px/C^2, s0 away from the focus temperature
    p: float  # px per (100 steps)^2 of collimator piston error, s0
    T_nom: float  # C, temperature of the nominal model: a1, b2, a3, b3 vanish there
    m_T: float  # px/C, a1 (magnification)
    d_T: float  # px/C, b2 (dispersion scale)
    bow_T: float  # px/C, a3 (trace bow)
    curv_T: float  # px/C, b3 (line curvature)
    ga2: float  # px, a2 per unit of (cos ALT - 0.5)
    ra2: float  # px, a2 per unit of sin ROTPOS
    gb1: float  # px, b1 per unit of (sin ALT - sin 60)
    rb1: float  # px, b1 per unit of cos ROTPOS
    k_su: float  # px per 100 steps of collimator tilt, su
    k_sv: float  # px per 100 steps of collimator tip, sv
    sr0: float  # px at the corner, field curvature at Tfocus
    k_sr: float  # px/C, sr


COEFFS = {
    "b1": Coeffs(5.0, 0.16, 0.08, 0.005, 0.12, 0.10, 0.06, 0.06, 1.00, 6.0, 0.008, 0.25,
                 4.0, 0.100, 0.106, 0.020, -0.020, 0.24, 0.15, 0.24, 0.15, 0.50, 0.40, 0.05, 0.012),
    "r1": Coeffs(5.0, -0.13, 0.10, 0.004, 0.14, 0.08, 0.05, 0.075, 1.04, 4.0, 0.007, 0.20,
                 4.0, 0.088, -0.094, 0.018, -0.015, 0.19, 0.18, 0.29, 0.12, 0.45, 0.35, 0.06, 0.010),
    "b2": Coeffs(14.0, 0.14, 0.07, 0.004, 0.10, 0.08, 0.04, 0.05, 1.02, 14.0, 0.008, 0.25,
                 21.0, 0.094, 0.100, 0.018, -0.018, 0.22, 0.14, 0.22, 0.14, 0.50, 0.40, 0.05, 0.012),
    "r2": Coeffs(14.0, -0.12, 0.09, 0.004, 0.12, 0.08, 0.04, 0.06, 1.05, 12.0, 0.007, 0.20,
                 21.0, 0.081, -0.088, 0.016, -0.014, 0.19, 0.15, 0.26, 0.12, 0.45, 0.35, 0.06, 0.010),
}
# Stationary s.d. of each hidden walk (calibration-state.md §2), px at the edge (sr: corner).
HIDDEN_SD = {"a0": 0.20, "a1": 0.05, "a2": 0.04, "a3": 0.02, "b0": 0.25, "b1": 0.04, "b2": 0.06,
             "b3": 0.02, "s0": 0.03, "su": 0.02, "sv": 0.02, "sr": 0.02}
LAMP_SD, LAMP_NOISE = 0.02, 0.02  # relative: hidden walk of each lamp, and noise per exposure
HIDDEN_TAU_H = 6.0
# (brightness of a fresh lamp, loss per day, an MJD at which it was changed; changed every 120 d)
LAMP_AGEING = {"Ne": (1.03, 0.0010, 60000), "HgCd": (1.04, 0.0015, 60040), "HeAr": (1.03, 0.0010, 60020),
               "FF": (1.02, 0.0005, 60000)}
LAMP_LIFE_D = 120
HG_DEFICIT, HG_TAU_S = 0.25, 90.0  # mercury warm-up: 25 % faint at switch-on, e-folding 90 s
HG_LEAD_S = (30.0, 180.0)  # observers switch the lamps on this long before an arc sequence
ARC_RUN_GAP_S = 300.0  # arcs closer than this keep the lamps on
SITE_LAMPS = {obs: LAMPS[obs] + ("FF",) for obs in LAMPS}
S0_HEADER_MAX = 1.30  # px: observers refocus before the focus passes the QA error limit (1.30 px)


def _drivers(camera: str, exp: SimExposure) -> dict[str, float]:
    c, env = COEFFS[camera], exp.extra["env"]
    ra, rb, rc = SITES[exp.observatory].coll_ref
    da, db, dc = exp.colla - ra, exp.collb - rb, exp.collc - rc
    alt, rot = math.radians(float(env["ALT"])), math.radians(float(env["ROTPOS"]))
    T = float(exp.extra["T_true"])
    return {"T": T, "dT": T - c.T0, "dTn": T - c.T_nom, "dH": float(env["HUMIDITY"]) - 30.0,
            "sum": da + db + dc, "tip": da - db, "tilt": (da + db) / 2.0 - dc, "piston": (da + db + dc) / 3.0,
            "calt": math.cos(alt) - 0.5, "salt": math.sin(alt) - math.sin(math.pi / 3),
            "srot": math.sin(rot), "crot": math.cos(rot)}


def header_field(camera: str, exp: SimExposure) -> Field:
    """The part of the field that header values (and the true temperature) explain."""
    c, d = COEFFS[camera], _drivers(camera, exp)
    return Field(
        a0=c.kTx * d["dT"] + c.kH * d["dH"] + d["sum"] / 63.0 + c.fx * d["calt"] + c.rx * d["crot"],
        a1=c.m_T * d["dTn"], a2=c.ga2 * d["calt"] + c.ra2 * d["srot"], a3=c.bow_T * d["dTn"],
        b0=c.kTy * d["dT"] + d["tip"] / 31.0 + c.fy * d["salt"] + c.ry * d["srot"],
        b1=c.gb1 * d["salt"] + c.rb1 * d["crot"], b2=c.d_T * d["dTn"], b3=c.curv_T * d["dTn"],
        s0=min(c.s0 + c.q * (d["T"] - c.Tfocus) ** 2 + c.p * (d["piston"] / 100.0) ** 2, S0_HEADER_MAX),
        su=c.k_su * d["tilt"] / 100.0, sv=c.k_sv * d["tip"] / 100.0, sr=c.sr0 + c.k_sr * (d["T"] - c.Tfocus))


def frame_lamps(exp: SimExposure) -> tuple[str, ...]:
    """The lamps whose light is in the frame: the site's arc lamps (arcs), ``FF`` (flats), none."""
    if exp.flavor == "arc":
        return LAMPS[exp.observatory]
    return ("FF",) if exp.flavor == "flat" else ()


def header_lamps(exp: SimExposure) -> dict[str, float]:
    """Header-driven brightness (ageing since the last lamp change, from the MJD) of each lamp lit."""
    out = {}
    for lamp in frame_lamps(exp):
        fresh, loss, changed = LAMP_AGEING[lamp]
        out[lamp] = fresh - loss * ((exp.mjd - changed) % LAMP_LIFE_D)
    return out


def summary_A(exp: SimExposure, lamps: dict[str, float]) -> float:
    """The first-version ``A``: mean brightness of the frame's lamps; 1 for science (sky), 0 else."""
    if lamps:
        return float(np.mean(list(lamps.values())))
    return 1.0 if exp.flavor == "science" else 0.0


def header_part(camera: str, exp: SimExposure) -> tuple[float, float, float, float]:
    """First-version ``(dx, dy, sigma, A)`` explained by header values: ``a0, b0, s0`` and ``A``."""
    f = header_field(camera, exp)
    return f.a0, f.b0, f.s0, summary_A(exp, header_lamps(exp))


def _ou(times_h: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Ornstein-Uhlenbeck walk sampled at ``times_h`` (sorted), stationary s.d. ``sd``."""
    n = times_h.size
    z = rng.normal(0.0, 1.0, n + 1)
    if n == 0:
        return np.empty(0)
    rho = np.exp(-np.diff(times_h, prepend=times_h[0]) / HIDDEN_TAU_H)
    kick = sd * np.sqrt(np.maximum(1.0 - rho * rho, 0.0)) * z[1:]
    out = np.empty(n)
    x = sd * z[0]
    for i in range(n):
        x = x * rho[i] + kick[i]
        out[i] = x
    return out


def _hg_warmup(exps: list[SimExposure], rng: np.random.Generator) -> np.ndarray:
    """Relative HgCd brightness of each exposure from the lamp warm-up (1 for non-arcs)."""
    out = np.ones(len(exps))
    leads = rng.uniform(*HG_LEAD_S, len(exps))
    run_start, last = None, None
    for i, e in enumerate(exps):
        if e.flavor != "arc":
            run_start = None if e.flavor == "flat" else run_start
            continue
        t = mjd_of(e.date_obs) * 86400.0
        if run_start is None or last is None or t - last > ARC_RUN_GAP_S:
            run_start = (t, leads[i])
        last = t + e.exptime
        out[i] = 1.0 - HG_DEFICIT * math.exp(-(run_start[1] + t - run_start[0]) / HG_TAU_S)
    return out


def simulate_states(exposures: list[SimExposure], seed: int, *, fault_rate: float = DEFAULT_FAULT_RATE,
                    hidden_scale: float = 1.0) -> dict[tuple[int, str], CalibState]:
    """True state of every (expnum, camera) of ``exposures`` (any order; walks run in time)."""
    exps = sorted(exposures, key=lambda e: (e.date_obs, e.expnum))
    if not exps:
        return {}
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    times = np.array([mjd_of(e.date_obs) * 24.0 for e in exps])
    cams = sorted({c for e in exps for c in SITES[e.observatory].cameras})  # selection-independent draws
    lamps = sorted({lp for e in exps for lp in SITE_LAMPS[e.observatory]})
    half = hidden_scale / math.sqrt(2.0)
    keys = [(t, HIDDEN_SD[t]) for t in FIELD_TERMS] + [("lamp:" + lp, LAMP_SD) for lp in lamps]
    shared = {k: _ou(times, sd * half, rng) for k, sd in keys}
    own = {(cam, k): _ou(times, sd * half, rng) for cam in cams for k, sd in keys}
    noise_shared = rng.normal(0.0, LAMP_NOISE * half, (len(exps), len(lamps)))
    noise_own = rng.normal(0.0, LAMP_NOISE * half, (len(exps), len(cams), len(lamps)))
    hg = _hg_warmup(exps, rng)
    faults = draw_faults(exps, seed, fault_rate)
    out: dict[tuple[int, str], CalibState] = {}
    for i, e in enumerate(exps):
        for j, cam in enumerate(cams):
            if cam not in e.cameras:
                continue
            hidden = np.array([shared[t][i] + own[(cam, t)][i] for t in FIELD_TERMS])
            lamp_hidden = {}
            for lp, hv in header_lamps(e).items():
                k = lamps.index(lp)
                factor = 1.0 + shared["lamp:" + lp][i] + own[(cam, "lamp:" + lp)][i]
                factor += noise_shared[i, k] + noise_own[i, j, k]
                factor *= hg[i] if lp == "HgCd" else 1.0
                lamp_hidden[lp] = hv * (factor - 1.0)
            state = _assemble(cam, e, hidden, lamp_hidden)
            fault = faults.get(e.expnum)
            out[(e.expnum, cam)] = apply_fault(state, fault, e) if fault and cam in fault.cameras else state
    return out


def _assemble(camera: str, exp: SimExposure, hidden: np.ndarray, lamp_hidden: dict[str, float]) -> CalibState:
    head = header_field(camera, exp).as_array()
    hl = header_lamps(exp)
    lamps = {lp: hl[lp] + lamp_hidden.get(lp, 0.0) for lp in hl}
    A, A_head = summary_A(exp, lamps), summary_A(exp, hl)
    return CalibState(field=Field.from_array(head + hidden), A=A, lamps=tuple(lamps.items()),
                      field_hidden=tuple(float(h) for h in hidden), A_hidden=A - A_head,
                      lamps_hidden=tuple((lp, lamps[lp] - hl[lp]) for lp in hl))


def apply_fault(state: CalibState, fault: Fault, exp: SimExposure) -> CalibState:
    """``state`` with ``fault``'s effect on the field or the lamps moved into the hidden part."""
    lamps = dict(state.lamps)
    field, hidden = state.field, list(state.field_hidden)
    if fault.kind == "focus_jump":
        jump = float(fault.param("jump_px"))
        field = replace(field, s0=field.s0 + jump)
        hidden[FIELD_TERMS.index("s0")] += jump
    elif fault.kind == "lamp_out" and lamps:
        names = list(lamps)
        lamps[names[min(int(fault.param("lamp_index", 0)), len(names) - 1)]] = 0.0
    elif fault.kind == "no_light":
        lamps = {lp: 0.0 for lp in lamps}
    elif fault.kind == "overexposed":
        lamps = {lp: b * float(fault.param("factor")) for lp, b in lamps.items()}
    params = fault.params
    if fault.kind == "lamp_out" and lamps:
        params = (("lamp", [lp for lp, b in lamps.items() if b == 0.0][0]),)
    head_lamps = header_lamps(exp)
    A = summary_A(exp, lamps) if lamps else state.A
    A_head = state.A - state.A_hidden
    return replace(state, field=field, field_hidden=tuple(hidden), lamps=tuple(lamps.items()),
                   lamps_hidden=tuple((lp, lamps[lp] - head_lamps[lp]) for lp in lamps),
                   A=A, A_hidden=A - A_head, fault=fault.kind, fault_params=params)
