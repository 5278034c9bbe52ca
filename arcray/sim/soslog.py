"""The SOS night table of idlspec2d ``BOSS_log.py``, rendered for simulated exposures.

``render_sos(mjd, exposures, rng, states=None, long=False)`` returns the lines ``print_summary``
prints after its ``---- BOSS Data Summary ----`` title, built the way ``BOSS_log.py`` builds them
(``log_exp`` per camera file, ``built_short_log`` by default, ``--long`` otherwise) and printed by
pandas ``DataFrame.to_string`` as there, so the text is what the real tool prints:

- ``Reading FITS from: /data/spectro/<mjd>,  /data/boss/sos/<mjd>``, a ``Using ...logfile-<mjd>.fits
  from IDLSPEC2D version ...`` line, a ``- `` ruler of ``len(header)/2 + 1`` pairs, the table header
  with its first character (the index column's) replaced by ``n``, the ruler, the rows, the ruler,
  legend lines;
- default (short) log: one row per exposure (``EXPID.unique()``, the blue file's row first): columns
  ``Time Filename CCD Q DESIGN Field configID cols(A,B,C) T[°C] EXP Flav Hrt FFS lamps 98% fratio
  W(X)SIG w_shift sky/s SN2 SN2_V2``; ``Filename`` the 8-digit exposure, ``CCD`` the two cameras
  joined (``b1,r1``, ``-,r1`` when the blue file is missing), ``W(X)SIG``/``fratio``/``w_shift``
  (arcs), ``W(X)SIG``/``fratio`` (flats), ``SN2``/``SN2_V2``/``sky/s`` (science), ``98%``/``fratio``
  (bias, dark) as ``blue,red`` pairs; lamps as counts of lit flags ``FF,NE,HGCD`` (``-`` for 0);
- ``--long``: one row per camera file, columns ``Time Filename CCD DESIGNID Field configID EXPTIME
  flavor Hrt FF FFS NE HGCD colA colB colC T[°C] 98% fratio W(X) w_shift sky/s SN2 SN2_V2 QUALITY``
  with the header's lamp strings (``1 1 1 1``) and ``Time`` the full ``ctime`` of the file;
- ``Flav``/``flavor`` is lower case, ``science`` printed ``sci``, and ``hart`` whenever the header's
  ``HARTMANN`` is neither ``Out`` nor ``Closed, Closed`` (so a dark taken with the doors ``Closed``
  prints as ``hart``, as the real tool does); ``Hrt`` ``L``/``R`` for Left/Right; ``-999`` ids and
  missing values print ``-``.

The QA values come from the true state when ``states`` is given (WSIGMA/XSIGMA = the mean line
width over the detector + 0.01 px noise; fratio ~ lamp brightness; w_shift = WAVEMID shift of
``b0``; a ``no_light`` fault reads quality ``bad``), else from plausible random draws. SOS does not
reduce Hartmann frames: their QA columns are ``-``.
"""

from __future__ import annotations

import random
import warnings
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from arcray import optics
from arcray.instrument import wavelength_of_row
from arcray.sim.types import SimExposure

QUALS = {"excellent": 1, "marginal": .5, "bad": 0, "test": -1}
ARC_KEY = {"apo": "HGCD", "lco": "HEAR"}
TEMP_KEY = {"apo": "MC1TEMDN", "lco": "COLLT"}
CCDS = {"apo": ("b1", "r1"), "lco": ("b2", "r2")}
SHORT_COLUMNS = ("full_time", "Time", "Filename", "CCD", "EXPID", "Q", "DESIGN", "Field", "configID",
                 "cols(A,B,C)", "temp", "EXP", "Flav", "Hrt", "FFS", "lamps", "98%", "fratio", "W(X)",
                 "w_shift", "sky/s", "SN2", "SN2_V2")
VERS2D = "v6_2_1"
_LAMP_FLAGS = {"arc": ("0 0 0 0", "1 1 1 1", "1 1 1 1 1 1 1 1"),
               "flat": ("1 1 1 1", "0 0 0 0", "1 1 1 1 1 1 1 1"),
               "science": ("0 0 0 0", "0 0 0 0", "0 0 0 0 0 0 0 0"),
               "bias": ("0 0 0 0", "0 0 0 0", "1 1 1 1 1 1 1 1"),
               "dark": ("0 0 0 0", "0 0 0 0", "1 1 1 1 1 1 1 1")}
_READOUT_S = {True: 16.0, False: 58.0}  # s after the exposure until the file exists (sub-frame or full)


def long_columns(arc: str) -> tuple[str, ...]:
    return ("full_time", "Time", "Filename", "CCD", "EXPID", "DESIGNID", "Field", "configID", "EXPTIME",
            "flavor", "Hrt", "FF", "FFS", "NE", arc, "colA", "colB", "colC", "temp", "98%", "fratio", "W(X)",
            "w_shift", "sky/s", "SN2", "SN2_V2", "QUALITY")


