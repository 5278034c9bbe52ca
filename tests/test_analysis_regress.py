import numpy as np
import pandas as pd
import pytest

from arcray.analysis.regress import REGRESSORS, fit_regressor, metadata_columns, previous_arc_index
from arcray.errors import ConfigError, InputError
from arcray.model.split import split_labels
from arcray.testing.latents import latent_world

COLS = ["MC1TEMDN", "ALT", "HUMIDITY"]


def _mse(a, b):
    return float(((a - b) ** 2).mean())


def test_linear_recovers_known_coefficients():
    meta, Z, W = latent_world(walk=0.0, noise=0.001)
    reg = fit_regressor("linear", meta, Z, columns=COLS)
    assert np.allclose(reg.model.coef_.T, W, atol=2e-3)
    assert _mse(reg.predict(meta), Z) < 1e-5


def test_split_is_by_night():
    meta, _, _ = latent_world()
    s = split_labels(meta["mjd"])
    assert set(s) <= {"train", "val", "test"} and "train" in set(s)
    per_night = pd.Series(s).groupby(meta["mjd"].to_numpy()).nunique()
    assert (per_night == 1).all()


def test_previous_arc_index_within_night_and_camera():
    meta = pd.DataFrame({"camera": ["b1", "r1", "b1", "b1", "r1"], "mjd": [1, 1, 1, 2, 1],
                         "expnum": [10, 10, 11, 12, 11]})
    assert previous_arc_index(meta).tolist() == [-1, -1, 0, -1, 1]


def test_metadata_columns_skip_missing_and_all_nan():
    meta = pd.DataFrame({"ALT": [1.0, 2.0], "AZ": [np.nan, np.nan], "camera": ["b1", "b1"]})
    assert metadata_columns(meta) == ["ALT"]


def test_refarc_beats_metadata_when_hidden_walk_present():
    meta, Z, _ = latent_world(walk=0.3, seed=1)
    s = split_labels(meta["mjd"])
    tr, te = s == "train", s == "test"
    assert te.sum() > 10
    err = {}
    for kind in REGRESSORS:
        reg = fit_regressor(kind, meta[tr].reset_index(drop=True), Z[tr])
        err[kind] = _mse(reg.predict(meta, Z)[te], Z[te])
    assert err["refarc"] < 0.6 * min(err["linear"], err["ridge"], err["gbr"])
    # without a walk the metadata explain everything and linear is near-perfect
    meta0, Z0, _ = latent_world(walk=0.0, seed=1)
    lin = fit_regressor("linear", meta0[tr].reset_index(drop=True), Z0[tr])
    assert _mse(lin.predict(meta0)[te], Z0[te]) < 0.01


def test_missing_values_imputed_and_bad_input():
    meta, Z, _ = latent_world(walk=0.0)
    reg = fit_regressor("ridge", meta, Z)
    assert "AIRTEMP" in reg.columns and np.isfinite(reg.predict(meta)).all()
    with pytest.raises(ConfigError):
        fit_regressor("svm", meta, Z)
    with pytest.raises(InputError):
        fit_regressor("linear", meta, Z[:-1])
    with pytest.raises(InputError):
        reg.predict(meta.drop(columns=["ALT"]))
    ref = fit_regressor("refarc", meta, Z)
    with pytest.raises(InputError):
        ref.predict(meta)


def _nights(n_nights=12, per_night=8, seed=0):
    rng = np.random.default_rng(seed)
    mjd = np.repeat(60000 + np.arange(n_nights), per_night)
    return pd.DataFrame({"camera": "b1", "mjd": mjd, "expnum": 1000 + np.arange(len(mjd))}), rng


def test_refarc_shrinks_towards_the_reference_arc():
    # a strong penalty leaves "the night's previous arc plus the mean change between arcs", not the
    # mean latent (the random-walk prior)
    meta, Z, _ = latent_world(walk=0.3, seed=2)
    reg = fit_regressor("refarc", meta, Z, alpha=1e9)
    pred, prev = reg.predict(meta, Z), previous_arc_index(meta)
    has = prev >= 0
    step = (Z[has] - Z[prev[has]]).mean(0)
    assert np.allclose(pred[has], Z[prev[has]] + step, atol=1e-3)
    assert np.abs(Z[has] - Z[prev[has]]).mean() > 0.1  # the reference is not the answer itself


def test_angles_enter_as_sine_and_cosine():
    meta, rng = _nights()
    rot = rng.uniform(-180, 180, len(meta))
    meta = meta.assign(ROTPOS=rot, HUMIDITY=rng.uniform(10, 60, len(meta)))
    z = np.sin(np.radians(rot)) + 0.01 * rng.normal(size=len(meta))
    cols = ["ROTPOS", "HUMIDITY"]
    assert _mse(fit_regressor("ridge", meta, z, columns=cols).predict(meta)[:, 0], z) < 1e-3
    assert _mse(fit_regressor("linear", meta, z, columns=cols).predict(meta)[:, 0], z) > 0.1  # raw degrees


def test_first_arc_fallback_slopes_come_from_within_nights():
    # each night has an unrecorded offset that happens to follow the night's mean temperature; the
    # slope within a night is 0.5. A pooled fit mistakes the offsets for temperature; the fallback not.
    meta, rng = _nights(n_nights=16)
    t_night = rng.uniform(0, 10, 16)[meta["mjd"] - 60000]
    T = t_night + rng.uniform(-1, 1, len(meta))
    z = 0.5 * T + 2.0 * t_night + 0.01 * rng.normal(size=len(meta))
    meta = meta.assign(MC1TEMDN=T)
    ref = fit_regressor("refarc", meta, z, columns=["MC1TEMDN"])
    pooled = fit_regressor("ridge", meta, z, columns=["MC1TEMDN"])

    def slope(reg, model):
        two = reg.features(pd.DataFrame({"MC1TEMDN": [0.0, 1.0]}))
        return float(np.diff(np.asarray(model.predict(two)).reshape(2, -1)[:, 0])[0])

    assert slope(ref, ref.fallback) == pytest.approx(0.5, abs=0.02)
    assert slope(pooled, pooled.model) > 2.0
