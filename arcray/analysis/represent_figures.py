"""Figures of the representation benchmark (``Layout.represent_table``): each takes that table and an
output path, writes a PNG through ``figures.save_png`` and returns the path.

- ``loss_vs_latent``: test loss against latent size per representation (image AE, image PCA, line
  AE, line PCA), log scale, the noise floor dashed, one panel per camera and kind (image / line:
  their losses are in different units and are not compared with each other);
- ``r2_vs_latent``: R^2 on the test nights per state term against latent size, one panel per
  (camera, representation); terms whose edge effect exceeds 0.1 px drawn solid, the others dotted;
- ``corner_windows``: corner windows of one test frame: the data, the noiseless light and each
  representation's reconstruction side by side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from arcray.analysis.figures import pyplot, save_png

EDGE_MIN_PX = 0.1
STYLE = {"image_ae": ("C0", "-"), "image_pca": ("C0", "--"), "line_ae": ("C1", "-"), "line_pca": ("C1", "--")}


def loss_vs_latent(losses: pd.DataFrame, path: str) -> str:
    plt = pyplot()
    losses = losses.assign(kind=losses["rep"].str.split("_").str[0])
    panels = sorted(losses.groupby(["camera", "kind"]).groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (cam, kind) in zip(axes[0], panels):
        d = losses[(losses["camera"] == cam) & (losses["kind"] == kind)]
        for rep, g in d.groupby("rep"):
            g = g.sort_values("latent")
            colour, ls = STYLE.get(rep, ("k", "-"))
            ax.plot(g["latent"], g["test_loss"], ls, color=colour, marker="o", ms=3, label=rep)
        floor = d["floor"].dropna()
        if len(floor):
            ax.axhline(float(floor.iloc[0]), color="grey", ls=":", label="noise floor")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("latent size")
        ax.set_title(f"{cam} {kind}s: test loss (normalised)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path)


def r2_vs_latent(r2: pd.DataFrame, path: str, *, eval_name: str = "test") -> str:
    plt = pyplot()
    r2 = r2[r2["eval"] == eval_name] if "eval" in r2 else r2
    panels = sorted(r2.groupby(["camera", "rep"]).groups)
    ncol = min(4, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, (cam, rep) in zip(axes.flat, panels):
        d = r2[(r2["camera"] == cam) & (r2["rep"] == rep)]
        for i, (term, g) in enumerate(d.groupby("term", sort=False)):
            g = g.sort_values("latent")
            big = bool((g["edge_px"] > EDGE_MIN_PX).any())
            ax.plot(g["latent"], g["r2"].clip(lower=-0.2), "-" if big else ":", marker="o" if big else None,
                    ms=3, lw=1.4 if big else 0.8, color=f"C{i % 10}", label=term)
        ax.axhline(0.9, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.2, 1.02)
        ax.set_xlabel("latent size")
        ax.set_title(f"{cam} {rep}: R^2 per state term ({eval_name})", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save_png(fig, path)


def corner_windows(corners: pd.DataFrame, path: str) -> str:
    """``corners``: rows (camera, expnum, window, kind, h, w, pixels) -> one image per (window,
    kind), windows as rows, kinds as columns, each row on one colour scale."""
    plt = pyplot()
    kinds = list(dict.fromkeys(corners["kind"]))
    keys = list(dict.fromkeys(zip(corners["camera"], corners["window"])))
    fig, axes = plt.subplots(len(keys), len(kinds), figsize=(2.2 * len(kinds), 2.2 * len(keys)), squeeze=False)
    for r, (cam, win) in enumerate(keys):
        rows = corners[(corners["camera"] == cam) & (corners["window"] == win)]
        imgs = {k: np.asarray(g["pixels"].iloc[0], float).reshape(int(g["h"].iloc[0]), int(g["w"].iloc[0]))
                for k, g in rows.groupby("kind")}
        lo, hi = np.percentile(np.concatenate([v.ravel() for v in imgs.values()]), [1, 99.5])
        for c, kind in enumerate(kinds):
            ax = axes[r, c]
            if kind in imgs:
                ax.imshow(imgs[kind], origin="lower", cmap="magma", vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(kind, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{cam} {win}", fontsize=7)
    fig.tight_layout()
    return save_png(fig, path)
