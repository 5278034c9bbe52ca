"""Does each stage's cost per frame, and its peak memory, stay flat as the work grows?

For each N of ``--sizes`` (default 200, 800, 3200 camera-arc frames) a fresh pipeline root gets N
raw frames of ``--raw`` spread over every night (``spread``: symbolic links; Hartmann frames left out
when ``--truth`` says which they are), and each stage runs on a local Ray instance of its own,
started before its clock (``fresh_ray``: start-up is not a stage's cost, and idle workers of the
stage before are not in its memory):

- ``calibrate``: calibrate + per-frame measurement (``run_calibrate``, 2 actors), per frame;
- ``measure``: the night pass (``run_measure``), per frame;
- ``train``: one epoch of one latent per camera (``train_cameras``), per frame;
- ``embed``: every calibrated frame (``embed``), per frame;
- ``predict``: the last night of the N frames (``run_predict``), per frame of that night.

Memory is the peak PSS of the benchmark's whole process tree while the stage runs (the driver, the
Ray head, raylet and every worker; PSS counts the object store's shared pages once) and the peak
growth of ``/dev/shm`` (the object store's files), sampled every 0.5 s (``scale_watch.TreeSampler``).
It prints one row per (N, stage): wall seconds and CPU seconds (user + system of the whole tree) per
frame, then per stage the ratio largest N / smallest N of the net CPU seconds per frame (the cost:
the tree's CPU less what an idle Ray instance burns in the stage's wall time, ``idle_rate``; wall
time on 2 cores shared with other work is not one; goal: at most 1.25) and of the peak memory
(goal: at most 1.3).

    nice -n 19 .venv/bin/python benchmarks/bench_scale.py --raw /tmp/C/r60/raw \\
        --truth /tmp/C/w60/truth.parquet --sizes 200,800 --out /tmp/C/bench

Measured on 2 cores shared with three other jobs (load 20-40): calibrate 0.6-0.8 CPU s a frame,
N = 100 with every stage 17 minutes of wall time (train 10 of them), N = 400 without train 11
minutes; N = 3,200 needs a world of that many arcs (``benchmarks/two_months.sh`` plans 1,758).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scale_watch import TreeSampler  # noqa: E402

GOAL_COST, GOAL_MEMORY = 1.25, 1.3
STAGES = ("calibrate", "measure", "train", "embed", "predict")


def raw_frames(raw: str, truth: str | None) -> list[tuple[int, int, str, str]]:
    """``(mjd, expnum, camera, path)`` of every raw frame under ``raw``, time order, no Hartmann
    frames when ``truth`` is given."""
    from arcray.calib.identity import frame_key, night_mjd
    from arcray.pipeline.calibrate import frame_inputs

    hart = set()
    if truth:
        import pandas as pd

        t = pd.read_parquet(truth, columns=["camera", "expnum", "hartmann"])
        hart = {(c, int(e)) for c, e, h in t.itertuples(index=False) if h != "Out"}
    out = []
    for p in frame_inputs(raw):
        key = frame_key(p)
        if key is None or (key[1], int(key[2])) in hart:
            continue
        mjd = night_mjd(p)
        out.append((mjd, int(key[2]), key[1], p))
    return sorted(out)


def spread(frames: list) -> list:
    """Every night's first exposure (both cameras), then every night's second, ...: the first N of
    this order cover every night of the world, so each N has training, validation and test nights
    (the MJD split) and a reference arc each night, and only the frames per night grow with N."""
    rank, seen = {}, {}
    for mjd, exp, cam, p in frames:
        k = seen.setdefault((mjd, exp), len([1 for m, _ in seen if m == mjd]))
        rank[(mjd, exp, cam)] = k
    return sorted(frames, key=lambda f: (rank[f[:3]], f[0], f[1], f[2]))


def link_subset(frames, n: int, raw_out: str) -> list:
    subset = sorted(spread(frames)[:n])
    for mjd, _, _, p in subset:
        d = os.path.join(raw_out, str(mjd))
        os.makedirs(d, exist_ok=True)
        dest = os.path.join(d, os.path.basename(p))
        if not os.path.lexists(dest):
            os.symlink(os.path.abspath(p), dest)
    return subset


def fresh_ray() -> None:
    """A new local Ray instance (the last one shut down first), started outside any stage's
    timing: each stage is measured in its own instance, as each `arcray <stage>` command runs, so
    the idle workers an earlier stage left behind count in nobody's memory."""
    import ray

    from arcray.raycluster import ensure_ray

    ray.shutdown()
    for attempt in range(3):  # Ray gives its raylet 30 s to register: not always enough on a loaded machine
        try:
            ensure_ray(None)
            return
        except Exception as exc:  # noqa: BLE001
            print(f"bench_scale: Ray did not start ({str(exc).splitlines()[0]}); retrying", file=sys.stderr)
            ray.shutdown()
    raise SystemExit("bench_scale: Ray did not start three times")


