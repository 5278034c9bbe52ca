"""The night's health page (``Layout.night_page(mjd)``) and the calendar of nights (``nights_index``).

What the people at the telescope and the pipeline team read every morning, as static HTML with
PNG figures beside it (no server, no script):

- the verdict per camera (worst traffic light of its calibration frames) and the actionable lines
  ("b1 00363001: NLAMPS=9 red — retake the arc");
- the exposure table: every calibration frame, each QA quantity coloured by its own status;
- trends of the QA quantities and of the fitted field over the last nights, against the limits,
  and of the learned latent where ``arcray embed`` has run;
- per camera, a drill-down by quadrant (widths per amplifier quadrant, coloured against the WSIGMA
  / XSIGMA limits) and the fitted field of the night's arcs;
- links to the calendar and to the full report.

``night_verdict`` is pure (DataFrame in, dict out); the writers take DataFrames and a ``Layout``.
The page holds no time stamp: the same inputs give the same bytes (a rerun changes nothing).
"""

from __future__ import annotations

import calendar
import html
import json
from datetime import date

import numpy as np
import pandas as pd

from arcray import __version__
from arcray.io import atomic_write_bytes, exists, list_files
from arcray.paths import Layout
from arcray.report.qa import COLOURS, cell, traffic_light_table

CSS = ("body{font-family:sans-serif;max-width:1150px;margin:1.5em auto;color:#222}"
       "img{max-width:100%;border:1px solid #ddd;margin:4px}table{border-collapse:collapse;font-size:13px}"
       "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}.actions li{margin:3px 0}"
       ".badge{display:inline-block;padding:4px 12px;margin:2px;border-radius:4px;font-weight:bold}"
       ".cal td{width:2.2em;text-align:center}.cal a{color:#222;text-decoration:none}")
ORDER = {"green": 0, "yellow": 1, "red": 2}


def mjd_date(mjd: int) -> date:
    """The civil (UTC) date on which the night of SDSS MJD ``mjd`` ends."""
    return date.fromordinal(date(1858, 11, 17).toordinal() + int(mjd))


def worst(statuses) -> str | None:
    vals = [s for s in statuses if s in ORDER]
    return max(vals, key=ORDER.get) if vals else None


def _flagged(flags: pd.DataFrame | None) -> pd.DataFrame:
    if flags is None or not len(flags):
        return pd.DataFrame(columns=["camera", "expnum", "flavor", "flag", "flag_detail", "flag_action"])
    return flags[flags["flag"].notna() & (flags["flag"] != "clean")]


def _primary(predictions: pd.DataFrame | None) -> pd.DataFrame:
    if predictions is None or not len(predictions):
        return pd.DataFrame(columns=["camera", "expnum", "flavor", "date_obs", "hours_since_arc", "ref_expnum",
                                     "expected_error", "upper90", "tolerance", "arc_needed", "predictor"])
    return predictions[predictions["primary"]].sort_values(["camera", "date_obs", "expnum"])


def drift_actions(predictions: pd.DataFrame | None) -> list[str]:
    """Per camera, the first exposure after an arc whose predicted line error (90 % bound) passes
    the tolerance: "b1: predicted line error passes 0.2 px at 02:10 UT ... — take an arc"."""
    out = []
    for cam, d in _primary(predictions).groupby("camera"):
        late = d[d["arc_needed"].fillna(False).astype(bool) & d["hours_since_arc"].notna()]
        if len(late):
            r = late.iloc[0]
            when = pd.Timestamp(r["date_obs"]).strftime("%H:%M UT") if pd.notna(r["date_obs"]) else "?"
            out.append(f"{cam}: predicted line error passes {r['tolerance']:g} px (90 % bound {r['upper90']:.2f} px) "
                       f"at {when}, {r['hours_since_arc']:.1f} h after arc {int(r['ref_expnum']):08d} — take an arc")
    return out


