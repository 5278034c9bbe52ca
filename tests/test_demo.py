"""The demo: which months it scrapes, how it keeps the archive password, and a smoke run end to end."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
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


# Every line `arcray demo` prints, stdout and stderr together: arcray's own, nothing from Ray.
STAGES = ("render", "scrape", "download", "calibrate", "measure", "tune", "embed", "analyze", "regress", "report")
OWN_LINE = re.compile(rf"^(({'|'.join(STAGES)}|archive server|ray|seconds per stage|world|pipeline|report)"
                      r":\s+\S.*)?$")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_demo_prints_only_its_own_lines_and_fills_every_report_section_of_its_stages(tmp_path):
    """The README's main command, end to end on a 5-night world, as a user runs it: real server,
    login, a private local Ray instance, every stage; then the report, section by section, must
    be filled from artefacts the run wrote (by their Layout names)."""
    import pandas as pd

    from arcray.paths import Layout
    from arcray.report.html import build_report

    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "arcray", "demo", "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=840, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    assert [line for line in lines if not OWN_LINE.match(line)] == []
    assert [line.split(":")[0] for line in proc.stdout.splitlines()[:len(STAGES) + 1]] == \
        ["render", "archive server", *STAGES[1:]]
    ray_lines = [line for line in lines if line.startswith("ray: ")]
    assert len(ray_lines) == 1 and "dashboard http" in ray_lines[0]
    logs = ray_lines[0].split(", logs in ")[1]
    assert os.path.isfile(os.path.join(logs, "arcray-driver-stderr.log"))  # Ray's native stderr went there
    password = (out / "secrets" / "archive-password").read_text().strip()
    assert password not in proc.stdout + proc.stderr

    layout = Layout(str(out / "pipeline"))
    written = {os.path.join(d, f) for d, _, fs in os.walk(layout.root) for f in fs}
    rep = build_report(layout.root)
    # Two sections come from steps the demo does not run: `arcray predict --evaluate` (every night
    # held out) and benchmarks/bench_represent.py; every other section is filled by the demo.
    assert {k for k, src in rep.sections.items() if not src} == {"predict", "represent"}
    for key, src in rep.sections.items():
        assert set(src) <= written, (key, set(src) - written)
    page = open(rep.index).read()
    assert page.count("not run") == page.count('<p class="nr">not run</p>') == 2  # the two above
    assert page.count("<img") >= 10
    scores = pd.read_parquet(layout.scores)
    assert set(scores["camera"]) == {"b1", "r1"}
    assert {"autoencoder", "linear", "ridge", "gbr", "refarc"} <= set(scores["model"])
    assert scores["mse"].notna().all() and (scores["mse"] > 0).all()
    # px is NaN exactly where no shift was measurable (the smoke's 1-epoch tiny model decodes
    # near-flat frames: benchmarks/science_predict.py checks px on the full demo)
    assert scores["px"].isna().equals(scores["n_px"] == 0)
