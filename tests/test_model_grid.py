"""The detector grid (issue 14): windows over the whole detector, the grid view, the grid model."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from arcray.calib.config import CalibConfig, default_windows
from arcray.calib.views import window_origins
from arcray.instrument import GEOMETRY, fiber_x, row_of_wavelength
from arcray.model.ae import arch_config, build_autoencoder
from arcray.model.normalise import AsinhNormaliser
from arcray.model.pca import fit_pca
from arcray.model.pca_ae import init_model_from_data
from arcray.model.store import load_model, save_model
from arcray.model.view import View
from arcray.paths import Layout

GRID_POS = tuple((u, v) for v in (-1.0, 1.0) for u in (-1.0, 1.0))


@pytest.mark.parametrize("camera", ["b1", "r1", "b2", "r2"])
def test_view_grid_covers_every_quadrant_and_corner(camera):
    cfg = CalibConfig()
    specs = cfg.for_camera(camera).windows
    size = cfg.window_size
    assert specs[:8] == default_windows(camera)  # window 0 (the window0 view) is still first
    grid = [i for i, s in enumerate(specs) if s.name.startswith("grid_")]
    assert len(grid) == 16 and grid == list(range(8, 24))
    origins = window_origins(camera, specs, size)
    nrow, ncol = GEOMETRY[camera].trimmed_shape
    centres = np.array([(r + size / 2, c + size / 2) for r, c in (origins[i] for i in grid)])
    quadrants = {(r >= nrow / 2, c >= ncol / 2) for r, c in centres}
    assert quadrants == {(False, False), (False, True), (True, False), (True, True)}
    # corners: the first and last rows of windows sit on the bluest and reddest lamp lines, in the
    # outer 30 % of the detector's rows; the outer columns of windows reach the first and last
    # fiber (the illuminated detector)
    fx = fiber_x(camera)
    rows_c = sorted({r for r, _ in centres})
    assert rows_c[0] < 0.3 * nrow and rows_c[-1] > 0.7 * nrow and len(rows_c) == 4
    cols0 = [origins[i][1] for i in grid]
    assert min(cols0) <= fx[0] + 4 and max(cols0) + size >= fx[-1] - 4
    # every grid row is on a lamp line: the window's central row is the line's row
    for spec, (r, _) in zip((specs[i] for i in grid), (origins[i] for i in grid)):
        line_row = float(row_of_wavelength(camera, spec.wave))
        assert abs(r + size / 2 - line_row) <= 1 or r in (0, nrow - size)
    # every grid window lies on the frame
    assert all(0 <= r <= nrow - size and 0 <= c <= ncol - size for r, c in (origins[i] for i in grid))


def test_window0_is_the_same_detector_patch_as_before():
    """Window 0 is centred where the 256-px window was, so the central 64x64 is the same patch;
    a model stored with the old crop (96, 96, 64, 64) reads the same pixels of a 128-px window."""
    old = window_origins("b1", default_windows("b1")[:1], 256)[0]
    new = window_origins("b1", default_windows("b1")[:1], 128)[0]
    assert (old[0] + 96, old[1] + 96) == (new[0] + 32, new[1] + 32)
    x = np.random.default_rng(0).normal(size=(2, 24, 128, 128)).astype(np.float32)
    legacy = View.from_dict({"column": "windows", "window": 0, "crop": [96, 96, 64, 64], "downsample": 1})
    named = View.named("window0")
    np.testing.assert_array_equal(legacy.extract(x)[0], x[:, 0, 32:96, 32:96])
    np.testing.assert_array_equal(named.extract(x)[0], legacy.extract(x)[0])
    with pytest.raises(Exception, match="exceeds"):
        View(crop=(0, 0, 200, 200)).extract(x)


def test_grid_view_reads_the_named_windows_together():
    names = [f"w{i}" for i in range(8)] + [f"grid_r{i // 4}_b{i % 4}" for i in range(16)]
    view = View.named("grid", names, size=32)
    assert view.windows == tuple(range(8, 24)) and view.multi
    x = np.arange(3 * 24 * 64 * 64, dtype=np.float32).reshape(3, 24, 64, 64)
    m = np.zeros(x.shape, np.uint8)
    m[1, 9, 30, 30] = 1
    xv, mv = view.extract(x, m)
    assert xv.shape == (3, 16, 32, 32) and mv.shape == xv.shape
    np.testing.assert_array_equal(xv[2, 5], x[2, 13, 16:48, 16:48])
    assert mv[1, 1, 14, 14] == 1 and mv.sum() == 1
    assert View.from_dict(view.to_dict()) == view
    with pytest.raises(Exception, match="no detector-grid windows"):
        View.named("grid", names[:8])


def _grid_batch(n=24, k=4, size=32, seed=0):
    """Frames whose windows move with a shift that depends on the window's position (a
    magnification): the grid model's shift field can follow it, a single window cannot see it."""
    rng = np.random.default_rng(seed)
    yy = np.arange(size, dtype=np.float64)
    out = np.empty((n, k, size, size), np.float32)
    for i in range(n):
        mag = rng.uniform(-1.5, 1.5)
        for j, (u, v) in enumerate(GRID_POS[:k]):
            dy = 0.3 + mag * v
            rows = np.exp(-0.5 * ((yy[:, None] - (np.arange(4, size, 8) + dy)[None]) / 1.1) ** 2).sum(1)
            cols = np.exp(-0.5 * ((yy[:, None] - (np.arange(3, size, 6))[None]) / 1.0) ** 2).sum(1)
            out[i, j] = 2000 * np.outer(rows, cols) + 10 + rng.normal(0, 3, (size, size))
    return out