@contextmanager
def sampled(rows: list, n: int, stage: str, frames: int):
    """Time and sample one stage; a stage that raises is a row with its error (later stages run)."""
    fresh_ray()
    t0, error = time.perf_counter(), None
    with TreeSampler(os.getpid(), interval=0.5) as s:
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - the benchmark reports it and goes on
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    sec = time.perf_counter() - t0
    if error:
        rows.append({"n": n, "stage": stage, "frames": frames, "error": error})
        print(f"  N={n:5d} {stage:9s} FAILED: {error}", flush=True)
        return
    rows.append({"n": n, "stage": stage, "frames": frames, "seconds": round(sec, 2),
                 "s_per_frame": round(sec / max(frames, 1), 4), "cpu_s": round(s.peak.cpu_s, 1),
                 "cpu_s_per_frame": round(s.peak.cpu_s / max(frames, 1), 4),
                 "peak_pss_mb": round(s.peak.peak_pss_mb),
                 "peak_shm_mb": round(s.peak.peak_shm_mb)})
    r = rows[-1]
    print(f"  N={n:5d} {stage:9s} {frames:5d} frames {sec:8.1f} s  {r['s_per_frame']:.3f} s/frame  "
          f"{r['cpu_s_per_frame']:.3f} CPU s/frame  "
          f"peak PSS {r['peak_pss_mb']} MB  /dev/shm +{r['peak_shm_mb']} MB", flush=True)


def run_size(frames, n: int, out: str, args, rows: list) -> None:
    from arcray.calib.config import CalibConfig
    from arcray.measure.config import MeasureConfig
    from arcray.paths import Layout
    from arcray.pipeline.calibrate import run_calibrate
    from arcray.pipeline.embed import embed
    from arcray.pipeline.measure import run_measure
    from arcray.pipeline.predict import run_predict
    from arcray.training.config import TrainConfig
    from arcray.training.trainer import train_cameras

    root = os.path.join(out, f"n{n}")
    subset = link_subset(frames, n, os.path.join(root, "raw"))
    layout = Layout(root)
    cams = sorted({c for _, _, c, _ in subset})
    want = set(args.stages)
    if "calibrate" in want:
        with sampled(rows, n, "calibrate", len(subset)):
            run_calibrate(os.path.join(root, "raw"), layout, CalibConfig(), workers=args.workers,
                          measure=MeasureConfig())
    if "measure" in want:
        with sampled(rows, n, "measure", len(subset)):
            run_measure(root)
    if "train" in want:
        base = TrainConfig(camera=cams[0], arch=args.arch, latent=args.latent, epochs=1)
        with sampled(rows, n, "train", len(subset)):
            res = train_cameras(root, root, base, cams)
            if res.n_failed:
                raise RuntimeError(f"{res.n_failed} of {len(cams)} cameras failed to train")
    if "train" not in want and args.models_from and not os.path.exists(layout.models):
        shutil.copytree(Layout(args.models_from).models, layout.models)  # embed's models, not trained here
    if "embed" in want:
        with sampled(rows, n, "embed", len(subset)):
            embed(root, latent=args.latent, cameras=cams, n_actors=args.workers)
    if "predict" in want:
        last = max(m for m, _, _, _ in subset)
        with sampled(rows, n, "predict", sum(m == last for m, _, _, _ in subset)):
            run_predict(root, mjd=last)


def idle_rate(seconds: float) -> float:
    """CPU seconds per second of a fresh local Ray instance doing nothing (raylet, GCS, dashboard
    and agents on their timers, and this process's sampler), measured over ``seconds``. Each
    stage's tree CPU includes that much per second of its wall time, and wall time stretches on a
    loaded machine while the work does not: ``ratios`` takes it off (the stage's *net* CPU)."""
    fresh_ray()
    time.sleep(5)
    t0 = time.perf_counter()
    with TreeSampler(os.getpid(), interval=0.5) as s:
        time.sleep(seconds)
    return s.peak.cpu_s / (time.perf_counter() - t0)


