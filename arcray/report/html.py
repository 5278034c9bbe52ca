"""The static HTML report: ``report/index.html`` + ``report/fig/*.png``, from whatever artefacts exist.

Every section reads its inputs by their ``Layout`` names (for every camera, flavor and colour arcray
knows), never by pattern; a section with none of its inputs says "not run" instead of failing, so
the report can be built after any subset of the stages. ``build_report`` returns which Layout paths
filled each section (``ReportSummary.sections``): a test checks them against what a run wrote.
"""

from __future__ import annotations

import html
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from arcray import __version__
from arcray.analysis.figures import SCATTER_COLOURS
from arcray.analysis.latents import z_columns
from arcray.instrument import CAMERAS, STUDY_FLAVORS
from arcray.io import atomic_write_bytes, exists
from arcray.paths import Layout
from arcray.stages import StageSummary

log = logging.getLogger(__name__)

CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
       "img{max-width:100%;border:1px solid #ddd;margin:4px}table{border-collapse:collapse;font-size:13px}"
       "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}.nr{color:#999;font-style:italic}")


@dataclass(frozen=True)
class ReportSummary(StageSummary):
    """``n_ok`` sections filled, ``n_failed`` 0; ``sections``: key -> the Layout paths it read."""

    index: str = ""
    sections: dict[str, list[str]] = field(default_factory=dict)

    def line(self) -> str:
        return f"report: {self.n_ok}/{len(self.sections)} sections filled -> {self.index}"


class _Page:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.parts: list[str] = []
        self.sources: dict[str, list[str]] = {}

    def section(self, key: str, title: str, body: list[str], sources: list[str]) -> None:
        """One section; ``sources``: the Layout paths its body came from (empty: "not run")."""
        self.sources[key] = list(sources) if body else []
        inner = "\n".join(body) if body else '<p class="nr">not run</p>'
        self.parts.append(f'<h2 id="{key}">{html.escape(title)}</h2>\n{inner}')

    def image(self, src: str, caption: str = "") -> str:
        """Copy a figure into ``report/fig/`` (named ``<its directory>-<its name>`` unless drawn
        there) and return its ``<figure>``."""
        fig_dir = os.path.dirname(self.layout.report_figure("x.png"))
        name = os.path.basename(src) if os.path.dirname(os.path.abspath(src)) == os.path.abspath(fig_dir) \
            else os.path.basename(os.path.dirname(src)) + "-" + os.path.basename(src)
        dest = self.layout.report_figure(name)
        if os.path.abspath(src) != os.path.abspath(dest):
            os.makedirs(fig_dir, exist_ok=True)
            shutil.copyfile(src, dest)
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        return f'<figure><img src="fig/{html.escape(name)}" alt="{html.escape(caption or name)}">{cap}</figure>'

    def images(self, paths) -> tuple[list[str], list[str]]:
        """``(figures, sources)`` of the paths that exist, in path order (captioned by name)."""
        found = sorted(p for p in paths if exists(p))
        return [self.image(p, os.path.basename(p)) for p in found], found


def table_html(df: pd.DataFrame, *, digits: int = 4, max_rows: int = 60) -> str:
    return df.head(max_rows).to_html(float_format=lambda v: f"{v:.{digits}g}", na_rep="–", border=0)


def _read(path: str) -> pd.DataFrame | None:
    return pd.read_parquet(path) if exists(path) else None


def _training(p: _Page) -> None:
    lay = p.layout
    for key, kind, title in (("curves", "curves", "Training curves"),
                             ("loss_latent", "loss_vs_latent", "Loss vs latent size (autoencoder vs PCA)"),
                             ("recon", "recon", "Reconstructions")):
        body, src = p.images(lay.train_figure(c, f, kind) for c in CAMERAS for f in STUDY_FLAVORS)
        p.section(key, title, body, src)


def _latents(p: _Page) -> None:
    lay = p.layout
    p.section("scatter", "Latent space", *p.images(lay.latent_scatter_figure(k) for k in SCATTER_COLOURS))
    body, src = p.images(lay.pearson_figure(c) for c in CAMERAS)
    for f in sorted(t for t in (lay.pearson_table(c) for c in CAMERAS) if exists(t)):
        m = pd.read_parquet(f).set_index("metadata")
        top = m.abs().max(axis=1).sort_values(ascending=False).head(8).index
        body.append(f"<h4>{html.escape(os.path.basename(f))}: strongest</h4>" + table_html(m.loc[top], digits=3))
        src.append(f)
    p.section("pearson", "Pearson correlation, metadata x latent", body, src)
    p.section("drift", "Drift: latent vs time", *p.images(lay.drift_figure(c) for c in CAMERAS))
    fl = _read(lay.flagged)
    body = []
    if fl is not None:
        body = [f"<p>{len(fl)} frame(s) flagged.</p>", table_html(fl)] if len(fl) else ["<p>No frame flagged.</p>"]
    p.section("flagged", "Out-of-distribution frames", body, [lay.flagged])


