import numpy as np
import pandas as pd
import pytest

from arcray.analysis.regress import (REGRESSORS, fit_regressor, metadata_columns, previous_arc_index,
                                     split_labels)
from arcray.errors import ConfigError, InputError
from tests.analysis_synth import latent_world

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
