"""The static HTML report: ``report/index.html`` + ``report/fig/*.png``, from whatever artefacts exist.

Every section looks for its inputs under ``Layout``; a section whose inputs are missing says
"not run" instead of failing, so the report can be built after any subset of the stages.
"""

from __future__ import annotations

import glob
import html
import logging
import os
import shutil

import numpy as np
import pandas as pd

from arcray import __version__
from arcray.io import atomic_write_bytes, exists
from arcray.paths import Layout, join

log = logging.getLogger(__name__)

CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
       "img{max-width:100%;border:1px solid #ddd;margin:4px}table{border-collapse:collapse;font-size:13px}"
       "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}.nr{color:#999;font-style:italic}")


class _Page:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.fig_dir = join(layout.report, "fig")
        self.parts: list[str] = []
        self.filled: dict[str, bool] = {}

    def section(self, key: str, title: str, body: list[str]) -> None:
        self.filled[key] = bool(body)
        inner = "\n".join(body) if body else '<p class="nr">not run</p>'
        self.parts.append(f'<h2 id="{key}">{html.escape(title)}</h2>\n{inner}')

    def image(self, src: str, caption: str = "") -> str:
        os.makedirs(self.fig_dir, exist_ok=True)
        name = os.path.basename(os.path.dirname(src)) + "-" + os.path.basename(src) \
            if not src.startswith(self.fig_dir) else os.path.basename(src)
        dest = join(self.fig_dir, name)
        if os.path.abspath(src) != os.path.abspath(dest):
            shutil.copyfile(src, dest)
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        return f'<figure><img src="fig/{html.escape(name)}" alt="{html.escape(caption or name)}">{cap}</figure>'

    def images(self, pattern: str) -> list[str]:
        return [self.image(p, os.path.basename(p)) for p in sorted(glob.glob(pattern))]


def table_html(df: pd.DataFrame, *, digits: int = 4, max_rows: int = 60) -> str:
    return df.head(max_rows).to_html(float_format=lambda v: f"{v:.{digits}g}", na_rep="–", border=0)


def _read(path: str) -> pd.DataFrame | None:
    return pd.read_parquet(path) if exists(path) else None


def _training(p: _Page) -> None:
    t = join(p.layout.analysis, "train")
    p.section("curves", "Training curves", p.images(join(t, "*-curves.png")))
    p.section("loss_latent", "Loss vs latent size (autoencoder vs PCA)", p.images(join(t, "*-loss_vs_latent.png")))
    p.section("recon", "Reconstructions", p.images(join(t, "*-recon.png")))


def _latents(p: _Page) -> None:
    a = p.layout.analysis
    p.section("scatter", "Latent space", p.images(join(a, "latent_scatter_*.png")))
    body = p.images(join(a, "pearson-*.png"))
    for f in sorted(glob.glob(join(a, "pearson-*.parquet"))):
        m = pd.read_parquet(f).set_index("metadata")
        top = m.abs().max(axis=1).sort_values(ascending=False).head(8).index
        body.append(f"<h4>{html.escape(os.path.basename(f))}: strongest</h4>" + table_html(m.loc[top], digits=3))
    p.section("pearson", "Pearson correlation, metadata x latent", body)
    p.section("drift", "Drift: latent vs time", p.images(join(a, "drift-*.png")))
    fl = _read(join(a, "flagged.parquet"))
    body = []
    if fl is not None:
        body = [f"<p>{len(fl)} frame(s) flagged.</p>", table_html(fl)] if len(fl) else ["<p>No frame flagged.</p>"]
    p.section("flagged", "Out-of-distribution frames", body)


