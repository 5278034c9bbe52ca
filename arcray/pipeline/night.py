"""`arcray night`: one night end to end, incrementally, and its health page.

For night ``mjd`` (SDSS MJD; ``yesterday_mjd()`` is the last night that has ended at APO):

1. ingest (unless skipped): scrape the night's month from the observing-log archive and download
   that night's arcs and flats (``scrape``, ``run_download`` with ``mjd_min = mjd_max = mjd``);
2. calibrate and measure the night's raw frames (``run_calibrate`` over the night's directories:
   frames already calibrated from the same bytes and config are reused, so a rerun does nothing);
3. the night pass of the measurements for that night only (``run_measure(mjds=[mjd])``: the
   reference-arc fits; the other nights' rows of the table are kept);
4. flag every calibration frame with its cause against the earlier nights (``judge_night``:
   ``measure.flags_reasons``), and predict every exposure's state from the other nights
   (``run_predict``; skipped, with a line, while there are too few nights);
5. the verdict (``night_verdict``: per camera the worst traffic light, red for a flagged frame; the
   actionable lines) and the night's page and the calendar of nights (``arcray.report.night``);
   flags by reason and arcs needed are recorded as Ray metrics (``arcray.metrics``).

The registered models are reused, never retrained. Exit code of the command: 0 when no camera is
red, 1 when one is (``NightSummary.red``), so a cron job's status shows a bad night.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from arcray.errors import InputError
from arcray.paths import Layout
from arcray.stages import StageSummary

def yesterday_mjd(now: datetime | None = None) -> int:
    """The SDSS MJD of the last night that has ended at APO at ``now`` (UTC; default: now): the one
    rule the scheduled jobs use too (``arcray.deploy.recurring.last_finished_night``)."""
    from arcray.deploy.recurring import last_finished_night

    return last_finished_night(now or datetime.now(timezone.utc))


@dataclass(frozen=True)
class NightSummary(StageSummary):
    """``n_ok`` calibration frames measured that night; ``cameras``: camera -> worst status;
    ``actions``: what to do; ``page``: the night page."""

    mjd: int = 0
    cameras: dict = field(default_factory=dict)
    actions: tuple[str, ...] = ()
    page: str = ""

    @property
    def red(self) -> bool:
        return any(s == "red" for s in self.cameras.values())

    def line(self) -> str:
        lights = ", ".join(f"{c} {s}" for c, s in sorted(self.cameras.items())) or "no measured frames"
        return (f"night {self.mjd}: {lights}; {len(self.actions)} action(s) "
                f"({self.seconds:.1f} s) -> {self.page}")


def night_raw_dirs(layout: Layout, mjd: int) -> list[str]:
    """The night's directories of downloaded frames (one per observatory that has one)."""
    out = []
    for cam in ("b1", "b2"):  # one camera per observatory names its directory
        d = os.path.dirname(layout.raw_frame(cam, mjd, 0))
        if os.path.isdir(d) and any(f.startswith("sdR-") for f in os.listdir(d)):
            out.append(d)
    return out


@dataclass(frozen=True)
class IngestOptions:
    """What step 1 needs: the archive's base URL and the two services' credentials."""

    base_url: str  # the SAS host (or its /sas/ root)
    archive_url: str  # the Mailman host (or the list's archive URL)
    mailman: object  # Credentials
    sas: object  # Credentials
    download_workers: int = 4


def _ingest(layout: Layout, mjd: int, ingest: IngestOptions, cameras, run: Callable) -> None:
    from arcray.pipeline.demo import months_of
    from arcray.pipeline.download import DownloadConfig, run_download
    from arcray.pipeline.scrape import scrape
    from arcray.report.night import mjd_date

    evening = mjd_date(mjd - 1)
    run("scrape", scrape, ingest.archive_url, layout.root, months_of(evening, 1), ingest.mailman)
    cfg = DownloadConfig(base_url=ingest.base_url, flavors=("arc", "flat"), cameras=cameras, mjd_min=mjd,
                         mjd_max=mjd, actors=ingest.download_workers)
    run("download", run_download, layout, cfg, ingest.sas)


