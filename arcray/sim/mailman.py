"""Simulated sloan-25mlog archive: monthly pipermail mbox files with one night log per night.

Renders, from the simulator's ``SimExposure`` records, the text archives that Mailman 2.1 serves
as ``<YYYY>-<Month>.txt.gz`` (formats: ``shared/spec/boss-formats.md`` section 3):

- one night-log e-mail per APO night, sections headed ``---- <Title> ----`` (Observing Summary,
  Data Log, APOGEE Data Summary, BOSS Data Summary, BOSS Spectrographs Collimation,
  SOS ERRORS/WARNINGS, Log Support);
- the BOSS table in a layout that existed at the date: before 2025 the sloan_log or the legacy
  list layout (Nov-Dec 2023 mixes both, as the original study saw), from 2025 the SOS layout or
  sloan_log;
- occasionally a first post that misses the last exposures and a later corrected repost of the
  same night (the repost is complete), a reply quoting part of an earlier table with ``> ``,
  a scrubbed-attachment note, obscured addresses ``user at example.org``.

After de-duplicating reposts (latest post wins) and ignoring quoted text, the BOSS tables list
exactly the APO exposures given. Deterministic: same records and seed, same bytes (gzip mtime 0).
Only APO exposures are rendered (sloan-25mlog is the APO 2.5 m list); others are ignored.
"""

from __future__ import annotations

import gzip
import io
import os
import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from arcray.instrument import CAMERAS_AT, CARTID
from arcray.io import atomic_write_bytes
from arcray.sim.soslog import render_sos
from arcray.sim.types import SimExposure

MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")
MJD_EPOCH = datetime(1858, 11, 17)
LIST_TAG = "[Sloan-25mlog]"
MST = timezone(timedelta(hours=-7))
OBSERVERS = ("observer", "jdoe", "asmith", "plateguy", "nightlead")

SLOAN_HEADER = "MJD   UTC      Field-Design-Config  Exposure Type    SOS   ETime Hart"
LIST_HEADER = "  n  time filename     cart   plt    flav hrt    exp  colA  colB  colC Hrt"

_SLOAN_TYPE = {"arc": "Arc", "flat": "Flat", "science": "Science", "bias": "Bias", "dark": "Dark"}
_SLOAN_HART = {"Out": "Open", "Closed": "Closed", "Left": "Left", "Right": "Right"}
_LIST_FLAV = {"arc": "arc", "flat": "fla", "science": "sci", "bias": "bia", "dark": "dar"}


def mjd_date(mjd: int) -> datetime:
    """UTC date (midnight) of an SDSS MJD: the morning the night ends."""
    return MJD_EPOCH + timedelta(days=int(mjd))


def month_file_name(year: int, month: int) -> str:
    return f"{year}-{MONTH_NAMES[month - 1]}.txt.gz"


def layout_choices(day: datetime) -> tuple[str, ...]:
    """Layouts in use at a date: list + sloan_log before 2025; from 2025 the SOS log (``BOSS_log.py``
    by default, or its ``--long`` form) or sloan_log."""
    return ("sos", "sos_long", "sloan_log") if day.year >= 2025 else ("sloan_log", "list")


# -- BOSS tables in the three real layouts ------------------------------------------------

def _sos_cams(exp: SimExposure) -> str:
    have = set(exp.cameras)
    blue, red = CAMERAS_AT[exp.observatory]
    return f"{red if red in have else 'xx'}-{blue if blue in have else 'xx'}"


def render_sloan_log(mjd: int, exps: list[SimExposure]) -> list[str]:
    """ObserverTools ``sloan_log.py``: banner, centred title, header, 80-dash ruler, rows."""
    lines = ["=" * 80, "BOSS Data Summary".center(80).rstrip(), "=" * 80, "",
             SLOAN_HEADER, "-" * 80]
    for e in exps:
        typ = "Hart" if e.is_hartmann else _SLOAN_TYPE[e.flavor]
        fdc = f"{e.field_id:>6}-{e.design_id:>6}-{e.config_id:<6}"
        lines.append(f"{mjd:<5} {e.date_obs:%H:%M:%S} {fdc} {e.expnum:08d} {typ:<7} "
                     f"{_sos_cams(e):<5} {int(round(e.exptime)):>5} {_SLOAN_HART[e.hartmann]:<5}".rstrip())
    return lines


def render_list(mjd: int, exps: list[SimExposure]) -> list[str]:
    """Legacy observers' listing: one row per camera file, trailing ``HART`` on Hartmann frames."""
    lines = [f"Reading FITS from /data/spectro/{mjd}", "-" * 78, LIST_HEADER, "-" * 78]
    n = 0
    for e in exps:
        cart = CARTID[e.observatory]
        for cam in sorted(e.cameras):
            n += 1
            row = (f"{n:>3} {e.date_obs:%H:%M} {cam}-{e.expnum:08d} {cart:<6} {e.field_id:>6} "
                   f"{_LIST_FLAV[e.flavor]:>4} {e.hartmann[:3]:<4} {e.exptime:6.1f} "
                   f"{e.colla:>5} {e.collb:>5} {e.collc:>5}")
            lines.append(row + (" HART" if e.is_hartmann else ""))
    return lines


