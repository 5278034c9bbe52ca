import numpy as np
import pandas as pd
import pytest

from arcray.analysis import figures
from arcray.analysis.correlate import pearson_matrix, top_correlations
from arcray.analysis.ood import flag_frames, mahalanobis, robust_z
from arcray.analysis.scores import frame_mse, mse_pivot, score_table, truth_floors
from arcray.errors import InputError


def test_pearson_known_correlations():
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    meta = pd.DataFrame({"MC1TEMDN": t, "ALT": rng.normal(size=200), "CONST": 1.0,
                         "AIRTEMP": np.where(np.arange(200) % 5 == 0, np.nan, t)})
    Z = np.c_[2 * t + 0.01 * rng.normal(size=200), -t]
    m = pearson_matrix(meta, Z)
    assert m.loc["MC1TEMDN", "z0"] > 0.999 and m.loc["MC1TEMDN", "z1"] == pytest.approx(-1)
    assert abs(m.loc["ALT", "z0"]) < 0.2
    assert np.isnan(m.loc["CONST", "z0"])  # no variance: unknown
    assert m.loc["AIRTEMP", "z1"] == pytest.approx(-1)  # NaN rows skipped pairwise
    top = top_correlations(m, 2)
    assert set(top["metadata"]) <= {"MC1TEMDN", "AIRTEMP"}


def test_ood_flags_planted_outliers_only():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(400, 2))
    Z[10] = [8, 8]
    err = rng.lognormal(0, 0.1, 400)
    err[20] = 10.0
    df = pd.DataFrame({"camera": ["b1"] * 200 + ["r1"] * 200, "recon_mse": err})
    f = flag_frames(df, Z)
    assert f.loc[10, "reason"] == "latent" and f.loc[20, "reason"] == "reconstruction"
    assert f["flagged"].sum() <= 4
    assert robust_z(np.array([1.0, 1.0, 1.0]))[0] == 0.0
    d = mahalanobis(rng.normal(size=(500, 3)))
    assert np.median(d**2) == pytest.approx(2.37, rel=0.2)  # chi2(3) median


def test_scores_and_floors():
    long = pd.DataFrame({"camera": "b1", "model": ["autoencoder", "linear"] * 2, "split": ["test"] * 4,
                         "mse": [1.0, 3.0, 1.0, 5.0], "dy": [0.0, 0.3, 0.0, 0.4], "dx": [0.0, 0.4, 0.0, 0.3]})
    s = score_table(long)
    lin = s[s.model == "linear"].iloc[0]
    assert lin["mse"] == 4.0 and lin["px"] == pytest.approx(0.5) and lin["n"] == 2
    assert mse_pivot(s).loc[("b1", "linear"), "test"] == 4.0
    frames = pd.DataFrame({"camera": "b1", "mjd": [1, 1, 1], "expnum": [1, 2, 3], "split": "test"})
    truth = pd.DataFrame({"camera": "b1", "expnum": [1, 2, 3], "dy_hidden": [0.0, 0.3, 0.6],
                          "dx_hidden": [0.0, 0.0, 0.0]})
    fl = truth_floors(truth, frames).iloc[0]
    assert fl["floor_ref_px"] == pytest.approx(0.3)
    assert fl["floor_meta_px"] == pytest.approx(np.sqrt(0.06))
    assert frame_mse(np.ones((1, 2, 2)), np.zeros((1, 2, 2)), np.array([[[0, 1], [1, 1]]]))[0] == 1.0
    with pytest.raises(InputError):
        score_table(long.drop(columns=["dy"]))


def test_figures_write_pngs(tmp_path):
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(30, 2))
    paths = [
        figures.latent_scatter(Z, np.array(["b1", "r1"] * 15), str(tmp_path / "a.png"), label="camera"),
        figures.latent_scatter(Z, rng.normal(size=30), str(tmp_path / "b.png"), label="MC1TEMDN"),
        figures.pearson_heatmap(pd.DataFrame(rng.uniform(-1, 1, (5, 2)), index=list("abcde"),
                                             columns=["z0", "z1"]), str(tmp_path / "c.png")),
        figures.latent_drift(np.arange(30.0), Z, str(tmp_path / "d.png"), flagged=np.arange(30) == 3),
        figures.predicted_vs_actual(Z, {"linear": Z + 0.1}, str(tmp_path / "e.png")),
    ]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
