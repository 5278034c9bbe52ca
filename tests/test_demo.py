"""The demo's own logic: which months it scrapes, and how it keeps the archive password."""

from __future__ import annotations

import os
import stat
from datetime import date

from arcray.model.split import split_of_mjd
from arcray.pipeline.demo import DemoConfig, _password, months_of
from arcray.sim.schedule import build_schedule


def test_months_cover_nights_across_a_year_end():
    assert months_of(date(2023, 12, 28), 8) == ["2023-12", "2024-01"]
    assert months_of(date(2023, 12, 1), 3) == ["2023-12"]


def test_default_nights_give_train_val_and_test_splits():
    cfg = DemoConfig()
    mjds = sorted({e.mjd for e in build_schedule(cfg.start, cfg.nights, cfg.seed)})
    splits = {split_of_mjd(m) for m in mjds}
    assert len(mjds) == cfg.nights
    assert {"train", "val", "test"} <= splits


def test_password_is_random_private_and_stable(tmp_path):
    pw = _password(str(tmp_path))
    path = tmp_path / "secrets" / "archive-password"
    assert len(pw) >= 20
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _password(str(tmp_path)) == pw
    assert _password(str(tmp_path / "other")) != pw
