"""Soak: download + calibrate, again and again, under injected faults, SIGKILLs and an overlapping run.

On a small simulated world (``--nights`` reduced nights: per camera a bias, two arcs, a Hartmann
pair, two flats and a science frame; arcs and flats are fetched), served with HTTP faults (5xx,
dropped connections, truncated bodies), each cycle runs the real commands as a user would:

- damage first, so every cycle has work to do: two downloaded frames deleted, one cut in half,
  two touched (a new mtime: their calibration is stale);
- ``arcray download`` and ``arcray calibrate`` in subprocesses, each SIGKILLed at a random moment
  with probability ``--kill``;
- in one cycle, a second ``arcray download`` started while the first runs (it must refuse with
  one line, exit 2, or wait, and never corrupt the first one's records);

then a last clean cycle lets both finish. Printed at the end, against the world's own files:
files expected / present / byte-identical / duplicated / stale / corrupt, and whether the
calibrated dataset and the failures table partition the inputs (no frame in both, none missing).

    .venv/bin/python benchmarks/soak_ingest.py [--cycles 10] [--nights 1] [--kill 0.6] [--seed 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

FAULTS = "error_rate=0.1,drop_rate=0.05,truncate_rate=0.05"
USER = "soak@example.org"


def _env(password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(ARCRAY_SAS_USER=USER, ARCRAY_SAS_PASSWORD=password, ARCRAY_MAILMAN_USER=USER,
               ARCRAY_MAILMAN_PASSWORD=password)
    return env


def _arcray(*args: str) -> list[str]:
    return [sys.executable, "-m", "arcray", *args]


def _run(cmd: list[str], env: dict, kill_after: float | None, log) -> int | None:
    """Run ``cmd``; SIGKILL its whole process group after ``kill_after`` s (None: let it finish).
    Returns the exit code, or None when it was killed."""
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        proc.wait(timeout=kill_after if kill_after is not None else 600)
        return proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def audit(world: str, root: str) -> dict[str, int | bool]:
    """Counts of what is on disk under ``root`` against the world's frames (module docstring)."""
    import pyarrow.parquet as pq

    from arcray.paths import Layout, SimLayout
    from arcray.sim.world import SimWorld

    layout, sim = Layout(root), SimLayout(world)
    w = SimWorld.load(world)
    expected = {(c, e.mjd, e.expnum) for e in w.exposures if e.flavor in ("arc", "flat") and e.hartmann == "Out"
                for c in e.cameras}
    out: dict[str, int | bool] = {"expected": len(expected)}
    raw = {}
    for d, _, files in os.walk(layout.raw_root):
        for f in files:
            raw.setdefault(f, []).append(os.path.join(d, f))
    present = identical = corrupt = 0
    for cam, mjd, exp in expected:
        p = layout.raw_frame(cam, mjd, exp)
        if not os.path.exists(p):
            continue
        present += 1
        mine = open(p, "rb").read()
        identical += mine == open(sim.raw_frame(cam, mjd, exp), "rb").read()
        try:
            gzip.decompress(mine)
        except (OSError, EOFError):
            corrupt += 1
    out.update(present=present, byte_identical=identical, corrupt_raw=corrupt,
               duplicated_raw=sum(len(v) - 1 for v in raw.values() if len(v) > 1),
               leftover_partials=sum(1 for f in raw if not f.endswith((".fit.gz", ".fit"))))
    rows = pq.read_table(layout.downloads).to_pylist() if os.path.exists(layout.downloads) else []
    keys = Counter((r["camera"], int(r["expnum"])) for r in rows)
    out["duplicated_download_rows"] = sum(n - 1 for n in keys.values() if n > 1)
    out["failed_download_rows_on_good_files"] = sum(
        1 for r in rows if r["status"] == "failed" and (r["camera"], int(r["mjd"]), int(r["expnum"])) in expected
        and os.path.exists(layout.raw_frame(r["camera"], r["mjd"], r["expnum"])))
    calibrated: Counter = Counter()
    corrupt_cal = 0
    for d, _, files in os.walk(layout.calibrated):
        for f in files:
            if not f.endswith(".parquet"):
                out["leftover_partials"] = int(out["leftover_partials"]) + 1
                continue
            try:
                t = pq.read_table(os.path.join(d, f), columns=["camera", "mjd", "expnum"])
                r = t.to_pylist()[0]
                calibrated[(r["camera"], int(r["mjd"]), int(r["expnum"]))] += 1
            except Exception:  # noqa: BLE001 - counting, not judging
                corrupt_cal += 1
    fails = pq.read_table(layout.calibrated_failures).to_pylist() if os.path.exists(layout.calibrated_failures) else []
    failed = Counter((r["camera"], int(r["expnum"])) for r in fails)
    inputs = {(c, m, e) for c, m, e in expected if os.path.exists(layout.raw_frame(c, m, e))}
    cal_keys = {(c, e) for c, _, e in calibrated}
    out.update(calibrated=len(calibrated), corrupt_calibrated=corrupt_cal,
               duplicated_calibrated=sum(n - 1 for n in calibrated.values() if n > 1),
               duplicated_failure_rows=sum(n - 1 for n in failed.values() if n > 1),
               stale=len(cal_keys & set(failed)) + len({k for k in calibrated if k not in expected}),
               lost=len({(c, e) for c, _, e in inputs} - cal_keys - set(failed)))
    out["partition_ok"] = out["stale"] == 0 and out["lost"] == 0 and out["duplicated_failure_rows"] == 0
    return out


