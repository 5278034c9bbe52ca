"""Figures of ``arcray predict``'s held-out evaluation: each takes rows of the scored predictions
(``Layout.predict_eval_scored``: one row per exposure and predictor, ``predict.evaluate``'s
columns) and an output path, writes a PNG through ``figures.save_png`` and returns the path.

- ``night_timeline``: one night of one camera: the arcs taken (the usable arcs the predictions
  used as references), the predicted error and its 90 % bound growing after each arc, the
  tolerance, the exposures where an arc would be needed, and the true error on top;
- ``residual_quiver``: predicted minus true line centres of a few test exposures, arrows over
  the detector at the true line positions (``optics.line_positions``), one panel per exposure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from arcray import optics
from arcray.analysis.figures import pyplot, save_png
from arcray.optics import FIELD_TERMS


def _hours(t: pd.Series, t0) -> np.ndarray:
    return ((pd.to_datetime(t) - t0) / pd.Timedelta(hours=1)).to_numpy(float)


def night_timeline(rows: pd.DataFrame, path: str, *, title: str = "") -> str:
    """``rows``: the primary predictor's rows of one camera and night (``date_obs``, ``expnum``,
    ``flavor``, ``ref_expnum``, ``expected_error``, ``upper90``, ``tolerance``, ``arc_needed``
    and, when known, ``err``, the true error)."""
    plt = pyplot()
    r = rows.sort_values("expnum")
    t0 = pd.to_datetime(r["date_obs"]).min()
    t = _hours(r["date_obs"], t0)
    when = dict(zip(r["expnum"].astype(int), t))
    fig, ax = plt.subplots(figsize=(10, 3.8))
    refs = sorted({int(e) for e in r["ref_expnum"].dropna()})
    for k, e in enumerate(refs):
        if e in when:
            ax.axvline(when[e], color="0.75", lw=1, zorder=0, label="arc taken (a reference)" if k == 0 else None)
    # each exposure's prediction drawn from its reference arc: the error grows after every arc
    for (_, x), ti in zip(r.iterrows(), t):
        ref = x["ref_expnum"]
        if pd.notna(ref) and int(ref) in when:
            ax.plot([when[int(ref)], ti], [0, x["upper90"]], color="C1", lw=0.6, alpha=0.6)
    ax.plot(t, r["expected_error"], "o-", color="C0", ms=3, lw=1, label="predicted RMS error")
    up = np.where(np.isfinite(r["upper90"].to_numpy(float)), r["upper90"].to_numpy(float), np.nan)
    ax.plot(t, up, "s--", color="C1", ms=3, lw=1, label="90 % bound")
    tol = float(r["tolerance"].iloc[0])
    ax.axhline(tol, color="C3", lw=1, ls=":", label=f"tolerance {tol:g} px")
    need = r["arc_needed"].fillna(True).to_numpy(bool)
    ymax = np.nanmax(np.r_[up[np.isfinite(up)], r["expected_error"].to_numpy(float), tol, 0.1]) * 1.15
    ax.plot(t[need], np.full(need.sum(), ymax * 0.97), "v", color="C3", ms=6, label="arc needed")
    if "err" in r and r["err"].notna().any():
        ax.plot(t, r["err"], "k*", ms=6, label="true error")
        ymax = max(ymax, float(np.nanmax(r["err"])) * 1.1)
    ax.set_ylim(0, ymax)
    ax.set_xlabel(f"hours since {t0:%Y-%m-%d %H:%M} UTC")
    ax.set_ylabel("RMS line-centre error, max(x, y) (px)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    fig.tight_layout()
    return save_png(fig, path)


def residual_quiver(camera: str, predicted: np.ndarray, true: np.ndarray, labels: list[str], path: str, *,
                    fiber_step: int = 40, max_lines: int = 12, title: str = "") -> str:
    """One panel per exposure: at every ``fiber_step``-th alive fiber and ``max_lines`` lamp lines
    spread over the wavelength range, an arrow
    from the true line centre to the predicted one (``predicted``/``true``: ``[N, 12]`` fields, px),
    scaled so the longest arrow of the figure spans ~150 px; the RMS in x and y in the title (of
    the arrows drawn: the scores use every fiber and line)."""
    plt = pyplot()
    predicted, true = np.atleast_2d(predicted), np.atleast_2d(true)
    n = max(1, len(predicted))
    fibers = np.flatnonzero(optics.traces(camera).alive)[::fiber_step]
    n_lines = len(optics.lines(camera).row)
    ids = np.unique(np.linspace(0, n_lines - 1, min(max_lines, n_lines)).round().astype(int))
    pos = []
    for p, q in zip(predicted, true):
        px, py, _ = optics.line_positions(camera, optics.Field.from_array(p), fibers, ids)
        tx, ty, _ = optics.line_positions(camera, optics.Field.from_array(q), fibers, ids)
        pos.append((tx.ravel(), ty.ravel(), (px - tx).ravel(), (py - ty).ravel()))
    mag = max([float(np.nanmax(np.hypot(dx, dy))) for _, _, dx, dy in pos] + [1e-3])
    scale = 150.0 / mag
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.4 * rows), squeeze=False)
    h, w = optics.detector_size(camera)
    for ax, (tx, ty, dx, dy), lab in zip(axes.ravel(), pos, labels):
        ax.quiver(tx, ty, dx * scale, dy * scale, angles="xy", scale_units="xy", scale=1, color="C3", width=0.004)
        rx, ry = np.sqrt(np.mean(dx ** 2)), np.sqrt(np.mean(dy ** 2))
        ax.set_title(f"{lab}\nRMS x {rx:.3f} px, y {ry:.3f} px", fontsize=9)
        ax.set_xlim(0, w)
        ax.set_ylim(0, h)
        ax.set_aspect("equal")
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle((title + "\n" if title else "") + f"predicted - true line centre, longest arrow {mag:.3f} px",
                 fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def fields_of(rows: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """``[N, 12]`` field terms of ``rows`` (``<prefix><term>`` columns, ``FIELD_TERMS`` order)."""
    return rows[[prefix + t for t in FIELD_TERMS]].to_numpy(float)
