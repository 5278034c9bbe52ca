"""The vectorised profile fitter on exact pixel-integrated Gaussians with a known answer."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from arcray.measure.profiles import fit_profiles, gaussians

PITCH = 6.55


def _profiles(n, k, rng, sigma, neighbours=True, noise=True):
    origin = rng.integers(100, 4000, n).astype(float)
    mu = origin + (k - 1) / 2 + rng.uniform(-0.5, 0.5, n)
    amp = rng.uniform(3e3, 3e5, n)
    pix = origin[:, None] + np.arange(k)

    def integral(c):
        return ndtr((pix + 0.5 - c[:, None]) / sigma[:, None]) - ndtr((pix - 0.5 - c[:, None]) / sigma[:, None])

    true = amp[:, None] * integral(mu) + 15.0
    if neighbours:
        true += amp[:, None] * 0.9 * integral(mu - PITCH) + amp[:, None] * 1.1 * integral(mu + PITCH)
    data = true + (rng.standard_normal(true.shape) * np.sqrt(true + 28.0) if noise else 0.0)
    return data.astype(np.float32), origin, mu, amp


def _offsets(n, neighbours=True):
    if not neighbours:
        return np.zeros((n, 1))
    return np.tile([0.0, -PITCH, PITCH], (n, 1))


def test_noiseless_profiles_give_the_exact_centre_width_and_flux():
    rng = np.random.default_rng(0)
    n, k = 4000, 9
    sigma = rng.uniform(0.85, 1.45, n)
    data, origin, mu, amp = _profiles(n, k, rng, sigma, noise=False)
    fit = fit_profiles(data, None, origin, mu + rng.uniform(-0.6, 0.6, n), 1.1, _offsets(n), 28.0,
                       iterations=8, converge=1e-4)
    assert fit.ok.all()
    assert np.abs(fit.mu - mu).max() < 2e-4  # the Gaussian-of-variance-sigma^2+1/12 model: no centre bias
    assert np.abs(fit.sigma - sigma).max() < 0.004  # ~0.001-0.002 px high (the documented model error)
    assert np.abs(fit.amp / amp - 1).max() < 0.005


def test_noisy_profiles_errors_match_the_scatter():
    rng = np.random.default_rng(1)
    n, k = 6000, 11
    sigma = rng.uniform(0.9, 1.3, n)
    data, origin, mu, amp = _profiles(n, k, rng, sigma, neighbours=False)
    fit = fit_profiles(data, None, origin, mu + rng.normal(0, 0.2, n), 1.1, _offsets(n, False), 28.0,
                       iterations=8, converge=0.001)
    assert fit.ok.mean() > 0.999
    pull = (fit.mu - mu)[fit.ok] / fit.mu_err[fit.ok]
    assert 0.9 < np.std(pull) < 1.1 and abs(np.mean(pull)) < 0.05
    pull_a = (fit.amp - amp)[fit.ok] / fit.amp_err[fit.ok]
    assert 0.85 < np.std(pull_a) < 1.15


def test_masked_elements_are_ignored():
    rng = np.random.default_rng(2)
    n, k = 500, 11
    sigma = np.full(n, 1.0)
    data, origin, mu, amp = _profiles(n, k, rng, sigma, neighbours=False, noise=False)
    usable = np.ones((n, k), bool)
    usable[:, 0] = False
    data[:, 0] = 1e7  # garbage where masked
    fit = fit_profiles(data, usable, origin, mu + 0.3, 1.1, _offsets(n, False), 28.0, iterations=8, converge=1e-4)
    assert np.abs(fit.mu - mu).max() < 1e-3


def test_fixed_neighbours_equal_free_ones_when_right():
    rng = np.random.default_rng(3)
    n, k = 2000, 9
    sigma = rng.uniform(0.9, 1.45, n)
    data, origin, mu, amp = _profiles(n, k, rng, sigma, noise=False)
    fixed = gaussians(k, origin, mu - PITCH, sigma, 0.9 * amp) + gaussians(k, origin, mu + PITCH, sigma, 1.1 * amp)
    fit = fit_profiles(data, None, origin, mu + 0.05, sigma, np.zeros((n, 1)), 28.0, fixed=fixed, iterations=6,
                       converge=1e-4)
    assert np.abs(fit.mu - mu).max() < 1e-3 and np.abs(fit.sigma - sigma).max() < 0.01


def test_a_profile_without_signal_is_not_ok():
    rng = np.random.default_rng(4)
    data = rng.normal(0, 3, (200, 9)).astype(np.float32)
    fit = fit_profiles(data, None, np.zeros(200), np.full(200, 4.0), 1.1, np.zeros((200, 1)), 9.0, iterations=6,
                       converge=0.01)
    snr = fit.amp / fit.amp_err
    assert (~fit.ok | ~(snr > 5)).mean() > 0.95