def judge_night(layout: Layout, frames, mjd: int):
    """Every calibration frame of the night flagged with its cause (``measure.flags_reasons``),
    against the EARLIER nights as reference (all other nights when there is no earlier one);
    written to ``Layout.night_flags(mjd)``."""
    import pyarrow as pa

    from arcray.io import atomic_write_parquet, provenance
    from arcray.measure.flags_reasons import judge_frames

    night = frames[frames["mjd"] == int(mjd)]
    earlier = frames[frames["mjd"] < int(mjd)]
    flags = judge_frames(night, earlier if len(earlier) else frames[frames["mjd"] != int(mjd)])
    atomic_write_parquet(layout.night_flags(mjd), pa.Table.from_pandas(flags, preserve_index=False),
                         provenance(None, ["flags"], night=int(mjd)))
    return flags


def _predict(layout: Layout, mjd: int, cameras, tolerance: float, run: Callable, echo: Callable):
    """The predicted state of every exposure of the night (``run_predict``), or None (with a line
    saying why) when it cannot be predicted yet: too few other nights with measured arcs."""
    import pandas as pd

    from arcray.errors import ArcrayError
    from arcray.pipeline.predict import run_predict

    try:
        run("predict", run_predict, layout.root, mjd=mjd, cameras=cameras, tolerance=tolerance)
    except (ArcrayError, ValueError) as exc:  # too few nights or arcs to fit on: the page says so
        echo(f"predict: skipped ({exc})")
        return None
    return pd.read_parquet(layout.predictions_night(mjd))


def _record_metrics(flags, predictions) -> None:
    """Flags by reason and arcs needed, per camera, as ``ray.util.metrics`` (``arcray.metrics``:
    nothing happens outside Ray)."""
    from arcray.metrics import record_arcs_needed, record_flags

    if flags is not None and len(flags):
        for cam, d in flags.dropna(subset=["flag"]).groupby("camera"):
            record_flags(d["flag"].value_counts().to_dict(), camera=str(cam))
    if predictions is not None and len(predictions):
        prim = predictions[predictions["primary"]]
        for cam, d in prim.groupby("camera"):
            record_arcs_needed(str(cam), int(d["arc_needed"].fillna(True).sum()))


def run_night(root: str, mjd: int, *, ingest: IngestOptions | None = None, cameras=None, workers: int = 2,
              address: str | None = None, trend_nights: int = 14, tolerance: float = 0.2,
              echo: Callable[[str], None] = lambda line: None) -> tuple[NightSummary, list[StageSummary]]:
    """Run the night (module docstring); returns its summary and every stage's summary (for the
    caller's ``--max-failures``). ``echo`` gets each stage's one line as it ends."""
    from arcray.calib.config import CalibConfig
    from arcray.measure.config import MeasureConfig
    from arcray.pipeline.calibrate import run_calibrate
    from arcray.pipeline.measure import run_measure
    from arcray.raycluster import ensure_ray
    from arcray.report.night import night_verdict, read_frames, write_night_page, write_nights_index

    t0 = time.perf_counter()
    layout = Layout(root)
    stages: list[StageSummary] = []

    def run(name, fn, *args, **kwargs):
        s = fn(*args, **kwargs)
        stages.append(s)
        echo(s.line())
        return s

    if ingest is not None:
        ensure_ray(address)
        _ingest(layout, mjd, ingest, cameras, run)
    dirs = night_raw_dirs(layout, mjd)
    if not dirs:
        where = os.path.dirname(layout.raw_frame("b1", mjd, 0))
        raise InputError(f"night {mjd}: no downloaded frames under {where} (nor the LCO directory)"
                         + ("" if ingest else "; drop --skip-ingest to fetch them"))
    for d in dirs:
        run("calibrate", run_calibrate, d, layout, CalibConfig(), workers=workers, address=address,
            measure=MeasureConfig())
    run("measure", run_measure, layout.root, cameras=cameras, mjds=[mjd])
    frames = read_frames(layout)
    if cameras:
        frames = frames[frames["camera"].isin(list(cameras))]
    night = frames[frames["mjd"] == int(mjd)]
    flags = judge_night(layout, frames, mjd)
    predictions = _predict(layout, mjd, cameras, tolerance, run, echo)
    verdict = night_verdict(night, flags, predictions)
    _record_metrics(flags, predictions)
    page = write_night_page(layout, mjd, frames, verdict, trend_nights=trend_nights, flags=flags,
                            predictions=predictions)
    write_nights_index(layout)
    summary = NightSummary(stage="night", n_ok=int(night["measured"].astype(bool).sum()), unit="frames",
                           seconds=time.perf_counter() - t0, outputs={"page": page, "index": layout.nights_index},
                           mjd=int(mjd), cameras=verdict["cameras"], actions=tuple(verdict["actions"]), page=page)
    return summary, stages
