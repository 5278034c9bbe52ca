"""arcray's private local Ray instance: no secret in its processes' environment, and it ends with
its driver even when the driver is SIGKILLed (no actor left writing, no agent left under PID 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

DRIVER = r"""
import os, sys, time
import ray
from arcray.raycluster import ensure_ray

ensure_ray(num_cpus=2, dashboard=True)

@ray.remote
class Writer:
    def pid(self):
        return os.getpid()

w = Writer.remote()
node = ray._private.worker.global_worker.node
head = [p.process.pid for procs in node.all_processes.values() for p in procs]
print("PIDS", ray.get(w.pid.remote()), *head, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="the watchdog reads /proc (Linux)")
def test_sigkilled_driver_takes_its_instance_along_and_no_process_holds_the_secret():
    secret = "s3cret-pw-0123456789"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(ARCRAY_SAS_USER="observer", ARCRAY_SAS_PASSWORD=secret)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while not line.startswith("PIDS") and time.monotonic() < deadline:
            line = proc.stdout.readline()
        from arcray.raywatch import instance_processes

        head = [int(p) for p in line.split()[1:]]
        time.sleep(2)  # the raylet's agents start after it
        pids = instance_processes(head)  # the head processes and every descendant: workers, agents
        names = {open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")[0].rsplit(b"/", 1)[-1] for p in pids}
        assert len(pids) >= 6 and b"raylet" in names, names
        for pid in pids:
            with open(f"/proc/{pid}/environ", "rb") as f:
                assert secret.encode() not in f.read(), pid
        with open(f"/proc/{proc.pid}/environ", "rb") as f:
            assert secret.encode() in f.read()  # the driver itself keeps it (it needs it)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert [p for p in pids if _alive(p)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
