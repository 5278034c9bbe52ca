"""Pure model code: shapes, latent sizes, normaliser, masked loss, split, PCA, view, store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arcray.errors import ConfigError, InputError
from arcray.model.ae import ARCHS, IMAGE_KINDS, arch_config, build_autoencoder
from arcray.model.loss import masked_mse, masked_mse_np
from arcray.model.normalise import AsinhNormaliser
from arcray.model.pca import fit_pca, pca_loss
from arcray.model.split import split_codes, split_of_mjd
from arcray.model.store import load_model, save_model
from arcray.model.view import View
from arcray.tensors import tensor_array, to_ndarray
from arcray.testing.calibrated import render_window


@pytest.mark.parametrize("arch", sorted(a for a, kw in ARCHS.items()
                                         if kw.get("kind", "conv") in IMAGE_KINDS))
@pytest.mark.parametrize("latent", [1, 4, 64])
def test_autoencoder_shapes(arch, latent):  # one-window archs; grid_res: tests/test_model_grid.py
    model = build_autoencoder(arch_config(arch, latent, 32, 48))
    x = torch.randn(3, 32, 48)
    assert model.encode(x).shape == (3, latent)
    assert model(x).shape == (3, 32, 48)


def test_autoencoder_rejects_bad_config():
    with pytest.raises(ConfigError, match="latent"):
        arch_config("small3", 65, 64, 64)
    with pytest.raises(ConfigError, match="latent"):
        arch_config("small3", 0, 64, 64)
    with pytest.raises(ConfigError, match="multiple of 8"):
        arch_config("small3", 4, 60, 64)
    with pytest.raises(ConfigError, match="unknown architecture"):
        arch_config("nope", 4, 64, 64)


def test_deeper_arch_is_deeper():
    small = build_autoencoder(arch_config("small3", 4, 64, 64))
    deep = build_autoencoder(arch_config("deep_res", 4, 64, 64))
    assert len(deep.encoder) == 4 and len(small.encoder) == 3
    assert any("ResBlock" in type(m).__name__ for m in deep.modules())


def test_normaliser_invertible_full_dynamic_range():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 3, 5000), rng.uniform(100, 60000, 100), [-20.0, 65535.0]])
    x = x.astype(np.float32)
    norm = AsinhNormaliser.fit(x)
    y = norm.forward(x)
    assert np.isfinite(y).all() and np.abs(y).max() < 1.5          # bright end near 1, not clipped
    np.testing.assert_allclose(norm.inverse(y), x, rtol=1e-4, atol=1e-2)
    assert y[-1] > y[-3]                                           # monotonic at the top end
    assert 1.0 <= norm.scale < 10                                  # ~ the noise level (3 e-)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(norm.inverse(norm.forward(t)).numpy(), x, rtol=1e-4, atol=1e-2)
    assert AsinhNormaliser.from_dict(norm.to_dict()) == norm


def test_normaliser_fit_ignores_masked_pixels():
    x = np.ones((2, 4, 4), np.float32) * 5
    x[0, 0, 0] = 1e9
    m = np.zeros_like(x, np.uint8)
    m[0, 0, 0] = 1
    assert AsinhNormaliser.fit(x, m) == AsinhNormaliser.fit(x[:, 1:], None)
    with pytest.raises(InputError):
        AsinhNormaliser.fit(x, np.ones_like(m))


def test_masked_loss_ignores_masked_pixels():
    target = torch.zeros(2, 4, 4)
    pred = torch.zeros(2, 4, 4)
    pred[0, 1, 1] = 1000.0                      # a huge error, but on a masked pixel
    pred[1, 2, 2] = 2.0                         # a real error of 4 over 31 good pixels
    mask = torch.zeros(2, 4, 4, dtype=torch.uint8)
    mask[0, 1, 1] = 1
    assert masked_mse(pred, target, mask).item() == pytest.approx(4.0 / 31)
    assert masked_mse_np(pred.numpy(), target.numpy(), mask.numpy()) == pytest.approx(4.0 / 31)
    assert masked_mse(pred, target, None).item() > 30


def test_split_by_night_deterministic_and_stable():
    month1 = np.arange(60000, 60030)
    month2 = np.arange(60030, 60060)
    a = split_codes(month1)
    b = split_codes(np.concatenate([month2, month1]))[len(month2):]
    np.testing.assert_array_equal(a, b)                     # a new month reshuffles nothing
    np.testing.assert_array_equal(a, split_codes(month1))   # deterministic
    codes = split_codes(np.arange(59000, 61000))
    frac = np.bincount(codes, minlength=3) / len(codes)
    np.testing.assert_allclose(frac, [0.8, 0.1, 0.1], atol=0.03)
    # every frame of a night (any camera, any exposure) shares the night's split
    frames = np.repeat(month1, 7)
    assert all(len(set(split_codes(frames[frames == m]))) == 1 for m in month1)
    assert split_of_mjd(60002) == "train" and split_of_mjd(60003) == "val"


def test_pca_recovers_low_rank_data():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 64))
    y = (rng.normal(size=(200, 3)) @ basis).reshape(200, 8, 8)
    assert pca_loss(y[:150], y[150:], 3) < 1e-10
    assert pca_loss(y[:150], y[150:], 2) > 0.1
    p = fit_pca(y, 3)
    assert p.encode(y).shape == (200, 3) and p.decode(p.encode(y)).shape == (200, 8, 8)


def _frames(n=4, size=64, rng=None):
    rng = rng or np.random.default_rng(0)
    wins, masks = zip(*[render_window(size, 0.3 * i, -0.2 * i, 1.1, 40000.0, rng)
                        for i in range(n * 2)])
    return np.stack(wins).reshape(n, 2, size, size), np.stack(masks).reshape(n, 2, size, size)


def test_view_extract_crop_window_downsample_and_arrow():
    w, m = _frames()
    m[0, 1, 20, 20] = 1
    v = View(column="windows", window=1, crop=(16, 8, 32, 16))
    x, mm = v.extract(w, m)
    assert x.shape == (4, 32, 16) and mm.shape == (4, 32, 16)
    np.testing.assert_array_equal(x, w[:, 1, 16:48, 8:24])
    assert mm[0, 4, 12] == 1 and mm.sum() == m[:, 1, 16:48, 8:24].sum()
    xd, md = View(window=0, crop=None, downsample=4).extract(w, m)
    assert xd.shape == (4, 16, 16)
    np.testing.assert_allclose(xd[0, 0, 0], w[0, 0, :4, :4].mean(), rtol=1e-5)
    import pyarrow as pa
    table = pa.table({"windows": tensor_array(w), "windows_mask": tensor_array(m)})
    xt, mt = v.extract_table(table)
    np.testing.assert_array_equal(xt, x)
    nested = pa.array(w.tolist())
    np.testing.assert_array_equal(to_ndarray(nested), w)
    row = {"windows": w[2], "windows_mask": m[2]}
    np.testing.assert_array_equal(v.extract_row(row)[0], x[2])
    assert View.from_dict(v.to_dict()) == v
    with pytest.raises(InputError, match="exceeds"):
        View(crop=(200, 0, 64, 64)).extract(w, m)
    with pytest.raises(InputError, match="out of range"):
        View(window=5, crop=None).extract(w, m)


def test_store_roundtrip_in_electrons(tmp_path):
    w, m = _frames()
    view = View(window=0, crop=(16, 16, 32, 32))
    x, _ = view.extract(w, m)
    norm = AsinhNormaliser.fit(x)
    model = build_autoencoder(arch_config("tiny", 3, 32, 32)).eval()
    d = str(tmp_path / "models" / "b1" / "arc" / "latent=3")
    save_model(d, model, normaliser=norm, view=view, camera="b1", flavor="arc",
               metrics={"val_loss": 0.5}, config_hash="abc")
    lm = load_model(d)
    z = lm.encode(x)
    assert z.shape == (4, 3) and z.dtype == np.float32
    with torch.no_grad():
        ref = model.encode(torch.from_numpy(norm.forward(x))).numpy()
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6)
    rec = lm.decode(z)
    assert rec.shape == (4, 32, 32)
    with torch.no_grad():
        ref_rec = norm.inverse(model.decode(torch.from_numpy(ref)).numpy())
    np.testing.assert_allclose(rec, ref_rec, rtol=1e-4, atol=1e-3)
    assert lm.view == view and lm.meta["metrics"]["val_loss"] == 0.5 and lm.latent == 3
    np.testing.assert_array_equal(lm.extract_input(w, m)[0], x)
    with pytest.raises(InputError, match="expects"):
        lm.encode(np.zeros((2, 16, 16), np.float32))
    with pytest.raises(InputError, match="no registered model"):
        load_model(str(tmp_path / "nothing"))


@pytest.mark.gpu
def test_bf16_training_step_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from arcray.training.local import batches
    from arcray.training.loop import run_epoch

    w, m = _frames(n=8)
    x, mm = View(window=0, crop=(16, 16, 32, 32)).extract(w, m)
    norm = AsinhNormaliser.fit(x, mm)
    dev = torch.device("cuda")
    model = build_autoencoder(arch_config("small3", 4, 32, 32)).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = run_epoch(model, batches(x, mm, 4), norm, dev, optimizer=opt, autocast=True)
    for _ in range(20):
        last = run_epoch(model, batches(x, mm, 4), norm, dev, optimizer=opt, autocast=True)
    assert last[0] / last[1] < first[0] / first[1]


def test_pca_encode_ignores_masked_pixels():
    rng = np.random.default_rng(2)
    y = (rng.normal(size=(100, 2)) @ rng.normal(size=(2, 16))).reshape(100, 4, 4)
    p = fit_pca(y, 2)
    bad = y[:3].copy()
    bad[:, 1, 1] = 1e6
    mask = np.zeros(bad.shape, np.uint8)
    mask[:, 1, 1] = 1
    assert pca_loss(y, bad, 2, test_mask=mask) < 0.05
    assert np.abs(p.encode(bad, mask) - p.encode(y[:3])).max() < 2
