"""The per-worker training loop run by Ray Train (one copy per worker).

Data from ``ray.train.get_dataset_shard``; model wrapped by ``prepare_model`` (DDP: gloo on CPU,
nccl on GPU); bf16 autocast on GPU; losses summed over good pixels and all-reduced so every
worker sees the same exact epoch means (and takes the same early-stopping decision); a checkpoint
per epoch (model, optimiser, normaliser, config, epoch, early-stopping state) reported by rank 0;
resume from ``ray.train.get_checkpoint()``.
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import torch

from arcray.model.ae import AEConfig, build_autoencoder
from arcray.model.loss import masked_sse_count
from arcray.model.normalise import normaliser_from_dict
from arcray.training.config import TrainConfig

STATE_FILE = "state.pt"


def save_state(directory: str, model, optimizer, config: dict, epoch: int, best: float,
               bad_epochs: int, history: list | None = None) -> None:
    inner = getattr(model, "module", model)
    torch.save({"model": {k: v.detach().cpu() for k, v in inner.state_dict().items()},
                "optimizer": optimizer.state_dict(), "ae_config": config["ae_config"],
                "normaliser": config["normaliser"], "config": _plain(config), "epoch": epoch,
                "best_val_loss": best, "bad_epochs": bad_epochs, "history": history or []},
               os.path.join(directory, STATE_FILE))


def load_state(directory: str) -> dict:
    return torch.load(os.path.join(directory, STATE_FILE), map_location="cpu", weights_only=False)


def _plain(config: dict) -> dict:
    return {k: v for k, v in config.items() if not callable(v)}


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW over the model's ``param_groups(lr)`` when it has them (``grid_res``: a slower PCA
    path), else over all its parameters."""
    groups = model.param_groups(lr) if hasattr(model, "param_groups") else model.parameters()
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def _allreduce(values: list[float]) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t.tolist()


def run_epoch(model, batches, norm, device, *, optimizer=None,
              autocast: bool = False) -> tuple[float, float, int]:
    """One pass; returns (sum of squared errors, good pixels, samples). Trains if ``optimizer``."""
    sse, npix, nsamp = 0.0, 0.0, 0
    model.train(optimizer is not None)
    for batch in batches:
        x = batch["x"].to(device, torch.float32)
        m = batch["m"].to(device)
        y = norm.forward(x)
        with torch.set_grad_enabled(optimizer is not None), \
                torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            pred = model(y)
        s, n = masked_sse_count(pred, y, m)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            (s / n.clamp_min(1.0)).backward()
            optimizer.step()
        sse, npix, nsamp = sse + float(s.detach()), npix + float(n), nsamp + len(x)
    return sse, npix, nsamp


class ShardBatches:
    """Batches of one Ray Data shard, streamed from Parquet through ``iter_torch_batches``.

    With ``cache_bytes > 0`` the first epoch also keeps what it streamed in worker memory while
    it stays under ``cache_bytes`` (a 64x64 crop is 16 kB, a 16-window grid 330 kB a frame);
    later epochs then skip Ray Data's per-epoch start-up and are reshuffled locally. A shard past
    the budget is dropped from memory and streamed again every epoch."""

    def __init__(self, shard, batch_size: int, *, cache_bytes: float, shuffle: bool, seed: int = 0):
        self.shard, self.bs, self.budget = shard, batch_size, float(cache_bytes)
        self.shuffle, self.seed = shuffle, seed
        self._data: tuple[torch.Tensor, torch.Tensor] | None = None
        self.cached = False  # the whole shard is held in memory

    def epoch(self, epoch: int):
        if self.cached:
            yield from self._from_cache(epoch)
            return
        keep = self.budget > 0
        xs, ms, nbytes = [], [], 0
        for b in self.shard.iter_torch_batches(batch_size=self.bs):
            if keep:
                nbytes += b["x"].nbytes + b["m"].nbytes
                if nbytes > self.budget:
                    keep, xs, ms = False, [], []
                else:
                    xs.append(b["x"])
                    ms.append(b["m"])
            yield {"x": b["x"], "m": b["m"]}
        if keep and xs:
            self._data, self.cached = (torch.cat(xs), torch.cat(ms)), True
        self.budget = self.budget if keep else 0.0  # past the budget once: stream from now on

    def _from_cache(self, epoch: int):
        x, m = self._data
        order = (torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed + epoch))
                 if self.shuffle else torch.arange(len(x)))
        for i in range(0, len(x), self.bs):
            j = order[i:i + self.bs]
            yield {"x": x[j], "m": m[j]}


