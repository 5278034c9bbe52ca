"""The true calibration state of every (exposure, camera): what the models should discover.

``state = header-driven part + hidden part`` for each of ``dx`` (px, across fibers), ``dy`` (px,
along wavelength), ``sigma`` (px, Gaussian line/trace width) and ``A`` (relative lamp brightness).
The two parts are kept apart so the science can be scored against the floor that no
metadata-based predictor can beat.

Header-driven (coefficients are simulator choices per camera, see ``COEFFS``):

- ``dy = kTy*(T - T0) + (COLLA - COLLB - ref)/31 + fy*(sin ALT - sin 60) + ry*sin(ROTPOS)``
- ``dx = kTx*(T - T0) + kH*(HUMIDITY - 30) + (COLLA+COLLB+COLLC - ref)/63 + fx*(cos ALT - 0.5)
  + rx*cos(ROTPOS)``
- ``sigma = s0 + q*(T - Tfocus)^2 + p*(piston error/100)^2`` (piston = mean collimator offset)
- ``A = 1.03 - 0.001 * (days since the lamps were changed, every 120 days)`` (arcs; flats age 2x slower)

Hidden (no header value sees them): an Ornstein-Uhlenbeck random walk in time per quantity
(6 h correlation time, half shared between the two cameras of a spectrograph, half their own),
the lamp warm-up (first arc after the lamps were off > 1 h is ~8 % faint) and a few percent of
lamp noise per exposure. ``sigma`` is clipped into 0.9-1.35 px (the clip lands in the hidden part).
``T`` is the true spectrograph temperature; the header's MC1 sensors read it with 0.05 C noise
rounded to 0.1 C, a small extra floor. Flats use the arc physics for ``dx``/``sigma`` (they cannot
show ``dy``) and their own ``A``; bias/dark frames carry the state with ``A = 0``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from arcray.sim.schedule import SITES, mjd_of
from arcray.sim.types import SimExposure


@dataclass(frozen=True)
class CalibState:
    """True state of one camera at one exposure; totals are header part + hidden part."""

    dx: float
    dy: float
    sigma: float
    A: float
    dx_hidden: float = 0.0
    dy_hidden: float = 0.0
    sigma_hidden: float = 0.0
    A_hidden: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def nominal(cls, dx: float = 0.0, dy: float = 0.0, sigma: float = 1.0, A: float = 1.0) -> "CalibState":
        """An explicit state with no hidden part (for tests and examples)."""
        return cls(dx, dy, sigma, A)


@dataclass(frozen=True)
class Coeffs:
    T0: float  # C, temperature where the thermal terms vanish
    kTy: float  # px/C
    kTx: float  # px/C
    kH: float  # px per % humidity
    fy: float  # px, flexure amplitude in ALT (dy)
    fx: float
    ry: float  # px, flexure amplitude in ROTPOS
    rx: float
    s0: float  # px, best-focus width
    Tfocus: float  # C
    q: float  # px/C^2
    p: float  # px per (100 steps)^2 of piston error


COEFFS = {
    "b1": Coeffs(5.0, 0.16, 0.08, 0.005, 0.30, 0.25, 0.15, 0.12, 1.00, 6.0, 0.008, 0.25),
    "r1": Coeffs(5.0, -0.13, 0.10, 0.004, 0.35, 0.20, 0.12, 0.15, 1.04, 4.0, 0.007, 0.20),
    "b2": Coeffs(14.0, 0.14, 0.07, 0.004, 0.25, 0.20, 0.10, 0.10, 1.02, 14.0, 0.008, 0.25),
    "r2": Coeffs(14.0, -0.12, 0.09, 0.004, 0.30, 0.20, 0.10, 0.12, 1.05, 12.0, 0.007, 0.20),
}
HIDDEN_SD = {"dx": 0.20, "dy": 0.25, "sigma": 0.03, "A": 0.02}
HIDDEN_TAU_H = 6.0
LAMP_NOISE, WARMUP_DIM = 0.02, 0.08
SIGMA_RANGE = (0.9, 1.35)


def header_part(camera: str, exp: SimExposure) -> tuple[float, float, float, float]:
    """``(dx, dy, sigma, A)`` explained by header values (and the true temperature)."""
    c, env = COEFFS[camera], exp.extra["env"]
    site = SITES[exp.observatory]
    T = float(exp.extra["T_true"])
    a, b, cc = exp.colla, exp.collb, exp.collc
    ra, rb, rc = site.coll_ref
    alt, rot = math.radians(float(env["ALT"])), math.radians(float(env["ROTPOS"]))
    dy = c.kTy * (T - c.T0) + ((a - b) - (ra - rb)) / 31.0 + c.fy * (math.sin(alt) - math.sin(math.pi / 3))
    dy += c.ry * math.sin(rot)
    dx = c.kTx * (T - c.T0) + c.kH * (float(env["HUMIDITY"]) - 30.0) + ((a + b + cc) - (ra + rb + rc)) / 63.0
    dx += c.fx * (math.cos(alt) - 0.5) + c.rx * math.cos(rot)
    piston = ((a - ra) + (b - rb) + (cc - rc)) / 3.0
    sigma = c.s0 + c.q * (T - c.Tfocus) ** 2 + c.p * (piston / 100.0) ** 2
    age = (exp.mjd - 60000) % 120
    if exp.flavor == "arc":
        A = 1.03 - 0.001 * age
    elif exp.flavor == "flat":
        A = 1.02 - 0.0005 * age
    elif exp.flavor == "science":
        A = 1.0
    else:
        A = 0.0
    return dx, dy, sigma, A


def _ou(times_h: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Ornstein-Uhlenbeck walk sampled at ``times_h`` (sorted), stationary s.d. ``sd``."""
    out = np.empty(times_h.size)
    x = rng.normal(0, sd)
    prev = times_h[0] if times_h.size else 0.0
    for i, t in enumerate(times_h):
        rho = math.exp(-(t - prev) / HIDDEN_TAU_H)
        x = x * rho + sd * math.sqrt(max(1 - rho * rho, 0.0)) * rng.normal()
        out[i], prev = x, t
    return out


