"""Peak memory and wall time of one command and every process it starts (the Ray head, raylet,
workers and the object store's shared pages all belong to the tree of the command that ran
``ray.init``).

Memory is the sum of PSS (proportional set size) over the tree, sampled every ``interval`` s:
PSS counts a shared page once in total (split between the processes mapping it), so the object
store's shared memory, mapped by every worker, is neither missed nor counted once per worker, as a
sum of RSS would. ``/dev/shm`` is sampled alongside (Ray's plasma files live there on Linux).

    .venv/bin/python benchmarks/scale_watch.py --log runs.jsonl --name calibrate -- arcray calibrate ...

appends one JSON line {name, rc, seconds, peak_pss_mb, peak_rss_mb, peak_shm_mb, n_procs_max, cpu_s}.
CPU seconds are what a loaded machine cannot blur: the wall time of a stage on 2 cores shared with
other work is not its cost, its CPU seconds are (a process that ends between two samples loses at
most one interval of them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass

import psutil


@dataclass
class Peak:
    name: str = ""
    rc: int | None = None
    seconds: float = 0.0
    peak_pss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    peak_shm_mb: float = 0.0
    n_procs_max: int = 0
    cpu_s: float = 0.0  # user + system CPU seconds of the tree while sampled (a process's last sample)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0.0


def _shm_used_mb() -> float:
    try:
        u = shutil.disk_usage("/dev/shm")
        return u.used / 2**20
    except OSError:
        return 0.0


class TreeSampler:
    """Samples the process tree under ``pid`` every ``interval`` s in a background thread."""

    def __init__(self, pid: int, interval: float = 1.0):
        self.pid, self.interval = pid, interval
        self.peak = Peak()
        self._stop = threading.Event()
        self._shm0 = _shm_used_mb()
        self._cpu0 = {p.pid: _cpu(p) for p in _tree(pid)}  # processes already running: only their growth counts
        self._cpu: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        pss = rss = 0.0
        procs = _tree(self.pid)
        for p in procs:
            try:
                mi = p.memory_full_info()
                pss += getattr(mi, "pss", mi.rss)
                rss += mi.rss
                self._cpu[p.pid] = _cpu(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        pk = self.peak
        pk.cpu_s = sum(c - self._cpu0.get(pid, 0.0) for pid, c in self._cpu.items())
        pk.peak_pss_mb = max(pk.peak_pss_mb, pss / 2**20)
        pk.peak_rss_mb = max(pk.peak_rss_mb, rss / 2**20)
        pk.peak_shm_mb = max(pk.peak_shm_mb, _shm_used_mb() - self._shm0)
        pk.n_procs_max = max(pk.n_procs_max, len(procs))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def watch(cmd: list[str], name: str, interval: float = 1.0) -> Peak:
    """Run ``cmd``, sampling its process tree; return its peaks, time and exit code."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    with TreeSampler(proc.pid, interval) as s:
        rc = proc.wait()
    s.peak.name, s.peak.rc, s.peak.seconds = name, rc, round(time.perf_counter() - t0, 2)
    return s.peak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True, help="JSON-lines file to append the result to")
    ap.add_argument("--name", required=True, help="stage name")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and its arguments")
    a = ap.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command given after --")
    peak = watch(cmd, a.name, a.interval)
    with open(a.log, "a") as f:
        f.write(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(peak).items()})
                + "\n")
    print(f"[{peak.name}] rc={peak.rc} {peak.seconds:.1f} s ({peak.cpu_s:.0f} CPU s), peak PSS {peak.peak_pss_mb:.0f} MB "
          f"(RSS {peak.peak_rss_mb:.0f} MB, /dev/shm +{peak.peak_shm_mb:.0f} MB, {peak.n_procs_max} processes)",
          file=sys.stderr)
    return peak.rc or 0


if __name__ == "__main__":
    raise SystemExit(main())
