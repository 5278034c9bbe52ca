"""`arcray demo`: the whole pipeline on a small simulated world, on one local Ray instance.

Renders the world, serves it on 127.0.0.1 with a real login (a random password written to a
0600 file, never printed), then runs scrape -> download -> calibrate (+ measure) -> measure (the night pass) -> tune -> embed -> analyze
-> regress (+ batch decoding) -> report through the same library functions the stage commands
call. Every stage is idempotent, so a second run reuses what the first one wrote.

Each stage prints its ``StageSummary.line()`` as it ends (a progress bar while it runs, on a
terminal). Items that fail (a frame, a file, a trial) never stop the demo: after the report,
``arcray demo --max-failures`` decides the exit code, as for the stage commands.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable

from pydantic import Field

from arcray.config import StageConfig
from arcray.credentials import Credentials
from arcray.paths import Layout, SimLayout
from arcray.stages import StageSummary

log = logging.getLogger(__name__)

DEMO_USER = "observer@example.org"


class DemoConfig(StageConfig):
    """What the demo renders and trains. Defaults run in about five minutes on 2 cores."""

    # Nights MJD 60314..60327 split by the MJD hash into 11 training nights, 1 validation night and
    # 2 test nights (60314, 60325): two test nights, so the scores are not one night's luck. Three
    # fields a night (5 arcs per camera downloaded; Hartmann frames skipped) keep the frame count
    # and run time of 8 nights of 8 fields (140 arcs against 160) with nearly twice the training
    # nights (night-to-night variety is what the metadata regressors learn from).
    start: date = date(2024, 1, 4)  # local date of the first night
    nights: int = 14  # nights rendered (the MJD hash must give train, val and test nights)
    seed: int = 7  # world seed: same seed, same bytes
    fields_per_night: int = 3  # fields observed per clear night (each brings an arc and a flat)
    cameras: tuple[str, ...] = ("b1", "r1")
    latents: tuple[int, ...] = (1, 2, 4, 8)  # latent sizes searched by Ray Tune (window0 view)
    arch: str = "pca_res"  # PCA-initialised residual autoencoder with a shift head
    # latent sizes of the detector-grid model (grid_res); () = none. Off by default: its two trials
    # doubled the demo's tune stage (218 -> 424 s on 2 cores); `arcray demo --grid` turns it on.
    grid_latents: tuple[int, ...] = ()
    # the grid model's training: its nonlinear parts start at zero on top of PCA and need more,
    # smaller steps than 12 epochs of batch 32 give on ~55 training frames
    grid_train: dict[str, float | int] = Field(default_factory=lambda: {
        "lr": 3e-3, "batch_size": 8, "epochs": 20, "patience": 10})  # TrainConfig fields
    epochs: int = 12  # maximum epochs per trial (early stopping may end sooner)
    analysis_latent: int = 4  # latent size used by embed / analyze / regress
    download_actors: int = 4
    calibrate_workers: int = 2
    ray_cpus: int = 14  # logical CPUs of the local Ray instance (more than physical: see raycluster)


# ``arcray demo --smoke``: five nights, MJD 60325..60329 = test, train, val, val, train (one field a
# night), one epoch of the tiny model at latent 2. Every stage runs, in a minute or two.
SMOKE = {"start": date(2024, 1, 15), "nights": 5, "fields_per_night": 1, "epochs": 1, "latents": (2,),
         "arch": "tiny", "analysis_latent": 2, "grid_latents": ()}


@dataclass
class DemoResult:
    root: str
    world: str
    report: str
    seconds: dict[str, float] = field(default_factory=dict)
    summaries: list[StageSummary] = field(default_factory=list)


def months_of(start: date, nights: int) -> list[str]:
    """``YYYY-MM`` of every month an observing night of the run can be logged in."""
    days = [start + timedelta(days=i) for i in range(nights + 1)]
    return sorted({f"{d.year:04d}-{d.month:02d}" for d in days})


def _write_secret(path: str, value: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")


def _password(out: str) -> str:
    """The demo archive's password: random once, kept in ``<out>/secrets/archive-password``."""
    path = os.path.join(out, "secrets", "archive-password")
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip()
    pw = secrets.token_urlsafe(18)
    _write_secret(path, pw)
    return pw


def render(cfg: DemoConfig, world_dir: str, progress_factory) -> StageSummary:
    from arcray.sim.world import SimWorld, WorldSpec, render_world

    t0 = time.perf_counter()
    spec = WorldSpec(start=cfg.start.isoformat(), nights=cfg.nights, seed=cfg.seed, observatory="apo",
                     cameras=cfg.cameras, flavors=("arc",), fields_per_night=cfg.fields_per_night)
    n = len(SimWorld(spec).frames())
    if os.path.exists(SimLayout(world_dir).world_json) and os.path.exists(SimLayout(world_dir).truth):
        log.info("world already rendered in %s", world_dir)
        return StageSummary(stage="render", n_skipped=n, unit="frames", notes=("already rendered",),
                            seconds=time.perf_counter() - t0)
    with progress_factory("render", n, "frames") as advance:
        render_world(world_dir, cfg.start, cfg.nights, cfg.seed, "apo", cameras=cfg.cameras, flavors=("arc",),
                     fields_per_night=cfg.fields_per_night, workers=2, progress=advance)
    return StageSummary(stage="render", n_ok=n, unit="frames", seconds=time.perf_counter() - t0,
                        notes=(f"-> {world_dir}",))


