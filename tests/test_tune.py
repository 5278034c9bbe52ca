"""A tiny Ray Tune search (2 latent sizes, 1 epoch) through the real `arcray tune` command."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from arcray.model.store import load_model
from arcray.paths import Layout
from arcray.testing.calibrated import write_synthetic_dataset


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(500)
def test_tiny_tune_registers_models_and_writes_results(ray_local, tmp_path):
    from arcray.cli.apps import app
    from arcray.cli.main import _register

    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    write_synthetic_dataset(data, cameras=("b1",), window_size=64, seed=5)
    _register()
    res = CliRunner().invoke(app, ["tune", "--data", data, "--out", out, "--camera", "all",
                                   "--latents", "2,4", "--archs", "tiny", "--epochs", "1",
                                   "--crop", "16,16,32,32"])
    assert res.exit_code == 0, res.output
    layout = Layout(out)
    table = pq.read_table(layout.tune_results).to_pandas()
    assert sorted(table["latent"]) == [2, 4] and set(table["camera"]) == {"b1"}
    assert (table["status"] == "ok").all() and table["registered"].all()
    assert (table["epochs_run"] == 1).all()
    assert (table["pca_val_loss"] > 0).all() and table["test_loss"].notna().all()
    for lat in (2, 4):
        lm = load_model(layout.model_dir("b1", "arc", lat))
        assert lm.latent == lat and lm.meta["arch"] == "tiny"
        x = np.full((2, 32, 32), 100.0, np.float32)
        assert lm.encode(x).shape == (2, lat) and lm.decode(lm.encode(x)).shape == (2, 32, 32)
    figs = sorted(os.listdir(os.path.join(layout.analysis, "train")))
    assert figs == ["b1-arc-curves.png", "b1-arc-loss_vs_latent.png", "b1-arc-recon.png"]
    assert "b1 latent=2" in res.output and "b1 latent=4" in res.output


def test_cli_rejects_bad_options(tmp_path):
    from arcray.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["tune", "--data", str(tmp_path), "--out", str(tmp_path), "--latents", "a,b"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path), "--latent", "99"])
    assert e.value.code == 2