def night_verdict(night: pd.DataFrame, flags: pd.DataFrame | None = None,
                  predictions: pd.DataFrame | None = None) -> dict:
    """``{"cameras": {cam: worst status}, "actions": [lines], "n_frames": N, "flags": {reason: n}}``
    for one night's measured rows (``Layout.measured_frames``). ``flags``: the fault judge's rows
    (``measure.flags_reasons.judge_frames``): a flagged frame makes its camera red and its
    ``flag_action`` replaces the generic QA line; ``predictions``: ``run_predict``'s rows, whose
    drift lines (``drift_actions``) end the list."""
    measured = night[night["measured"].astype(bool)]
    cams = {str(c): worst(d["status"]) for c, d in measured.groupby("camera")}
    bad = _flagged(flags)
    flagged = {(str(r.camera), int(r.expnum)): str(r.flag_action) for r in bad.itertuples()}
    for cam in bad["camera"].unique():
        cams[str(cam)] = "red"
    actions: list[str] = []
    for r in measured.sort_values(["expnum", "camera"]).itertuples():
        key = (str(r.camera), int(r.expnum))
        if key in flagged:
            actions.append(flagged.pop(key))
        elif r.status == "red":
            actions.append(f"{r.camera} {int(r.expnum):08d}: {r.status_reasons} — retake the {r.flavor}")
    actions += list(flagged.values()) + drift_actions(predictions)
    reasons = bad["flag"].value_counts().to_dict() if len(bad) else {}
    return {"cameras": cams, "actions": actions, "n_frames": int(len(night)),
            "flags": {str(k): int(v) for k, v in sorted(reasons.items())}}


def _flags_html(flags: pd.DataFrame | None) -> str:
    bad = _flagged(flags)
    if flags is None:
        return "<p>Not judged.</p>"
    judged = int(flags["flag"].notna().sum())
    if not len(bad):
        return f"<p>{judged} calibration frames judged: none flagged.</p>"
    rows = ["<table><tr><th>camera</th><th>exposure</th><th>flavor</th><th>cause</th><th>why</th></tr>"]
    for r in bad.sort_values(["expnum", "camera"]).itertuples():
        rows.append(f"<tr><td>{html.escape(str(r.camera))}</td><td>{int(r.expnum)}</td><td>{html.escape(str(r.flavor))}"
                    f'</td><td style="background:{COLOURS["red"]}">{html.escape(str(r.flag))}</td>'
                    f'<td style="text-align:left">{html.escape(str(r.flag_detail))}</td></tr>')
    return f"<p>{judged} calibration frames judged, {len(bad)} flagged.</p>" + "\n".join(rows) + "</table>"


def _predictions_html(predictions: pd.DataFrame | None) -> str:
    prim = _primary(predictions)
    if predictions is None:
        return "<p>Not predicted: too few other nights with measured arcs (see the run's output).</p>"
    rows = ["<table><tr><th>camera</th><th>exposure</th><th>flavor</th><th>UT</th><th>h since arc</th>"
            "<th>predicted error (px)</th><th>90 % bound (px)</th><th>arc needed</th></tr>"]
    for r in prim.itertuples():
        when = pd.Timestamp(r.date_obs).strftime("%H:%M") if pd.notna(r.date_obs) else "–"
        need = bool(r.arc_needed) if pd.notna(r.arc_needed) else True
        rows.append(f"<tr><td>{html.escape(str(r.camera))}</td><td>{int(r.expnum)}</td><td>{html.escape(str(r.flavor))}"
                    f"</td><td>{when}</td>{cell(r.hours_since_arc, None)}{cell(r.expected_error, None)}"
                    f"{cell(r.upper90, None)}{cell('yes' if need else 'no', 'yellow' if need else 'green')}</tr>")
    pred = str(prim["predictor"].iloc[0]) if len(prim) else "–"
    tol = float(prim["tolerance"].iloc[0]) if len(prim) else float("nan")
    return (f"<p>Each exposure's calibration state predicted without its arc ({html.escape(pred)} model, "
            f"fitted on the other nights); an arc is needed when the 90 % bound of the predicted RMS line "
            f"error passes {tol:g} px.</p>" + "\n".join(rows) + "</table>")


