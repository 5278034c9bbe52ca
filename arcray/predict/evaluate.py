"""Scoring predictions by nights held out (pure).

- ``leave_one_night_out``: every night of every camera predicted by a ``NightModel`` fitted on the
  other nights only (the held-out night never enters a fit, not even the error model's inner folds).
- ``attach_errors``: each prediction's RMS line-centre error against an actual field (the truth of
  a simulated world, or the measured field), x, y, both, and the decision error max(x, y).
- ``accuracy``: RMS over exposures of those errors per camera and predictor, on the exposures with
  an earlier usable arc that night (``with_arc``) and without (``first_arc``), beside a floor when
  one is given (truth: ``arcray.sim.truth.floors``; ``refarc``, ``reuse`` and ``interp`` against the
  floor given the latest arc, metadata-only predictors against the header-only floor).
- ``error_vs_time``, ``coverage`` of the 90 % bound, and ``decisions``: arcray's rule (skip when the
  bound is within the tolerance) against time-only rules (skip while the latest arc is at most ``T``
  hours old, ``T`` tuned on the training nights of each held-out night) at several tolerances.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from arcray.optics import FIELD_TERMS
from arcray.predict.models import PREDICTORS
from arcray.predict.night import HISTORY_NIGHTS, fit_night_model, predict_night, training_nights
from arcray.predict.uncertainty import TOLERANCE, TOLERANCES, line_errors

METADATA_ONLY = ("linear", "ridge", "gbr")
TIME_BINS = (0.0, 0.5, 2.0, 5.0, np.inf)  # hours since the latest arc


def leave_one_night_out(frames: pd.DataFrame, *, cameras: Iterable[str] | None = None, tolerance: float = TOLERANCE,
                        history: int = HISTORY_NIGHTS, progress: Callable[..., None] | None = None,
                        **fit_kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(predictions, rules)``: ``predict_night`` of every (camera, night), each from a model fitted
    without that night, on the ``history`` nights nearest to it as ``arcray predict`` fits;
    ``rules``: per (camera, mjd) the time-only thresholds of its model."""
    preds, rules = [], []
    for cam in sorted(cameras or frames["camera"].unique()):
        fc = frames[frames["camera"] == cam]
        for night in sorted(fc["mjd"].astype(int).unique()):
            model = fit_night_model(training_nights(fc, night, history), camera=cam, **fit_kw)
            preds.append(predict_night(model, fc[fc["mjd"] == night], tolerance=tolerance))
            rules += [{"camera": cam, "mjd": night, "source": s, "tolerance": t, "T_hours": v}
                      for (s, t), v in model.time_rules.items()]
            if progress is not None:
                progress(1)
    return pd.concat(preds, ignore_index=True), pd.DataFrame(rules)


def attach_errors(preds: pd.DataFrame, actual: pd.DataFrame, terms: tuple[str, ...] = FIELD_TERMS) -> pd.DataFrame:
    """``preds`` joined with ``actual`` (``camera, expnum`` + field terms) and ``err_x, err_y, err_xy``
    (px RMS over every fiber and line) and ``err`` = max(x, y); rows without an actual field dropped."""
    act = actual[["camera", "expnum", *FIELD_TERMS]].rename(columns={t: f"true_{t}" for t in FIELD_TERMS})
    out = preds.merge(act, on=["camera", "expnum"], how="inner")
    cols = [f"field_{t}" for t in FIELD_TERMS] if f"field_{FIELD_TERMS[0]}" in out else list(terms)
    for k in ("x", "y", "xy"):
        out[f"err_{k}"] = np.nan
    for cam in out["camera"].unique():
        m = (out["camera"] == cam).to_numpy()
        e = line_errors(cam, out.loc[m, cols].to_numpy(float), out.loc[m, [f"true_{t}" for t in FIELD_TERMS]].to_numpy(float))
        for k in ("x", "y", "xy"):
            out.loc[m, f"err_{k}"] = e[k]
    out["err"] = np.fmax(out["err_x"], out["err_y"])
    return out


def _rms(v) -> float:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    return float(np.sqrt(np.mean(v ** 2))) if len(v) else np.nan