def simulate_states(exposures: list[SimExposure], seed: int) -> dict[tuple[int, str], CalibState]:
    """True state of every (expnum, camera) of ``exposures`` (any order; walks run in time)."""
    exps = sorted(exposures, key=lambda e: (e.date_obs, e.expnum))
    if not exps:
        return {}
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    times = np.array([mjd_of(e.date_obs) * 24.0 for e in exps])
    cams = sorted({c for e in exps for c in SITES[e.observatory].cameras})  # selection-independent draws
    shared = {k: _ou(times, sd / math.sqrt(2), rng) for k, sd in HIDDEN_SD.items()}
    own = {(cam, k): _ou(times, sd / math.sqrt(2), rng) for cam in cams for k, sd in HIDDEN_SD.items()}
    lamp_noise = rng.normal(0, LAMP_NOISE, (len(exps), len(cams)))
    warm = _warmup_flags(exps)
    out: dict[tuple[int, str], CalibState] = {}
    for i, e in enumerate(exps):
        for j, cam in enumerate(cams):
            if cam not in e.cameras:
                continue
            hx, hy, hs, ha = header_part(cam, e)
            h = {k: shared[k][i] + own[(cam, k)][i] for k in HIDDEN_SD}
            sigma = float(np.clip(hs + h["sigma"], *SIGMA_RANGE))
            a_hid = 0.0
            if ha > 0 and e.flavor in ("arc", "flat"):
                factor = (1 + h["A"] + lamp_noise[i, j]) * ((1 - WARMUP_DIM) if warm[i] else 1.0)
                a_hid = ha * (factor - 1.0)
            out[(e.expnum, cam)] = CalibState(
                dx=hx + h["dx"], dy=hy + h["dy"], sigma=sigma, A=ha + a_hid,
                dx_hidden=h["dx"], dy_hidden=h["dy"], sigma_hidden=sigma - hs, A_hidden=a_hid)
    return out


def _warmup_flags(exps: list[SimExposure]) -> list[bool]:
    """True for the first arc after the arc lamps were off for more than an hour."""
    flags, last_on = [], None
    for e in exps:
        is_arc = e.flavor == "arc"
        t = mjd_of(e.date_obs) * 24.0
        flags.append(is_arc and (last_on is None or t - last_on > 1.0))
        if is_arc:
            last_on = t + e.exptime / 3600.0
    return flags