def ratios(rows: list, idle: float = 0.0) -> list[dict]:
    """Per stage, largest N / smallest N of the net CPU seconds per frame (tree CPU minus ``idle``
    x wall seconds; ``raw_cost_ratio`` without that) and of the peak PSS."""
    out = []
    for stage in STAGES:
        r = sorted((x for x in rows if x["stage"] == stage and "error" not in x), key=lambda x: x["n"])
        if len(r) < 2:
            continue
        lo, hi = r[0], r[-1]
        net = [max(x["cpu_s"] - idle * x["seconds"], 0.0) / max(x["frames"], 1) for x in (lo, hi)]
        raw = [x["cpu_s"] / max(x["frames"], 1) for x in (lo, hi)]
        cost = net[1] / net[0] if net[0] else float("nan")
        mem = hi["peak_pss_mb"] / lo["peak_pss_mb"] if lo["peak_pss_mb"] else float("nan")
        out.append({"stage": stage, "n_small": lo["n"], "n_large": hi["n"], "net_cpu_s_per_frame": [round(v, 4) for v in net],
                    "cost_ratio": round(cost, 2), "raw_cost_ratio": round(raw[1] / raw[0], 2) if raw[0] else float("nan"),
                    "memory_ratio": round(mem, 2), "cost_ok": cost <= GOAL_COST, "memory_ok": mem <= GOAL_MEMORY})
    return out


def print_ratios(rat: list, idle: float) -> None:
    print(f"\nnet CPU = tree CPU - {idle:.3f} CPU s/s (the idle Ray instance) x wall seconds")
    print("stage      N small -> N large   net CPU s/frame           ratio (goal <= 1.25)  raw ratio   "
          "peak memory ratio (goal <= 1.3)")
    for r in rat:
        a, b = r["net_cpu_s_per_frame"]
        print(f"{r['stage']:9s}  {r['n_small']:6d} -> {r['n_large']:6d}   {a:7.3f} -> {b:7.3f}       {r['cost_ratio']:5.2f} "
              f"{'ok' if r['cost_ok'] else 'GROWS':5s}         {r['raw_cost_ratio']:5.2f}       {r['memory_ratio']:5.2f} "
              f"{'ok' if r['memory_ok'] else 'GROWS'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", help="raw frames (a pipeline root's raw/ or a world's sas/); required unless --from-json")
    ap.add_argument("--truth", help="the world's truth.parquet: leaves the Hartmann frames out")
    ap.add_argument("--sizes", default="200,800,3200", help="comma-separated N (frames)")
    ap.add_argument("--out", default="/tmp/bench_scale", help="scratch directory (one root per N)")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    ap.add_argument("--latent", type=int, default=4)
    ap.add_argument("--arch", default="pca_res")
    ap.add_argument("--workers", type=int, default=2, help="calibrate / embed actors")
    ap.add_argument("--models-from", help="without the train stage: copy this pipeline root's models/")
    ap.add_argument("--json", help="also write the rows and ratios to this JSON file")
    ap.add_argument("--idle-seconds", type=float, default=30.0,
                    help="measure the idle Ray instance's CPU rate this long first (0: no correction)")
    ap.add_argument("--from-json", help="print the ratios of an earlier run's --json (no stage runs) "
                                        "with --idle-rate")
    ap.add_argument("--idle-rate", type=float, default=None, help="with --from-json: CPU s/s to take off")
    ap.add_argument("--keep", action="store_true", help="keep each N's pipeline root (default: deleted once "
                                                        "measured: N = 3,200 calibrated is ~4.5 GB)")
    args = ap.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        idle = args.idle_rate if args.idle_rate is not None else saved.get("idle_rate", 0.0)
        print_ratios(ratios(saved["rows"], idle), idle)
        return 0
    if not args.raw:
        ap.error("--raw is required (or --from-json)")
    args.stages = [s for s in args.stages.split(",") if s]
    unknown = set(args.stages) - set(STAGES)
    if unknown:
        ap.error(f"unknown stages {sorted(unknown)}")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    from arcray.errors import ArcrayError

    try:
        frames = raw_frames(args.raw, args.truth)
    except (ArcrayError, OSError) as exc:
        print(f"bench_scale: {exc}", file=sys.stderr)
        return 2
    if not frames:
        print(f"bench_scale: no raw frames under {args.raw}", file=sys.stderr)
        return 2
    if sizes[-1] > len(frames):
        print(f"bench_scale: {args.raw} has {len(frames)} frames; sizes above that are left out", file=sys.stderr)
        sizes = [n for n in sizes if n <= len(frames)]
    idle = idle_rate(args.idle_seconds) if args.idle_seconds > 0 else 0.0
    print(f"idle local Ray instance: {idle:.3f} CPU s per s", flush=True)
    rows: list = []
    for n in sizes:
        print(f"N = {n}", flush=True)
        run_size(frames, n, args.out, args, rows)
        if not args.keep:
            shutil.rmtree(os.path.join(args.out, f"n{n}"), ignore_errors=True)
    rat = ratios(rows, idle)
    print_ratios(rat, idle)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"idle_rate": idle, "rows": rows, "ratios": rat}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
