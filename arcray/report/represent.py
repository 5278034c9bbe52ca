"""The report's representation section, from ``Layout.represent_table`` (``benchmarks/bench_represent.py``).

Test loss per representation and latent size against the noise floor, the reconstruction
line-position RMS (px), and the figures: loss vs latent (image AE, image PCA, line AE, line PCA),
R^2 per state term vs latent, reconstructions of corner windows. "not run" when the benchmark has
written nothing under the root.
"""

from __future__ import annotations

import pandas as pd

from arcray.io import exists

KEY, TITLE = "represent", "Representations against the truth (images and line vectors)"


def represent_section(page) -> None:
    """Add the ``represent`` section to a report page (``report.html._Page``)."""
    from arcray.analysis import represent_figures as rf
    from arcray.report.html import table_html

    lay = page.layout
    paths = {n: lay.represent_table(n) for n in ("losses", "r2", "lines", "corners")}
    found = {n: p for n, p in paths.items() if exists(p)}
    if "losses" not in found:
        page.section(KEY, TITLE, [], [])
        return
    tables = {n: pd.read_parquet(p) for n, p in found.items()}
    losses = tables["losses"]
    piv = losses.pivot_table(index=["camera", "latent"], columns="rep", values="test_loss")
    piv["floor"] = losses.groupby(["camera", "latent"])["floor"].first()
    body = ["<p>Test-night loss (masked MSE, normalised units; image and line losses are in different "
            "units) and the noise floor: the loss of the truth (noiseless light or true line centres) "
            "against the data.</p>", table_html(piv.reset_index(), digits=4),
            page.image(rf.loss_vs_latent(losses, lay.report_figure("represent-loss-latent.png")),
                       "test loss vs latent size per representation, noise floor dotted")]
    if "lines" in tables:
        lines = tables["lines"].pivot_table(index=["camera", "latent"], columns="rep", values="xy")
        body += ["<h4>Reconstruction line-position RMS on the test nights (px, against the true "
                 "centres; latent 0 = the measured lines themselves)</h4>", table_html(lines.reset_index())]
    if "r2" in tables and len(tables["r2"]):
        body.append(page.image(rf.r2_vs_latent(tables["r2"], lay.report_figure("represent-r2-latent.png")),
                               "R^2 per state term vs latent size (test nights); solid: edge effect > 0.1 px"))
    if "corners" in tables and len(tables["corners"]):
        body.append(page.image(rf.corner_windows(tables["corners"], lay.report_figure("represent-corners.png")),
                               "corner windows of a test frame: data, noiseless light, reconstructions"))
    page.section(KEY, TITLE, body, sorted(found.values()))