def _predictions(p: _Page) -> None:
    from arcray.analysis import figures

    lay = p.layout
    body, src = [], []
    for cam in sorted(CAMERAS):
        path = lay.predicted_latents(cam)
        if not exists(path):
            continue
        g = pd.read_parquet(path)
        zc = z_columns(g)
        te = g[g["split"] == "test"].sort_values(["expnum", "model"])
        ae = te[te["model"] == "autoencoder"]
        if len(ae):
            preds = {m: ae[["expnum"]].merge(h, on="expnum")[zc].to_numpy(float)
                     for m, h in te[te["model"] != "autoencoder"].groupby("model")}
            out = figures.predicted_vs_actual(ae[zc].to_numpy(float), preds,
                                              lay.report_figure(f"pred_vs_actual-{cam}.png"),
                                              title=f"{cam}: test latents, predicted vs actual")
            body.append(p.image(out, f"{cam}: predicted vs actual latents (test nights)"))
            src.append(path)
        panels = _frame_panels(p, cam)
        body += panels
        src += [lay.decoded_frames(cam)] if panels else []
    p.section("predictions", "Test predictions", body, src)
    _scores(p)


def _scores(p: _Page) -> None:
    from arcray.analysis import figures
    from arcray.analysis.scores import mse_pivot

    lay = p.layout
    scores, floors = _read(lay.scores), _read(lay.floors)
    body = []
    if scores is not None:
        body = ["<h4>MSE (normalised units): autoencoder reconstruction vs decoded predictions</h4>",
                table_html(mse_pivot(scores, "mse")),
                "<h4>RMS line shift vs the actual frame (px)</h4>", table_html(mse_pivot(scores, "px"), digits=3)]
    p.section("mse", "Scores", body, [lay.scores])
    body, src = [], [lay.scores]
    if scores is not None and "split" in scores.columns:
        body.append(p.image(figures.px_errors(scores, lay.report_figure("px_errors.png"), floors=floors),
                            "physical error of each model on test nights"))
        if floors is not None:
            body += ["<h4>Floors from the simulator's hidden random walk (px)</h4>", table_html(floors, digits=3)]
            src.append(lay.floors)
        se = _read(lay.state_errors)
        if se is not None:
            body += ["<h4>Error against the true state (simulated world)</h4>", table_html(se, digits=3)]
            src.append(lay.state_errors)
    p.section("px", "Physical errors", body, src)


def _frame_panels(p: _Page, cam: str) -> list[str]:
    from arcray.analysis import figures
    from arcray.tensors import to_ndarray

    path = p.layout.decoded_frames(cam)
    if not exists(path):
        return []
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    df = t.drop(["image"]).to_pandas()
    img = to_ndarray(t.column("image"))
    models = ["autoencoder"] + sorted(set(df["model"]) - {"autoencoder"})
    rows = []
    for exp in df["expnum"].drop_duplicates().head(3):
        sel = {m: img[np.flatnonzero((df["expnum"] == exp) & (df["model"] == m))[0]]
               for m in models if ((df["expnum"] == exp) & (df["model"] == m)).any()}
        rows.append((f"{exp}", [sel[m] for m in models if m in sel]))
    if not rows or any(len(r[1]) != len(models) for r in rows):
        return []
    out = figures.frame_panels(rows, p.layout.report_figure(f"frames-{cam}.png"),
                               titles=["reconstruction" if m == "autoencoder" else m for m in models])
    return [p.image(out, f"{cam}: decoded test frames (reconstruction and each regressor)")]


def build_report(root: str) -> ReportSummary:
    """Write ``report/index.html`` (+ figures) from the artefacts under ``root``; ``InputError`` (and
    nothing written) when the root does not exist or no stage has written anything a section reads."""
    from arcray.errors import InputError

    t0 = time.perf_counter()
    if not exists(root):
        raise InputError(f"report: {root} does not exist (give the pipeline root the stages wrote to)")
    layout = Layout(root)
    page = _Page(layout)
    from arcray.report.qa import qa_section

    qa_section(page)
    _training(page)
    _latents(page)
    _predictions(page)
    from arcray.report.predict import predict_sections

    predict_sections(page)
    from arcray.report.represent import represent_section

    represent_section(page)
    if not any(page.sources.values()):
        raise InputError(f"report: nothing to report under {root}: no stage has written its outputs there yet")
    nav = " · ".join(f'<a href="#{k}">{k}</a>' for k in page.sources)
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>arcray report</title>"
           f"<style>{CSS}</style></head><body><h1>arcray report</h1>"
           f"<p>arcray {html.escape(__version__)} · root <code>{html.escape(layout.root)}</code></p>"
           f"<p>{nav}</p>" + "\n".join(page.parts) + "</body></html>\n")
    atomic_write_bytes(layout.report_index, doc.encode())
    filled = sum(bool(v) for v in page.sources.values())
    log.info("report written to %s (%d/%d sections filled)", layout.report_index, filled, len(page.sources))
    return ReportSummary(stage="report", n_ok=filled, seconds=time.perf_counter() - t0, unit="sections",
                         outputs={"index": layout.report_index}, index=layout.report_index,
                         sections=page.sources)
