"""The study's figures per (camera, flavor), made automatically (matplotlib, Agg backend).

- ``curves``: validation (solid) and training (dashed) loss vs epoch, best trial per latent size;
- ``loss_vs_latent``: final validation/test loss vs latent size, autoencoder and PCA;
- ``reconstructions``: the same test frames, original and reconstructed at several latent sizes.
Written at ``Layout.train_figure(camera, flavor, kind)``, ``kind`` one of ``TRAIN_FIGURES``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from arcray.analysis.figures import pyplot, save_png
from arcray.model.store import load_model
from arcray.paths import Layout

DPI = 110


def make_figures(layout: Layout, table: pd.DataFrame, histories: dict, test_frames: np.ndarray,
                 *, camera: str, flavor: str, n_frames: int = 3, view: str = "window0") -> list[str]:
    """Write the three figures of ``view``'s models; return their paths. Reconstructions show
    images only: the first window of a grid view, none for line vectors."""
    plt = pyplot()
    out = []
    reg = table[table["registered"]].sort_values("latent")
    fig, ax = plt.subplots(figsize=(6, 4))
    for _, row in reg.iterrows():
        h = histories.get(row["trial_id"], pd.DataFrame())
        if h.empty:
            continue
        line, = ax.plot(h["epoch"], h["val_loss"], label=f"latent {row['latent']} ({row['arch']})")
        ax.plot(h["epoch"], h["train_loss"], "--", color=line.get_color(), alpha=0.6)
    ax.set(xlabel="epoch", ylabel="masked MSE (normalised)", yscale="log",
           title=f"{camera} {flavor}: training curves")
    ax.legend(fontsize=7)
    out.append(save_png(fig, layout.train_figure(camera, flavor, "curves"), dpi=DPI))

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(reg["latent"], reg["best_val_loss"], "o-", label="autoencoder (val)")
    if reg["test_loss"].notna().any():
        ax.plot(reg["latent"], reg["test_loss"], "s:", label="autoencoder (test)")
    pca = table.groupby("latent")[["pca_val_loss"]].first().reset_index()
    ax.plot(pca["latent"], pca["pca_val_loss"], "^-", label="PCA (val)")
    ax.set(xlabel="latent size", ylabel="masked MSE (normalised)", yscale="log",
           title=f"{camera} {flavor}: loss vs latent size")
    ax.legend(fontsize=8)
    out.append(save_png(fig, layout.train_figure(camera, flavor, "loss_vs_latent"), dpi=DPI))

    frames = np.asarray(test_frames)[:n_frames]
    if len(frames) and len(reg) and frames.ndim in (3, 4):
        out.append(_reconstructions(plt, layout, reg, frames, camera, flavor, view))
    return out


def _reconstructions(plt, layout, reg, frames, camera, flavor, view) -> str:
    lats = list(reg["latent"])
    fig, axes = plt.subplots(len(frames), 1 + len(lats), squeeze=False,
                             figsize=(1.8 * (1 + len(lats)), 1.8 * len(frames)))
    models = {lat: load_model(layout.model_dir(camera, flavor, lat, view)) for lat in lats}
    vmax = float(np.arcsinh(np.percentile(frames, 99.5)))
    first = (lambda a: a[0]) if frames.ndim == 4 else (lambda a: a)  # a grid: its first window
    for i, x in enumerate(frames):
        axes[i, 0].imshow(np.arcsinh(first(x)), vmin=0, vmax=vmax, cmap="magma")
        axes[i, 0].set_title("data" if i == 0 else "", fontsize=8)
        for j, lat in enumerate(lats, start=1):
            rec = first(models[lat].reconstruct(x[None])[0])
            axes[i, j].imshow(np.arcsinh(np.clip(rec, 0, None)), vmin=0, vmax=vmax, cmap="magma")
            if i == 0:
                axes[i, j].set_title(f"latent {lat}", fontsize=8)
    for a in axes.ravel():
        a.set_xticks([]), a.set_yticks([])
    fig.suptitle(f"{camera} {flavor}: test-night reconstructions (asinh stretch)", fontsize=9)
    return save_png(fig, layout.train_figure(camera, flavor, "recon"), dpi=DPI)
