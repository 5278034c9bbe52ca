"""`arcray predict` (issue 15): the pure predictors, the decision, the leave-one-night-out loop and
the stage, on hand-built nights with a known drift (seconds, no Ray)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from arcray.io import atomic_write_parquet
from arcray.optics import FIELD_TERMS
from arcray.paths import Layout
from arcray.predict import evaluate
from arcray.predict.night import fit_night_model, predict_night

# Each night: arcs at these hours after 23:00; the state drifts at a per-night rate nobody records.
ARC_HOURS = (0.0, 0.25, 1.0, 4.0, 4.25, 8.0)
RATE = 0.08  # px/h of a0 and b0, sign drawn per night


def world(n_nights: int = 8, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows, exp = [], 1000
    for k in range(n_nights):
        mjd = 60300 + k
        sign = rng.choice([-1.0, 1.0], size=2)
        offset = rng.normal(0, 0.1, 2)
        t0 = pd.Timestamp("2024-01-01 23:00") + pd.Timedelta(days=k)
        for h in ARC_HOURS:
            temp = 6.0 - 0.4 * h + rng.normal(0, 0.05)
            state = {t: 0.0 for t in FIELD_TERMS} | {"s0": 1.0}
            state["a0"] = 0.1 * temp + offset[0] + sign[0] * RATE * h + rng.normal(0, 0.005)
            state["b0"] = -0.05 * temp + offset[1] + sign[1] * RATE * h + rng.normal(0, 0.005)
            state["a1"] = 0.05 * temp
            rows.append({"camera": "b1", "mjd": mjd, "expnum": exp, "flavor": "arc", "measured": True,
                         "status": "green", "date_obs": t0 + pd.Timedelta(hours=h), "MC1TEMDN": temp,
                         "ALT": 60.0 + 10 * np.sin(h), "HUMIDITY": 40.0, **state})
            exp += 1
    return pd.DataFrame(rows)


def test_known_drift_gives_the_expected_arc_needed_decision():
    w = world()
    last = w["mjd"].max()
    model = fit_night_model(w[w["mjd"] != last], camera="b1", kinds=("ridge", "refarc"))
    out = predict_night(model, w[w["mjd"] == last], tolerance=0.2)
    p = out[out["primary"]].set_index("expnum")
    hours = w[w["mjd"] == last].set_index("expnum")["date_obs"]
    after = {round((t - hours.iloc[0]) / pd.Timedelta(hours=1), 2): e for e, t in hours.items()}
    assert bool(p.at[after[0.0], "arc_needed"])  # first arc of the night: nothing to predict from
    assert not bool(p.at[after[0.25], "arc_needed"])  # 15 min after an arc: 0.02 px of drift
    assert not bool(p.at[after[4.25], "arc_needed"])
    assert bool(p.at[after[4.0], "arc_needed"])  # 3 h of 0.08 px/h drift: 0.24 px
    assert p.at[after[4.0], "upper90"] > p.at[after[0.25], "upper90"] > 0
    assert set(out["predictor"]) == {"ridge", "refarc", "reuse", "interp"}


def test_leave_one_night_out_never_uses_the_held_out_night(monkeypatch):
    w = world(n_nights=5)
    seen = []
    real_fit = evaluate.fit_night_model

    def spy(frames, **kw):
        model = real_fit(frames, **kw)
        seen.append(set(frames["mjd"]))
        return model

    monkeypatch.setattr(evaluate, "fit_night_model", spy)
    preds, rules = evaluate.leave_one_night_out(w, kinds=("refarc",))
    nights = sorted(w["mjd"].unique())
    assert len(seen) == len(nights)
    for held, used in zip(nights, seen):
        assert held not in used and used == set(nights) - {held}
    assert set(preds["mjd"]) == set(nights) and set(rules["mjd"]) == set(nights)
    model = real_fit(w[w["mjd"] != nights[0]], camera="b1", kinds=("refarc",))
    with pytest.raises(Exception, match="used to fit"):
        predict_night(model, w[w["mjd"] == nights[1]])


def test_a_night_is_fitted_on_the_nearest_history_nights_only(monkeypatch):
    from arcray.predict.night import training_nights

    w = world(n_nights=7)
    nights = sorted(int(m) for m in w["mjd"].unique())
    mid = nights[3]
    picked = sorted(set(training_nights(w, mid, 4)["mjd"].astype(int)))
    assert picked == [nights[1], nights[2], nights[4], nights[5]]  # two each side, never the night
    assert sorted(set(training_nights(w, nights[-1], 2)["mjd"].astype(int))) == nights[-3:-1]
    assert sorted(set(training_nights(w, nights[0], 0)["mjd"].astype(int))) == nights[1:]
    tie = sorted(set(training_nights(w, mid, 3)["mjd"].astype(int)))
    assert tie == [nights[1], nights[2], nights[4]]  # a tie in distance takes the earlier night
    with pytest.raises(Exception, match="history"):
        training_nights(w, mid, -1)
    seen = []
    real_fit = evaluate.fit_night_model
    monkeypatch.setattr(evaluate, "fit_night_model", lambda frames, **kw: seen.append(frames["mjd"].nunique()) or real_fit(frames, **kw))
    evaluate.leave_one_night_out(w, kinds=("refarc",), history=3)
    assert seen == [3] * len(nights)


def test_an_arc_red_only_for_its_width_stays_usable():
    from arcray.predict.features import usable_arcs

    f = pd.DataFrame({"flavor": "arc", "measured": True,
                      "status": ["green", "red", "red", "red", "yellow"],
                      "WSIGMA_status": ["green", "red", "red", "green", "yellow"],
                      "NLAMPS_status": ["green", "green", "red", None, "green"],
                      "BESTCORR_status": ["green", "green", "green", "red", "green"]})
    states = np.zeros((5, 3))
    assert usable_arcs(f, states).tolist() == [True, True, False, False, True]
    # without per-quantity statuses any red is unusable
    assert usable_arcs(f[["flavor", "measured", "status"]], states).tolist() == [True, False, False, False, True]


def test_unknown_header_values_fall_back_to_training_medians():
    w = world()
    last = w["mjd"].max()
    model = fit_night_model(w[w["mjd"] != last], camera="b1", kinds=("ridge", "refarc"))
    night = w[w["mjd"] == last].copy()
    night.loc[night.index[2], "MC1TEMDN"] = np.nan
    out = predict_night(model, night.drop(columns=["HUMIDITY"]))
    p = out[out["predictor"] == "ridge"].reset_index(drop=True)
    assert p["imputed"].iloc[2] == 2 and p["imputed"].iloc[0] == 1
    assert np.isfinite(p[list(FIELD_TERMS)].to_numpy()).all()


def test_a_night_without_an_earlier_arc_uses_the_fallback_and_needs_arcs():
    w = world()
    last = w["mjd"].max()
    model = fit_night_model(w[w["mjd"] != last], camera="b1", kinds=("refarc",))
    night = w[w["mjd"] == last].copy()
    night["status"] = "red"  # no usable arc all night
    out = predict_night(model, night)
    ref = out[out["predictor"] == "refarc"]
    assert ref["ref_expnum"].isna().all() and np.isfinite(ref[list(FIELD_TERMS)].to_numpy()).all()
    assert out[out["predictor"] == "reuse"][list(FIELD_TERMS)].isna().all().all()
    assert ref["arc_needed"].all()


def _root_with(tmp_path, frames: pd.DataFrame) -> str:
    root = str(tmp_path / "root")
    atomic_write_parquet(Layout(root).measured_frames, pa.Table.from_pandas(frames, preserve_index=False))
    return root


def test_stage_writes_idempotent_tables_and_fits(tmp_path):
    import pyarrow.parquet as pq

    from arcray.pipeline.predict import run_predict

    w = world(n_nights=4)
    root = _root_with(tmp_path, w)
    night = int(w["mjd"].iloc[-1])
    s = run_predict(root, mjd=night)
    lay = Layout(root)
    first = pq.read_table(lay.predictions_night(night))
    fits1 = open(lay.predictions_night_fits(night), "rb").read()
    run_predict(root, exposures=[int(w["expnum"].iloc[-1])])
    assert pq.read_table(lay.predictions_night(night)).equals(first)
    assert open(lay.predictions_night_fits(night), "rb").read() == fits1
    assert s.n_ok == 1 and "need an arc" in s.line()
    scores = pd.read_parquet(lay.predict_scores)
    assert set(scores["mjd"]) == {night} and "refarc" in set(scores["predictor"])


def test_a_night_whose_arcs_are_all_red_is_predicted_but_not_scored(tmp_path):
    from arcray.pipeline.predict import run_predict

    w = world(n_nights=4)
    night = int(w["mjd"].iloc[-1])
    w.loc[w["mjd"] == night, "status"] = "red"
    root = _root_with(tmp_path, w)
    s = run_predict(root, mjd=night)
    assert s.n_ok == 1 and "scores" not in s.outputs
    assert Layout(root).predictions_night(night) in s.outputs.values()
    assert not os.path.exists(Layout(root).predict_scores)
    run_predict(root, mjd=night - 1)  # a scored night afterwards writes the table
    assert set(pd.read_parquet(Layout(root).predict_scores)["mjd"]) == {night - 1}


@pytest.mark.parametrize("case", ["no_measured", "no_night", "unknown_exposure", "too_few_arcs", "negative_history"])
def test_cli_errors_are_one_line(tmp_path, capsys, case):
    from arcray.cli.main import main

    w = world(n_nights=2)
    if case == "too_few_arcs":
        w = w[(w["mjd"] == w["mjd"].max()) | (w["expnum"] == w["expnum"].min())]
    root = str(tmp_path / "empty") if case == "no_measured" else _root_with(tmp_path, w)
    args = ["predict", "--root", root]
    args += {"no_measured": ["--mjd", "60300"], "no_night": ["--mjd", "1"],
             "unknown_exposure": ["--exposures", "5"], "too_few_arcs": ["--mjd", str(w["mjd"].max())],
             "negative_history": ["--mjd", str(w["mjd"].max()), "--history", "-1"]}[case]
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    assert exc.value.code == 2
    assert err.startswith("arcray: error: ") and err.count("\n") == 1, err