class _Stages:
    """Runs each stage, keeps its summary and time, prints its one line."""

    def __init__(self, res: DemoResult, echo: Callable[[str], None]):
        self.res, self.echo = res, echo

    def __call__(self, name: str, fn: Callable[..., StageSummary], *args, **kwargs) -> StageSummary:
        t0 = time.perf_counter()
        summary = fn(*args, **kwargs)
        self.res.seconds[name] = time.perf_counter() - t0
        self.res.summaries.append(summary)
        self.echo(summary.line())
        return summary


def _ingest(cfg: DemoConfig, layout: Layout, world_dir: str, out: str, stage: _Stages, bars, echo) -> None:
    """Serve the world, start Ray, scrape the logs and download the arcs; stop the server."""
    from arcray.pipeline.download import DownloadConfig, run_download
    from arcray.pipeline.scrape import scrape
    from arcray.raycluster import announcing, ensure_ray
    from arcray.sim.server import ArchiveServer

    password = _password(out)
    creds = Credentials(DEMO_USER, password, "demo")
    server = ArchiveServer(world_dir, user=DEMO_USER, password=password).start()
    echo(f"archive server: {server.mailman_url} (Mailman) and {server.sas_url} (SAS)")
    try:
        # 14 logical CPUs: four Tune trials (driver + worker + Ray Data each) run at once.
        session = ensure_ray(None, num_cpus=cfg.ray_cpus, dashboard=True)
        if not announcing():
            echo(session.line())
        stage("scrape", scrape, server.base_url, layout.root, months_of(cfg.start, cfg.nights), creds)
        dcfg = DownloadConfig(base_url=server.base_url, flavors=("arc",), cameras=cfg.cameras,
                              actors=cfg.download_actors)
        with bars("download", None, "files") as advance:
            stage("download", run_download, layout, dcfg, creds, progress=advance)
    finally:
        server.stop()


def _calibrate_and_tune(cfg: DemoConfig, layout: Layout, stage: _Stages, bars) -> None:
    from arcray.calib.config import CalibConfig
    from arcray.measure.config import MeasureConfig
    from arcray.pipeline.calibrate import run_calibrate
    from arcray.pipeline.measure import run_measure
    from arcray.training.config import TrainConfig
    from arcray.training.tune import cells_of, tune_cameras

    with bars("calibrate", None, "frames") as advance:
        stage("calibrate", run_calibrate, layout.raw_root, layout, CalibConfig(),
              workers=cfg.calibrate_workers, progress=advance, measure=MeasureConfig())
    stage("measure", run_measure, layout.root, export_fits=True)
    base = TrainConfig(camera=cfg.cameras[0], flavor="arc", arch=cfg.arch, latent=cfg.latents[0],
                       epochs=cfg.epochs)
    archs = [cfg.arch] + (["grid_res"] if cfg.grid_latents else [])
    n_trials = len(cfg.cameras) * len(cells_of(cfg.latents, archs, {"grid": cfg.grid_latents}))
    with bars(f"tune (latents {','.join(map(str, cfg.latents))}, grid {','.join(map(str, cfg.grid_latents)) or '-'}"
              f" x {','.join(cfg.cameras)})", n_trials, "trials") as advance:
        stage("tune", tune_cameras, layout.root, layout.root, base, list(cfg.cameras),
              latents=list(cfg.latents), archs=archs, lrs=[base.lr], progress=advance,
              view_latents={"grid": list(cfg.grid_latents)}, view_overrides={"grid": cfg.grid_train})


def run_demo(out: str, cfg: DemoConfig | None = None, *, progress_factory: Callable | None = None,
             echo: Callable[[str], None] = print) -> DemoResult:
    """Run every stage on a simulated world under ``out``; return where things are and every
    stage's summary (the caller applies ``MaxFailures.check(*res.summaries)``)."""
    from arcray.pipeline.analysis import run_analyze, run_regress
    from arcray.pipeline.embed import embed
    from arcray.progress import progress_bar
    from arcray.report.html import build_report

    cfg = cfg or DemoConfig()
    bars = progress_factory or (lambda d, n, u: progress_bar(d, n, unit=u))
    out = os.path.abspath(out)
    world_dir, root = os.path.join(out, "world"), os.path.join(out, "pipeline")
    layout = Layout(root)
    res = DemoResult(root=root, world=world_dir, report=layout.report_index)
    stage = _Stages(res, echo)
    stage("render", render, cfg, world_dir, bars)
    _ingest(cfg, layout, world_dir, out, stage, bars, echo)
    _calibrate_and_tune(cfg, layout, stage, bars)
    lat = cfg.analysis_latent
    stage("embed", embed, root, flavor="arc", latent=lat, cameras=list(cfg.cameras))
    stage("analyze", run_analyze, root, flavor="arc", latent=lat)
    stage("regress", run_regress, root, flavor="arc", latent=lat, truth=SimLayout(world_dir).truth)
    res.report = stage("report", build_report, root).index
    return res