def _ctime(dt: datetime) -> str:
    """``time.ctime`` text: ``Sat Dec  2 13:04:55 2023``."""
    return f"{dt:%a %b} {dt.day:>2} {dt:%H:%M:%S %Y}"


def _mean_width(camera: str, state) -> float:
    u, v = np.meshgrid(np.linspace(-0.8, 0.8, 5), np.linspace(-0.8, 0.8, 5))
    return float(np.mean(state.field.sigma(u, v)))


def _qa(e: SimExposure, cam: str, state, rng: random.Random) -> dict:
    """What the SOS logfile holds for one camera file (formatted as ``log_exp`` formats it)."""
    qa = {"98%": "-", "fratio": "-", "W(X)": "-", "w_shift": "-", "SN2": "-", "SN2_V2": "-", "sky/s": "-",
          "QUALITY": "-"}
    if e.is_hartmann:
        return qa
    bright = state.A if state is not None else rng.uniform(0.9, 1.05)
    width = _mean_width(cam, state) + rng.gauss(0, 0.01) if state is not None else rng.uniform(0.95, 1.2)
    qa["QUALITY"] = "bad" if state is not None and state.fault == "no_light" else "excellent"
    if e.flavor in ("arc", "flat"):
        qa["W(X)"] = "{:.2f}".format(width)
        qa["fratio"] = "{:.1f}".format(bright * rng.uniform(0.97, 1.03))
    if e.flavor == "arc":
        h = optics.detector_size(cam)[0]
        disp = float(wavelength_of_row(cam, h / 2 + 0.5) - wavelength_of_row(cam, h / 2 - 0.5))  # A/px
        b0 = state.field.b0 if state is not None else rng.uniform(-0.5, 0.5)
        qa["w_shift"] = "{:.1f}".format(b0 * disp + rng.gauss(0, 0.05))
    elif e.flavor in ("bias", "dark"):
        p98 = rng.uniform(3.5, 4.5) if cam.startswith("b") else rng.uniform(5.2, 6.0)
        qa["98%"] = "{:.0f}".format(p98)
        qa["fratio"] = "{:.1f}".format(p98 / (3.7 if cam.startswith("b") else 5.5))
    elif e.flavor == "science":
        sn2 = rng.uniform(4.0, 25.0)
        qa["SN2"], qa["SN2_V2"] = "{:.1f}".format(sn2), "{:.1f}".format(sn2 * rng.uniform(0.8, 0.95))
        qa["sky/s"] = "{:.2f}".format(rng.uniform(0.1, 0.9)).lstrip("0")
    return qa


def camera_record(e: SimExposure, cam: str, state, rng: random.Random, *, long: bool) -> dict:
    """One camera file's row as ``BOSS_log.log_exp`` returns it (values typed as the header's)."""
    arc = ARC_KEY[e.observatory]
    env = e.extra.get("env", {})
    ff, ne, ffs = _LAMP_FLAGS[e.flavor]
    written = e.date_obs + timedelta(seconds=e.exptime + _READOUT_S[e.is_hartmann and e.observatory == "apo"])
    rec = {"Time": _ctime(written), "Filename": f"sdR-{cam}-{e.expnum:08d}.fit.gz", "EXPTIME": float(e.exptime),
           "CCD": cam, "EXPID": e.expnum, "DESIGNID": e.design_id, "Field": e.field_id, "configID": e.config_id,
           "flavor": e.flavor, "Hrt": e.hartmann, "FF": env.get("FF", ff), "FFS": env.get("FFS", ffs),
           "NE": env.get("NE", ne), arc: env.get(arc, ne), "colA": e.colla, "colB": e.collb, "colC": e.collc,
           "temp": float(env.get(TEMP_KEY[e.observatory], e.temperature))} | _qa(e, cam, state, rng)
    rec["full_time"] = rec["Time"]
    if rec["Hrt"].lower() != "out" and rec["Hrt"] != "Closed, Closed":
        rec["flavor"], rec["fratio"] = "hart", "-"
    rec["Hrt"] = {"right": "R", "left": "L"}.get(rec["Hrt"].lower(), rec["Hrt"])
    for key in ("DESIGNID", "Field", "configID"):
        if rec[key] == -999:
            rec[key] = "-"
    if long:
        return {k: rec[k] for k in long_columns(arc)}
    return _short_record(rec, arc)