def accuracy(scored: pd.DataFrame, floors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per camera, predictor and subset (``with_arc``, ``first_arc``): n, RMS x / y / xy, and the
    floor's RMS and the ratio to it when ``floors`` (``sim.truth.floors`` columns) is given."""
    s = scored
    if floors is not None:
        s = s.merge(floors.drop(columns=["ref_expnum"], errors="ignore"), on=["camera", "expnum"], how="left")
    rows = []
    for (cam, kind), g in s.groupby(["camera", "predictor"], sort=True):
        for subset, m in (("with_arc", g["ref_expnum"].notna()), ("first_arc", g["ref_expnum"].isna())):
            sub = g[m.to_numpy()]
            if sub.empty:
                continue
            r = {"camera": cam, "predictor": kind, "subset": subset, "n": int(sub["err"].notna().sum()),
                 **{f"rms_{k}": _rms(sub[f"err_{k}"]) for k in ("x", "y", "xy")}}
            if floors is not None:
                which = "meta" if (kind in METADATA_ONLY or subset == "first_arc") else "ref"
                for k in ("x", "y", "xy"):
                    r[f"floor_{k}"] = _rms(sub[f"floor_{which}_{k}"])
                r["floor"] = which
                r["ratio_xy"] = r["rms_xy"] / r["floor_xy"] if r["floor_xy"] else np.nan
            rows.append(r)
    return pd.DataFrame(rows)


def error_vs_time(scored: pd.DataFrame, kinds=("refarc", "reuse", "interp"), bins=TIME_BINS) -> pd.DataFrame:
    """RMS decision error per camera, predictor and bin of hours since the latest arc (first arcs: ``none``)."""
    s = scored[scored["predictor"].isin(kinds)].copy()
    labels = [f"{a:g}-{b:g} h" for a, b in zip(bins[:-1], bins[1:])]
    s["age"] = pd.cut(s["hours_since_arc"], list(bins), right=False, labels=labels).astype(object).fillna("none")
    out = s.groupby(["camera", "predictor", "age"], sort=False).agg(n=("err", "count"), rms=("err", _rms),
                                                                    mean_hours=("hours_since_arc", "mean"))
    return out.reset_index()


def coverage(scored: pd.DataFrame) -> pd.DataFrame:
    """Per camera: share of the primary predictor's exposures whose error is within the 90 % bound."""
    p = scored[scored["primary"] & scored["err"].notna()]
    rows = []
    for cam, g in p.groupby("camera"):
        for subset, m in (("all", np.ones(len(g), bool)), ("with_arc", g["ref_expnum"].notna().to_numpy()),
                          ("first_arc", g["ref_expnum"].isna().to_numpy())):
            sub = g[m]
            rows.append({"camera": cam, "subset": subset, "n": len(sub),
                         "coverage": float((sub["err"] <= sub["upper90"]).mean()) if len(sub) else np.nan,
                         "mean_upper90": float(sub["upper90"].replace(np.inf, np.nan).mean()) if len(sub) else np.nan})
    return pd.DataFrame(rows)


def decisions(scored: pd.DataFrame, rules: pd.DataFrame, tolerances=TOLERANCES) -> pd.DataFrame:
    """Per camera and tolerance, for arcray's rule and each time-only rule: arcs, skipped share,
    unsafe share of the skips (true error above the tolerance)."""
    arcs = scored[scored["flavor"] == "arc"] if "flavor" in scored else scored
    primary = arcs[arcs["primary"]].set_index(["camera", "expnum"])
    reuse = arcs[arcs["predictor"] == "reuse"].set_index(["camera", "expnum"])["err"]
    rows = []
    for cam in sorted(primary.index.get_level_values(0).unique()):
        p = primary.loc[cam]
        for tol in tolerances:
            skip = (p["upper90"] <= tol).to_numpy()
            rows.append(_decision(cam, tol, "arcray", skip, p["err"].to_numpy()))
            for src in sorted(rules["source"].unique()):
                r = rules[(rules["camera"] == cam) & (rules["source"] == src) & np.isclose(rules["tolerance"], tol)]
                T = p["mjd"].map(dict(zip(r["mjd"], r["T_hours"]))).to_numpy(float)
                h = p["hours_since_arc"].to_numpy(float)
                skip = np.isfinite(h) & (h <= T)
                err = p["err"].to_numpy() if src == "primary" else reuse.loc[cam].reindex(p.index).to_numpy()
                rows.append(_decision(cam, tol, f"time-only ({src})", skip, err) | {"median_T_hours": float(np.nanmedian(np.where(np.isfinite(T), T, np.nan))) if np.isfinite(T).any() else np.nan})
    return pd.DataFrame(rows)


def _decision(cam, tol, rule, skip, err) -> dict:
    skip = np.asarray(skip, bool)
    n_skip = int(skip.sum())
    unsafe = int((np.asarray(err)[skip] > tol).sum())
    return {"camera": cam, "tolerance": tol, "rule": rule, "arcs": len(skip), "skipped": n_skip,
            "skipped_share": n_skip / len(skip) if len(skip) else np.nan,
            "unsafe": unsafe, "unsafe_share": unsafe / n_skip if n_skip else 0.0}


def predictor_table(acc: pd.DataFrame, cov: pd.DataFrame, dec: pd.DataFrame, *, primary: str = "refarc",
                    subset: str = "with_arc") -> pd.DataFrame:
    """The report's table, per camera and predictor (exposures of ``subset``): n, RMS x / y / xy, the
    ratio to the floor (when known), the share below "reuse the latest arc" (``below_reuse``, 0.3 =
    30 % lower RMS), and on the primary predictor's row its coverage of the 90 % bound and, per
    tolerance, the share of arcs it skips and the share of those skips that were unsafe."""
    a = acc[acc["subset"] == subset].copy()
    reuse = a[a["predictor"] == "reuse"].set_index("camera")["rms_xy"]
    cols = ["camera", "predictor", "n", "rms_x", "rms_y", "rms_xy"] + \
        [c for c in ("floor_xy", "ratio_xy") if c in a.columns]
    out = a[cols].rename(columns={"ratio_xy": "x_floor"})
    out["below_reuse"] = 1.0 - out["rms_xy"] / out["camera"].map(reuse)
    allc = cov[cov["subset"] == "all"].set_index("camera")["coverage"]
    is_p = out["predictor"] == primary
    out["coverage90"] = np.where(is_p, out["camera"].map(allc), np.nan)
    ours = dec[dec["rule"] == "arcray"]
    for tol in sorted(ours["tolerance"].unique()):
        d = ours[np.isclose(ours["tolerance"], tol)].set_index("camera")
        out[f"skip@{tol:g}"] = np.where(is_p, out["camera"].map(d["skipped_share"]), np.nan)
        out[f"unsafe@{tol:g}"] = np.where(is_p, out["camera"].map(d["unsafe_share"]), np.nan)
    order = {k: i for i, k in enumerate((*PREDICTORS, "reuse", "interp"))}
    return out.sort_values(["camera", "predictor"], key=lambda s: s.map(order) if s.name == "predictor" else s,
                           kind="stable").reset_index(drop=True)


def decision_table(dec: pd.DataFrame) -> pd.DataFrame:
    """Per camera and tolerance: arcray's skips and unsafe skips beside the best safe time-only rule
    (at most ``MAX_UNSAFE`` unsafe skips), and the ratio of their skips."""
    from arcray.predict.uncertainty import MAX_UNSAFE

    rows = []
    for (cam, tol), d in dec.groupby(["camera", "tolerance"], sort=True):
        ours = d[d["rule"] == "arcray"].iloc[0]
        times = d[(d["rule"] != "arcray") & (d["unsafe_share"] <= MAX_UNSAFE)]
        best = times.loc[times["skipped"].idxmax()] if len(times) else None
        t_skip = int(best["skipped"]) if best is not None else 0
        rows.append({"camera": cam, "tolerance": tol, "arcs": int(ours["arcs"]), "arcray_skipped": int(ours["skipped"]),
                     "arcray_unsafe": float(ours["unsafe_share"]),
                     "time_rule": best["rule"] if best is not None else "none safe", "time_skipped": t_skip,
                     "time_unsafe": float(best["unsafe_share"]) if best is not None else np.nan,
                     "skip_ratio": ours["skipped"] / t_skip if t_skip else (np.inf if ours["skipped"] else np.nan)})
    return pd.DataFrame(rows)
