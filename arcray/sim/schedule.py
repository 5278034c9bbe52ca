"""Nights of the simulated world: weather, telescope, spectrograph temperature, exposure schedule.

One call, ``build_schedule``, turns ``(start, nights, seed, observatory)`` into the list of
``SimExposure`` records of every exposure, in time order, at the real cadence:

- afternoon calibrations at the stow position (``'NaN'`` pointing, ``-999`` field/design):
  biases, a dark, one arc and one flat;
- a Hartmann test (a ``Left`` and a ``Right`` arc); when it finds the collimator piston off, the
  observers move the collimator (``COLLA/B/C`` step) and take a second pair to check;
- per field (~13 a clear night): a flat, an arc, science exposure(s);
- morning calibrations (arc + flat) at the last field; an occasional mid-night Hartmann pair.

Every value a header needs and that is common to both cameras (weather, telescope, lamps,
collimator, spectrograph sensors) is put in ``SimExposure.extra["env"]`` under its FITS keyword;
the true (noise-free) spectrograph temperature is ``extra["T_true"]`` (C).

Simulator choices (documented, not measured): the dome air cools 2-5 C over a night; the
spectrograph follows the air with a 3 h lag; exposure numbers advance by ~45 a day from
``sdR-b1-00380717`` (MJD 60708) at APO, from 47000 at MJD 60800 at LCO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from arcray.errors import ConfigError
from arcray.instrument import CAMERAS_AT
from arcray.sim.types import SimExposure

MJD_EPOCH = datetime(1858, 11, 17)


@dataclass(frozen=True)
class Site:
    cameras: tuple[str, ...]
    utc_offset_h: float  # local standard time - UTC
    mjd_offset: float  # SDSS MJD = floor(MJD_utc + mjd_offset)
    arc_req: float  # s, REQTIME of an arc
    flat_req: float
    north: bool
    expnum_anchor: tuple[int, int]  # (mjd, expnum)
    coll_ref: tuple[int, int, int]  # reference collimator position (steps)


SITES = {
    "apo": Site(CAMERAS_AT["apo"], -7.0, 0.3, 4.0, 25.0, True, (60708, 380717), (-58, 78, 63)),
    "lco": Site(CAMERAS_AT["lco"], -4.0, 0.4, 45.0, 100.0, False, (60800, 47000), (12, -20, 40)),
}
EXPNUM_PER_DAY = 45
SCIENCE_REQ = 900.0
READOUT_S, SUBFRAME_READOUT_S, SLEW_S = 58.0, 16.0, 240.0
FLAVORS = ("arc", "flat", "science", "bias", "dark")


def mjd_of(dt: datetime) -> float:
    """MJD (UTC, float) of a naive UTC datetime."""
    return (dt - MJD_EPOCH).total_seconds() / 86400.0


def sdss_mjd(dt: datetime, observatory: str) -> int:
    """The SDSS MJD of a night (constant from the afternoon to the morning)."""
    return int(math.floor(mjd_of(dt) + SITES[observatory].mjd_offset))


@dataclass(frozen=True)
class ScheduleOptions:
    """Knobs of the schedule. ``reduced`` is a tiny night for tests (1 bias, 1 arc + 1 flat in
    the afternoon, one Hartmann pair, 1 field with flat, arc, science; no dark, no morning cals)."""

    reduced: bool = False
    fields_per_night: int = 13
    science_per_field: int = 1
    cameras: tuple[str, ...] | None = None  # subset of the site's cameras
    flavors: tuple[str, ...] | None = None  # subset of FLAVORS (Hartmann arcs count as "arc")


class _Weather:
    """Dome air temperature, humidity and spectrograph temperature over the whole span."""

    def __init__(self, start: date, nights: int, observatory: str, rng: np.random.Generator):
        site = SITES[observatory]
        self.t0 = mjd_of(datetime(start.year, start.month, start.day)) - 1.0
        n_days = nights + 3
        doy = np.array([(start + timedelta(days=d - 1)).timetuple().tm_yday for d in range(n_days)])
        season = np.cos(2 * np.pi * (doy - 200) / 365.25)
        mean = 8.0 + 9.0 * season if site.north else 13.0 + 5.0 * season
        offs = np.cumsum(rng.normal(0, 1.2, n_days)) * 0.7
        tmax = mean + 5.0 + offs
        cool = rng.uniform(2.0, 5.0, n_days)
        knots_t, knots_v = [], []
        for d in range(n_days):
            noon_local = self.t0 + d + (12.0 - site.utc_offset_h) / 24.0  # local noon in UTC MJD
            knots_t += [noon_local + 3 / 24, noon_local + 6.5 / 24, noon_local + 18 / 24]
            knots_v += [tmax[d], tmax[d] - 2.0, tmax[d] - 2.0 - cool[d]]
        self.grid = np.arange(self.t0, self.t0 + n_days, 5.0 / 1440.0)
        air = np.interp(self.grid, knots_t, knots_v)
        a = math.exp(-(5.0 / 60.0) / 3.0)  # 3 h lag, 5 min step
        spec = np.empty_like(air)
        level = air[0]
        for i, v in enumerate(air.tolist()):
            level = a * level + (1 - a) * v
            spec[i] = level
        self.air, self.spec = air, spec + 2.5  # the spectrograph runs ~2.5 C above the dome air
        hum = 30 + 15 * np.tanh(np.cumsum(rng.normal(0, 0.08, self.grid.size)))
        self.humidity = np.clip(hum + 10 * np.sin(2 * np.pi * (self.grid - self.t0)), 5, 95)

    def at(self, mjd: float) -> tuple[float, float, float]:
        """(air C, spectrograph C, humidity %) at UTC MJD ``mjd``."""
        return (float(np.interp(mjd, self.grid, self.air)), float(np.interp(mjd, self.grid, self.spec)),
                float(np.interp(mjd, self.grid, self.humidity)))


def _night_window(day: date, site: Site) -> tuple[datetime, datetime]:
    """(evening, morning) twilight in UTC of the night starting on local date ``day``."""
    doy = day.timetuple().tm_yday
    hours = 10.5 + (1.8 if site.north else -1.8) * math.cos(2 * math.pi * (doy - 355) / 365.25)
    midnight = datetime(day.year, day.month, day.day) + timedelta(hours=24 - site.utc_offset_h)
    return midnight - timedelta(hours=hours / 2), midnight + timedelta(hours=hours / 2)


def _pointing(rng: np.random.Generator, stow: bool) -> dict:
    if stow:
        return {"RA": "NaN", "DEC": "NaN", "RADEG": "NaN", "DECDEG": "NaN", "SPA": "NaN",
                "ROTPOS": 0.0, "AZ": 121.0, "ALT": 30.0, "IPA": 0.0}
    ra, dec = rng.uniform(0, 360), rng.uniform(-10, 80)
    return {"RA": round(ra, 6), "DEC": round(dec, 6), "RADEG": round(ra + rng.normal(0, 1e-3), 6),
            "DECDEG": round(dec + rng.normal(0, 1e-3), 6), "SPA": round(rng.uniform(-180, 180), 6),
            "ROTPOS": round(rng.uniform(-60, 200), 4), "AZ": round(rng.uniform(-180, 180), 6),
            "ALT": round(rng.uniform(35, 85), 6), "IPA": round(rng.uniform(0, 360), 6)}


def _telescope(rng: np.random.Generator) -> dict:
    return {"FOCUS": round(rng.normal(-50, 10), 2), "M2PISTON": round(rng.normal(4570, 5), 2),
            "M2XTILT": round(rng.normal(-24, 1), 2), "M2YTILT": round(rng.normal(-17, 1), 2),
            "M2XTRAN": round(rng.normal(18, 2), 2), "M2YTRAN": round(rng.normal(92, 2), 2),
            "M2ZROT": -31.31, "M1PISTON": 0.0, "M1XTILT": -18.23, "M1YTILT": -7.9,
            "M1XTRAN": -427.17, "M1YTRAN": -999.0, "M1ZROT": 0.0, "SEEING": round(rng.uniform(0.9, 2.5), 2),
            "ARCOFFX": round(rng.normal(0, 1e-3), 6), "ARCOFFY": round(rng.normal(0, 1e-3), 6),
            "GUIDOFFR": round(rng.normal(0, 0.2), 6)}


_LAMPS = {
    "arc": ("0 0 0 0", "1 1 1 1", "1 1 1 1 1 1 1 1"),
    "flat": ("1 1 1 1", "0 0 0 0", "1 1 1 1 1 1 1 1"),
    "science": ("0 0 0 0", "0 0 0 0", "0 0 0 0 0 0 0 0"),
    "bias": ("0 0 0 0", "0 0 0 0", "1 1 1 1 1 1 1 1"),
    "dark": ("0 0 0 0", "0 0 0 0", "1 1 1 1 1 1 1 1"),
}


@dataclass
class _Step:
    flavor: str
    hartmann: str = "Out"
    stow: bool = False
    move_after: bool = False  # a Hartmann pair whose result moves the collimator


def _night_steps(opts: ScheduleOptions, rng: np.random.Generator, clear: float) -> list:
    if opts.reduced:
        return [_Step("bias", stow=True), _Step("arc", stow=True), _Step("flat", stow=True),
                _Step("arc", "Left", True), _Step("arc", "Right", True, move_after=True),
                "field", _Step("flat"), _Step("arc"), _Step("science")]
    steps: list = [_Step("bias", stow=True), _Step("bias", stow=True), _Step("dark", "Closed", True),
                   _Step("arc", stow=True), _Step("flat", stow=True),
                   _Step("arc", "Left", True), _Step("arc", "Right", True, move_after=True)]
    n_fields = max(1, int(round(opts.fields_per_night * clear)))
    mid = int(rng.integers(3, max(4, n_fields))) if rng.random() < 0.3 else -1
    for f in range(n_fields):
        steps += ["field", _Step("flat"), _Step("arc")] + [_Step("science")] * opts.science_per_field
        if f == mid:
            steps += [_Step("arc", "Left"), _Step("arc", "Right", move_after=True)]
    return steps + [_Step("arc"), _Step("flat")]


def _exptimes(flavor: str, hartmann: str, site: Site, rng: np.random.Generator) -> tuple[float, float]:
    req = {"arc": site.arc_req, "flat": site.flat_req, "science": SCIENCE_REQ, "bias": 0.0,
           "dark": SCIENCE_REQ}[flavor]
    if req == 0.0 or flavor == "dark":
        return req, req
    return req, round(req + 0.09 if flavor == "arc" else req + rng.uniform(0.05, 0.8), 2)


class _Collimator:
    """Collimator motor positions of one spectrograph; moved after some Hartmann tests."""

    def __init__(self, site: Site, rng: np.random.Generator):
        self.ref = site.coll_ref
        self.pos = [c + int(rng.integers(-20, 21)) for c in self.ref]
        self.rng = rng

    def hartmann_result(self) -> None:
        """Observers correct the piston error when it exceeds ~10 steps, with small tweaks of the
        mirror's tip (A against B) and tilt (C against A and B)."""
        err = sum(p - r for p, r in zip(self.pos, self.ref)) / 3.0
        if abs(err) > 10 or self.rng.random() < 0.3:
            corr = -int(round(err * self.rng.uniform(0.6, 0.9))) + int(self.rng.integers(-6, 7))
            tip = int(self.rng.integers(-12, 13))
            tilt = int(self.rng.integers(-15, 16))
            self.pos = [self.pos[0] + corr + tip, self.pos[1] + corr - tip, self.pos[2] + corr - tilt]


