"""Samples/s of the Ray Train loop against a bare torch loop, same model and data, one run.

    .venv/bin/python benchmarks/bench_train.py [--view grid] [--epochs 6] [--frames-per-night 3]
    .venv/bin/python benchmarks/bench_train.py --view window0 --arch small3 --frames-per-night 6

Both loops run ``arcray.training.loop.run_epoch`` on the same view arrays with one torch thread
(a Ray Train worker with 1 CPU gets OMP_NUM_THREADS=1): ``grid`` (default) the ``grid_res`` model
on 16 windows of 64x64 a frame, ``window0`` one 64x64 crop of a 128-px window. The Ray number is
each epoch's training-pass rate measured inside the worker (data streamed from Parquet through
``get_dataset_shard``, cached in the worker after the first epoch while under ``cache_mb``; DDP
wrapper); both exclude the first (warm-up) epoch. Also printed per CPU second of the training
process (``time.process_time``: in the Ray worker it includes Ray's own threads, whose CPU per
wall second stays while a loaded machine stretches the epoch) and per CPU second of the thread
running the loop (``time.thread_time``: the loop's own cost, which other load does not move).
The Ray workers run at nice ``--worker-niceness`` (default: the bare loop's priority; Ray's default
of 15 lets any other process on a shared machine take their cores, which measured 0.13 here with
a render running beside). Goal: ratio >= 0.9 on CPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--view", default="grid", choices=("grid", "window0"))
    ap.add_argument("--arch", default=None, help="default: grid_res (grid), small3 (window0)")
    ap.add_argument("--frames-per-night", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--worker-niceness", type=int, default=None,
                    help="nice value of the Ray workers (Ray's own default is 15: on a machine shared "
                         "with other work they then get a fraction of a core while the bare loop, at "
                         "the shell's nice, does not); default: this process's, the bare loop's priority")
    args = ap.parse_args()
    import os

    if args.worker_niceness is None:
        args.worker_niceness = os.nice(0)
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # read by the raylet ensure_ray starts

    from arcray.model.ae import build_autoencoder
    from arcray.raycluster import ensure_ray
    from arcray.training.local import batches
    from arcray.training.loop import make_optimizer, run_epoch
    from arcray.testing.calibrated import write_synthetic_dataset
    from arcray.training.config import TrainConfig
    from arcray.training.trainer import initial_state, model_config, prepare_for, train_camera

    arch = args.arch or ("grid_res" if args.view == "grid" else "small3")
    tmp = tempfile.mkdtemp(prefix="arcray-bench-")
    grid = args.view == "grid"
    write_synthetic_dataset(tmp, mjds=tuple(range(60000, 60040)), cameras=("b1",),
                            frames_per_night=args.frames_per_night, window_size=64 if grid else 128,
                            n_windows=16 if grid else 2)
    ensure_ray(num_cpus=8)
    cfg = TrainConfig(camera="b1", view=args.view, arch=arch, latent=4, epochs=args.epochs,
                      patience=1000, batch_size=args.batch_size)
    prepared = prepare_for(tmp, cfg)
    tr = prepared.arrays("train")
    n = len(tr["x"])
    assert n == prepared.counts["train"], "the bare loop must see every training frame"

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ae_cfg = model_config(cfg, prepared)
    model = build_autoencoder(ae_cfg)
    init = initial_state(ae_cfg, prepared)
    if init is not None:
        model.load_state_dict(init)
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay)
    bare, bare_cpu, bare_thread = [], [], []
    for _ in range(args.epochs):
        t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
        run_epoch(model, batches(tr["x"], tr["m"], args.batch_size), prepared.normaliser,
                  torch.device("cpu"), optimizer=opt)
        bare.append(n / (time.perf_counter() - t0))
        bare_cpu.append(n / (time.process_time() - c0))
        bare_thread.append(n / (time.thread_time() - h0))

    t0 = time.perf_counter()
    res = train_camera(tmp, tmp, cfg, prepared=prepared)
    wall = time.perf_counter() - t0
    ray_rates = list(res["history"]["samples_per_s"])
    b, r = statistics.median(bare[1:]), statistics.median(ray_rates[1:])
    print(f"Ray workers at nice {args.worker_niceness} (the bare loop: {os.nice(0)})")
    print(f"train frames: {n}, model {arch} latent 4 on {'x'.join(map(str, tr['x'].shape[1:]))}, "
          f"batch {args.batch_size}, {args.epochs} epochs, 1 thread")
    print(f"bare torch loop : {b:8.1f} samples/s  (per epoch: {np.round(bare, 1).tolist()})")
    print(f"Ray Train loop  : {r:8.1f} samples/s  (per epoch: {np.round(ray_rates, 1).tolist()})")
    print(f"ratio Ray/bare  : {r / b:.2f} median, {max(ray_rates[1:]) / max(bare[1:]):.2f} best epoch "
          f"(goal >= 0.9; the best-epoch ratio is the less load-sensitive on a shared machine)")
    ray_cpu = list(res["history"]["samples_per_cpu_s"])
    bc, rc = statistics.median(bare_cpu[1:]), statistics.median(ray_cpu[1:])
    print(f"per process CPU s: bare {bc:.1f}, Ray {rc:.1f} samples/CPU-s, ratio {rc / bc:.2f} (the Ray "
          f"worker's count includes Ray's own threads in it, which also run while the loop waits for a core)")
    ray_th = list(res["history"]["samples_per_thread_cpu_s"])
    bt, rt = statistics.median(bare_thread[1:]), statistics.median(ray_th[1:])
    print(f"per thread CPU s : bare {bt:.1f}, Ray {rt:.1f} samples/CPU-s, ratio {rt / bt:.2f} (the loop's "
          f"own cost, whatever else runs on the machine)")
    print(f"Ray Train end-to-end wall incl. start-up and registering: {wall:.1f} s")


if __name__ == "__main__":
    main()