def _short_record(rec: dict, arc: str) -> dict:
    rec = dict(rec, Filename=rec["Filename"].replace("sdR-", "").replace(".fit.gz", ""))
    flav = rec["flavor"]
    for key in (arc, "NE", "FF", "FFS"):
        flags = rec[key].split()
        rec[key] = sum(10 if f.upper() in ("X", "?") else int(f) for f in flags)
        if flav in ("arc", "hart") and key in (arc, "NE"):
            continue
        if (flav == "hart" and key == "FFS") or (flav == "flat" and key in ("FF", "FFS")):
            continue
        if rec[key] == 0:
            rec[key] = "-"
    lamps = ",".join(str(rec[k]) for k in ("FF", "NE", arc))
    rec = dict(rec, lamps="  -  " if lamps == "-,-,-" else lamps, EXP=int(rec["EXPTIME"]), Flav=flav,
               DESIGN=rec["DESIGNID"], Time=rec["Time"].split()[-2],
               **{"cols(A,B,C)": ",".join(str(rec[k]) for k in ("colA", "colB", "colC"))})
    q = rec["QUALITY"]
    if q != "-":
        q = QUALS.get(q, "?")
        q = ".5" if q == 0.5 else q
    rec["Q"] = q
    return {k: rec[k] for k in SHORT_COLUMNS}


def _merge(rows: list[dict], col: str, ccds: tuple[str, str]) -> str:
    """``merge_ccd``: ``blue,red`` values of one exposure's camera rows, ``-`` for a missing file."""
    vals = []
    for cam in ccds:
        hit = [r for r in rows if r["CCD"] == cam]
        vals.append(str(hit[0][col]) if hit else "-")
    return ",".join(vals)


def built_short_log(records: list[dict], ccds: tuple[str, str]) -> list[dict]:
    """One row per exposure, as ``built_short_log``."""
    out = []
    for eid in dict.fromkeys(r["EXPID"] for r in records):
        rows = [r for r in records if r["EXPID"] == eid]
        t = dict(rows[0])
        t["Filename"] = t["Filename"].split("-")[1].split(".")[0]
        flav = t["Flav"]
        merge = {"arc": ("W(X)", "fratio", "w_shift"), "flat": ("W(X)", "fratio"),
                 "science": ("SN2", "SN2_V2", "sky/s"), "bias": ("98%", "fratio"), "dark": ("98%", "fratio")}
        for col in merge.get(flav, ()) + ("CCD",):
            t[col] = _merge(rows, col, ccds)
        out.append(t)
    return [{("W(X)SIG" if k == "W(X)" else k): v for k, v in r.items()} for r in out]


def render_sos(mjd: int, exps: list[SimExposure], rng: random.Random, states: dict | None = None, *,
               long: bool = False) -> list[str]:
    """The lines ``BOSS_log.print_summary`` prints after ``---- BOSS Data Summary ----``."""
    obs = exps[0].observatory if exps else "apo"
    arc = ARC_KEY[obs]
    records = [camera_record(e, cam, (states or {}).get((e.expnum, cam)), rng, long=long)
               for e in sorted(exps, key=lambda x: x.expnum) for cam in CCDS[obs] if cam in e.cameras]
    if not long and records:
        records = built_short_log(records, CCDS[obs])
    cols = list(long_columns(arc)) if long else [("W(X)SIG" if c == "W(X)" else c) for c in SHORT_COLUMNS]
    frame = pd.DataFrame(records, columns=cols) if records else pd.DataFrame(columns=cols, index=[-1])
    frame = frame.drop(columns=["EXPID", "full_time"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas' replace() downcasting notice
        frame = frame.replace("science", "sci")
    frame = frame.rename(columns={"temp": "T[" + chr(176) + "C]"})
    lines = [f"Reading FITS from: /data/spectro/{mjd},  /data/boss/sos/{mjd}",
             f"Using /data/boss/sos/{mjd}/logfile-{mjd}.fits from IDLSPEC2D version {VERS2D}  (RUN2D {VERS2D})"]
    text = frame.to_string().split("\n")
    head, body = text[0], ([] if frame.index[0] == -1 else text[1:])
    ruler = "- " * int(len(head) / 2 + 1)
    lines += [ruler, "n" + head[1:], ruler] + (body if body else [""])
    if body:
        lines.append(ruler)
        ntt = "MC1TEMDN: sp1 mech Median temp" if obs == "apo" else "COLLT: Collimator temperature"
        if not long:
            lines.append("      Q = Quality " + str(QUALS) + ";    T[" + chr(176) + "C] = " + ntt)
            nt = " (pseudo at LCO)" if obs == "lco" else ""
            lines.append("      FFS = Flat Screens" + nt + " {'open': 0, 'closed': 1, 'Failure - X(?)': 10};"
                         "    lamps = 4,4,4 (FF, NE, " + arc + ") {'on': 1,'off': 0,'Failure - X(?)': 10}")
        else:
            lines.append("      T[" + chr(176) + "C] = " + ntt)
        ref = "60000" if obs == "apo" else "60002"
        lines.append("      fratio & w_shift(Anstrom of central pixel) are comparison to reference data: "
                     f"flat-{ref} arc-{ref} bias-{ref} dark-{ref}")
    return lines
