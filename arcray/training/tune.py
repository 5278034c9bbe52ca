"""Ray Tune over camera x latent size x representation x architecture x learning rate (ASHA),
driving Ray Train.

The representation (``TrainConfig.view``: window0, grid, lines) is the one each architecture
reads (``config.view_of_arch``): ``grid_res`` the detector grid, ``line_mlp`` line vectors, the
others one window. Every view is prepared once per camera (streamed Ray Datasets) and its best
model per latent size is registered at ``Layout.model_dir(camera, flavor, latent, view)``; losses
of different views are never compared (other pixels, other units).

In Ray 2.60 Tune drives Train through a function trainable: each trial builds one
``TorchTrainer`` (``trainer.build_trainer``) with ``TuneReportCallback`` so every epoch's metrics
reach Tune, whose ASHA scheduler stops weak trials early (only among trials of one camera and
latent size and view, see ``_groups``). Every camera's trials run in one Tuner when nothing is pruned, so
their start-up (a trial driver, a Train controller and worker, Ray Data split coordinators: seconds
of imports each) overlaps. Resources per trial are sized to the cluster so that trial drivers +
training workers never take every CPU (Ray Data needs one). Afterwards, per (camera, flavor,
latent), the trial with the lowest validation loss is registered in the model store
(``best_trials``, per view), and every trial (plus PCA at the same latent) goes into the results table. A
failed trial is a row with its error (``TuneSummary.n_failed``; the caller's ``--max-failures``
decides), never an exception.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from arcray.errors import ConfigError, InputError
from arcray.io import atomic_write_parquet, exists, provenance
from arcray.model.ae import ARCHS
from arcray.paths import Layout
from arcray.stages import StageSummary
from arcray.training.config import TrainConfig, view_of_arch
from arcray.training.trainer import (build_trainer, initial_state, loop_config, model_config, pca_losses,
                                     prepare_for, register)

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["camera", "flavor", "view", "trial_id", "arch", "latent", "lr", "status", "epochs_run",
                  "train_loss", "val_loss", "best_val_loss", "pca_val_loss", "pca_test_loss",
                  "test_loss", "registered", "checkpoint_path", "error"]


def max_concurrent_trials(cfg: TrainConfig, n_trials: int, cluster_cpus: float) -> int:
    """Trials that fit at once without starving Ray Data (the classic hang).

    Each running trial holds 1 driver CPU + workers x CPUs in placement groups and needs about
    1 more CPU outside them for its Ray Data read/map tasks. Tune stages placement groups for at
    most this many trials (``TUNE_MAX_PENDING_TRIALS_PG``, set by ``_fit``), and running + pending
    trials never exceed it; one trial's worth of CPUs stays spare.
    """
    per_trial = 2 + cfg.workers * cfg.cpus_per_worker
    staged = 1 + cfg.workers * cfg.cpus_per_worker
    return max(1, min(n_trials, int((cluster_cpus - staged) // per_trial)))


def trial_config(base: dict, config: dict, view_overrides: dict | None = None) -> TrainConfig:
    """The ``TrainConfig`` of one trial: ``base``, then its view's overrides (``view_overrides``:
    view -> TrainConfig fields, e.g. ``{"grid": {"lr": 3e-3, "batch_size": 8}}``; an ``lr``
    there replaces the searched one), then the trial's camera, latent and arch."""
    cell = config["cell"]
    view = view_of_arch(cell["arch"])
    over = dict((view_overrides or {}).get(view, {}))
    return TrainConfig(**{**base, "lr": config["lr"], **over, "camera": config["camera"],
                          "latent": cell["latent"], "arch": cell["arch"], "view": view})


