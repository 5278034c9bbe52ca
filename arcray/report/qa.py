"""The report's QA section, from ``Layout.measured_frames`` (``arcray measure``).

- the traffic lights of the latest night: one row per exposure and camera, each QA quantity
  coloured by its own status, the reasons of every non-green frame; and per night the count of
  green / yellow / red frames per camera;
- quiver plots of the fitted displacement field and the per-quadrant widths, for each camera's
  reference arc of the latest night and its arc that moved most against it;
- the affine terms and width over time and against the spectrograph temperature.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from arcray.io import exists

COLOURS = {"green": "#c8efc8", "yellow": "#fbeea0", "red": "#f6b3b3"}
QUANTITIES = ("WSIGMA", "NLAMPS", "BESTCORR", "WAVEMID", "XSIGMA", "NGOODFIBER")
EXTRA = ("w_shift", "fratio", "a0", "b0", "ref_a0", "ref_b0")


def cell(value, status) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        text = "–"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = html.escape(str(value))
    style = f' style="background:{COLOURS[status]}"' if status in COLOURS else ""
    return f"<td{style}>{text}</td>"


def traffic_light_table(night: pd.DataFrame) -> str:
    """HTML table of one night's frames; each QA quantity coloured by its status."""
    quantities = [q for q in QUANTITIES if night[q].notna().any()]
    extra = [c for c in EXTRA if c in night and night[c].notna().any()]
    head = ["camera", "exposure", "flavor", "status", *quantities, *extra, "reasons"]
    rows = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for _, r in night.sort_values(["expnum", "camera"]).iterrows():
        cells = [cell(r["camera"], None), cell(int(r["expnum"]), None), cell(r["flavor"], None),
                 cell(r["status"] if r["measured"] else "not measured", r["status"])]
        cells += [cell(r[q], r.get(f"{q}_status")) for q in quantities]
        cells += [cell(r[c], None) for c in extra]
        why = next((str(v) for v in (r["status_reasons"], r["reason"]) if pd.notna(v) and v), "")
        cells.append(f'<td style="text-align:left">{html.escape(why)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(rows) + "</table>"


def night_counts(df: pd.DataFrame) -> str:
    """HTML table: one row per night, per camera the measured frames green / yellow / red, the
    cell coloured by the night's worst status."""
    m = df[df["measured"]]
    cams = sorted(m["camera"].unique())
    rows = ["<table><tr><th>night (MJD)</th>" + "".join(f"<th>{c}: green / yellow / red</th>" for c in cams) + "</tr>"]
    for mjd, night in m.groupby("mjd"):
        cells = []
        for c in cams:
            st = night.loc[night["camera"] == c, "status"].value_counts()
            n = [int(st.get(s, 0)) for s in ("green", "yellow", "red")]
            worst = "red" if n[2] else "yellow" if n[1] else "green" if n[0] else None
            cells.append(cell(" / ".join(map(str, n)) if sum(n) else None, worst))
        rows.append(f"<tr><td>{int(mjd)}</td>" + "".join(cells) + "</tr>")
    return "\n".join(rows) + "</table>"


def chosen_frames(night: pd.DataFrame) -> pd.DataFrame:
    """Per camera: the night's reference arc and the arc that moved most against it."""
    arcs = night[(night["flavor"] == "arc") & night["measured"] & night["a0"].notna()]
    picked = []
    for _, d in arcs.groupby("camera"):
        ref = d[d["expnum"] == d["ref_expnum"]]
        picked.append(ref.iloc[:1] if len(ref) else d.iloc[:1])
        moved = np.hypot(d["ref_a0"].fillna(0.0), d["ref_b0"].fillna(0.0))
        if len(d) > 1:
            picked.append(d.loc[[moved.idxmax()]])
    return pd.concat(picked).drop_duplicates(["camera", "expnum"]) if picked else arcs.iloc[:0]


def qa_section(page) -> None:
    """Add the ``qa`` section to a report page (``report.html._Page``)."""
    from arcray.analysis import qa_figures

    lay = page.layout
    path = lay.measured_frames
    if not exists(path):
        page.section("qa", "Calibration QA (measured lines and traces)", [], [])
        return
    df = pd.read_parquet(path)
    last = int(df["mjd"].max())
    night = df[df["mjd"] == last]
    body = [f"<p>{len(df)} frames measured over {df['mjd'].nunique()} night(s); limits "
            f"{html.escape(', '.join(sorted(set(df['limits_version'].dropna().astype(str)))))}.</p>",
            f"<h4>Traffic lights, night {last}</h4>", traffic_light_table(night),
            "<h4>Frames by status per night</h4>", night_counts(df)]
    chosen = chosen_frames(night)
    if len(chosen):
        out = qa_figures.field_quiver(chosen, lay.report_figure("qa-field.png"),
                                      title=f"Fitted field, night {last}: each camera's reference arc and "
                                            "the arc that moved most against it")
        body.append(page.image(out, "displacement field (arrows scaled up) and widths per quadrant"))
    # arcs whose lines can be trusted (no lamp out, right light): a field fitted to noise would
    # swamp the trends
    arcs = df[(df["flavor"] == "arc") & df["measured"] & df["a0"].notna() & (df["NLAMPS_status"] != "red")
              & (df["BESTCORR_status"] != "red")]
    if len(arcs):
        out = qa_figures.terms_over_time(arcs, lay.report_figure("qa-terms-time.png"),
                                         title="affine terms and focus of the measured arcs (NLAMPS and "
                                               "BESTCORR not red) over time")
        body.append(page.image(out, "affine terms and s0 over time"))
        try:
            out = qa_figures.terms_vs_temperature(arcs, lay.report_figure("qa-terms-temperature.png"),
                                                  title="the same against the spectrograph temperature")
            body.append(page.image(out, "affine terms and s0 against temperature"))
        except ValueError:
            pass
    page.section("qa", "Calibration QA (measured lines and traces)", body, [path])
