"""The report's representation section: filled from the benchmark's tables, figures drawn, else "not run"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray.io import atomic_write_parquet
from arcray.paths import Layout
from arcray.report.html import build_report


def _write(layout: Layout, name: str, df: pd.DataFrame) -> str:
    path = layout.represent_table(name)
    atomic_write_parquet(path, pa.Table.from_pandas(df, preserve_index=False))
    return path


def tables(corners: bool) -> dict[str, pd.DataFrame]:
    lat = [1, 2, 4, 8]
    losses = pd.DataFrame([{"rep": rep, "camera": "r1", "latent": l, "test_loss": 0.5 / l * (0.9 if "ae" in rep else 1),
                            "floor": 0.01, "epochs": 3} for rep in ("line_pca", "line_ae", "image_pca", "image_ae")
                           for l in lat])
    r2 = pd.DataFrame([{"rep": rep, "camera": "r1", "latent": l, "term": t, "r2": 1 - 1 / (l + 1),
                        "edge_px": e, "n_train": 40, "n_eval": 8, "eval": "test"}
                       for rep in ("line_pca", "line_ae") for l in lat for t, e in (("a0", 0.4), ("a3", 0.02))])
    lines = pd.DataFrame([{"rep": "line_pca", "camera": "r1", "latent": l, "x": 0.1, "y": 0.2,
                           "xy": 0.123456, "sigma": 0.01} for l in lat])
    out = {"losses": losses, "r2": r2, "lines": lines}
    if corners:
        rng = np.random.default_rng(0)
        out["corners"] = pd.DataFrame([{"camera": "r1", "expnum": 5, "window": w, "kind": k, "h": 8, "w": 8,
                                        "pixels": rng.normal(size=64).tolist()}
                                       for w in ("grid_0_0", "grid_3_3") for k in ("data", "noiseless", "image_ae")])
    return out


def test_section_is_filled_from_the_benchmark_tables_with_its_figures(tmp_path):
    layout = Layout(str(tmp_path))
    written = sorted(_write(layout, n, df) for n, df in tables(corners=True).items())
    rep = build_report(str(tmp_path))
    assert rep.sections["represent"] == written
    page = open(rep.index).read()
    section = page[page.index('<h2 id="represent">'):]
    assert "not run" not in section and "0.1235" in section  # the line RMS table
    for fig in ("represent-loss-latent.png", "represent-r2-latent.png", "represent-corners.png"):
        assert f'src="fig/{fig}"' in section
        assert (tmp_path / "report" / "fig" / fig).stat().st_size > 2000


def test_without_corner_windows_the_other_figures_still_come(tmp_path):
    layout = Layout(str(tmp_path))
    for n, df in tables(corners=False).items():
        _write(layout, n, df)
    rep = build_report(str(tmp_path))
    assert len(rep.sections["represent"]) == 3
    page = open(rep.index).read()
    assert "represent-r2-latent.png" in page and "represent-corners.png" not in page
    assert not (tmp_path / "report" / "fig" / "represent-corners.png").exists()
