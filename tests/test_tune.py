"""Ray Tune through the real `arcray tune` command: registered models, results, PCA, the best trial."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from arcray.model.store import load_model
from arcray.paths import TRAIN_FIGURES, Layout
from arcray.testing.calibrated import pca_loss_on_split, write_synthetic_dataset
from arcray.training.tune import best_trials


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tune_registers_the_best_trial_per_latent_and_scores_pca(ray_local, tmp_path, capsys):
    from arcray.cli.main import main

    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    write_synthetic_dataset(data, cameras=("b1",), window_size=64, seed=5)
    with pytest.raises(SystemExit) as exc:
        main(["tune", "--root", data, "--out", out, "--latents", "2,4", "--archs", "tiny",
              "--lrs", "0.003,0.00003", "--epochs", "2", "--crop", "16,16,32,32", "--no-progress"])
    stdout = capsys.readouterr().out
    assert exc.value.code == 0
    layout = Layout(out)
    table = pq.read_table(layout.tune_results).to_pandas()
    assert sorted(table["latent"]) == [2, 2, 4, 4] and set(table["camera"]) == {"b1"}
    assert (table["status"] == "ok").all() and table["registered"].sum() == 2
    for lat, grp in table.groupby("latent"):
        best = grp.loc[grp["best_val_loss"].idxmin()]
        assert best["registered"] and not grp.drop(index=best.name)["registered"].any()
        lm = load_model(layout.model_dir("b1", "arc", lat))
        assert lm.latent == lat and lm.meta["arch"] == "tiny"
        assert lm.meta["metrics"]["trial_id"] == best["trial_id"] and lm.meta["metrics"]["lr"] == best["lr"]
        assert lm.meta["metrics"]["val_loss"] == pytest.approx(best["best_val_loss"])
        # PCA's loss at the same latent, on the validation nights, as computed independently
        assert grp["pca_val_loss"].to_numpy() == pytest.approx(pca_loss_on_split(data, "b1", lm, lat, "val"),
                                                               rel=1e-5)
        assert np.isfinite(best["test_loss"]) and math.isnan(grp.drop(index=best.name)["test_loss"].iloc[0])
        x = np.full((2, 32, 32), 100.0, np.float32)
        assert lm.encode(x).shape == (2, lat) and lm.decode(lm.encode(x)).shape == (2, 32, 32)
    assert table.groupby("latent")["pca_val_loss"].first().is_monotonic_decreasing
    for kind in TRAIN_FIGURES:
        assert os.path.getsize(layout.train_figure("b1", "arc", kind)) > 1000
    assert "b1 latent=2" in stdout and "b1 latent=4" in stdout
    assert "tune: 4 ok, 0 failed trials (2 models registered, " in stdout


def test_tune_cells_views_and_overrides():
    from arcray.training.tune import _groups, cells_of, trial_config

    cells = cells_of([1, 2], ["pca_res", "grid_res"], {"grid": [4]})
    assert cells == [(1, "pca_res"), (2, "pca_res"), (4, "grid_res")]
    assert _groups(["b1", "r1"], cells, [3e-4]) == [(["b1", "r1"], cells)]  # nothing to prune: one Tuner
    # two archs of one view: ASHA per (camera, latent, view), never across views
    groups = _groups(["b1"], cells_of([2], ["pca_res", "small3", "grid_res"]), [3e-4])
    assert groups == [(["b1"], [(2, "pca_res"), (2, "small3")]), (["b1"], [(2, "grid_res")])]
    from arcray.training.config import TrainConfig

    base = TrainConfig().model_dump()
    cfg = trial_config(base, {"camera": "r1", "lr": 3e-4, "cell": {"latent": 4, "arch": "grid_res"}},
                       {"grid": {"lr": 3e-3, "batch_size": 8}})
    assert (cfg.view, cfg.arch, cfg.latent, cfg.lr, cfg.batch_size, cfg.camera) == ("grid", "grid_res", 4, 3e-3, 8, "r1")
    cfg = trial_config(base, {"camera": "b1", "lr": 3e-4, "cell": {"latent": 2, "arch": "pca_res"}},
                       {"grid": {"lr": 3e-3}})
    assert (cfg.view, cfg.lr, cfg.batch_size) == ("window0", 3e-4, 32)


def test_best_trials_picks_the_lowest_validation_loss_among_completed_trials():
    table = pd.DataFrame({
        "camera": ["b1", "b1", "b1", "r1", "r1", "b1"], "latent": [2, 2, 4, 2, 2, 4],
        "status": ["ok", "ok", "ok", "failed", "ok", "ok"],
        "best_val_loss": [0.5, 0.2, 0.3, 0.01, 0.4, 0.1],
        "checkpoint_path": ["a", "b", "c", None, "e", None],  # the last one left no checkpoint
    })
    assert best_trials(table) == [1, 2, 4]


def test_cli_rejects_bad_options(tmp_path, capsys):
    from arcray.cli.main import main

    for args, message in (
        (["tune", "--root", str(tmp_path), "--latents", "a,b"],
         "arcray: error: --latents must be comma-separated integers, got 'a,b'"),
        (["train", "--root", str(tmp_path), "--latent", "99"],
         "arcray: error: bad training options: Input should be less than or equal to 64"),
        (["tune", "--root", str(tmp_path), "--cameras", "b1,x9"],
         "arcray: error: --cameras: unknown x9; valid: b1, r1, b2, r2"),
        (["tune", "--root", str(tmp_path), "--views", "grid,foo"],
         "arcray: error: --views: unknown view 'foo'; choose from window0, grid, lines"),
        (["train", "--root", str(tmp_path), "--arch", "nope"],
         "arcray: error: bad training options: Value error, unknown architecture 'nope'; choose one of "
         "deep_res, grid_res, line_mlp, pca_res, small3, tiny"),
    ):
        with pytest.raises(SystemExit) as e:
            main(args)
        out, err = capsys.readouterr()
        assert e.value.code == 2 and out == "" and err == message + "\n"
