"""The simulated SOS night table is what idlspec2d BOSS_log.py prints (default and --long)."""

from __future__ import annotations

import random
import warnings
from dataclasses import replace
from datetime import date

import pandas as pd
import pytest

from arcray.sim.schedule import build_schedule
from arcray.sim.soslog import (CCDS, SHORT_COLUMNS, camera_record, long_columns, render_sos)
from arcray.sim.state import simulate_states


@pytest.fixture(scope="module")
def night():
    exps = build_schedule(date(2025, 3, 1), 1, 3, "apo")
    exps[3] = replace(exps[3], cameras=("r1",))  # blue file missing
    exps[5] = replace(exps[5], cameras=("b1",))  # red file missing
    return exps, simulate_states(exps, 3)


def _boss_log_text(records: list[dict], long: bool) -> list[str]:
    """The DataFrame steps of BOSS_log.py, literally: one pd.concat per camera row (build_log),
    then built_short_log (iloc[0] of each EXPID, merge_ccd), then print_summary's table."""
    log = pd.DataFrame()
    for rec in records:
        log = pd.concat([log, pd.DataFrame([pd.Series(rec)])], ignore_index=True)
    if not long:
        def merge_ccd(sub, col, ccds):
            vals = []
            for cam in ccds:
                hit = sub[sub.CCD == cam]
                vals.append("-" if len(hit) == 0 else str(hit.iloc[0][col]))
            return ",".join(vals)

        short = pd.DataFrame()
        for eid in log.EXPID.unique():
            sub = log[log.EXPID == eid]
            t = sub.iloc[0].copy()
            t["Filename"] = t["Filename"].split("-")[1].split(".")[0]
            flav = t["Flav"]
            cols = {"arc": ["W(X)", "fratio", "w_shift"], "flat": ["W(X)", "fratio"],
                    "science": ["SN2", "SN2_V2", "sky/s"], "bias": ["98%", "fratio"],
                    "dark": ["98%", "fratio"]}.get(flav, [])
            for col in cols + ["CCD"]:
                t[col] = merge_ccd(sub, col, CCDS["apo"])
            short = pd.concat([short, pd.DataFrame([t])], ignore_index=True)
        log = short.rename(columns={"W(X)": "W(X)SIG"})
    log = log.drop(columns=["EXPID", "full_time"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        log = log.replace("science", "sci")
    log = log.rename(columns={"temp": "T[" + chr(176) + "C]"})
    text = log.to_string().split("\n")
    return ["n" + text[0][1:]] + text[1:]


@pytest.mark.parametrize("long", [False, True])
def test_table_is_the_boss_log_dataframe_printed_by_pandas(night, long):
    exps, states = night
    rng = random.Random(5)
    records = [camera_record(e, cam, states.get((e.expnum, cam)), rng, long=long)
               for e in exps for cam in ("b1", "r1") if cam in e.cameras]
    lines = render_sos(exps[0].mjd, exps, random.Random(5), states, long=long)
    assert lines[0] == f"Reading FITS from: /data/spectro/{exps[0].mjd},  /data/boss/sos/{exps[0].mjd}"
    assert lines[1].startswith(f"Using /data/boss/sos/{exps[0].mjd}/logfile-{exps[0].mjd}.fits from IDLSPEC2D")
    table = lines[3:4] + lines[5:5 + (len(exps) if not long else len(records))]
    assert table == _boss_log_text(records, long)
    assert lines[2] == lines[4] == "- " * int(len(lines[3]) / 2 + 1)
    names = lines[3].split()
    want = SHORT_COLUMNS if not long else long_columns("HGCD")
    rename = {"temp": "T[°C]", "W(X)": "W(X)" if long else "W(X)SIG"}
    assert names == ["n"] + [rename.get(c, c) for c in want if c not in ("EXPID", "full_time")]


def _cells(head: str, line: str) -> dict[str, str]:
    """Right-aligned pandas columns: a value ends where its header name ends."""
    import re

    ends = [(m.group(), m.end()) for m in re.finditer(r"\S+", head)][1:]
    starts = [len(re.match(r"\d+", line).group())] + [e for _, e in ends[:-1]]
    return {name: line[a:e].strip() for (name, e), a in zip(ends, starts)}


def test_short_rows_follow_log_exp_conventions(night):
    exps, states = night
    lines = render_sos(exps[0].mjd, exps, random.Random(1), states)
    head = lines[3]
    rows = {}
    for ln in lines[5:5 + len(exps)]:
        cells = dict(zip(head.split()[1:], ln.split()[1:]))
        rows[int(cells["Filename"])] = cells
    by = {e.expnum: e for e in exps}
    for n, c in rows.items():
        e = by[n]
        assert c["CCD"] == ",".join(cam if cam in e.cameras else "-" for cam in ("b1", "r1"))
        assert c["EXP"] == str(int(e.exptime))
        if e.is_hartmann:
            assert c["Flav"] == "hart" and c["Hrt"] == e.hartmann[0] and c["lamps"] == "-,4,4"
        elif e.flavor == "dark":  # HARTMANN 'Closed': BOSS_log flags it 'hart' too
            assert c["Flav"] == "hart" and c["Hrt"] == "Closed" and c["lamps"] == "-,0,0"
        elif e.flavor == "arc":
            assert c["Flav"] == "arc" and c["lamps"] == "-,4,4" and c["FFS"] == "8"
            assert len(c["W(X)SIG"].split(",")) == 2 and len(c["w_shift"].split(",")) == 2
        elif e.flavor == "flat":
            assert c["lamps"] == "4,-,-" and len(c["fratio"].split(",")) == 2
        elif e.flavor == "science":
            assert c["Flav"] == "sci" and c["FFS"] == "-" and c["lamps"] == "-"  # '  -  '
        if e.design_id == -999:
            assert c["DESIGN"] == "-" and c["Field"] == "-"
    assert rows[exps[3].expnum]["CCD"] == "-,r1" and rows[exps[5].expnum]["CCD"] == "b1,-"


def test_qa_values_come_from_the_true_state():
    exps = build_schedule(date(2025, 3, 1), 2, 8, "apo")
    states = simulate_states(exps, 8, fault_rate=1.0)  # every arc and flat faulty
    arcs = [e for e in exps if e.flavor == "arc" and not e.is_hartmann]
    lines = render_sos(exps[0].mjd, arcs, random.Random(0), states, long=True)
    seen = set()
    for ln in lines[5:5 + 2 * len(arcs)]:
        cells = _cells(lines[3], ln)
        assert cells["Time"].count(" ") >= 4  # the full ctime
        cam, expnum = cells["CCD"], int(cells["Filename"][7:15])
        st = states[(expnum, cam)]
        seen.add(st.fault)
        if st.fault == "no_light":
            assert cells["QUALITY"] == "bad" and float(cells["fratio"]) == 0.0
        else:
            assert cells["QUALITY"] == "excellent"
        if st.fault == "focus_jump":
            assert float(cells["W(X)"]) > st.header_field.s0 + 0.15
    assert {"no_light", "focus_jump"} <= seen
