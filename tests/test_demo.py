"""The demo: which months it scrapes, how it keeps the archive password, and a smoke run end to end."""

from __future__ import annotations

import os
import stat
from datetime import date

import pytest

from arcray.model.split import split_of_mjd
from arcray.pipeline.demo import DemoConfig, _password, months_of
from arcray.sim.schedule import build_schedule


def test_months_cover_nights_across_a_year_end():
    assert months_of(date(2023, 12, 28), 8) == ["2023-12", "2024-01"]
    assert months_of(date(2023, 12, 1), 3) == ["2023-12"]


def test_default_nights_give_train_val_and_two_test_nights():
    cfg = DemoConfig()
    mjds = sorted({e.mjd for e in build_schedule(cfg.start, cfg.nights, cfg.seed)})
    splits = [split_of_mjd(m) for m in mjds]
    assert len(mjds) == cfg.nights
    assert splits.count("test") >= 2 and splits.count("val") >= 1 and splits.count("train") >= 8


def test_password_is_random_private_and_stable(tmp_path):
    pw = _password(str(tmp_path))
    path = tmp_path / "secrets" / "archive-password"
    assert len(pw) >= 20
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _password(str(tmp_path)) == pw
    assert _password(str(tmp_path / "other")) != pw


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_demo_runs_every_stage_and_fills_the_report(ray_local, tmp_path):
    """The README's main command, end to end on a 5-night world: real server, login, Ray stages."""
    import pandas as pd

    from arcray.paths import Layout
    from arcray.pipeline.demo import SMOKE, run_demo

    lines = []
    res = run_demo(str(tmp_path / "demo"), DemoConfig(**SMOKE), echo=lines.append)
    assert set(res.seconds) == {"render", "scrape", "download", "calibrate", "tune", "analysis", "report"}
    layout = Layout(res.root)
    scores = pd.read_parquet(layout.scores)
    assert set(scores["camera"]) == {"b1", "r1"}
    assert {"autoencoder", "linear", "ridge", "gbr", "refarc"} <= set(scores["model"])
    assert scores["mse"].notna().all() and (scores.loc[scores["n_px"] > 0, "px"] >= 0).all()
    page = open(res.report).read()
    assert "not run" not in page, "every report section is filled"
    assert page.count("<img") >= 10
    password = open(tmp_path / "demo" / "secrets" / "archive-password").read().strip()
    assert not any(password in line for line in lines)