def _resume(model, optimizer) -> tuple[int, float, int, list]:
    import ray.train

    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return 0, math.inf, 0, []
    with ckpt.as_directory() as d:
        state = load_state(d)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return state["epoch"] + 1, state["best_val_loss"], state["bad_epochs"], state.get("history", [])


def train_loop_per_worker(config: dict) -> None:
    """Ray Train loop. ``config`` (``trainer.loop_config``): ``train`` (a ``TrainConfig`` as JSON,
    validated again here), ``ae_config``, ``normaliser`` (dicts), optional ``init_state`` (initial
    weights) and ``epoch_hook(epoch, rank)`` (called at each epoch start)."""
    import ray.train
    import ray.train.torch

    cfg = TrainConfig.model_validate(config["train"])
    rank = ray.train.get_context().get_world_rank()
    torch.manual_seed(cfg.seed)
    device = ray.train.torch.get_device()
    model = build_autoencoder(AEConfig(**config["ae_config"]))
    if config.get("init_state") is not None:  # data-initialised archs (pca_res), made by the driver
        model.load_state_dict(config["init_state"])
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    start, best, bad, history = _resume(model, optimizer)
    model = ray.train.torch.prepare_model(model)
    norm = normaliser_from_dict(config["normaliser"])
    autocast = device.type == "cuda"  # bf16 on GPU
    budget = cfg.cache_mb * 1e6 if cfg.cache_shard else 0.0
    train_b = ShardBatches(ray.train.get_dataset_shard("train"), cfg.batch_size, cache_bytes=budget,
                           shuffle=True, seed=cfg.seed)
    val_b = ShardBatches(ray.train.get_dataset_shard("val"), cfg.batch_size, cache_bytes=budget,
                         shuffle=False)
    hook = config.get("epoch_hook")
    for epoch in range(start, cfg.epochs):
        if hook is not None:
            hook(epoch, rank)
        t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
        tr = run_epoch(model, train_b.epoch(epoch), norm, device, optimizer=optimizer,
                       autocast=autocast)
        t1, c1, h1 = time.perf_counter(), time.process_time(), time.thread_time()
        va = run_epoch(model, val_b.epoch(epoch), norm, device, autocast=autocast)
        tr_sse, tr_n, tr_s, va_sse, va_n, va_s = _allreduce([*tr, *va])
        train_loss, val_loss = tr_sse / max(tr_n, 1.0), va_sse / max(va_n, 1.0)
        if val_loss < best:
            best, bad = val_loss, 0
        else:
            bad += 1
        stop = bad >= cfg.patience
        metrics = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                   "best_val_loss": best, "start_epoch": start, "train_samples": int(tr_s),
                   "samples_per_s": tr_s / max(t1 - t0, 1e-9),
                   # per CPU second of this worker process (the loop and Ray's own threads in it)
                   # and of the thread running the loop (its own cost, whatever else runs)
                   "samples_per_cpu_s": tr[2] / max(c1 - c0, 1e-9),
                   "samples_per_thread_cpu_s": tr[2] / max(h1 - h0, 1e-9), "early_stopped": int(stop)}
        history.append(metrics)
        _report(metrics, model, optimizer, config, epoch, best, bad, rank, history)
        if stop:
            break


def _report(metrics, model, optimizer, config, epoch, best, bad, rank, history) -> None:
    import ray.train

    with tempfile.TemporaryDirectory() as d:
        checkpoint = None
        if rank == 0:
            save_state(d, model, optimizer, config, epoch, best, bad, history)
            checkpoint = ray.train.Checkpoint.from_directory(d)
        ray.train.report(metrics, checkpoint=checkpoint)
