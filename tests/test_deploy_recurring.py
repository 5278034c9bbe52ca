"""The nightly/backfill driver of the scheduled jobs: which night, which months, which commands."""

from __future__ import annotations

import datetime as dt

import pytest

from arcray.deploy import cronlauncher, recurring
from arcray.errors import ConfigError

UTC = dt.timezone.utc


@pytest.mark.parametrize("when, mjd", [
    (dt.datetime(2023, 2, 25, 18, 0, tzinfo=UTC), 60000),   # afternoon after night 60000
    (dt.datetime(2023, 2, 25, 10, 0, tzinfo=UTC), 59999),   # night 60000 not over yet at APO
    (dt.datetime(2023, 2, 26, 0, 30, tzinfo=UTC), 60000),   # evening of the next night
    (dt.datetime(2023, 2, 25, 14, 30, tzinfo=UTC), 60000),  # the chart's default 14:30 UTC
])
def test_last_finished_night(when, mjd):
    assert recurring.last_finished_night(when) == mjd
    assert recurring.date_of_mjd(60000) == dt.date(2023, 2, 25)


def test_previous_months_cross_the_year():
    assert recurring.previous_months(dt.date(2024, 1, 2), 1) == ("2023-12", "2023-12")
    assert recurring.previous_months(dt.date(2024, 3, 2), 3) == ("2023-12", "2024-02")
    with pytest.raises(ConfigError, match=">= 1"):
        recurring.previous_months(dt.date(2024, 3, 2), 0)


def test_context_and_fill():
    now = dt.datetime(2024, 3, 2, 4, 0, tzinfo=UTC)
    ctx = recurring.context("backfill", now, backfill_months=2, root="/data/a")
    assert ctx["months"] == "2024-01..2024-02"
    assert (ctx["mjd_min"], ctx["mjd_max"]) == ("60310", "60369")  # 2024-01-01 .. 2024-02-29
    assert recurring.fill("scrape --root {root} --months {months}", ctx) == \
        ["scrape", "--root", "/data/a", "--months", "2024-01..2024-02"]
    assert recurring.context("nightly", now, mjd=60100)["month"] == "2023-06"
    with pytest.raises(ConfigError, match=r"unknown placeholder \{night\}"):
        recurring.fill("download --mjd {night}", ctx)
    with pytest.raises(ConfigError, match="unknown window"):
        recurring.context("weekly", now)


def test_run_steps_continues_after_partial_failure_and_stops_after_errors():
    calls = []

    def runner(codes):
        def run(args):
            calls.append(args[0])
            return codes[args[0]]
        return run

    steps = [["scrape"], ["download"], ["calibrate"]]
    assert recurring.run_steps(steps, runner({"scrape": 0, "download": 1, "calibrate": 0})) == 1
    assert calls == ["scrape", "download", "calibrate"]
    calls.clear()
    assert recurring.run_steps(steps, runner({"scrape": 3, "download": 0, "calibrate": 0})) == 3
    assert calls == ["scrape"]


def test_main_dry_run_prints_the_commands(capsys):
    rc = recurring.main(["nightly", "--mjd", "60310", "--root", "/d",
                         "--step", "download --root {root} --mjd-min {mjd} --mjd-max {mjd}",
                         "--dry-run"])
    assert rc == 0
    assert capsys.readouterr().out == "arcray download --root /d --mjd-min 60310 --mjd-max 60310\n"
    assert recurring.main(["nightly", "--step", "x {nope}", "--dry-run"]) == 2


def test_launcher_names_and_refuses_other_kinds():
    now = dt.datetime(2024, 1, 5, 14, 30, tzinfo=UTC)
    assert cronlauncher.child_name("arcray-nightly", now) == "arcray-nightly-28407750"
    with pytest.raises(ConfigError, match="longer than 47"):
        cronlauncher.child_name("x" * 39, now)
    with pytest.raises(ConfigError, match="ray.io/v1 RayJob"):
        cronlauncher.build({"apiVersion": "batch/v1", "kind": "Job"}, "a", now)
    tmpl = {"apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": "t", "namespace": "other"}, "spec": {"entrypoint": "x"}}
    job = cronlauncher.build(tmpl, "arcray-backfill", now)
    assert job["metadata"]["name"] == "arcray-backfill-28407750" and "namespace" not in job["metadata"]
    assert job["metadata"]["labels"] == {cronlauncher.SCHEDULE_LABEL: "arcray-backfill"}
    assert tmpl["metadata"] == {"name": "t", "namespace": "other"}  # template not modified


# ---------------------------------------------------------------- backfill: arcray night per night
def test_backfill_range_fixed_or_previous_months():
    from arcray.deploy import backfill

    now = dt.datetime(2024, 3, 2, 4, 0, tzinfo=UTC)
    assert backfill.night_range(now, mjd_min=None, mjd_max=None, months=2) == (60310, 60369)
    assert backfill.night_range(now, mjd_min=60300, mjd_max=60300, months=1) == (60300, 60300)
    with pytest.raises(ConfigError, match="both"):
        backfill.night_range(now, mjd_min=60300, mjd_max=None, months=1)
    with pytest.raises(ConfigError, match="before"):
        backfill.night_range(now, mjd_min=60301, mjd_max=60300, months=1)
    with pytest.raises(ConfigError, match="split"):
        backfill.night_range(now, mjd_min=50000, mjd_max=60000, months=1)
    assert backfill.night_commands("/d", 60300, 60301, ["--skip-ingest"]) == [
        ["night", "--root", "/d", "--mjd", "60300", "--skip-ingest"],
        ["night", "--root", "/d", "--mjd", "60301", "--skip-ingest"]]


def test_backfill_main_runs_each_night_and_stops_on_errors(monkeypatch, capsys):
    from arcray.deploy import backfill

    ran = []
    codes = {"60300": 1, "60301": 0, "60302": 4, "60303": 0}  # a red night, then a cluster error

    real_run_steps = recurring.run_steps

    def fake_run_steps(steps):
        return real_run_steps(steps, runner=lambda a: ran.append(a[4]) or codes[a[4]])

    monkeypatch.setattr(backfill.recurring, "run_steps", fake_run_steps)
    assert backfill.main(["--root", "/d", "--mjd-min", "60300", "--mjd-max", "60303",
                          "--", "--base-url", "http://x"]) == 4
    assert ran == ["60300", "60301", "60302"]
    assert backfill.main(["--root", "/d", "--mjd-min", "60300"]) == 2
    assert "arcray: error: give both" in capsys.readouterr().err
