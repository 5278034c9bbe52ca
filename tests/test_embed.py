"""embed -> analyze -> regress on a tiny known world, on a real local Ray (the ``ray_local`` fixture)."""

import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from arcray.testing.world import train_tiny_model, write_world
from arcray.cli.apps import app
from arcray.cli.main import _register
from arcray.model.store import load_model
from arcray.paths import Layout
from arcray.report.html import build_report

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("h6world"))
    truth = write_world(root, n_nights=6, per_night=5, seed=3)
    train_tiny_model(root, "b1", latent=2, epochs=30)
    return root, truth


def _run(args):
    _register()
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_embed_regress_end_to_end(ray_local, world):
    root, truth = world
    _run(["embed", "--root", root, "--latent", "2", "--workers", "1"])
    path = Layout(root).latents_file("b1", "arc", 2)
    lat = pq.read_table(path).to_pandas()
    assert len(lat) == len(truth) == 30
    assert {"camera", "mjd", "expnum", "MC1TEMDN", "z0", "z1", "recon_mse", "split"} <= set(lat.columns)
    # known answer: the Ray pipeline gives exactly what the model gives on the same frames
    lm = load_model(Layout(root).model_dir("b1", "arc", 2))
    tab = pq.read_table(f"{Layout(root).calibrated}/camera=b1", partitioning=None).sort_by("expnum")
    x, _ = lm.view.extract_table(tab)
    assert np.allclose(lat.sort_values("expnum")[["z0", "z1"]].to_numpy(), lm.encode(x), atol=1e-5)

    layout = Layout(root)
    _run(["analyze", "--root", root, "--latent", "2"])
    assert os.path.getsize(layout.pearson_figure("b1")) > 1000
    pearson = pd.read_parquet(layout.pearson_table("b1")).set_index("metadata")
    assert list(pearson.columns) == ["z0", "z1"] and "MC1TEMDN" in pearson.index
    r = np.corrcoef(lat["MC1TEMDN"], lat["z1"])[0, 1]  # the same r, computed independently
    assert pearson.loc["MC1TEMDN", "z1"] == pytest.approx(r, abs=1e-9)

    out = _run(["regress", "--root", root, "--latent", "2", "--smoke", "--truth", f"{root}/truth.parquet"])
    assert "refarc" in out
    scores = pd.read_parquet(Layout(root).scores)
    assert set(scores["model"]) == {"autoencoder", "linear", "ridge", "refarc"}
    assert set(scores["split"]) >= {"train", "test"}
    assert np.isfinite(scores["mse"]).all() and (scores["mse"] > 0).all()
    per = pd.read_parquet(layout.predicted_latents("b1"))
    assert len(per) == 30 * 4
    # the score table counts exactly the frames whose shift was measured, and the reconstructions'
    # shifts are measured for most frames and are small (the decoded lines sit on the actual ones)
    measured = per.groupby(["camera", "model", "split"])["dy"].count().rename("n_px").reset_index()
    assert (scores.merge(measured, on=["camera", "model", "split"], suffixes=("", "_per"))
            .eval("n_px == n_px_per").all())
    ae = per[per["model"] == "autoencoder"]
    assert ae["dy"].notna().mean() > 0.8 and (ae["dy"].abs() < 1.0).mean() > 0.8
    frames = pq.read_table(layout.decoded_frames("b1"))
    assert set(frames.column("split").to_pylist()) == {"test"}
    floors = pd.read_parquet(layout.floors)
    assert (floors["floor_meta_px"] > 0).all()

    out = _run(["report", "--root", root])
    assert out.strip() == f"report: 7/13 sections filled -> {layout.report_index}"  # all but qa, curves, loss, recon, represent
    rep = build_report(root)
    filled = {k for k, src in rep.sections.items() if src}
    assert filled == {"scatter", "pearson", "drift", "flagged", "predictions", "mse", "px"}
    assert all(os.path.exists(p) for src in rep.sections.values() for p in src)
    page = open(rep.index).read()
    assert 'src="fig/px_errors.png"' in page and 'src="fig/frames-b1.png"' in page