def _trainable(config: dict, base: dict, prepared: dict, inits: dict, storage_path: str,
               view_overrides: dict | None = None) -> None:
    """One Tune trial: a TorchTrainer for this (camera, latent, arch, lr) whose reports reach Tune."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    cfg = trial_config(base, config, view_overrides)
    data = prepared[(cfg.camera, cfg.view)]
    ae_cfg, init_state = inits[(cfg.camera, cfg.arch, cfg.latent)]
    lcfg = loop_config(cfg, ae_cfg, data.normaliser, init_state=init_state)
    name = f"{tune.get_context().get_experiment_name()}-{tune.get_context().get_trial_id()}"
    trainer = build_trainer(lcfg, data.ray_datasets(), cfg, storage_path=storage_path,
                            name=name, callbacks=[TuneReportCallback()])
    trainer.fit()


def _initial_models(base: TrainConfig, prepared: dict, cells) -> dict:
    """``(camera, arch, latent) -> (AEConfig, initial weights or None)``, computed once on the driver
    (shapes and the training PCA come from the data; every trial of that cell reuses them)."""
    out = {}
    for (cam, view), data in prepared.items():
        for lat, arch in cells:
            if view_of_arch(arch) == view:
                cfg = base.model_copy(update={"camera": cam, "arch": arch, "latent": lat, "view": view})
                ae_cfg = model_config(cfg, data)
                out[(cam, arch, lat)] = (ae_cfg, initial_state(ae_cfg, data))
    return out


def cells_of(latents, archs, view_latents: dict | None = None) -> list[tuple[int, str]]:
    """The ``(latent, arch)`` pairs searched: every latent of ``latents`` for every arch, or the
    latents ``view_latents[view]`` for the archs that read that view."""
    out = []
    for a in archs:
        lats = (view_latents or {}).get(view_of_arch(a), latents)
        out += [(int(lat), a) for lat in sorted(set(int(v) for v in lats))]
    return out


def _groups(cameras, cells, lrs) -> list[tuple[list, list]]:
    """The Tuner runs: ``[(cameras, cells), ...]``.

    With one (arch, lr) per (latent size, view) nothing is pruned and one Tuner runs every
    trial at once (trial start-up overlaps). With several, ASHA prunes weak (arch, lr) trials, but
    only against trials of the same camera, latent size and view: a larger latent always reaches a
    lower loss, another camera has another scale and another view other pixels, so across them it
    would stop the wrong trials and bias loss-vs-latent. Each (camera, latent, view) then gets its
    own Tuner."""
    by_key: dict[tuple, list] = {}
    for lat, a in cells:
        by_key.setdefault((lat, view_of_arch(a)), []).append((lat, a))
    if len(lrs) == 1 and all(len(v) == 1 for v in by_key.values()):
        return [(list(cameras), list(cells))]
    return [([c], group) for c in cameras for group in by_key.values()]


def views_of(archs) -> list[str]:
    """The views the architectures read, in first-seen order."""
    return list(dict.fromkeys(view_of_arch(a) for a in archs))


def run_tune(data_root: str, out_root: str, base: TrainConfig, *, latents, archs, lrs,
             cameras=None, grace_period: int = 2, prepared: dict | None = None,
             progress=None, view_latents: dict | None = None,
             view_overrides: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Search latent x arch (and so view) x lr for each camera of ``cameras`` (default
    ``base.camera``) and ``base.flavor``; register the best model per (camera, view, latent).

    ``view_latents`` (optional): other latent sizes for some views, e.g. ``{"grid": [4]}``;
    ``view_overrides``: other training settings for some views (``trial_config``).
    ``progress(n)`` (optional) is called as trials end, and then Tune's own trial tables are not
    printed. Returns the trial table and each trial's per-epoch metrics (trial_id -> DataFrame)."""
    for a in archs:  # unknown names fail here, before any cluster work
        if a not in ARCHS:
            raise ConfigError(f"unknown architecture {a!r}; choose one of {sorted(ARCHS)}")
    cameras = list(cameras or [base.camera])
    layout = Layout(out_root)
    prepared = dict(prepared or {})
    for cam in cameras:
        for view in views_of(archs):
            if (cam, view) not in prepared:
                prepared[(cam, view)] = prepare_for(data_root, _cfg_for(base, cam, view, archs))
    cells = cells_of(latents, archs, view_latents)
    inits = _initial_models(base, {k: v for k, v in prepared.items() if k[0] in cameras}, cells)
    tables, histories = [], {}
    for cams, group in _groups(cameras, cells, lrs):
        views = views_of(a for _, a in group)
        grid, name = _fit(base, layout, {(c, v): prepared[(c, v)] for c in cams for v in views}, inits,
                          cams, group, lrs, grace_period, progress, view_overrides)
        tables.append(_trial_table(grid, base, view_overrides))
        histories.update({r.metrics.get("trial_id", ""): _history(r) for r in grid})
        if tables[-1]["val_loss"].isna().all():
            log.warning("every trial of %s failed; first error: %s", name,
                        tables[-1]["error"].dropna().head(1).tolist())
    table = _register_best(pd.concat(tables, ignore_index=True), layout, prepared, base)
    pca = {(cam, view): pca_losses(prepared[(cam, view)],
                                   sorted({lat for lat, a in cells if view_of_arch(a) == view}))
           for cam in cameras for view in views_of(archs)}
    for split in ("val", "test"):
        table[f"pca_{split}_loss"] = [
            pca.get((c, v), {}).get(int(l), {}).get(f"pca_{split}_loss", math.nan)
            for c, v, l in zip(table["camera"], table["view"], table["latent"])]
    return table, histories


