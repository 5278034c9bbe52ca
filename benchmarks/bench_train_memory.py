"""Peak memory of a grid-model training run at 1x and 4x the frames: training streams, so it stays flat.

    .venv/bin/python benchmarks/bench_train_memory.py [--nights 14] [--frames-per-night 4] [--epochs 2]

Writes two synthetic calibrated datasets of 16 windows of 64x64 a frame (``--nights`` nights
and 4x as many), trains the ``grid_res`` model on each in a fresh local Ray instance (one
Ray Train worker) and samples, every 0.2 s, the resident memory (RSS) of the whole Ray process
tree (the driver, GCS, raylet, Train controller and worker, Ray Data tasks; shared object-store
pages are counted in the processes that touch them) and the object store's used bytes. The
worker's shard cache is off (``cache_mb=0``: every epoch streams from Parquet, the path a dataset
above the budget takes) and the driver reads at most ``--driver-frames`` frames per split (the
bounded sample of the normaliser, PCA initialisation and scores), so what grows with the dataset
is only what training itself holds. Goal: the two peaks differ by < 30 %.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

CHILD = "--child"


def _tree_rss(root_pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(root_pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _object_store_used(address: str) -> int:
    """Bytes in this instance's object store (an internal Ray API; -1 when it fails)."""
    try:
        from ray._private.internal_api import get_memory_info_reply, get_state_from_address

        reply = get_memory_info_reply(get_state_from_address(address))
        return int(reply.store_stats.object_store_bytes_used)
    except Exception:  # noqa: BLE001 - best effort: an internal API
        return -1


def child(data: str, epochs: int, driver_frames: int) -> None:
    """One training run in this (fresh) process; prints a JSON line with the peaks."""
    import ray

    from arcray.raycluster import ensure_ray
    from arcray.training.config import TrainConfig
    from arcray.training.trainer import train_camera

    ensure_ray(num_cpus=4)
    address = ray.get_runtime_context().gcs_address
    peak = {"rss": 0, "store": -1}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], _tree_rss(os.getpid()))
            peak["store"] = max(peak["store"], _object_store_used(address))
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    cfg = TrainConfig(camera="b1", view="grid", arch="grid_res", latent=4, epochs=epochs, patience=100,
                      cache_mb=0, driver_frames=driver_frames)
    res = train_camera(data, data, cfg)
    stop.set()
    t.join()
    print(json.dumps({"peak_rss": peak["rss"], "peak_store": peak["store"],
                      "n_train": int(res["history"]["train_samples"].iloc[-1]),
                      "seconds": time.perf_counter() - t0}), flush=True)
    ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nights", type=int, default=14)
    ap.add_argument("--frames-per-night", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--driver-frames", type=int, default=32)
    ap.add_argument(CHILD, nargs=1, default=None)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.epochs, args.driver_frames)
        return

    from arcray.testing.calibrated import write_synthetic_dataset

    tmp = tempfile.mkdtemp(prefix="arcray-bench-mem-")
    runs = {}
    for factor in (1, 4):
        data = os.path.join(tmp, f"x{factor}")
        write_synthetic_dataset(data, mjds=tuple(range(60000, 60000 + args.nights)), cameras=("b1",),
                                frames_per_night=args.frames_per_night * factor, window_size=64,
                                n_windows=16, seed=factor)
        out = subprocess.run([sys.executable, __file__, CHILD, data, "--epochs", str(args.epochs),
                              "--driver-frames", str(args.driver_frames)],
                             capture_output=True, text=True, check=True)
        runs[factor] = json.loads(out.stdout.strip().splitlines()[-1])
        r = runs[factor]
        print(f"{factor}x: {r['n_train']:5d} training frames, peak RSS of the Ray process tree "
              f"{r['peak_rss'] / 2**20:7.0f} MiB, peak object store {r['peak_store'] / 2**20:6.0f} MiB, "
              f"{r['seconds']:.0f} s", flush=True)
    ratio = runs[4]["peak_rss"] / runs[1]["peak_rss"]
    print(f"peak RSS 4x / 1x: {ratio:.2f}  (goal: differ by < 30 %, i.e. ratio < 1.30; "
          f"{args.epochs} epochs, grid_res latent 4, 16 windows of 64x64, cache_mb=0, "
          f"driver_frames={args.driver_frames})")


if __name__ == "__main__":
    main()