def test_grid_model_starts_at_pca_and_keeps_its_shapes():
    y = AsinhNormaliser.fit(_grid_batch()).forward(_grid_batch())
    cfg = arch_config("grid_res", 3, 32, 32, n_windows=4, positions=GRID_POS)
    model = init_model_from_data(build_autoencoder(cfg), y)
    with torch.no_grad():
        z = model.encode(torch.from_numpy(y))
        rec = model.decode(z).numpy()
    assert z.shape == (24, 3) and rec.shape == y.shape
    pca = fit_pca(y.reshape(24, -1, 32), 3)
    np.testing.assert_allclose(rec, pca.decode(pca.encode(y.reshape(24, -1, 32))).reshape(y.shape),
                               atol=2e-4)
    assert cfg.input_shape == (4, 32, 32)
    with pytest.raises(Exception, match="position"):
        arch_config("grid_res", 3, 32, 32, n_windows=4, positions=GRID_POS[:2])


def test_grid_model_saves_and_loads_with_its_view(tmp_path):
    cfg = arch_config("grid_res", 2, 32, 32, n_windows=4, positions=GRID_POS)
    model = build_autoencoder(cfg)
    torch.nn.init.normal_(model.shift.weight, std=0.1)  # a non-trivial shift field survives the round trip
    view = View(column="windows", crop=None, centred=32, windows=(0, 1, 2, 3), name="grid")
    d = Layout(str(tmp_path)).model_dir("b1", "arc", 2, "grid")
    assert d.endswith(os.path.join("b1", "arc", "view=grid", "latent=2"))
    assert Layout(str(tmp_path)).model_dir("b1", "arc", 2) == Layout(str(tmp_path)).model_dir("b1", "arc", 2, "window0")
    save_model(d, model, normaliser=AsinhNormaliser(scale=2.0, gain=3.0), view=view, camera="b1",
               flavor="arc")
    lm = load_model(d)
    assert lm.view == view and lm.input_shape == (4, 32, 32)
    x = _grid_batch(n=3)
    with torch.no_grad():
        expect = model(lm.normaliser.forward(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(lm.normaliser.forward(lm.reconstruct(x)), expect, atol=1e-4)
    with pytest.raises(Exception, match="encode expects"):
        lm.encode(x[:, 0])


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_grid_model_killed_mid_run_resumes_and_reconstructs_a_corner_window(ray_local, tmp_path):
    """Ray Train on a tiny synthetic dataset of 4 windows read as a grid: a worker killed at
    epoch 2 resumes from its checkpoint; the registered model redraws the corner window of the
    test nights far better than the training mean image does."""
    from arcray.testing.calibrated import write_synthetic_dataset
    from arcray.training.config import TrainConfig
    from arcray.training.trainer import train_camera

    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    write_synthetic_dataset(data, cameras=("b1",), window_size=64, n_windows=4, seed=3)
    marker = str(tmp_path / "crashed-once")

    def crash_once(epoch: int, rank: int) -> None:  # runs inside the Train worker
        if epoch == 2 and rank == 0 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)

    cfg = TrainConfig(camera="b1", view="grid", arch="grid_res", latent=3, epochs=4, crop_size=32,
                      max_failures=1, patience=10, lr=2e-3)
    res = train_camera(data, out, cfg, epoch_hook=crash_once)
    assert os.path.exists(marker), "the worker never crashed"
    hist = res["history"]
    assert list(hist["epoch"]) == [0, 1, 2, 3] and int(hist["start_epoch"].iloc[-1]) in (1, 2)
    assert res["model_dir"] == Layout(out).model_dir("b1", "arc", 3, "grid")
    lm = load_model(res["model_dir"])
    assert lm.meta["view_name"] == "grid" and lm.input_shape == (4, 32, 32)

    from arcray.model.split import split_labels

    tab = pq.read_table(Layout(data).calibrated_partition("b1", "arc"), partitioning=None)
    x, m = lm.view.extract_table(tab)
    split = split_labels(tab.column("mjd").to_numpy())
    y = lm.normaliser.forward(x)
    test = split == "test"
    rec = lm.normaliser.forward(lm.reconstruct(x[test]))
    corner = ((rec[:, 0] - y[test, 0]) ** 2)[m[test, 0] == 0].mean()
    baseline = ((y[split == "train", 0].mean(0) - y[test, 0]) ** 2)[m[test, 0] == 0].mean()
    assert corner < 0.5 * baseline, (corner, baseline)
    assert res["test_loss"] == pytest.approx(lm.meta["metrics"]["test_loss"])
    assert np.isfinite(res["pca_test_loss"]) and res["test_loss"] < 1.1 * res["pca_test_loss"]