def _badges(cams: dict) -> str:
    return "".join(f'<span class="badge" style="background:{COLOURS.get(s, "#eee")}">{html.escape(c)}: '
                   f'{html.escape(s or "no frames")}</span>' for c, s in sorted(cams.items()))


def _quadrant_table(night: pd.DataFrame, limits) -> str:
    """Per frame and quadrant: the width (WSIGMA for arcs, XSIGMA for flats), coloured by its limit."""
    rows = ["<table><tr><th>camera</th><th>exposure</th><th>flavor</th>"
            + "".join(f"<th>Q{q} ({w})</th>" for q, w in enumerate(("lower left", "lower right", "upper left",
                                                                      "upper right"))) + "</tr>"]
    for r in night[night["measured"].astype(bool)].sort_values(["camera", "expnum"]).itertuples():
        key = "WSIGMA" if r.flavor == "arc" else "XSIGMA"
        lim = limits.for_frame(str(r.camera), str(r.flavor)).get(key) if limits else None
        cells = []
        for q in range(4):
            v = getattr(r, f"{key}_Q{q}")
            st = lim.judge(v) if lim is not None and v is not None and np.isfinite(v) else None
            cells.append(cell(v, st))
        rows.append(f"<tr><td>{r.camera}</td><td>{int(r.expnum)}</td><td>{r.flavor}</td>{''.join(cells)}</tr>")
    return "\n".join(rows) + "</table>"


def night_latents(layout: Layout, mjds, cameras=None, *, flavor: str = "arc") -> pd.DataFrame | None:
    """The latents (``arcray embed``) of the nights ``mjds``, from the smallest registered latent
    size that has them for every camera present; None when nothing was embedded."""
    from arcray.instrument import CAMERAS

    cams = list(cameras or CAMERAS)
    for latent in range(1, 33):
        files = [layout.latents_file(c, flavor, latent) for c in cams]
        found = [f for f in files if exists(f)]
        if found:
            lat = pd.concat([pd.read_parquet(f, columns=None) for f in found], ignore_index=True)
            lat = lat[lat["mjd"].isin(list(mjds))]
            return lat if len(lat) else None
    return None


