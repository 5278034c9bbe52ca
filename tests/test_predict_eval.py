"""`arcray predict` (issue 15), second part: the reference-arc model's decay, the error bound that
knows what changed, and the held-out evaluation with its report section (hand-built nights)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from arcray.optics import FIELD_TERMS
from arcray.paths import Layout
from arcray.predict.models import Decay
from arcray.predict.uncertainty import ErrorModel
from tests.test_predict import _root_with, world


def test_decay_recovers_the_correlation_time_of_an_ou_walk():
    rng = np.random.default_rng(0)
    n, tau = 4000, 6.0
    dt = rng.uniform(0.1, 8.0, n)
    ref = rng.normal(0, 0.2, (n, 2))
    rho = np.exp(-dt / tau)[:, None]
    now = rho * ref + np.sqrt(1 - rho ** 2) * rng.normal(0, 0.2, (n, 2))
    now[:, 1] = ref[:, 1] + rng.normal(0, 0.01, n)  # the second term does not decay: a random walk
    d = Decay.fit(ref, now, dt)
    assert d.tau[0] == 6.0 and d.tau[1] == np.inf
    w = d.weights(np.array([0.0, 6.0]))
    assert w[0].tolist() == [1.0, 1.0] and w[1, 0] == pytest.approx(np.exp(-1)) and w[1, 1] == 1.0


def test_the_bound_grows_with_the_predicted_change_at_a_fixed_gap():
    rng = np.random.default_rng(1)
    n = 600
    h = rng.uniform(0.1, 6.0, n)
    change = rng.uniform(0.01, 0.5, n)
    err = 0.05 * np.sqrt(h) * (change / 0.1) * rng.lognormal(0, 0.2, n)
    m = ErrorModel.fit(h, err, change)
    assert m.c1 == pytest.approx(0.5, abs=0.05) and m.c2 == pytest.approx(1.0, abs=0.05)
    assert np.mean(err <= m.upper(h, change)) == pytest.approx(0.9, abs=0.02)
    still, moved = m.upper(np.array([4.0, 4.0]), np.array([0.02, 0.4]))
    assert moved / still == pytest.approx(20.0, rel=0.1)
    # a long gap in which nothing moved is safer than a short one across a large change
    assert m.upper(np.array([4.0]), np.array([0.02]))[0] < m.upper(np.array([0.25]), np.array([0.4]))[0]
    # without a change column the model is the time-only power law
    t = ErrorModel.fit(h, 0.05 * np.sqrt(h) * rng.lognormal(0, 0.2, n))
    assert t.c2 == 0.0 and t.c1 == pytest.approx(0.5, abs=0.05)


def _truth_of(w: pd.DataFrame) -> pd.DataFrame:
    """The hand-built world's truth: the measured state is the true state; a0/b0's per-night offset
    and drift are the hidden part (what no header tells), the rest is header-driven."""
    t = w[["camera", "mjd", "expnum", "flavor", *FIELD_TERMS]].copy()
    t["hartmann"], t["fault"] = None, None
    for term in FIELD_TERMS:
        hidden = (w[term] - 0.1 * w["MC1TEMDN"]) if term == "a0" else \
            (w[term] + 0.05 * w["MC1TEMDN"]) if term == "b0" else 0.0 * w[term]
        t[f"{term}_hidden"] = hidden
        t[f"{term}_header"] = w[term] - hidden
    return t


def test_evaluate_writes_its_tables_and_figures_and_the_report_shows_them(tmp_path):
    from arcray.pipeline.predict import run_evaluate
    from arcray.report.html import build_report

    w = world(n_nights=4)
    root = _root_with(tmp_path, w)
    lay = Layout(root)
    s = run_evaluate(root, kinds=("ridge", "refarc"))
    table = pd.read_parquet(lay.predict_eval_table)
    assert set(table["predictor"]) == {"ridge", "refarc", "reuse", "interp"}
    ref = table.set_index("predictor").loc["refarc"]
    # each night's offset and drift are unrecorded: an earlier arc of the night beats the header alone
    assert ref["rms_xy"] < table.set_index("predictor").at["ridge", "rms_xy"]
    assert 0 <= ref["coverage90"] <= 1 and "x_floor" not in table.columns  # no truth: no floor
    dec = pd.read_parquet(lay.predict_eval_decisions)
    assert sorted(dec["tolerance"]) == [0.1, 0.2, 0.3, 0.5] and (dec["arcs"] == 6 * 4).all()
    assert s.n_ok == 4 and "quiver b1" not in s.outputs
    # the QA section wants a real measured table (limits, statuses): this one is hand-built
    measured = open(lay.measured_frames, "rb").read()
    os.remove(lay.measured_frames)
    rep = build_report(root)
    page = open(rep.index).read()
    assert rep.sections["predict"] == [lay.predict_eval_table, lay.predict_eval_decisions,
                                       lay.predict_timeline_figure("b1")]
    assert "not run (needs a simulated world" in page and "fig/eval-timeline-b1.png" in page
    first = pd.read_parquet(lay.predict_eval_scored)
    with open(lay.measured_frames, "wb") as f:
        f.write(measured)
    run_evaluate(root, kinds=("ridge", "refarc"))
    pd.testing.assert_frame_equal(pd.read_parquet(lay.predict_eval_scored), first)  # a rerun writes the same

    truth = tmp_path / "truth.parquet"
    _truth_of(w).to_parquet(truth)
    s = run_evaluate(root, truth=str(truth), kinds=("refarc",))
    table = pd.read_parquet(lay.predict_eval_table).set_index("predictor")
    # refarc's floor is what the hidden walk moved since the reference arc: the drift alone
    assert table.at["refarc", "floor_xy"] > 0 and table.at["refarc", "x_floor"] < 2.0
    assert s.outputs["quiver b1"] == lay.predict_quiver_figure("b1")
    os.remove(lay.measured_frames)
    rep = build_report(root)
    assert lay.predict_quiver_figure("b1") in rep.sections["predict"]
    assert "fig/eval-quiver-b1.png" in open(rep.index).read()


@pytest.mark.parametrize("case", ["two_nights", "with_mjd", "truth_alone", "missing_truth"])
def test_evaluate_cli_errors_are_one_line(tmp_path, capsys, case):
    from arcray.cli.main import main

    w = world(n_nights=2 if case == "two_nights" else 3)
    root = _root_with(tmp_path, w)
    args = {"two_nights": ["--evaluate"], "with_mjd": ["--evaluate", "--mjd", str(w["mjd"].iloc[0])],
            "truth_alone": ["--mjd", str(w["mjd"].iloc[0]), "--truth", "x.parquet"],
            "missing_truth": ["--evaluate", "--truth", str(tmp_path / "nope.parquet")]}[case]
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--root", root, *args])
    _, err = capsys.readouterr()
    assert exc.value.code == 2
    assert err.startswith("arcray: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "root" / "predict" / "eval").exists()
