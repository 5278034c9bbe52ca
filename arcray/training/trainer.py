"""Driver: one ``TorchTrainer`` per (camera, flavor, view, latent, arch), and registering its best model.

``train_camera`` prepares the view dataset (Ray Data), builds the trainer
(``ScalingConfig(num_workers, use_gpu=auto)``, ``RunConfig(storage_path=Layout.train_runs,
failure_config, checkpoint_config)``), fits, scores the best checkpoint on the test nights next to
PCA at the same latent size, and saves it in the model store.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from arcray.errors import ArcrayError, ConfigError
from arcray.model.ae import AEConfig, arch_config, build_autoencoder
from arcray.model.loss import masked_mse_np
from arcray.model.normalise import normaliser_from_dict
from arcray.model.pca import fit_pca
from arcray.model.pca_ae import init_model_from_data
from arcray.model.store import save_model
from arcray.model.view import View
from arcray.io import read_bytes
from arcray.paths import MODEL_META_FILE, Layout, join
from arcray.stages import StageSummary
from arcray.training.config import TrainConfig
from arcray.training.data import PreparedData, prepare_data
from arcray.training.loop import load_state, train_loop_per_worker

log = logging.getLogger(__name__)


def resolve_use_gpu(use_gpu: bool | None) -> bool:
    if use_gpu is not None:
        return use_gpu
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


DATA_INIT_KINDS = ("pca_res", "grid_res", "line_mlp")  # start at the training split's PCA


def prepare_for(data_root: str, cfg: TrainConfig) -> PreparedData:
    """``prepare_data`` of ``cfg``'s camera, flavor and view (streamed; bounded driver samples)."""
    return prepare_data(data_root, cfg.camera, cfg.flavor, cfg.input_view(), max_frames=cfg.max_frames,
                        sample_limit=cfg.driver_frames, size=cfg.crop_size or 64)


def model_config(cfg: TrainConfig, prepared: PreparedData) -> AEConfig:
    """``cfg.arch`` at ``cfg.latent`` for the prepared view's sample shape."""
    shape = prepared.view_shape()
    if len(shape) == 3:  # several windows
        return arch_config(cfg.arch, cfg.latent, shape[1], shape[2], n_windows=shape[0],
                           positions=tuple(map(tuple, prepared.positions)))
    if len(shape) == 1:  # line vectors
        return arch_config(cfg.arch, cfg.latent, 1, shape[0])
    return arch_config(cfg.arch, cfg.latent, *shape)


def initial_state(ae_cfg: AEConfig, prepared: PreparedData, *, limit: int = 2000) -> dict | None:
    """Initial weights of a data-initialised architecture (``DATA_INIT_KINDS``: the training
    split's PCA on the driver's bounded sample), computed once on the driver; None for the others
    (random init in the workers)."""
    if ae_cfg.kind not in DATA_INIT_KINDS:
        return None
    tr = prepared.arrays("train", limit)
    model = init_model_from_data(build_autoencoder(ae_cfg),
                                 prepared.normaliser.forward(np.asarray(tr["x"], np.float32)), tr["m"])
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def loop_config(cfg: TrainConfig, ae_cfg: AEConfig, normaliser,
                **extra: Any) -> dict:
    """The dict every worker's ``train_loop_per_worker`` receives: the typed ``TrainConfig`` (as
    JSON; the worker validates it again, so its defaults are the only ones), the model's
    ``AEConfig``, the normaliser, and ``extra`` (``init_state``, ``epoch_hook``)."""
    return {"train": cfg.to_json_dict(), "ae_config": ae_cfg.to_dict(),
            "normaliser": normaliser.to_dict(), **extra}


def build_trainer(loop_cfg: dict, datasets: dict, cfg: TrainConfig, *, storage_path: str,
                  name: str, callbacks: list | None = None):
    """One ``TorchTrainer`` (Train V2) for ``loop_cfg`` over ``datasets`` (train, val)."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    use_gpu = resolve_use_gpu(cfg.use_gpu)
    # One worker reads each dataset whole: splitting it in one would start a Ray Data split
    # coordinator (an actor process) per dataset for nothing.
    split = "all" if cfg.workers > 1 else []
    res = {"CPU": cfg.cpus_per_worker, **({"GPU": 1} if use_gpu else {})}
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_cfg,
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=split),
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=use_gpu,
                                     resources_per_worker=res),
        run_config=RunConfig(
            name=name, storage_path=storage_path, callbacks=callbacks or [],
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints,
                                               checkpoint_score_attribute="val_loss",
                                               checkpoint_score_order="min")),
    )


def model_from_checkpoint(ckpt_dir: str):
    """``(model, normaliser, state)`` from a training checkpoint directory."""
    state = load_state(ckpt_dir)
    model = build_autoencoder(AEConfig(**state["ae_config"]))
    model.load_state_dict(state["model"])
    return model.eval(), normaliser_from_dict(state["normaliser"]), state


@torch.no_grad()
def ae_loss(model, normaliser, arrays: dict, *, batch_size: int = 32) -> float:
    """Masked MSE (normalised units) of the autoencoder on a split's arrays (driver side)."""
    if len(arrays["x"]) == 0:
        return float("nan")
    y = normaliser.forward(np.asarray(arrays["x"], np.float32))
    pred = np.concatenate([model(torch.from_numpy(y[i:i + batch_size])).float().numpy()
                           for i in range(0, len(y), batch_size)])
    return masked_mse_np(pred, y, arrays["m"])