def build_schedule(start: date, nights: int, seed: int, observatory: str = "apo",
                   options: ScheduleOptions | None = None) -> list[SimExposure]:
    """Every exposure of ``nights`` nights from local date ``start`` at ``observatory``."""
    opts = options or ScheduleOptions()
    if observatory not in SITES:
        raise ConfigError(f"unknown observatory {observatory!r} (apo or lco)")
    if nights < 1:
        raise ConfigError(f"nights must be >= 1, got {nights}")
    site = SITES[observatory]
    cameras = tuple(opts.cameras or site.cameras)
    if not set(cameras) <= set(site.cameras):
        raise ConfigError(f"cameras {cameras} are not all at {observatory} ({', '.join(site.cameras)})")
    if opts.flavors is not None and not set(opts.flavors) <= set(FLAVORS):
        raise ConfigError(f"unknown flavor in {opts.flavors}; choose from {', '.join(FLAVORS)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, ord(observatory[0])]))
    weather = _Weather(start, nights, observatory, rng)
    coll = _Collimator(site, rng)
    out: list[SimExposure] = []
    next_exp = 0
    for n in range(nights):
        day = start + timedelta(days=n)
        night, next_exp = _render_night(day, site, observatory, opts, cameras, weather, coll, rng, next_exp)
        out += night
    return out


def _base_expnum(mjd: int, site: Site) -> int:
    return max(1, site.expnum_anchor[1] + (mjd - site.expnum_anchor[0]) * EXPNUM_PER_DAY)


def _render_night(day, site, observatory, opts, cameras, weather, coll, rng, next_exp):
    evening, morning = _night_window(day, site)
    clear = 1.0 if rng.random() > 0.1 else 0.5
    steps = _night_steps(opts, rng, clear)
    n_fields = sum(1 for s in steps if s == "field")
    mjd = sdss_mjd(evening, observatory)
    expnum = max(_base_expnum(mjd, site), next_exp)
    t = evening - timedelta(hours=1.5)
    field_gap = (morning - evening - timedelta(minutes=20)) / max(n_fields, 1)
    pointing, ids, field_i = _pointing(rng, True), (-999, -999, -999), 0
    tel = _telescope(rng)
    conf_base = 19024 + (mjd - 60708) * 13
    night: list[SimExposure] = []
    for step in steps:
        if step == "field":
            t = max(t, evening + field_i * field_gap) + timedelta(seconds=SLEW_S)
            pointing, tel = _pointing(rng, False), _telescope(rng)
            ids = (int(rng.integers(100000, 112000)), int(rng.integers(500000, 700000)),
                   max(1, conf_base + field_i))
            field_i += 1
            continue
        if step.stow:
            pointing, ids = _pointing(rng, True), (-999, -999, ids[2] if ids[2] > 0 else -999)
        req, exptime = _exptimes(step.flavor, step.hartmann, site, rng)
        air, spec, hum = weather.at(mjd_of(t) + exptime / 172800.0)
        env = _env(step, site, req, exptime, pointing, tel, coll.pos, air, spec, hum, rng)
        keep = opts.flavors is None or step.flavor in opts.flavors
        if keep:
            night.append(SimExposure(
                expnum=expnum, mjd=mjd, observatory=observatory, flavor=step.flavor,
                hartmann=step.hartmann, exptime=exptime, date_obs=t.replace(microsecond=0),
                cameras=cameras, field_id=ids[0], design_id=ids[1], config_id=ids[2],
                colla=coll.pos[0], collb=coll.pos[1], collc=coll.pos[2],
                temperature=env.get("MC1TEMDN", env.get("SPECMT", 0.0)),
                extra={"env": env, "T_true": spec, "humidity": hum, "air": air}))
        expnum += 1
        readout = SUBFRAME_READOUT_S if step.hartmann in ("Left", "Right") else READOUT_S
        t = t + timedelta(seconds=exptime + readout + 12.0)
        if step.move_after:
            coll.hartmann_result()
    return night, expnum + 1


def _env(step, site, req, exptime, pointing, tel, coll_pos, air, spec, hum, rng) -> dict:
    """Header values shared by the cameras of one exposure (keyword -> value)."""
    ff, arc, ffs = _LAMPS[step.flavor]
    env = dict(pointing) | dict(tel)
    env |= {"FLAVOR": step.flavor, "HARTMANN": step.hartmann, "REQTIME": req, "EXPTIME": exptime,
            "DARKTIME": exptime + float(rng.uniform(11.5, 12.0)) if req else float(rng.uniform(1.0, 1.5)),
            "SHOPETIM": round(rng.uniform(0.7, 0.76), 2) if req else 0.0,
            "SHCLOTIM": round(rng.uniform(0.52, 0.56), 2) if req else 0.0,
            "FF": ff, "NE": arc, "FFS": ffs, "COLLA": coll_pos[0], "COLLB": coll_pos[1], "COLLC": coll_pos[2],
            "PRESSURE": round(21.5 + rng.normal(0, 0.05), 3), "WINDD": round(rng.uniform(0, 360), 1),
            "WINDS": round(abs(rng.normal(8, 5)), 1), "GUSTD": round(rng.uniform(0, 360), 1),
            "GUSTS": round(abs(rng.normal(14, 6)), 1), "AIRTEMP": 0.0, "DEWPOINT": 0.0,
            "TRUSTEMP": round(air + rng.normal(-0.5, 0.2), 1), "HUMIDITY": round(hum, 1),
            "DUSTA": float(int(rng.uniform(2000, 40000))), "DUSTB": float(int(rng.uniform(50, 800)))}
    if site.north:
        env["HGCD"] = arc
        for key, off in (("MC1TEMDN", 0.0), ("MC1THT", 0.0), ("MC1TRCB", -0.2), ("MC1TRCT", 0.1),
                         ("MC1TBCB", -0.2), ("MC1TBCT", 0.0)):
            env[key] = round(spec + off + rng.normal(0, 0.05), 1)
        env["MC1HUMHT"] = round(0.5 + 0.02 * hum + rng.normal(0, 0.1), 1)
        env["MC1HUMCO"] = round(-0.3 + 0.01 * hum + rng.normal(0, 0.1), 1)
    else:
        env["HEAR"] = arc
        alt = pointing["ALT"]
        env |= {"SPECMT": round(spec + rng.normal(0, 0.05), 2),
                "B2CAMT": round(spec - 0.3 + rng.normal(0, 0.05), 2),
                "R2CAMT": round(spec + 0.2 + rng.normal(0, 0.05), 2),
                "B2CAMH": round(hum * 0.2 + rng.normal(0, 0.3), 2), "R2CAMH": round(hum * 0.2 + rng.normal(0, 0.3), 2),
                "COLLT": round(spec - 0.1 + rng.normal(0, 0.05), 2), "COLLH": round(hum * 0.2 + rng.normal(0, 0.3), 2),
                "T_OUT": round(air, 2), "T_IN": round(air + 1.0, 2), "T_PRIM": round(air + 0.5, 2),
                "T_CELL": round(air + 0.8, 2), "T_FLOOR": round(air + 1.5, 2), "T_TRUSS": round(air + 0.3, 2),
                "AIRMASS": round(1.0 / max(math.sin(math.radians(alt)), 0.05), 3),
                "HA": "NaN" if step.stow else round(float(rng.uniform(-3, 3)), 4)}
    return env


def sample_exposure(flavor: str = "arc", hartmann: str = "Out", observatory: str = "apo", *,
                    seed: int = 0, start: date = date(2023, 12, 1), stow: bool | None = None) -> SimExposure:
    """One exposure of ``flavor``/``hartmann`` from a simulated night (for tests and examples);
    ``stow`` picks an afternoon (True) or on-field (False) one when given."""
    for exp in build_schedule(start, 1, seed, observatory):
        at_stow = exp.design_id == -999
        if exp.flavor == flavor and exp.hartmann == hartmann and (stow is None or stow == at_stow):
            return exp
    raise ConfigError(f"no {flavor}/{hartmann} exposure (stow={stow}) in the night of {start} at {observatory}")
