"""The simulated sloan-25mlog archive: layouts by date, exact exposure lists, determinism."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
from datetime import datetime, timedelta

from arcray.ingest.logparse import parse_archive
from arcray.ingest.mbox import split_messages, split_sections
from arcray.sim.mailman import (mjd_date, render_month_texts, render_night_messages,
                                write_month_archives)
from arcray.sim.types import SimExposure

FLAVORS = ["arc", "flat", "arc", "arc", "flat", "science", "bias", "arc", "flat", "dark"]


def make_exposures(start_mjd: int, nights: int, expstart: int, seed: int = 1) -> list[SimExposure]:
    """~10 APO exposures a night: arcs, flats, one Hartmann pair, science/bias/dark; a few b1-only."""
    rng = random.Random(seed)
    out, n = [], expstart
    for mjd in range(start_mjd, start_mjd + nights):
        t0 = mjd_date(mjd) - timedelta(hours=3)
        for k, flavor in enumerate(FLAVORS):
            hart = {2: "Left", 3: "Right"}.get(k, "Out")
            draw = rng.random()
            cams = ("b1",) if draw < 0.08 else ("r1",) if draw < 0.14 else ("b1", "r1")
            out.append(SimExposure(
                expnum=n, mjd=mjd, observatory="apo", flavor=flavor, hartmann=hart,
                exptime=4.09 if flavor == "arc" else 25.0 if flavor == "flat" else 900.0,
                date_obs=t0 + timedelta(minutes=4 * k), cameras=cams, field_id=-999 if k < 5 else 101234,
                design_id=-999 if k < 5 else 23456, config_id=-999 if k < 5 else 7890,
                colla=1200 + k, collb=1190, collc=1185, temperature=5.0 + 0.1 * k))
            n += 1
    return out


def _key(e) -> tuple:
    return (e.mjd, e.expnum, e.flavor, e.hartmann, e.is_hartmann, tuple(e.cameras))


def _parsed_by_layout(exps, seed):
    rows = []
    for (y, m), text in render_month_texts(exps, seed).items():
        res = parse_archive(text, f"{y}-{m:02d}")
        assert res.warnings == []
        rows += res.rows
    return rows


def test_each_layout_lists_exactly_the_rendered_exposures():
    exps = make_exposures(60275, 14, 379000) + make_exposures(60795, 14, 392000, seed=2)
    rows = _parsed_by_layout(exps, seed=7)
    assert {_key(r) for r in rows} == {_key(e) for e in exps}
    assert len(rows) == len(exps)
    by_layout: dict[str, set] = {}
    for r in rows:
        by_layout.setdefault(r.layout, set()).add(r.mjd)
    # Nov-Dec 2023: sloan_log and list; 2025: SOS (BOSS_log.py default or --long) and sloan_log
    assert set(by_layout) == {"sloan_log", "list", "sos", "sos_long"}
    assert all(mjd < 60676 for mjd in by_layout["list"])
    assert all(mjd >= 60676 for mjd in by_layout["sos"] | by_layout["sos_long"])  # 60676 = 2025-01-01
    for layout, mjds in by_layout.items():  # each layout's nights list exactly their exposures
        want = {_key(e) for e in exps if e.mjd in mjds}
        assert {_key(r) for r in rows if r.layout == layout} == want
    hart = [r for r in rows if r.is_hartmann]
    assert len(hart) == 2 * 28 and {r.hartmann for r in hart} == {"Left", "Right"}
    assert all(r.flavor == "arc" for r in hart)
    sos = [r for r in rows if r.layout in ("sos", "sos_long")]  # one-camera exposures both ways
    assert {r.cameras for r in sos} == {("b1",), ("r1",), ("b1", "r1")}


def test_replies_reposts_and_scrubbed_notes_are_rendered():
    exps = make_exposures(60275, 20, 379000)
    texts = render_month_texts(exps, seed=3)
    msgs = [m for t in texts.values() for m in split_messages(t)]
    subjects = [m.subject for m in msgs]
    assert sum(s.startswith("Re: ") for s in subjects) >= 2
    assert sum("(corrected)" in s for s in subjects) >= 2
    replies = [m for m in msgs if m.subject.startswith("Re: ")]
    assert all(m.in_reply_to for m in replies)
    assert any("> ---- BOSS Data Summary ----" in m.body for m in replies)
    allt = "".join(texts.values())
    assert "-------------- next part --------------" in allt and "An HTML attachment was scrubbed" in allt
    assert "@" not in "".join(m.sender for m in msgs) and " at example.org" in msgs[0].sender
    titles = {s.title for s in split_sections(msgs[0].body)}
    assert {"Observing Summary", "Data Log", "APOGEE Data Summary", "BOSS Data Summary",
            "BOSS Spectrographs Collimation", "SOS ERRORS/WARNINGS", "Log Support"} <= titles
    # a first post of a corrected night misses exposures; the repost is complete
    for mjd in {e.mjd for e in exps}:
        night = render_night_messages(mjd, [e for e in exps if e.mjd == mjd], 3)
        if len(night) > 1 and "(corrected)" in night[1][1]:
            first = parse_archive(night[0][1]).rows
            assert 0 < len(first) < sum(e.mjd == mjd for e in exps)


def test_archives_are_deterministic_gzip_named_by_month(tmp_path):
    exps = make_exposures(60275, 10, 379000)
    a = write_month_archives(exps, str(tmp_path / "a"), seed=5)
    b = write_month_archives(exps, str(tmp_path / "b"), seed=5)
    assert [os.path.basename(p) for p in a] == ["2023-November.txt.gz", "2023-December.txt.gz"]
    digest = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in a]
    assert digest == [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in b]
    c = write_month_archives(exps, str(tmp_path / "c"), seed=6)
    assert digest != [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in c]
    with open(a[0], "rb") as f:
        raw = f.read()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # gzip mtime 0
    assert gzip.decompress(raw).decode().startswith("From ")
    # LCO exposures are not on the APO list
    lco = [SimExposure(expnum=47000, mjd=60280, observatory="lco", flavor="arc", hartmann="Out",
                       exptime=45.0, date_obs=datetime(2023, 12, 2, 1), cameras=("b2", "r2"))]
    assert write_month_archives(lco, str(tmp_path / "d"), seed=5) == []


def test_sos_short_and_long_tables_each_give_exactly_the_world_exposures():
    """A 2025 world's nights in each SOS form (BOSS_log.py default and --long): every exposure,
    arcs and flats included, with its cameras, and the Hartmann arcs flagged."""
    from dataclasses import replace
    from datetime import date

    from arcray.sim.mailman import render_boss_table
    from arcray.sim.schedule import build_schedule
    from arcray.sim.state import simulate_states

    exps = build_schedule(date(2025, 3, 1), 3, 9, "apo")
    exps = [e if e.expnum % 11 else replace(e, cameras=("r1",)) for e in exps]  # some blue files missing
    states = simulate_states(exps, 9)
    for layout in ("sos", "sos_long"):
        rows = []
        for mjd in sorted({e.mjd for e in exps}):
            night = [e for e in exps if e.mjd == mjd]
            table = render_boss_table(layout, mjd, night, random.Random(mjd), states)
            body = "\n".join(["---- BOSS Data Summary ----", *table, "", "---- Log Support ----", "x"])
            text = (f"From observer at example.org  Sun Mar  2 13:00:00 2025\nFrom: observer at example.org\n"
                    f"Subject: [Sloan-25mlog] night log MJD {mjd}\nMessage-ID: <{mjd}.{layout}@x>\n\n{body}\n\n")
            res = parse_archive(text)
            assert res.warnings == []
            rows += res.rows
        assert {r.layout for r in rows} == {layout}
        assert sorted(map(_key, rows)) == sorted(map(_key, exps))
        assert {r.flavor for r in rows} == {"arc", "flat", "science", "bias", "dark"}
        hart = {r.expnum for r in rows if r.is_hartmann}
        assert hart == {e.expnum for e in exps if e.is_hartmann} and len(hart) >= 6
        assert any(r.cameras == ("r1",) for r in rows)