def _as_images(y: np.ndarray, m) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples as the ``[N, H, W]`` images PCA takes: windows stacked, vectors one row."""
    shape = (len(y), -1, y.shape[-1]) if y.ndim != 2 else (len(y), 1, y.shape[-1])
    return y.reshape(shape), None if m is None else np.asarray(m).reshape(shape)


def pca_losses(prepared: PreparedData, latents, *, limit: int = 2000) -> dict[int, dict]:
    """PCA fitted on training frames, scored on val and test, per latent size."""
    norm = prepared.normaliser
    tr = prepared.arrays("train", limit)
    ytr, mtr = _as_images(norm.forward(np.asarray(tr["x"], np.float32)), tr["m"])
    evals = {}
    for split in ("val", "test"):
        a = prepared.arrays(split, limit)
        if len(a["x"]):
            evals[split] = _as_images(norm.forward(np.asarray(a["x"], np.float32)), a["m"])
    out = {}
    for lat in latents:
        p = fit_pca(ytr, lat, mtr)
        out[lat] = {f"pca_{s}_loss": masked_mse_np(p.decode(p.encode(y, m)), y, m)
                    for s, (y, m) in evals.items()}
    return out


def register(layout: Layout, ckpt_dir: str, prepared: PreparedData, *, camera: str, flavor: str,
             view: View | None, metrics: dict, config_hash: str | None) -> str:
    """Score the checkpoint on the test nights and save it at ``layout.model_dir`` (of the
    prepared view's name: window0 keeps the path models had before views had names)."""
    model, norm, state = model_from_checkpoint(ckpt_dir)
    lat = model.cfg.latent
    test = prepared.arrays("test", 2000)
    metrics = {**metrics, "test_loss": ae_loss(model, norm, test), "epoch": state["epoch"],
               **pca_losses(prepared, [lat]).get(lat, {}), "n_frames": prepared.counts}
    out = layout.model_dir(camera, flavor, lat, view=prepared.view_name)
    save_model(out, model, normaliser=norm, view=view, camera=camera, flavor=flavor,
               metrics=metrics, config_hash=config_hash, extra={"view_name": prepared.view_name})
    return out


def train_camera(data_root: str, out_root: str, cfg: TrainConfig, *, epoch_hook=None,
                 prepared: PreparedData | None = None) -> dict:
    """Train one model (Ray Train), register its best checkpoint; return a summary dict:
    ``model_dir``, ``metrics``, ``history``, ``test_loss``, ``pca_test_loss``, ``pca_val_loss``
    (normalised units, the test/val nights), ``final``, ``run_path``."""
    layout = Layout(out_root)
    prepared = prepared or prepare_for(data_root, cfg)
    ae_cfg = model_config(cfg, prepared)
    lcfg = loop_config(cfg, ae_cfg, prepared.normaliser, init_state=initial_state(ae_cfg, prepared),
                       **({"epoch_hook": epoch_hook} if epoch_hook else {}))
    name = f"train-{cfg.camera}-{cfg.flavor}-{cfg.view}-l{cfg.latent}-{cfg.arch}-{cfg.config_hash()}"
    trainer = build_trainer(lcfg, prepared.ray_datasets(), cfg, storage_path=layout.train_runs,
                            name=name)
    try:
        result = trainer.fit()
    except Exception as exc:  # noqa: BLE001 - Ray wraps worker errors; keep one line
        raise ArcrayError(f"training {name} failed: {type(exc).__name__}: {exc}") from exc
    best = result.get_best_checkpoint("val_loss", "min") or result.checkpoint
    if best is None:
        raise ConfigError(f"training {name} produced no checkpoint")
    with result.checkpoint.as_directory() as d:  # the latest one carries the whole history
        hist = pd.DataFrame(load_state(d)["history"])
    metrics = {"val_loss": float(hist["val_loss"].min()), "train_loss": float(hist["train_loss"].iloc[-1]),
               "epochs_run": int(len(hist)), "arch": cfg.arch, "lr": cfg.lr}
    with best.as_directory() as d:
        model_dir = register(layout, d, prepared, camera=cfg.camera, flavor=cfg.flavor,
                             view=prepared.view, metrics=metrics, config_hash=cfg.config_hash())
    scores = json.loads(read_bytes(join(model_dir, MODEL_META_FILE)))["metrics"]
    return {"model_dir": model_dir, "metrics": metrics, "history": hist,
            "test_loss": scores["test_loss"], "pca_test_loss": scores.get("pca_test_loss", float("nan")),
            "pca_val_loss": scores.get("pca_val_loss", float("nan")),
            "final": dict(result.metrics or {}), "run_path": result.path}


@dataclass(frozen=True)
class TrainSummary(StageSummary):
    """One model per camera: ``n_ok`` trained and registered, ``n_failed`` (camera -> reason in
    ``failed``); ``results``: camera -> ``train_camera``'s summary dict."""

    results: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)


def train_cameras(data_root: str, out_root: str, base: TrainConfig, cameras: list[str]) -> TrainSummary:
    """``train_camera`` for each camera in turn; a camera whose training fails is counted and the
    others still run."""
    t0 = time.perf_counter()
    results, failed = {}, {}
    for cam in cameras:
        try:
            results[cam] = train_camera(data_root, out_root, base.model_copy(update={"camera": cam}))
        except ArcrayError as exc:
            log.warning("training %s failed: %s", cam, exc)
            failed[cam] = str(exc)
    notes = tuple(f"{cam}: {reason}" for cam, reason in failed.items())
    return TrainSummary(stage="train", n_ok=len(results), n_failed=len(failed), seconds=time.perf_counter() - t0,
                        unit="cameras", notes=notes, outputs={c: r["model_dir"] for c, r in results.items()},
                        results=results, failed=failed)