def _predictions(p: _Page) -> None:
    from arcray.analysis import figures
    from arcray.analysis.scores import mse_pivot

    reg = p.layout.regress
    scores = _read(p.layout.scores)
    floors = _read(join(reg, "floors.parquet"))
    body = []
    for f in sorted(glob.glob(join(p.layout.predictions, "camera=*", "latents.parquet"))):
        g = pd.read_parquet(f)
        cam = g["camera"].iloc[0]
        zc = sorted((c for c in g.columns if c[:1] == "z" and c[1:].isdigit()), key=lambda c: int(c[1:]))
        te = g[g["split"] == "test"].sort_values(["expnum", "model"])
        ae = te[te["model"] == "autoencoder"]
        if len(ae):
            preds = {m: ae[["expnum"]].merge(h, on="expnum")[zc].to_numpy(float)
                     for m, h in te[te["model"] != "autoencoder"].groupby("model")}
            out = figures.predicted_vs_actual(ae[zc].to_numpy(float), preds, join(p.fig_dir, f"pred_vs_actual-{cam}.png"),
                                              title=f"{cam}: test latents, predicted vs actual")
            body.append(p.image(out, f"{cam}: predicted vs actual latents (test nights)"))
        body += _frame_panels(p, os.path.dirname(f), cam)
    p.section("predictions", "Test predictions", body)
    body = []
    if scores is not None:
        body = ["<h4>MSE (normalised units): autoencoder reconstruction vs decoded predictions</h4>",
                table_html(mse_pivot(scores, "mse")),
                "<h4>RMS line shift vs the actual frame (px)</h4>", table_html(mse_pivot(scores, "px"), digits=3)]
    p.section("mse", "Scores", body)
    body = []
    if scores is not None and "split" in scores.columns:
        body.append(p.image(figures.px_errors(scores, join(p.fig_dir, "px_errors.png"), floors=floors),
                            "physical error of each model on test nights"))
        if floors is not None:
            body += ["<h4>Floors from the simulator's hidden random walk (px)</h4>", table_html(floors, digits=3)]
        se = _read(join(reg, "state_errors.parquet"))
        if se is not None:
            body += ["<h4>Error against the true state (simulated world)</h4>", table_html(se, digits=3)]
    p.section("px", "Physical errors", body)


def _frame_panels(p: _Page, d: str, cam: str) -> list[str]:
    from arcray.analysis import figures
    from arcray.model.view import arrow_to_ndarray

    path = join(d, "frames.parquet")
    if not exists(path):
        return []
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    df = t.drop(["image"]).to_pandas()
    img = arrow_to_ndarray(t.column("image"))
    models = ["autoencoder"] + sorted(set(df["model"]) - {"autoencoder"})
    rows = []
    for exp in df["expnum"].drop_duplicates().head(3):
        sel = {m: img[np.flatnonzero((df["expnum"] == exp) & (df["model"] == m))[0]]
               for m in models if ((df["expnum"] == exp) & (df["model"] == m)).any()}
        rows.append((f"{exp}", [sel[m] for m in models if m in sel]))
    if not rows or any(len(r[1]) != len(models) for r in rows):
        return []
    out = figures.frame_panels(rows, join(p.fig_dir, f"frames-{cam}.png"),
                               titles=["reconstruction" if m == "autoencoder" else m for m in models])
    return [p.image(out, f"{cam}: decoded test frames (reconstruction and each regressor)")]


def build_report(root: str) -> str:
    """Write ``report/index.html`` (+ figures) from the artefacts under ``root``; return its path."""
    layout = Layout(root)
    page = _Page(layout)
    _training(page)
    _latents(page)
    _predictions(page)
    nav = " · ".join(f'<a href="#{k}">{k}</a>' for k in page.filled)
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>arcray report</title>"
           f"<style>{CSS}</style></head><body><h1>arcray report</h1>"
           f"<p>arcray {html.escape(__version__)} · root <code>{html.escape(layout.root)}</code></p>"
           f"<p>{nav}</p>" + "\n".join(page.parts) + "</body></html>\n")
    atomic_write_bytes(layout.report_index, doc.encode())
    log.info("report written to %s (%d/%d sections filled)", layout.report_index,
             sum(page.filled.values()), len(page.filled))
    return layout.report_index
