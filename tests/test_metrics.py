"""arcray's metrics: the helpers of arcray.metrics, and what a real Ray node exports for them.

The Ray test starts `ray start --head --metrics-export-port` in its own process group (ports
outside Ray's worker range and away from tests/test_submit.py's), runs a driver in a subprocess
whose Ray task records flags and predicted arcs, and reads the node's Prometheus text endpoint
until the values appear (the metrics agent exports every few seconds).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.plugins.ray_fixtures import kill_group

from arcray import metrics

BIN = Path(sys.executable).parent
GCS_PORT, METRICS_PORT, DASHBOARD_PORT = 6530, 8396, 8397


def test_helpers_are_no_ops_without_ray_and_refuse_negative_counts():
    # in a fresh interpreter: this process may hold another test's Ray instance
    code = ("import ray; from arcray import metrics; metrics.record_flags({'lamp_out': 2, 'red_qa': 0}); "
            "metrics.record_arcs_needed('b1', 3); assert not ray.is_initialized(); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-1000:]
    with pytest.raises(ValueError, match="negative"):
        metrics.record_flags({"lamp_out": -1})
    with pytest.raises(ValueError, match="negative"):
        metrics.record_arcs_needed("b1", -2)


def test_exported_series_names():
    series = metrics.exported_series()
    assert {"ray_arcray_flags_total", "ray_arcray_arcs_needed_total", "ray_arcray_arcs_needed_latest",
            "ray_arcray_calibrate_frames_total", "ray_arcray_calibrate_seconds_bucket",
            "ray_arcray_download_bytes_total", "ray_arcray_download_pending"} <= series
    names = [m.name for m in metrics.EXPORTED]
    assert len(names) == len(set(names)) and all(n.startswith("arcray_") for n in names)


DRIVER = """
import ray
ray.init(address="127.0.0.1:{gcs}", log_to_driver=False)

@ray.remote(num_cpus=1)
def night_verdict():
    from arcray.metrics import record_arcs_needed, record_flags
    record_flags({{"lamp_out": 2, "red_qa": 3}}, camera="b1")
    record_flags({{"red_qa": 1}}, camera="r1")
    record_arcs_needed("b1", 4)
    record_arcs_needed("r1", 0)
    return True

assert ray.get(night_verdict.remote())
import time; time.sleep(12)  # the worker must live until the agent has exported its metrics
"""


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


@pytest.mark.ray
@pytest.mark.slow
def test_a_ray_node_exports_arcray_metrics_over_http():
    tmp = tempfile.mkdtemp(prefix="arcray-m-", dir="/tmp")  # short: Unix socket paths
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "ARCRAY_"))}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
               PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    cmd = [str(BIN / "ray"), "start", "--head", f"--port={GCS_PORT}", f"--temp-dir={tmp}",
           "--num-cpus=2", "--dashboard-host=127.0.0.1", f"--dashboard-port={DASHBOARD_PORT}",
           f"--metrics-export-port={METRICS_PORT}", "--ray-client-server-port=6531",
           "--dashboard-agent-grpc-port=6532", "--node-manager-port=6533",
           "--object-manager-port=6534", "--runtime-env-agent-port=6535",
           "--dashboard-agent-listen-port=8398", "--object-store-memory=100000000",
           "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    pgid = proc.pid
    try:
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out[-2000:]
        driver = subprocess.Popen([sys.executable, "-c", DRIVER.format(gcs=GCS_PORT)], env=env,
                                  start_new_session=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        deadline, text, found = time.monotonic() + 40, "", {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                text = ""
            found = {
                "b1 lamp_out": _sample(text, "ray_arcray_flags_total", reason="lamp_out", camera="b1"),
                "b1 red_qa": _sample(text, "ray_arcray_flags_total", reason="red_qa", camera="b1"),
                "r1 red_qa": _sample(text, "ray_arcray_flags_total", reason="red_qa", camera="r1"),
                "b1 arcs": _sample(text, "ray_arcray_arcs_needed_total", camera="b1"),
                "b1 latest": _sample(text, "ray_arcray_arcs_needed_latest", camera="b1"),
                "r1 latest": _sample(text, "ray_arcray_arcs_needed_latest", camera="r1"),
            }
            if all(v is not None for v in found.values()):
                break
            time.sleep(1)
        out, _ = driver.communicate(timeout=30)
        assert driver.returncode == 0, out[-2000:]
        assert found == {"b1 lamp_out": 2, "b1 red_qa": 3, "r1 red_qa": 1, "b1 arcs": 4,
                         "b1 latest": 4, "r1 latest": 0}, [l for l in text.splitlines() if "arcray" in l]
        assert _sample(text, "ray_arcray_arcs_needed_total", camera="r1") is None  # 0 is not counted
        exported = {m.group(1) for m in re.finditer(r"^(ray_arcray_\w+?)(?:\{| )", text, re.M)}
        assert exported <= metrics.exported_series(), exported - metrics.exported_series()
    finally:
        kill_group(pgid)
        shutil.rmtree(tmp, ignore_errors=True)