def render_boss_table(layout: str, mjd: int, exps: list[SimExposure], rng: random.Random,
                      states: dict | None = None) -> list[str]:
    """The BOSS table of a night in ``layout``; ``states`` (``(expnum, camera) -> CalibState``)
    gives the SOS layouts their QA values."""
    if layout == "sloan_log":
        return render_sloan_log(mjd, exps)
    if layout == "list":
        return render_list(mjd, exps)
    if layout in ("sos", "sos_long"):
        return render_sos(mjd, exps, rng, states, long=layout == "sos_long")
    raise ValueError(f"unknown layout {layout!r}")


# -- the other sections of a night log ------------------------------------------------------

def _section(title: str, lines: list[str]) -> list[str]:
    return [f"---- {title} ----", *lines, ""]


def _other_sections(mjd: int, exps: list[SimExposure], rng: random.Random) -> dict[str, list[str]]:
    t0 = exps[0].date_obs if exps else mjd_date(mjd)
    n_arc = sum(e.flavor == "arc" for e in exps)
    summary = [f"Night of MJD {mjd}. Weather: {rng.choice(['clear', 'thin clouds', 'windy, clear'])}.",
               f"BOSS: {n_arc} arcs, {sum(e.flavor == 'flat' for e in exps)} flats, "
               f"{sum(e.flavor == 'science' for e in exps)} science exposures.",
               "Afternoon calibrations at the stow position; FFS closed for arcs and flats."]
    data_log = [f"{(t0 + timedelta(minutes=17 * i)):%H:%M} {msg}" for i, msg in enumerate(
        ["Opened the dome", "Hartmann test: focus within tolerance",
         f"Calibration sequence done (last BOSS exposure {exps[-1].expnum:08d})" if exps else "No BOSS data",
         "Closed for wind"])]
    apogee = ["=" * 80, "APOGEE Data Summary".center(80).rstrip(), "=" * 80, "",
              "MJD   UTC      Field-Design-Config  Exposure Type    Dither ETime Arch",
              "-" * 80]
    for i in range(rng.randint(2, 4)):
        t = t0 + timedelta(minutes=20 * i + 3)
        apogee.append(f"{mjd:<5} {t:%H:%M:%S}   -999-  -999--999   {48100000 + mjd % 1000 * 10 + i:08d} "
                      f"{rng.choice(['Dark', 'QuartzFlat', 'ArcLamp']):<7} A     {rng.choice([60, 457]):>5} "
                      f"{rng.choice(['Open', 'Closed']):<5}")
    warn_exp = exps[rng.randrange(len(exps))].expnum if exps else 0
    sos = [f"WARNING: b1-{warn_exp:08d}: arc line width 1.27 px above 1.25",
           f"ERROR: r1-{warn_exp:08d}: flexure shift 1.6 px against the arc"]
    collim = ["r1: 1.2 um  b1: -0.4 um   move collimator +35 steps",
              "Blue ring: move 0.3 degrees;  Hartmann focus within 0.2 px tolerance"]
    support = [f"https://data.sdss5.org/sas/sdsswork/data/boss/sos/apo/{mjd}/logfile-{mjd}.html",
               f"https://data.sdss5.org/sas/sdsswork/data/apogee/apo/{mjd}/"]
    return {"Observing Summary": summary, "Data Log": data_log, "APOGEE Data Summary": apogee,
            "BOSS Spectrographs Collimation": collim, "SOS ERRORS/WARNINGS": sos, "Log Support": support}


# -- e-mails and monthly archives ------------------------------------------------------------

def _ctime(dt: datetime) -> str:
    """``Sat Dec  2 13:04:55 2023`` (the mbox ``From_`` line's time, UTC)."""
    return f"{dt:%a %b} {dt.day:>2} {dt:%H:%M:%S %Y}"


def _message(date: datetime, sender: str, subject: str, body: list[str], msg_id: str,
             reply_to: str | None = None) -> tuple[datetime, str]:
    """One pipermail mbox message (``date`` aware) as text ending in a blank line."""
    addr = f"{sender} at example.org"
    head = [f"From {addr}  {_ctime(date.astimezone(timezone.utc))}",
            f"From: {addr} ({sender.title()})",
            f"Date: {format_datetime(date.astimezone(MST))}",
            f"Subject: {subject if LIST_TAG in subject else LIST_TAG + ' ' + subject}"]
    if reply_to:
        head += [f"In-Reply-To: {reply_to}", f"References: {reply_to}"]
    head.append(f"Message-ID: {msg_id}")
    return date, "\n".join(head + [""] + body + ["", ""])


def _scrubbed(date: datetime, rng: random.Random) -> list[str]:
    return ["-------------- next part --------------",
            "An HTML attachment was scrubbed...",
            f"URL: <https://mailman.sdss.org/mailman/private/sloan-25mlog/attachments/"
            f"{date:%Y%m%d}/{rng.getrandbits(32):08x}/attachment.html>"]


