"""pca_res: the PCA-initialised autoencoder (starts at PCA, mean residual, shift head)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from arcray.errors import InputError
from arcray.model.ae import AEConfig, arch_config, build_autoencoder
from arcray.model.loss import masked_mse_np
from arcray.model.normalise import AsinhNormaliser
from arcray.model.pca import fit_pca
from arcray.model.pca_ae import PCAResAutoencoder, init_model_from_data, shift_images
from arcray.model.store import load_model, save_model
from arcray.model.view import View


def shifted_lines(n: int, seed: int, size: int = 32, noise: float = 0.01) -> np.ndarray:
    """Gaussian spots on a grid, all moved by one random sub-pixel (dy, dx) per image."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[:size, :size].astype(float)
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        dy, dx = rng.uniform(-1.5, 1.5, 2)
        img = np.zeros((size, size))
        for y0 in range(6, size - 4, 8):
            for x0 in range(6, size - 4, 8):
                img += np.exp(-((r - y0 - dy) ** 2 + (c - x0 - dx) ** 2) / (2 * 1.0 ** 2))
        out[i] = img + noise * rng.standard_normal((size, size))
    return out


def test_init_reproduces_pca_reconstruction():
    y = shifted_lines(40, 0)
    model = init_model_from_data(build_autoencoder(arch_config("pca_res", 3, 32, 32)), y)
    pca = fit_pca(y, 3)
    test = shifted_lines(10, 1)
    with torch.no_grad():
        rec = model(torch.from_numpy(test)).numpy()
        z = model.encode(torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(rec, pca.decode(pca.encode(test)), atol=2e-4)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-3)  # whitened latents
    assert abs(masked_mse_np(rec, test, None)
               - masked_mse_np(pca.decode(pca.encode(test)), test, None)) < 1e-6


def test_mean_residual_round_trip():
    y = shifted_lines(30, 2)
    model = init_model_from_data(build_autoencoder(arch_config("pca_res", 2, 32, 32)), y)
    mean = torch.from_numpy(y.mean(0, keepdims=True))
    with torch.no_grad():
        assert model.encode(mean).abs().max() < 1e-4          # the mean image codes to 0
        np.testing.assert_allclose(model.decode(torch.zeros(1, 2)).numpy(), mean.numpy(),
                                   atol=1e-4)                  # and 0 decodes to the mean


def test_masked_pixels_count_as_mean_in_init():
    y = shifted_lines(30, 3)
    m = np.zeros(y.shape, np.uint8)
    m[::2, 5, 5] = 1
    y_bad = y.copy()
    y_bad[::2, 5, 5] = 1e3  # garbage under the mask must not shape the components
    model = init_model_from_data(build_autoencoder(arch_config("pca_res", 2, 32, 32)), y_bad, m)
    ref = fit_pca(y_bad, 2, m)
    np.testing.assert_allclose(model.mean.numpy(), ref.mean, atol=1e-5)
    assert abs(model.mean[5 * 32 + 5].item() - y[1::2, 5, 5].mean()) < 1e-4


def test_shift_images_moves_by_whole_and_zero_pixels():
    x = torch.randn(2, 16, 16)
    np.testing.assert_allclose(shift_images(x, torch.zeros(2, 2)).numpy(), x.numpy(), atol=1e-4)
    out = shift_images(x, torch.tensor([[2.0, 0.0], [0.0, -1.0]]))
    np.testing.assert_allclose(out[0, 2:].numpy(), x[0, :-2].numpy(), atol=1e-4)
    np.testing.assert_allclose(out[1, :, :-1].numpy(), x[1, :, 1:].numpy(), atol=1e-4)


@pytest.mark.slow
def test_training_beats_pca_on_shifted_spots():
    """Rigid sub-pixel shifts are nonlinear in pixels: at latent 2 the trained model must beat
    the PCA it started from, on held-out images."""
    from arcray.training.local import fit_local

    torch.manual_seed(0)
    tr, va, te = shifted_lines(64, 10), shifted_lines(16, 11), shifted_lines(16, 12)
    norm = AsinhNormaliser(scale=1.0, gain=1.0)
    y = {k: norm.forward(v) for k, v in (("tr", tr), ("te", te))}
    zeros = lambda a: np.zeros(a.shape, np.uint8)  # noqa: E731
    model, hist = fit_local({"x": tr, "m": zeros(tr)}, {"x": va, "m": zeros(va)},
                            replace(arch_config("pca_res", 2, 32, 32), width=8), norm, lr=3e-3, epochs=10,
                            batch_size=16, patience=10)
    pca = fit_pca(y["tr"], 2)
    with torch.no_grad():
        ae = masked_mse_np(model(torch.from_numpy(y["te"])).numpy(), y["te"], None)
    base = masked_mse_np(pca.decode(pca.encode(y["te"])), y["te"], None)
    assert ae < 0.8 * base, (ae, base)


def test_store_round_trip_and_old_configs(tmp_path):
    y = shifted_lines(20, 4)
    model = init_model_from_data(build_autoencoder(arch_config("pca_res", 2, 32, 32)), y)
    norm = AsinhNormaliser(scale=2.0, gain=3.0)
    save_model(str(tmp_path / "m"), model, normaliser=norm, view=View(crop=(0, 0, 32, 32)),
               camera="b1", flavor="arc")
    loaded = load_model(str(tmp_path / "m"))
    assert isinstance(loaded.model, PCAResAutoencoder) and loaded.meta["arch"] == "pca_res"
    x = norm.inverse(y[:3])
    with torch.no_grad():
        want = model.encode(torch.from_numpy(norm.forward(x))).numpy()
    np.testing.assert_allclose(loaded.encode(x), want, atol=1e-5)
    assert loaded.decode(loaded.encode(x)).shape == (3, 32, 32)
    old = {k: v for k, v in arch_config("small3", 4, 64, 64).to_dict().items() if k != "kind"}
    assert build_autoencoder(AEConfig(**old)).__class__.__name__ == "ConvAutoencoder"


def test_init_rejects_a_pca_of_another_shape():
    model = PCAResAutoencoder(arch_config("pca_res", 3, 32, 32))
    with pytest.raises(InputError, match="does not fit"):
        model.init_from_pca(fit_pca(shifted_lines(10, 5), 2))


class _Prepared:
    """The two things ``initial_state`` reads of a ``PreparedData`` (arrays of a split, normaliser)."""

    def __init__(self, x):
        self.x, self.normaliser = x, AsinhNormaliser(scale=1.0, gain=1.0)

    def arrays(self, split, limit=None):
        return {"x": self.x, "m": np.zeros(self.x.shape, np.uint8)}


def test_initial_state_for_ray_workers():
    from arcray.training.trainer import initial_state

    x = shifted_lines(20, 6)
    assert initial_state(arch_config("tiny", 2, 32, 32), _Prepared(x)) is None
    state = initial_state(arch_config("pca_res", 2, 32, 32), _Prepared(x))
    worker = build_autoencoder(arch_config("pca_res", 2, 32, 32))
    worker.load_state_dict(state)  # what train_loop_per_worker does with config["init_state"]
    y = _Prepared(x).normaliser.forward(x)  # the PCA lives in normalised units
    pca = fit_pca(y, 2)
    with torch.no_grad():
        rec = worker(torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(rec, pca.decode(pca.encode(y)), atol=2e-4)
