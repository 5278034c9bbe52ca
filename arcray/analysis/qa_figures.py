"""Figures of the measured calibration state (``Layout.measured_frames``): each takes rows of that
table and an output path, writes a PNG through ``figures.save_png`` and returns the path.

- ``field_quiver``: the fitted displacement field of a few frames over the detector (arrows
  scaled up), with and without its global shift, and the per-quadrant widths beside it;
- ``terms_over_time``: the affine terms and the width over the nights, per camera;
- ``terms_vs_temperature``: the same against the spectrograph temperature;
- ``night_trends``: the QA quantities per night against the limits, one night highlighted;
- ``latent_trends``: the learned latent per night, one night highlighted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from arcray import optics
from arcray.analysis.figures import pyplot, save_png
from arcray.optics import TERMS_S, TERMS_X, TERMS_Y

AFFINE = ("a0", "a1", "a2", "b0", "b1", "b2", "s0")
TEMPERATURE = ("MC1TEMDN", "B2CAMT", "R2CAMT")  # spectrograph temperature by observatory, C
FIELD_TREND = ("a0", "b0", "s0")


def _field(row: pd.Series, prefix: str = "") -> optics.Field:
    vals = {t: float(row[prefix + t]) for t in TERMS_X + TERMS_Y if pd.notna(row.get(prefix + t))}
    vals.update({t: float(row[t]) for t in TERMS_S if pd.notna(row.get(t))})
    return optics.Field(**vals)


def field_quiver(rows: pd.DataFrame, path: str, *, grid: int = 9, title: str = "") -> str:
    """One row of panels per frame: the field against the nominal model, the same without its
    global shift (a0, b0), and WSIGMA (arcs) or XSIGMA (flats) per quadrant."""
    plt = pyplot()
    n = max(1, len(rows))
    fig, axes = plt.subplots(n, 3, figsize=(12, 3.6 * n), squeeze=False)
    u, v = np.meshgrid(np.linspace(-0.95, 0.95, grid), np.linspace(-0.95, 0.95, grid))
    for i, (_, r) in enumerate(rows.iterrows()):
        f = _field(r)
        cam = str(r["camera"])
        x, y = optics.denormalised(cam, u, v)
        dx, dy = f.dx(u, v), f.dy(u, v)
        for j, (ax, (ex, ey), what) in enumerate(zip(axes[i][:2], ((dx, dy), (dx - f.a0, dy - f.b0)),
                                                     ("field vs nominal", "without the global shift"))):
            mag = float(np.nanmax(np.hypot(ex, ey))) or 1.0
            scale = 250.0 / mag  # the longest arrow spans ~250 px of the detector
            ax.quiver(x, y, ex * scale, ey * scale, angles="xy", scale_units="xy", scale=1, color="C0" if j else "C3")
            ax.set_title(f"{cam} {int(r['mjd'])}/{int(r['expnum'])}: {what}\nlongest arrow {mag:.3f} px", fontsize=9)
            h, w = optics.detector_size(cam)
            ax.set_xlim(0, w)
            ax.set_ylim(0, h)
            ax.set_aspect("equal")
            ax.set_xlabel("x (column, px)")
            ax.set_ylabel("y (row, px)")
        key = "WSIGMA" if r.get("flavor") == "arc" else "XSIGMA"
        q = np.array([[r.get(f"{key}_Q2"), r.get(f"{key}_Q3")], [r.get(f"{key}_Q0"), r.get(f"{key}_Q1")]], float)
        ax = axes[i][2]
        im = ax.imshow(q, cmap="viridis", vmin=0.85, vmax=1.45)
        for (a, b), val in np.ndenumerate(q):
            ax.text(b, a, "–" if np.isnan(val) else f"{val:.3f}", ha="center", va="center", color="w", fontsize=11)
        ax.set_xticks([0, 1], ["left", "right"])
        ax.set_yticks([0, 1], ["upper", "lower"])
        ax.set_title(f"{key} per quadrant (px)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path)


def _time_axis(df: pd.DataFrame) -> np.ndarray:
    if "date_obs" in df and df["date_obs"].notna().any():
        t = pd.to_datetime(df["date_obs"])
        return ((t - pd.Timestamp("1858-11-17")).dt.total_seconds() / 86400.0).to_numpy(float)
    return df["mjd"].to_numpy(float) + df["expnum"].rank(pct=True).to_numpy(float) * 0.5


def terms_over_time(df: pd.DataFrame, path: str, *, title: str = "") -> str:
    """The affine terms and s0 of the measured arcs against time (MJD), one colour per camera."""
    return _terms_against(df, path, "MJD", lambda d: _time_axis(d), title)


def terms_vs_temperature(df: pd.DataFrame, path: str, *, title: str = "") -> str:
    """The same terms against the spectrograph temperature (the first of ``TEMPERATURE`` present)."""
    col = next((c for c in TEMPERATURE if c in df and df[c].notna().any()), None)
    if col is None:
        raise ValueError("no spectrograph temperature in the table")
    return _terms_against(df, path, f"{col} (C)", lambda d: d[col].to_numpy(float), title)


def _terms_against(df: pd.DataFrame, path: str, xlabel: str, xof, title: str) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(14, 6), sharex=True)
    for cam, d in df.groupby("camera"):
        x = xof(d)
        for ax, term in zip(axes.flat, AFFINE):
            ax.plot(x, d[term].to_numpy(float), ".", ms=4, label=cam)
    for ax, term in zip(axes.flat, AFFINE):
        ax.set_title(f"{term} (px at the edge)", fontsize=9)
        ax.grid(alpha=0.3)
    axes.flat[-1].axis("off")
    axes.flat[0].legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel(xlabel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path)


def night_trends(df: pd.DataFrame, mjd: int, path: str, limits=None, *,
                 terms=("WSIGMA", "NLAMPS", "BESTCORR", "w_shift", "XSIGMA", "NGOODFIBER", "a0", "b0", "s0")) -> str:
    """Per camera, each quantity's per-night median over the nights in ``df`` (frames as dots), the
    night ``mjd`` in black, and the green band of the QA limits (``measure.qa.Limits``) shaded.
    Field terms (a0, b0, s0) leave out frames whose NLAMPS or BESTCORR is red: a field fitted to a
    frame without the right light would swamp the axis."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    bad = np.zeros(len(df), bool)
    for q in ("NLAMPS_status", "BESTCORR_status"):
        if q in df:
            bad |= (df[q] == "red").to_numpy()
    terms = [t for t in terms if t in df and df[t].notna().any()]
    ncol = 4
    nrow = max(1, -(-len(terms) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(14, 3.2 * nrow), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        sel = df[term].notna().to_numpy() & ~(bad if term in FIELD_TREND else np.zeros(len(df), bool))
        for i, (cam, d) in enumerate(df[sel].groupby("camera")):
            med = d.groupby("mjd")[term].median()
            ax.plot(d["mjd"], d[term], ".", ms=3, alpha=0.35, color=f"C{i}")
            ax.plot(med.index, med.to_numpy(float), "-o", ms=3, color=f"C{i}", label=str(cam))
            tonight = d[d["mjd"] == mjd]
            ax.plot(tonight["mjd"], tonight[term], "k.", ms=5)
            rule = None
            if limits is not None:
                for flavor in ("arc", "flat"):
                    rule = rule or limits.for_frame(str(cam), flavor).get(term)
            if rule is not None:
                lo, hi = (v if np.isfinite(v) else np.nan for v in rule.green)
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.axhspan(lo, hi, color=f"C{i}", alpha=0.06)
                else:
                    for v in (lo, hi):
                        if np.isfinite(v):
                            ax.axhline(v, color=f"C{i}", ls=":", lw=1)
        ax.set_title(term, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xlabel("MJD")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    if terms:
        axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"QA quantities per night up to {mjd}")
    fig.tight_layout()
    return save_png(fig, path)


def latent_trends(lat: pd.DataFrame, mjd: int, path: str) -> str:
    """Each latent dimension's per-night median per camera (frames as dots), night ``mjd`` in black:
    the learned calibration state drifting over the nights (``arcray embed``'s latents)."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    zc = [c for c in lat.columns if c.startswith("z") and c[1:].isdigit()]
    zc = sorted(zc, key=lambda c: int(c[1:]))
    fig, axes = plt.subplots(1, max(1, len(zc)), figsize=(3.5 * max(1, len(zc)), 3.2), squeeze=False)
    for ax, z in zip(axes[0], zc):
        for i, (cam, d) in enumerate(lat.groupby("camera")):
            med = d.groupby("mjd")[z].median()
            ax.plot(d["mjd"], d[z], ".", ms=3, alpha=0.35, color=f"C{i}")
            ax.plot(med.index, med.to_numpy(float), "-o", ms=3, color=f"C{i}", label=str(cam))
            tonight = d[d["mjd"] == mjd]
            ax.plot(tonight["mjd"], tonight[z], "k.", ms=5)
        ax.set_title(z, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xlabel("MJD")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"latent per night up to {mjd}")
    fig.tight_layout()
    return save_png(fig, path)