def _night_body(mjd: int, exps: list[SimExposure], layout: str, rng: random.Random,
                date: datetime, states: dict | None = None) -> list[str]:
    other = _other_sections(mjd, exps, rng)
    body = ["Hi all,", "", f"Here is the night log for MJD {mjd}.", ""]
    for title in ("Observing Summary", "Data Log", "APOGEE Data Summary"):
        body += _section(title, other[title])
    body += _section("BOSS Data Summary", render_boss_table(layout, mjd, exps, random.Random(rng.random()), states))
    for title in ("BOSS Spectrographs Collimation", "SOS ERRORS/WARNINGS", "Log Support"):
        body += _section(title, other[title])
    if rng.random() < 0.3:
        body += _scrubbed(date, rng)
    return body


def render_night_messages(mjd: int, exps: list[SimExposure], seed: int, states: dict | None = None
                          ) -> list[tuple[datetime, str]]:
    """The e-mails of one night: the log, maybe a corrected repost, maybe a quoting reply."""
    rng = random.Random(f"arcray-mailman-{seed}-{mjd}")
    day = mjd_date(mjd)
    layout = rng.choice(layout_choices(day))
    sender = rng.choice(OBSERVERS)
    date = (day + timedelta(hours=13, minutes=rng.randint(0, 150), seconds=rng.randint(0, 59))
            ).replace(tzinfo=timezone.utc)
    subject = f"APO 2.5m night log MJD {mjd} ({day:%Y-%m-%d})"
    out = []
    repost = len(exps) > 3 and rng.random() < 0.2
    first = exps[: -rng.randint(1, 3)] if repost else exps
    msg_id = f"<{mjd}.1.{seed}@apo25m.example.org>"
    out.append(_message(date, sender, subject, _night_body(mjd, first, layout, rng, date, states), msg_id))
    if repost:
        date = date + timedelta(minutes=rng.randint(20, 180))
        body = ["Correction: the previous log missed the last exposures.", ""]
        body += _night_body(mjd, exps, layout, rng, date, states)
        out.append(_message(date, sender, subject + " (corrected)", body,
                            f"<{mjd}.2.{seed}@apo25m.example.org>"))
    if exps and rng.random() < 0.25:
        out.append(_reply(mjd, exps, layout, rng, date, sender, subject, seed, states))
    return out


def _reply(mjd: int, exps: list[SimExposure], layout: str, rng: random.Random, date: datetime,
           sender: str, subject: str, seed: int, states: dict | None = None) -> tuple[datetime, str]:
    """A reply that quotes the header and the first rows of the night's BOSS table."""
    table = render_boss_table(layout, mjd, exps, random.Random(rng.random()), states)
    n_head = {"sloan_log": 6, "list": 4, "sos": 5, "sos_long": 5}[layout]
    quoted = ["---- BOSS Data Summary ----"] + table[: n_head + min(3, len(exps))]
    who = rng.choice([o for o in OBSERVERS if o != sender])
    when = date + timedelta(hours=rng.randint(1, 30))
    body = [f"The arcs at the start of MJD {mjd} look fine to me; see below.", "",
            f"On {format_datetime(date.astimezone(MST))}, {sender} at example.org wrote:"]
    body += [f"> {line}".rstrip() for line in quoted] + [">", "> [...]", ""]
    return _message(when, who, f"Re: {LIST_TAG} {subject}", body,
                    f"<{mjd}.r.{seed}@example.org>", reply_to=f"<{mjd}.1.{seed}@apo25m.example.org>")


def render_month_texts(exposures: list[SimExposure], seed: int, states: dict | None = None
                       ) -> dict[tuple[int, int], str]:
    """``{(year, month): mbox text}`` for every month that has a message (by message date, UTC)."""
    nights: dict[int, list[SimExposure]] = defaultdict(list)
    for e in exposures:
        if e.observatory == "apo":
            nights[int(e.mjd)].append(e)
    messages: list[tuple[datetime, str]] = []
    for mjd in sorted(nights):
        exps = sorted(nights[mjd], key=lambda e: (e.date_obs, e.expnum))
        messages += render_night_messages(mjd, exps, seed, states)
    months: dict[tuple[int, int], list[str]] = defaultdict(list)
    for date, text in sorted(messages, key=lambda m: m[0]):
        months[(date.year, date.month)].append(text)
    return {k: "".join(v) for k, v in sorted(months.items())}


def gzip_bytes(text: str) -> bytes:
    """Deterministic gzip (no file name, mtime 0)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    return buf.getvalue()


def write_month_archives(exposures: list[SimExposure], out_dir: str, seed: int,
                         states: dict | None = None) -> list[str]:
    """Write ``out_dir/<YYYY>-<Month>.txt.gz`` for every month with a night log; return the paths.
    ``states`` (the world's true states) give the SOS tables their QA values."""
    paths = []
    for (year, month), text in render_month_texts(exposures, seed, states).items():
        path = os.path.join(out_dir, month_file_name(year, month))
        atomic_write_bytes(path, gzip_bytes(text))
        paths.append(path)
    return paths
