"""A bare in-process torch loop (no Ray): the benchmark baseline and the science script's trainer.

Uses the same model, normaliser, loss and ``run_epoch`` as the Ray Train worker loop, over numpy
arrays held in memory.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from arcray.model.ae import AEConfig, build_autoencoder
from arcray.model.normalise import AsinhNormaliser
from arcray.model.pca_ae import init_model_from_data
from arcray.training.loop import make_optimizer, run_epoch


def batches(x: np.ndarray, m: np.ndarray, batch_size: int, *, shuffle_seed: int | None = None):
    """Dicts of torch tensors ``x``, ``m`` like ``iter_torch_batches`` yields."""
    idx = np.arange(len(x))
    if shuffle_seed is not None:
        np.random.default_rng(shuffle_seed).shuffle(idx)
    for i in range(0, len(x), batch_size):
        j = idx[i:i + batch_size]
        yield {"x": torch.from_numpy(np.ascontiguousarray(x[j])),
               "m": torch.from_numpy(np.ascontiguousarray(m[j]))}


def fit_local(train: dict, val: dict, ae_cfg: AEConfig, normaliser: AsinhNormaliser, *,
              lr: float = 2e-3, epochs: int = 30, batch_size: int = 32, patience: int = 8,
              seed: int = 0, device: str = "cpu", weight_decay: float = 0.0
              ) -> tuple[torch.nn.Module, list[dict]]:
    """Train in this process; return the best-validation model and per-epoch metrics.

    Data-initialised architectures (``pca_res``) start from the training split's PCA."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = build_autoencoder(ae_cfg)
    init_model_from_data(model, normaliser.forward(np.asarray(train["x"], np.float32)), train["m"])
    model = model.to(dev)
    opt = make_optimizer(model, lr, weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    best, best_state, bad, hist = np.inf, None, 0, []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        sse, n, s = run_epoch(model, batches(train["x"], train["m"], batch_size, shuffle_seed=epoch),
                              normaliser, dev, optimizer=opt, autocast=dev.type == "cuda")
        dt = time.perf_counter() - t0
        vs, vn, _ = run_epoch(model, batches(val["x"], val["m"], batch_size), normaliser, dev,
                              autocast=dev.type == "cuda")
        sched.step()
        hist.append({"epoch": epoch, "train_loss": sse / n, "val_loss": vs / vn,
                     "samples_per_s": s / dt})
        if vs / vn < best:
            best, bad = vs / vn, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best_state)
    return model.eval(), hist
