"""Ray Tune over latent size x architecture x learning rate (ASHA), driving Ray Train.

In Ray 2.60 Tune drives Train through a function trainable: each trial builds one
``TorchTrainer`` (``trainer.build_trainer``) with ``TuneReportCallback`` so every epoch's metrics
reach Tune, whose ASHA scheduler stops weak trials early. Resources per trial are sized to the
cluster so that trial drivers + training workers never take every CPU (Ray Data needs one).
Afterwards, per (camera, flavor, latent), the trial with the lowest validation loss is registered
in the model store, and every trial (plus PCA at the same latent) goes into the results table.
"""

from __future__ import annotations

import logging
import math
import os

import pandas as pd
import pyarrow as pa

from arcray.errors import ArcrayError, InputError
from arcray.io import atomic_write_parquet, exists, provenance
from arcray.model.ae import arch_config
from arcray.paths import Layout
from arcray.training.data import PreparedData, prepare_data
from arcray.training.trainer import (TrainConfig, build_trainer, initial_state, loop_config,
                                     model_config, pca_losses, register)

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["camera", "flavor", "trial_id", "arch", "latent", "lr", "status", "epochs_run",
                  "train_loss", "val_loss", "best_val_loss", "pca_val_loss", "pca_test_loss",
                  "test_loss", "registered", "checkpoint_path", "error"]