def _cfg_for(base: TrainConfig, camera: str, view: str, archs) -> TrainConfig:
    """``base`` for one camera and view (with the first architecture that reads that view)."""
    arch = next(a for a in archs if view_of_arch(a) == view)
    return base.model_copy(update={"camera": camera, "view": view, "arch": arch})


def _fit(base: TrainConfig, layout: Layout, prepared: dict, inits: dict, cameras, cells,
         lrs, grace_period: int, progress=None, view_overrides: dict | None = None):
    """One ``Tuner.fit`` over cameras x (latent, arch) cells x lrs; returns ``(ResultGrid, name)``."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    latents = sorted({lat for lat, _ in cells})
    views = views_of(a for _, a in cells)
    n_trials = len(cameras) * len(cells) * len(lrs)
    conc = max_concurrent_trials(base, n_trials, ray.cluster_resources().get("CPU", 1))
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, base=base.model_dump(), prepared=prepared, inits=inits,
                             storage_path=layout.train_runs, view_overrides=view_overrides),
        {"CPU": 1})
    tag = "-".join(cameras) + (f"-l{latents[0]}" if len(latents) == 1 and len(cameras) == 1 else "")
    tag += "-" + "-".join(views)
    name = f"tune-{tag}-{base.flavor}-{base.config_hash()}"
    scheduler = None
    if len(cameras) == 1 and len(latents) == 1 and len(views) == 1 and n_trials > 1:  # see _groups
        scheduler = ASHAScheduler(max_t=base.epochs, grace_period=min(grace_period, base.epochs),
                                  reduction_factor=2)
    tuner = tune.Tuner(
        trainable,
        param_space={"camera": tune.grid_search(list(cameras)),
                     "cell": tune.grid_search([{"latent": lat, "arch": a} for lat, a in cells]),
                     "lr": tune.grid_search(list(lrs))},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", max_concurrent_trials=conc,
                                    scheduler=scheduler),
        run_config=tune.RunConfig(name=name, storage_path=layout.train_runs,
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  verbose=None if progress is None else 0,
                                  callbacks=[] if progress is None else [_progress_callback(progress)]),
    )
    # Tune stages a placement group for every pending grid trial by default (up to 200), which
    # reserves every CPU and leaves none for Ray Data; one at a time starts trials one after the
    # other (~15 s apart on 2 cores). Stage as many as may run at once, which the CPU count allows.
    # With a progress callback, Tune prints nothing: its new output engine prints the experiment's
    # header and paths even when silent, the legacy one at verbosity 0 does not.
    legacy_output = (_env_default("RAY_AIR_NEW_OUTPUT", "0") if progress is not None
                     else contextlib.nullcontext())
    with _env_default("TUNE_MAX_PENDING_TRIALS_PG", str(conc)), legacy_output:
        return tuner.fit(), name


def _progress_callback(progress):
    """A Tune callback that calls ``progress(1)`` when a trial ends (completed or failed). The
    callable stays on the driver: it is dropped when Tune pickles its experiment state."""
    from ray.tune import Callback

    class _TrialsDone(Callback):
        def __init__(self, fn):
            self.fn = fn

        def __getstate__(self):
            return {"fn": None}

        def on_trial_complete(self, iteration, trials, trial, **info):
            if self.fn is not None:
                self.fn(1)

        on_trial_error = on_trial_complete

    return _TrialsDone(progress)


@contextlib.contextmanager
def _env_default(key: str, value: str):
    """``os.environ[key] = value`` for the block unless the user set it already."""
    if key in os.environ:
        yield
        return
    os.environ[key] = value
    try:
        yield
    finally:
        os.environ.pop(key, None)


def _history(result) -> pd.DataFrame:
    df = result.metrics_dataframe
    return df if df is not None else pd.DataFrame()


def _trial_table(grid, base: TrainConfig, view_overrides: dict | None = None) -> pd.DataFrame:
    rows = []
    for r in grid:
        tcfg = trial_config(base.model_dump(), r.config, view_overrides)
        df = _history(r)
        ok = r.error is None and not df.empty and "val_loss" in df
        best_i = df["val_loss"].idxmin() if ok else None
        cell = r.config["cell"]
        rows.append({
            "camera": r.config["camera"], "flavor": base.flavor, "view": view_of_arch(cell["arch"]),
            "trial_id": r.metrics.get("trial_id", ""),
            "arch": cell["arch"], "latent": int(cell["latent"]), "lr": float(tcfg.lr),
            "status": "ok" if ok else "failed", "epochs_run": int(len(df)),
            "train_loss": float(df["train_loss"].iloc[-1]) if ok else math.nan,
            "val_loss": float(df["val_loss"].iloc[-1]) if ok else math.nan,
            "best_val_loss": float(df["val_loss"].min()) if ok else math.nan,
            "checkpoint_path": str(df.loc[best_i, "checkpoint_path"]) if ok and "checkpoint_path" in df else None,
            "error": None if r.error is None else f"{type(r.error).__name__}: {r.error}"[:500],
        })
    return pd.DataFrame(rows)


def best_trials(table: pd.DataFrame) -> list:
    """Index (in ``table``) of the trial to register per (camera, latent, view): the lowest best
    validation loss among the trials that completed with a checkpoint."""
    ok = table[table["status"] == "ok"].dropna(subset=["checkpoint_path", "best_val_loss"])
    keys = ["camera", "latent"] + (["view"] if "view" in table else [])
    return [grp["best_val_loss"].idxmin() for _, grp in ok.groupby(keys)]


def _register_best(table: pd.DataFrame, layout: Layout, prepared: dict,
                   base: TrainConfig) -> pd.DataFrame:
    from ray.train import Checkpoint

    from arcray.model.store import load_model

    table = table.assign(registered=False, test_loss=math.nan)
    for i in best_trials(table):
        row = table.loc[i]
        cam, data = row["camera"], prepared[(row["camera"], row["view"])]
        metrics = {"val_loss": row["best_val_loss"], "train_loss": row["train_loss"],
                   "arch": row["arch"], "lr": row["lr"], "trial_id": row["trial_id"],
                   "epochs_run": int(row["epochs_run"])}
        with Checkpoint(row["checkpoint_path"]).as_directory() as d:
            model_dir = register(layout, d, data, camera=cam, flavor=base.flavor,
                                 view=data.view, metrics=metrics, config_hash=base.config_hash())

        table.loc[i, "registered"] = True
        table.loc[i, "test_loss"] = load_model(model_dir).meta["metrics"]["test_loss"]
    return table


def write_results(layout: Layout, table: pd.DataFrame, config_hash: str | None) -> str:
    """Merge ``table`` into ``Layout.tune_results``, replacing earlier rows of its (camera, flavor,
    view); rows written before views had names are window0's."""
    import pyarrow.parquet as pq

    table = table.reindex(columns=RESULT_COLUMNS)
    path = layout.tune_results
    if exists(path):
        old = pq.read_table(path).to_pandas()
        old["view"] = old["view"].fillna("window0") if "view" in old else "window0"
        keys = set(zip(table["camera"], table["flavor"], table["view"]))
        old = old[[k not in keys for k in zip(old["camera"], old["flavor"], old["view"])]]
        table = pd.concat([old.reindex(columns=RESULT_COLUMNS), table], ignore_index=True)
    if table.empty:
        raise InputError("no trials to write")
    atomic_write_parquet(path, pa.Table.from_pandas(table, preserve_index=False),
                         provenance(config_hash, ["tune"]))
    return path