def damage(root: str, rng: random.Random) -> str:
    """Delete two downloaded frames, cut one in half, touch two: what a cycle then has to repair."""
    from arcray.paths import Layout

    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(Layout(root).raw_root) for f in fs
                   if f.endswith(".fit.gz"))
    if len(files) < 5:
        return "nothing to damage yet"
    picked = rng.sample(files, 5)
    for f in picked[:2]:
        os.unlink(f)
    data = open(picked[2], "rb").read()
    with open(picked[2], "wb") as fh:
        fh.write(data[: len(data) // 2])
    now = time.time()
    for f in picked[3:]:
        os.utime(f, (now, now))
    return "2 deleted, 1 cut in half, 2 touched"


def soak(cycles: int, nights: int, kill: float, seed: int, tmp: str, echo=print,
         kill_window_s: tuple[float, float] = (1.0, 15.0)) -> dict[str, int | bool]:
    """Run the soak in ``tmp`` and return ``audit``'s counts; a command is SIGKILLed with probability
    ``kill`` at a moment drawn uniformly from ``kill_window_s`` after its start."""
    from datetime import date

    from arcray.sim.server import ArchiveServer
    from arcray.sim.world import render_world

    rng = random.Random(seed)
    world, root = os.path.join(tmp, "world"), os.path.join(tmp, "root")
    render_world(world, date(2024, 1, 4), nights, seed, "apo", reduced=True, workers=1)
    password = f"pw-{rng.getrandbits(64):x}"
    server = ArchiveServer(world, user=USER, password=password, faults=FAULTS).start()
    env = _env(password)
    log = open(os.path.join(tmp, "soak.log"), "ab")
    try:
        months = "2024-01"
        rc = _run(_arcray("scrape", "--base-url", server.base_url, "--root", root, "--months", months), env, None, log)
        if rc != 0:
            raise SystemExit(f"scrape failed (exit {rc}); see {log.name}")
        download = _arcray("download", "--base-url", server.base_url, "--root", root, "--workers", "2",
                           "--max-failures", "1000")
        calibrate = _arcray("calibrate", "--root", root, "--workers", "2", "--max-failures", "1000")
        overlap_cycle = rng.randrange(max(1, cycles))
        for i in range(cycles):
            t0 = time.monotonic()
            echo(f"cycle {i + 1}: damage: {damage(root, rng)}")
            if i == overlap_cycle:
                first = subprocess.Popen(download, env=env, stdout=log, stderr=log, start_new_session=True)
                time.sleep(rng.uniform(0.3, 1.5))
                second = _run(download, env, None, log)
                first.wait(600)
                echo(f"cycle {i + 1}: overlapping downloads: first exit {first.returncode}, second exit {second}")
            else:
                k = rng.uniform(*kill_window_s) if rng.random() < kill else None
                rc = _run(download, env, k, log)
                echo(f"cycle {i + 1}: download {'killed after %.1f s' % k if rc is None else 'exit %s' % rc}")
            k = rng.uniform(*kill_window_s) if rng.random() < kill else None
            rc = _run(calibrate, env, k, log)
            echo(f"cycle {i + 1}: calibrate {'killed after %.1f s' % k if rc is None else 'exit %s' % rc} "
                 f"({time.monotonic() - t0:.0f} s)")
        rcs = (_run(download, env, None, log), _run(calibrate, env, None, log))
        echo(f"last clean cycle: download exit {rcs[0]}, calibrate exit {rcs[1]}")
    finally:
        server.stop()
        log.close()
    return audit(world, root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--nights", type=int, default=1)
    ap.add_argument("--kill", type=float, default=0.6, help="probability of a SIGKILL per command")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--keep", help="directory to keep the world, root and soak.log in (default: a temporary one)")
    args = ap.parse_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        res = soak(args.cycles, args.nights, args.kill, args.seed, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="arcray-soak-") as tmp:
            res = soak(args.cycles, args.nights, args.kill, args.seed, tmp)
    print("\nafter the last cycle:")
    for k, v in res.items():
        print(f"  {k:38s} {v}")
    bad = {k: v for k, v in res.items() if k not in ("expected", "present", "byte_identical", "calibrated",
                                                      "partition_ok") and v}
    ok = not bad and res["byte_identical"] == res["expected"] and res["partition_ok"]
    print(f"\n{'PASS' if ok else 'FAIL'}: {res['expected']} files expected, {res['byte_identical']} byte-identical, "
          f"0 lost/corrupt/duplicated/stale required" + ("" if ok else f"; problems: {bad}"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