def max_concurrent_trials(cfg: TrainConfig, n_trials: int, cluster_cpus: float) -> int:
    """Trials that fit at once without starving Ray Data (the classic hang).

    Each running trial holds 1 driver CPU + workers x CPUs in placement groups and needs about
    1 more CPU outside them for its Ray Data read/map tasks; one more trial's placement group is
    staged while it waits (``TUNE_MAX_PENDING_TRIALS_PG=1``, set by ``run_tune``).
    """
    per_trial = 2 + cfg.workers * cfg.cpus_per_worker
    staged = 1 + cfg.workers * cfg.cpus_per_worker
    return max(1, min(n_trials, int((cluster_cpus - staged) // per_trial)))


def _trainable(config: dict, base: dict, prepared: PreparedData, storage_path: str) -> None:
    """One Tune trial: a TorchTrainer for this (latent, arch, lr) whose reports reach Tune."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    cfg = TrainConfig(**{**base, "latent": config["latent"], "arch": config["arch"],
                         "lr": config["lr"]})
    ae_cfg = model_config(cfg, prepared)
    lcfg = loop_config(cfg, ae_cfg, prepared.normaliser, init_state=initial_state(ae_cfg, prepared))
    name = f"{tune.get_context().get_experiment_name()}-{tune.get_context().get_trial_id()}"
    trainer = build_trainer(lcfg, prepared.ray_datasets(), cfg, storage_path=storage_path,
                            name=name, callbacks=[TuneReportCallback()])
    trainer.fit()


def run_tune(data_root: str, out_root: str, base: TrainConfig, *, latents, archs, lrs,
             grace_period: int = 2, prepared: PreparedData | None = None
             ) -> tuple[pd.DataFrame, dict]:
    """Search one (camera, flavor); register the best model per latent.

    Returns the trial table and each trial's per-epoch metrics (trial_id -> DataFrame)."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    for a in archs:
        arch_config(a, 1, 64, 64)  # unknown names fail here, before any cluster work
    layout = Layout(out_root)
    prepared = prepared or prepare_data(data_root, base.camera, base.flavor, base.view(),
                                        max_frames=base.max_frames)
    n_trials = len(latents) * len(archs) * len(lrs)
    conc = max_concurrent_trials(base, n_trials, ray.cluster_resources().get("CPU", 1))
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, base=base.model_dump(), prepared=prepared,
                             storage_path=layout.train_runs), {"CPU": 1})
    name = f"tune-{base.camera}-{base.flavor}-{base.config_hash()}"
    # ASHA compares trials with each other; a larger latent always reaches a lower loss, so across
    # latent sizes it would stop the small ones early and bias loss-vs-latent. It prunes only when
    # one latent size is searched over several (arch, lr); otherwise each trial runs to its own
    # early stopping.
    scheduler = None
    if len(set(latents)) == 1 and n_trials > 1:
        scheduler = ASHAScheduler(max_t=base.epochs, grace_period=min(grace_period, base.epochs),
                                  reduction_factor=2)
    tuner = tune.Tuner(
        trainable,
        param_space={"latent": tune.grid_search(list(latents)), "arch": tune.grid_search(list(archs)),
                     "lr": tune.grid_search(list(lrs))},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", max_concurrent_trials=conc,
                                    scheduler=scheduler),
        run_config=tune.RunConfig(name=name, storage_path=layout.train_runs,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    # Tune stages a placement group for every pending grid trial by default (up to 200), which
    # reserves every CPU and leaves none for Ray Data: stage one at a time.
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "1")
    grid = tuner.fit()
    table = _trial_table(grid, base)
    if table["val_loss"].isna().all():
        raise ArcrayError(f"every trial of {name} failed; first error: {table['error'].dropna().head(1).tolist()}")
    table = _register_best(table, layout, prepared, base)
    pca = pca_losses(prepared, sorted(set(int(v) for v in latents)))
    table["pca_val_loss"] = table["latent"].map(lambda l: pca.get(l, {}).get("pca_val_loss", math.nan))
    table["pca_test_loss"] = table["latent"].map(lambda l: pca.get(l, {}).get("pca_test_loss", math.nan))
    return table, {r.metrics.get("trial_id", ""): _history(r) for r in grid}


def _history(result) -> pd.DataFrame:
    df = result.metrics_dataframe
    return df if df is not None else pd.DataFrame()


def _trial_table(grid, base: TrainConfig) -> pd.DataFrame:
    rows = []
    for r in grid:
        df = _history(r)
        ok = r.error is None and not df.empty and "val_loss" in df
        best_i = df["val_loss"].idxmin() if ok else None
        rows.append({
            "camera": base.camera, "flavor": base.flavor, "trial_id": r.metrics.get("trial_id", ""),
            "arch": r.config["arch"], "latent": int(r.config["latent"]), "lr": float(r.config["lr"]),
            "status": "ok" if ok else "failed", "epochs_run": int(len(df)),
            "train_loss": float(df["train_loss"].iloc[-1]) if ok else math.nan,
            "val_loss": float(df["val_loss"].iloc[-1]) if ok else math.nan,
            "best_val_loss": float(df["val_loss"].min()) if ok else math.nan,
            "checkpoint_path": str(df.loc[best_i, "checkpoint_path"]) if ok and "checkpoint_path" in df else None,
            "error": None if r.error is None else f"{type(r.error).__name__}: {r.error}"[:500],
        })
    return pd.DataFrame(rows)


def _register_best(table: pd.DataFrame, layout: Layout, prepared: PreparedData,
                   base: TrainConfig) -> pd.DataFrame:
    from ray.train import Checkpoint

    from arcray.model.store import load_model

    table = table.assign(registered=False, test_loss=math.nan)
    ok = table[table["status"] == "ok"].dropna(subset=["checkpoint_path"])
    for lat, grp in ok.groupby("latent"):
        i = grp["best_val_loss"].idxmin()
        row = table.loc[i]
        metrics = {"val_loss": row["best_val_loss"], "train_loss": row["train_loss"],
                   "arch": row["arch"], "lr": row["lr"], "trial_id": row["trial_id"],
                   "epochs_run": int(row["epochs_run"])}
        with Checkpoint(row["checkpoint_path"]).as_directory() as d:
            model_dir = register(layout, d, prepared, camera=base.camera, flavor=base.flavor,
                                 view=base.view(), metrics=metrics, config_hash=base.config_hash())

        table.loc[i, "registered"] = True
        table.loc[i, "test_loss"] = load_model(model_dir).meta["metrics"]["test_loss"]
    return table


def write_results(layout: Layout, table: pd.DataFrame, config_hash: str | None) -> str:
    """Merge ``table`` into ``Layout.tune_results``, replacing earlier rows of its (camera, flavor)."""
    import pyarrow.parquet as pq

    table = table.reindex(columns=RESULT_COLUMNS)
    path = layout.tune_results
    if exists(path):
        old = pq.read_table(path).to_pandas()
        keys = set(zip(table["camera"], table["flavor"]))
        old = old[[(c, f) not in keys for c, f in zip(old["camera"], old["flavor"])]]
        table = pd.concat([old.reindex(columns=RESULT_COLUMNS), table], ignore_index=True)
    if table.empty:
        raise InputError("no trials to write")
    atomic_write_parquet(path, pa.Table.from_pandas(table, preserve_index=False),
                         provenance(config_hash, ["tune"]))
    return path


def tune_cameras(data_root: str, out_root: str, base: TrainConfig, cameras: list[str], *, latents,
                 archs, lrs, figures: bool = True) -> pd.DataFrame:
    """``run_tune`` per camera, results table merged, figures written; returns all trials."""
    from arcray.training.figures import make_figures

    layout, tables = Layout(out_root), []
    for cam in cameras:
        cfg = base.model_copy(update={"camera": cam})
        prepared = prepare_data(data_root, cam, cfg.flavor, cfg.view(), max_frames=cfg.max_frames)
        table, histories = run_tune(data_root, out_root, cfg, latents=latents, archs=archs,
                                    lrs=lrs, prepared=prepared)
        write_results(layout, table, cfg.config_hash())
        if figures:
            make_figures(layout, table, histories,
                         prepared.arrays("test", 3)["x"], camera=cam, flavor=cfg.flavor)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)
