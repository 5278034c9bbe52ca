"""`arcray submit` and `arcray jobs ...` against a real local Ray head started with `ray start`.

The head uses ports 6510-6516 / 8390-8392, token authentication (RAY_AUTH_MODE=token and a random
RAY_AUTH_TOKEN, the same for cluster and client), and is stopped by killing its own process group
only (never `ray stop`, which would kill other people's Ray).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.plugins.ray_fixtures import kill_group

from arcray.deploy import submit as dep
from arcray.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DASHBOARD = "http://127.0.0.1:8390"
SECRET = "s3cret-never-sent"


# ------------------------------------------------------------------ no cluster needed
def test_stage_names_map_to_job_scripts():
    stages = dep.available_stages(ROOT)
    assert {"scrape", "download", "calibrate", "train", "report"} <= set(stages)
    assert dep.entrypoint("scrape", ["--months", "2024-01..2024-02", "--root", "/d d"], ROOT) == \
        "python jobs/scrape.py --months 2024-01..2024-02 --root '/d d'"
    with pytest.raises(ConfigError, match="unknown stage 'nope': choose one of analyze"):
        dep.stage_script("nope", ROOT)


def test_job_env_passes_names_and_paths_never_passwords():
    environ = {"ARCRAY_SAS_USER": "alice", "ARCRAY_SAS_PASSWORD": SECRET,
               "ARCRAY_MAILMAN_PASSWORD_FILE": "/var/run/secrets/arcray/mailman/password"}
    env = dep.job_env({"ARCRAY_LOG": "debug"}, environ=environ)
    assert env == {"ARCRAY_SAS_USER": "alice", "ARCRAY_LOG": "debug",
                   "ARCRAY_MAILMAN_PASSWORD_FILE": "/var/run/secrets/arcray/mailman/password"}
    for name in ("ARCRAY_SAS_PASSWORD", "RAY_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY", "MY_API_KEY"):
        with pytest.raises(ConfigError, match=f"refusing to send {name}") as exc:
            dep.job_env({name: SECRET}, environ={})
        assert SECRET not in str(exc.value)
    renv = dep.runtime_env(ROOT, env)
    assert renv["working_dir"] == str(ROOT) and ".venv" in renv["excludes"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """The real CLI in this process (no cluster needed for these cases)."""
    from arcray.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("argv, code, text", [
    (["submit", "nope", "--address", DASHBOARD], 2, "unknown stage 'nope': choose one of"),
    (["submit", "scrape", "--env", f"ARCRAY_SAS_PASSWORD={SECRET}", "--address", DASHBOARD], 2,
     "refusing to send ARCRAY_SAS_PASSWORD"),
    (["submit", "scrape", "--address", "127.0.0.1:8390"], 2, "must be the dashboard URL"),
    (["submit", "scrape", "--address", "http://127.0.0.1:8399"], 4,
     "cannot reach the Ray dashboard at http://127.0.0.1:8399"),
    (["jobs", "status", "x", "--address", "http://127.0.0.1:8399"], 4, "cannot reach"),
])
def test_cli_errors_are_one_line(capsys, argv, code, text):
    rc, out, err = run_cli(capsys, *argv)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == code and len(lines) == 1 and lines[0].startswith("arcray: error: "), (rc, err)
    assert text in lines[0] and SECRET not in err + out


# ------------------------------------------------------------------ a real Ray head
def _env(token: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "ARCRAY_"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, PATH=f"{BIN}{os.pathsep}{env['PATH']}",
               RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="module")
def head():
    """`ray start --head` in its own process group; yields (env, temp dir)."""
    tmp = tempfile.mkdtemp(prefix="arcray-h7-", dir="/tmp")  # short: Unix socket paths
    env = _env(secrets.token_hex(16))
    cmd = [str(BIN / "ray"), "start", "--head", "--port=6510", "--dashboard-host=127.0.0.1",
           "--dashboard-port=8390", f"--temp-dir={tmp}", "--num-cpus=4",
           "--ray-client-server-port=6511", "--dashboard-agent-grpc-port=6512",
           "--node-manager-port=6513", "--object-manager-port=6514",
           "--runtime-env-agent-port=6515", "--dashboard-agent-listen-port=8391",
           "--metrics-export-port=8392", "--object-store-memory=300000000",
           "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    pgid = proc.pid
    try:
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out[-2000:]
        _wait_for_dashboard(env)
        yield env, tmp
    finally:
        kill_group(pgid)
        shutil.rmtree(tmp, ignore_errors=True)


def api(env: dict, path: str):
    """GET the dashboard's REST API with the cluster token (what the job server stored)."""
    req = urllib.request.Request(DASHBOARD + path,
                                 headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _wait_for_dashboard(env: dict, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            assert api(env, "/api/version")["ray_version"]
            return
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def arcray(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "arcray"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _archive(tmp: str) -> tuple[str, dict]:
    """One simulated month of night logs and the study JSON it must give."""
    from arcray.sim.mailman import mjd_date, write_month_archives
    from arcray.sim.types import SimExposure

    exps, expected = [], {"arcs": {}, "flats": {}}
    n = 380700
    for mjd in (60300, 60301):
        t0 = mjd_date(mjd) - dt.timedelta(hours=3)
        for k, (flavor, hart) in enumerate([("arc", "Out"), ("flat", "Out"), ("arc", "Left"),
                                            ("arc", "Right"), ("science", "Out")]):
            exps.append(SimExposure(expnum=n, mjd=mjd, observatory="apo", flavor=flavor,
                                    hartmann=hart, exptime=4.0, cameras=("b1", "r1"),
                                    date_obs=t0 + dt.timedelta(minutes=5 * k)))
            key = {"arc": "arcs", "flat": "flats"}.get(flavor)
            if key and hart == "Out":
                expected[key].setdefault(str(mjd), []).append(f"{n:08d}")
            n += 1
    paths = write_month_archives(exps, tmp, seed=3)
    assert len(paths) == 1
    return paths[0], expected


def _one_line_error(r: subprocess.CompletedProcess, code: int, text: str) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, (r.returncode, r.stdout[-500:], r.stderr[-1500:])
    assert len(lines) == 1 and lines[0].startswith("arcray: error: ") and text in lines[0], lines


@pytest.mark.ray
@pytest.mark.slow
def test_submit_runs_a_stage_and_jobs_commands_follow_it(head, tmp_path):
    env, _ = head
    archive, expected = _archive(str(tmp_path))
    env = dict(env, ARCRAY_SAS_USER="alice", ARCRAY_SAS_PASSWORD=SECRET)
    sid = f"arcray-test-scrape-{secrets.token_hex(3)}"
    r = arcray(env, "submit", "scrape", "--from-file", archive, "--json", "--smoke",
               "--address", DASHBOARD, "--submission-id", sid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"submitted {sid}", f"dashboard {DASHBOARD}/#/jobs/{sid}"]

    r = arcray(env, "jobs", "logs", sid, "--follow", "--address", DASHBOARD)
    assert r.returncode == 0, r.stderr
    printed = r.stdout[r.stdout.index("{"): r.stdout.rindex("}") + 1]
    assert json.loads(printed) == expected  # Hartmann arcs and science frames left out

    r = arcray(env, "jobs", "status", sid, "--address", DASHBOARD)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == f"{sid} SUCCEEDED", r.stderr
    r = arcray(env, "jobs", "list", "--address", DASHBOARD)
    assert any(ln.startswith(f"{sid}\tSUCCEEDED\t") and ln.endswith("\tscrape")
               for ln in r.stdout.splitlines()), r.stdout

    # what the cluster stored: the user name travels, the password does not (anywhere)
    info = api(env, f"/api/jobs/{sid}")
    assert info["metadata"]["arcray_stage"] == "scrape"
    assert info["runtime_env"]["env_vars"] == {"ARCRAY_SAS_USER": "alice"}
    assert SECRET not in json.dumps(info)

    # the same submission id again is refused: a retried submit never runs the stage twice
    r = arcray(head[0], "submit", "scrape", "--from-file", archive, "--json",
               "--address", DASHBOARD, "--submission-id", sid)
    _one_line_error(r, 4, f"submission id {sid} was already used")


@pytest.mark.ray
@pytest.mark.slow
def test_failures_exit_non_zero_with_one_line(head, tmp_path):
    env, _ = head
    r = arcray(env, "submit", "scrape", "--from-file", str(tmp_path / "missing.txt.gz"), "--json",
               "--address", DASHBOARD, "--wait", "--submission-id", "arcray-test-fail")
    assert "submitted arcray-test-fail" in r.stdout
    _one_line_error(r, 4, "job arcray-test-fail FAILED: Job entrypoint command failed with exit code")
    r = arcray(env, "jobs", "status", "arcray-test-fail", "--address", DASHBOARD)
    assert r.stdout.startswith("arcray-test-fail FAILED")
    _one_line_error(r, 4, "job arcray-test-fail FAILED")

    _one_line_error(arcray(env, "jobs", "logs", "no-such-job", "--address", DASHBOARD),
                    4, "no job 'no-such-job'")
    wrong = dict(env, RAY_AUTH_TOKEN="0" * 32)
    _one_line_error(arcray(wrong, "jobs", "list", "--address", DASHBOARD), 4,
                    "token authentication is on there")