def write_night_page(layout: Layout, mjd: int, frames: pd.DataFrame, verdict: dict, *,
                     trend_nights: int = 14, flags: pd.DataFrame | None = None,
                     predictions: pd.DataFrame | None = None) -> str:
    """Write ``Layout.night_page(mjd)`` (+ figures, ``night_summary``) and return its path.
    ``frames``: ``Layout.measured_frames`` rows (every night: the trends need the earlier ones)."""
    from arcray.analysis import qa_figures
    from arcray.measure import qa

    night = frames[frames["mjd"] == int(mjd)]
    limits = qa.load_limits(None)
    parts = [f"<h1>Night {int(mjd)} ({mjd_date(mjd).isoformat()})</h1>",
             '<p><a href="../index.html">all nights</a> · <a href="../../report/index.html">full report</a> · '
             f"arcray {html.escape(__version__)}, limits {html.escape(str(limits.version))}</p>",
             f"<p>{_badges(verdict['cameras'])}</p>"]
    acts = verdict["actions"]
    parts.append("<h2 id='actions'>What to do</h2>" + (
        "<ul class='actions'>" + "".join(f"<li>{html.escape(a)}</li>" for a in acts) + "</ul>"
        if acts else "<p>Nothing: every calibration frame of the night is usable.</p>"))
    parts.append("<h2 id='flags'>Bad calibration frames and their causes</h2>" + _flags_html(flags))
    parts.append("<h2 id='predictions'>Predicted calibration state</h2>" + _predictions_html(predictions))
    parts.append("<h2 id='exposures'>Exposures</h2>" + (traffic_light_table(night) if len(night)
                                                         else "<p>No calibration frame measured.</p>"))
    recent = sorted(frames["mjd"].unique())
    recent = [m for m in recent if m <= int(mjd)][-trend_nights:]
    trend = frames[frames["mjd"].isin(recent) & frames["measured"].astype(bool)]
    if len(trend):
        qa_figures.night_trends(trend, int(mjd), layout.night_figure(mjd, "trends.png"), limits)
        parts.append(f"<h2 id='trends'>Trends over the last {len(recent)} night(s)</h2>"
                     '<figure><img src="trends.png" alt="QA trends"><figcaption>per-night median of each '
                     "quantity (points: frames), the green band of the limits shaded; this night in black"
                     "</figcaption></figure>")
    lat = night_latents(layout, recent, sorted(frames["camera"].unique())) if len(trend) else None
    if lat is not None:
        qa_figures.latent_trends(lat, int(mjd), layout.night_figure(mjd, "latent-trends.png"))
        parts.append("<h3>The learned calibration state</h3><figure><img src=\"latent-trends.png\" "
                     "alt=\"latent trends\"><figcaption>each latent dimension of the registered autoencoder "
                     "(arcray embed), per-night median; this night in black (only frames embedded so far)"
                     "</figcaption></figure>")
    parts.append("<h2 id='quadrants'>By camera and quadrant</h2>" + _quadrant_table(night, limits))
    arcs = night[(night["flavor"] == "arc") & night["measured"].astype(bool) & night["a0"].notna()]
    for cam, d in arcs.groupby("camera"):
        pick = d.sort_values("expnum")
        pick = pick.iloc[[0, len(pick) - 1]] if len(pick) > 1 else pick
        name = f"field-{cam}.png"
        qa_figures.field_quiver(pick.drop_duplicates("expnum"), layout.night_figure(mjd, name),
                                title=f"{cam}: the night's first and last arcs")
        parts.append(f'<h3>{html.escape(str(cam))}</h3><figure><img src="{name}" alt="{cam} field">'
                     "<figcaption>fitted displacement field and widths per quadrant</figcaption></figure>")
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>arcray night {int(mjd)}</title>"
           f"<style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
    atomic_write_bytes(layout.night_page(mjd), doc.encode())
    summary = {"mjd": int(mjd), "date": mjd_date(mjd).isoformat(), **verdict}
    atomic_write_bytes(layout.night_summary(mjd), (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())
    return layout.night_page(mjd)


def write_nights_index(layout: Layout) -> str:
    """The calendar of every night with a page (one month grid each), a night coloured by the
    worst status of its cameras and linked to its page."""
    nights = {}
    for f in list_files(layout.nights, "night.json"):
        with open(f) as fh:
            s = json.load(fh)
        nights[int(s["mjd"])] = s
    months = sorted({(mjd_date(m).year, mjd_date(m).month) for m in nights}, reverse=True)
    by_date = {mjd_date(m): (m, s) for m, s in nights.items()}
    parts = ["<h1>arcray: calibration health by night</h1>",
             '<p><a href="../report/index.html">full report</a> · a night is coloured by the worst '
             "traffic light of its cameras' calibration frames (dates are the UTC date the night ends)</p>"]
    for y, mo in months:
        rows = [f"<h2>{calendar.month_name[mo]} {y}</h2><table class='cal'><tr>"
                + "".join(f"<th>{d}</th>" for d in ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")) + "</tr>"]
        for week in calendar.Calendar().monthdatescalendar(y, mo):
            cells = []
            for d in week:
                if d.month != mo:
                    cells.append("<td></td>")
                elif d in by_date:
                    m, s = by_date[d]
                    st = worst(s["cameras"].values())
                    cells.append(f'<td style="background:{COLOURS.get(st, "#eee")}"><a href="{m}/index.html" '
                                 f'title="MJD {m}: {st}">{d.day}</a></td>')
                else:
                    cells.append(f"<td>{d.day}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("\n".join(rows) + "</table>")
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>arcray nights</title><style>{CSS}</style>"
           "</head><body>" + "\n".join(parts) + "</body></html>\n")
    atomic_write_bytes(layout.nights_index, doc.encode())
    return layout.nights_index


def read_frames(layout: Layout) -> pd.DataFrame:
    if not exists(layout.measured_frames):
        from arcray.errors import InputError

        raise InputError(f"no measured frames at {layout.measured_frames}: run `arcray measure` first")
    return pd.read_parquet(layout.measured_frames)