@dataclass(frozen=True)
class TuneSummary(StageSummary):
    """Trials ``n_ok`` completed and ``n_failed`` (rows with their error in ``failures``, the
    results table); ``table``: every trial of this run, ``registered`` marking the models kept."""

    table: pd.DataFrame = field(default_factory=pd.DataFrame)


def tune_cameras(data_root: str, out_root: str, base: TrainConfig, cameras: list[str], *, latents,
                 archs, lrs, figures: bool = True, progress=None,
                 view_latents: dict | None = None, view_overrides: dict | None = None) -> TuneSummary:
    """``run_tune`` over every camera at once, results table merged, figures written per camera
    (of the first view searched)."""
    from arcray.training.figures import make_figures

    t0 = time.perf_counter()
    layout = Layout(out_root)
    first_view = views_of(archs)[0]
    prepared = {(cam, v): prepare_for(data_root, _cfg_for(base, cam, v, archs))
                for cam in cameras for v in views_of(archs)}
    table, histories = run_tune(data_root, out_root, base, cameras=cameras, latents=latents,
                                archs=archs, lrs=lrs, prepared=prepared, progress=progress,
                                view_latents=view_latents, view_overrides=view_overrides)
    write_results(layout, table, base.config_hash())
    if figures:
        for cam, part in table[table["view"] == first_view].groupby("camera", sort=True):
            make_figures(layout, part.reset_index(drop=True), histories,
                         prepared[(cam, first_view)].arrays("test", 3)["x"], camera=cam,
                         flavor=base.flavor, view=first_view)
    n_failed = int((table["status"] != "ok").sum())
    return TuneSummary(stage="tune", n_ok=len(table) - n_failed, n_failed=n_failed,
                       seconds=time.perf_counter() - t0, unit="trials", failures=layout.tune_results,
                       notes=(f"{int(table['registered'].sum())} models registered",),
                       outputs={"results": layout.tune_results, "models": layout.models}, table=table)
