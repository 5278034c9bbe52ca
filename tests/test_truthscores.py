"""Scores against the truth: R^2 per state term from a latent, line-position RMS of decoded vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arcray.analysis.truthscores import (edge_effects, join_truth, line_rms, pooled_rms, r2_per_term,
                                         state_terms, true_line_vectors)
from arcray.errors import InputError
from arcray.model.linevec import LineIndex
from arcray.model.split import split_codes
from arcray.optics import FIELD_TERMS


def fake_truth(n_nights: int = 30, per_night: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for night in range(n_nights):
        for k in range(per_night):
            r = {"camera": "r1", "flavor": "arc", "hartmann": "Out", "fault": None,
                 "mjd": 60000 + night, "expnum": 1000 + night * per_night + k}
            r.update({t: 0.0 for t in FIELD_TERMS})
            r.update(a0=rng.normal(0, 0.5), b0=rng.normal(0, 0.5), a1=rng.normal(0, 0.2), s0=1.1,
                     lamp_Ne=1.0 + rng.normal(0, 0.05), lamp_HgCd=np.nan)
            rows.append(r)
    return pd.DataFrame(rows)


def test_r2_reads_the_encoded_terms_and_not_the_others():
    truth = fake_truth()
    rng = np.random.default_rng(1)
    # a latent that holds a0 and b0 (mixed, offset, a little noise) but nothing of a1 or the lamp
    lat = pd.DataFrame({"z0": truth["a0"] + 0.5 * truth["b0"] + 3.0,
                        "z1": truth["a0"] - truth["b0"] + 0.01 * rng.normal(size=len(truth)),
                        "expnum": truth["expnum"], "mjd": truth["mjd"]})
    joined = join_truth(lat, truth, "r1")
    assert len(joined) == len(truth)
    r = r2_per_term(joined, eval_splits=(1, 2)).set_index("term")
    assert set(r.index) == set(FIELD_TERMS) | {"lamp_Ne"}  # lamp_HgCd has no values
    assert r.loc["a0", "r2"] > 0.99 and r.loc["b0", "r2"] > 0.99
    assert r.loc["a1", "r2"] < 0.3 and r.loc["lamp_Ne", "r2"] < 0.3
    assert np.isnan(r.loc["a2", "r2"])  # a constant term has no R^2
    ev = np.isin(split_codes(truth["mjd"]), (1, 2))
    assert r.loc["a0", "n_eval"] == ev.sum() and r.loc["a0", "n_train"] == (split_codes(truth["mjd"]) == 0).sum()
    assert r.loc["b0", "edge_px"] == pytest.approx(truth.loc[ev, "b0"].std(ddof=0))
    assert np.isnan(r.loc["lamp_Ne", "edge_px"])
    assert edge_effects(truth)["a0"] == pytest.approx(truth["a0"].std())
    assert state_terms(truth)[-1] == "lamp_Ne"


def test_join_truth_drops_hartmann_faulty_and_other_cameras():
    truth = fake_truth(3, 4)
    truth.loc[0, "hartmann"] = "Left"
    truth.loc[1, "fault"] = "focus_jump"
    other = truth.iloc[[2]].assign(camera="b1")
    lat = pd.DataFrame({"z0": np.arange(len(truth), dtype=float), "expnum": truth["expnum"], "mjd": truth["mjd"]})
    j = join_truth(lat, pd.concat([truth, other]), "r1")
    assert sorted(j["expnum"]) == sorted(truth["expnum"].iloc[2:])
    with pytest.raises(InputError, match="no z0"):
        r2_per_term(j.drop(columns="z0"))


def test_line_rms_of_true_vectors_is_zero_and_a_shift_is_measured_in_px():
    ix = LineIndex.for_camera("r1", (3, 10, 17))
    truth = fake_truth(1, 3)
    tv = true_line_vectors(ix, truth)
    assert tv.shape == (3, ix.size)
    assert np.median(ix.blocks(tv[0])["dx"]) == pytest.approx(truth["a0"].iloc[0], abs=0.3)
    assert np.allclose(line_rms(ix, tv, tv).to_numpy(), 0)
    moved = tv.copy()
    moved[:, : ix.n_slots] += 0.3  # every line 0.3 px across
    moved[:, ix.n_slots: 2 * ix.n_slots] -= 0.4  # and 0.4 px along
    r = line_rms(ix, moved, tv)
    assert np.allclose(r["x"], 0.3, atol=1e-5) and np.allclose(r["y"], 0.4, atol=1e-5)
    assert np.allclose(r["xy"], 0.5, atol=1e-5) and np.allclose(r["sigma"], 0)
    # a masked slot is left out; a dead fiber's slots never count
    mask = np.zeros_like(moved, np.uint8)
    mask[:, :3] = 1
    big = moved.copy()
    big[:, :3] += 100.0
    assert np.allclose(line_rms(ix, big, tv, mask)["x"], 0.3, atol=1e-5)
    dead = (79 - 1) * ix.n_lines  # APO dead fiber 79, first line
    big = moved.copy()
    big[:, dead] += 100.0
    assert np.allclose(line_rms(ix, big, tv)["x"], 0.3, atol=1e-5)
    assert pooled_rms(pd.DataFrame({"x": [3.0, 4.0]}))["x"] == pytest.approx(np.sqrt(12.5))
    with pytest.raises(InputError, match="do not fit"):
        line_rms(ix, tv[:, :10], tv[:, :10])


def test_window_centroids_find_a_moved_line_and_ignore_an_unmoved_one():
    from arcray.analysis.truthscores import centroids, window_line_points, window_line_shift
    from arcray.optics import Field, line_positions

    yy, xx = np.mgrid[:32, :32].astype(float)

    def spot(c, r):
        return np.exp(-((xx - c) ** 2 + (yy - r) ** 2) / (2 * 1.1 ** 2))

    ref = np.stack([spot(10.0, 12.0), spot(20.3, 8.6)]) * 1000 + 5.0
    moved = np.stack([spot(10.25, 11.8), spot(20.3, 8.6)]) * 1000 + 5.0
    pts = (np.array([0, 1]), np.array([10.0, 20.3]), np.array([12.0, 8.6]))
    cx, cy = centroids(ref, *pts)
    assert np.allclose(cx, [10.0, 20.3], atol=0.05) and np.allclose(cy, [12.0, 8.6], atol=0.05)
    dx, dy = window_line_shift(moved, ref, pts)
    assert dx[0] == pytest.approx(0.25, abs=0.04) and dy[0] == pytest.approx(-0.2, abs=0.04)
    assert abs(dx[1]) < 1e-9 and abs(dy[1]) < 1e-9
    # the true lines of a crop lie inside it, in the crop's pixels
    field = Field(a0=0.3, s0=1.1)
    k, col, row = window_line_points("r1", field, [(1000, 1000), (3000, 200)], 64)
    assert len(k) > 5 and set(k) <= {0, 1}
    assert col.min() >= 4 and col.max() <= 59 and row.min() >= 4 and row.max() <= 59
    x, y, _ = line_positions("r1", field)
    assert np.min(np.hypot(x.ravel() - (col[0] + (1000 if k[0] == 0 else 200)),
                           y.ravel() - (row[0] + (1000 if k[0] == 0 else 3000)))) < 1e-9
