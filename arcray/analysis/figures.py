"""The analysis figures (matplotlib, Agg backend, written as PNG). Each function takes data and an
output path, writes the figure atomically and returns the path.

``pyplot()`` and ``save_png(fig, path)`` are the one way arcray makes and writes a figure (the
training figures use them too): the backend is forced to Agg, the PNG is written atomically and
the figure is closed, so a long run never accumulates open figures."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from arcray.io import atomic_write_bytes


# Scatter figures of the latent space: coloured by camera, then by these header values when known.
SCATTER_COLOURS = ("camera", "MC1TEMDN", "HUMIDITY", "ALT", "COLLA")


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str, *, dpi: int = 90) -> str:
    """Write ``fig`` as a PNG at ``path`` atomically, close it, return ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _xy(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str]:
    Z = np.asarray(Z, dtype=np.float64).reshape(len(Z), -1)
    if Z.shape[1] >= 2:
        return Z[:, 0], Z[:, 1], "z0", "z1"
    return np.arange(len(Z)), Z[:, 0], "frame", "z0"


def latent_scatter(Z: np.ndarray, colour, path: str, *, label: str, title: str = "") -> str:
    """z0 vs z1 coloured by ``colour`` (categorical strings get a legend, numbers a colour bar)."""
    plt = pyplot()
    x, y, xl, yl = _xy(Z)
    colour = np.asarray(colour)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if colour.dtype.kind in "OUSb":
        for v in pd.unique(colour):
            m = colour == v
            ax.scatter(x[m], y[m], s=10, label=str(v), alpha=0.8)
        ax.legend(title=label, fontsize=8)
    else:
        sc = ax.scatter(x, y, c=colour.astype(float), s=10, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=label)
    ax.set(xlabel=xl, ylabel=yl, title=title or f"latent space coloured by {label}")
    return save_png(fig, path)


def pearson_heatmap(matrix: pd.DataFrame, path: str, *, title: str = "Pearson r, metadata x latent") -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * matrix.shape[1], 1.0 + 0.22 * matrix.shape[0]))
    im = ax.imshow(matrix.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns)
    ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=7)
    fig.colorbar(im, ax=ax, label="r")
    ax.set_title(title)
    return save_png(fig, path)


def latent_drift(t: np.ndarray, Z: np.ndarray, path: str, *, flagged: np.ndarray | None = None,
                 title: str = "latent vs time") -> str:
    """Each latent dimension against time (``t``: MJD with fraction, or any monotonic number)."""
    plt = pyplot()
    Z = np.asarray(Z, dtype=np.float64).reshape(len(Z), -1)
    k = min(Z.shape[1], 4)
    fig, axes = plt.subplots(k, 1, figsize=(7, 1.8 * k + 0.5), sharex=True, squeeze=False)
    for j in range(k):
        ax = axes[j, 0]
        ax.plot(t, Z[:, j], ".", ms=3)
        if flagged is not None and np.any(flagged):
            ax.plot(np.asarray(t)[flagged], Z[flagged, j], "rx", ms=6, label="flagged")
            ax.legend(fontsize=7)
        ax.set_ylabel(f"z{j}")
    axes[-1, 0].set_xlabel("MJD")
    axes[0, 0].set_title(title)
    return save_png(fig, path)


def predicted_vs_actual(Z_true: np.ndarray, preds: dict[str, np.ndarray], path: str, *,
                        title: str = "test latents: predicted vs actual") -> str:
    plt = pyplot()
    Z_true = np.asarray(Z_true).reshape(len(Z_true), -1)
    k = min(Z_true.shape[1], 4)
    fig, axes = plt.subplots(1, k, figsize=(4 * k, 3.8), squeeze=False)
    for j in range(k):
        ax = axes[0, j]
        for name, p in preds.items():
            ax.plot(Z_true[:, j], np.asarray(p).reshape(len(p), -1)[:, j], ".", ms=4, label=name)
        lo, hi = np.nanmin(Z_true[:, j]), np.nanmax(Z_true[:, j])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(xlabel=f"actual z{j}", ylabel=f"predicted z{j}")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    return save_png(fig, path)


def frame_panels(rows: list[tuple[str, list[np.ndarray]]], path: str, *, titles: list[str]) -> str:
    """A grid of images: one row per frame (``(label, [img per column])``), columns titled."""
    plt = pyplot()
    n, k = len(rows), len(titles)
    fig, axes = plt.subplots(n, k, figsize=(2.4 * k, 2.4 * n), squeeze=False)
    for i, (label, imgs) in enumerate(rows):
        vmax = float(np.nanpercentile(imgs[0], 99.5)) or 1.0
        for j, img in enumerate(imgs):
            ax = axes[i, j]
            ax.imshow(np.arcsinh(np.asarray(img) / max(vmax / 50, 1e-6)), cmap="magma", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
        axes[i, 0].set_ylabel(label, fontsize=8)
    return save_png(fig, path)


def px_errors(scores: pd.DataFrame, path: str, *, floors: pd.DataFrame | None = None,
              split: str = "test") -> str:
    """Bar chart of the RMS line shift (px) per model and camera, with the truth floors if known."""
    plt = pyplot()
    s = scores[scores["split"] == split]
    cams = sorted(s["camera"].unique())
    models = list(dict.fromkeys(s["model"]))
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(cams) * max(len(models), 1) / 3, 4))
    w = 0.8 / max(len(models), 1)
    for i, mdl in enumerate(models):
        v = [s[(s.camera == c) & (s.model == mdl)]["px"].mean() for c in cams]
        ax.bar(np.arange(len(cams)) + i * w, v, w, label=mdl)
    if floors is not None and not floors.empty:
        f = floors[floors["split"] == split]
        for ci, c in enumerate(cams):
            r = f[f.camera == c]
            if len(r):
                x0, x1 = ci - 0.1, ci + 0.8
                ax.hlines(r["floor_meta_px"].iloc[0], x0, x1, colors="k", linestyles="--",
                          label="floor (metadata)" if ci == 0 else None)
                ax.hlines(r["floor_ref_px"].iloc[0], x0, x1, colors="grey", linestyles=":",
                          label="floor (reference arc)" if ci == 0 else None)
    ax.set_xticks(np.arange(len(cams)) + 0.4 - w / 2, cams)
    ax.set(ylabel="RMS line shift (px)", title=f"physical error on {split} frames")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not on them
    return save_png(fig, path)

