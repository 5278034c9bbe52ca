"""The calibration stage on Ray Data: raw sdR frames -> one Parquet file per frame.

Streaming: the dataset holds only file paths; each actor of a pool reads, calibrates and writes
one frame at a time (``calibrate_file``) and returns a small status row, so no more than
``workers`` frames are in memory whatever the number of inputs. Output names are deterministic
(``Layout.calibrated_frame``) and written atomically, so a rerun replaces files and never
duplicates. Bad inputs become rows of ``Layout.calibrated_failures`` and the run goes on: the
summary counts them and the caller's ``--max-failures`` decides (``arcray.stages``).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from arcray.calib.config import CalibConfig
from arcray.errors import ArcrayError, InputError
from arcray.paths import Layout, is_uri
from arcray.stages import StageSummary

log = logging.getLogger(__name__)
SMOKE_FRAMES = 4
STATUS_FIELDS = ("path", "status", "reason", "camera", "flavor", "mjd", "expnum", "output", "seconds",
                 "worker", "finished")  # worker: PID; finished: epoch s (throughput, separate processes)
FAILURES_SCHEMA = pa.schema([
    pa.field("path", pa.string()), pa.field("camera", pa.string()), pa.field("mjd", pa.int32()),
    pa.field("expnum", pa.int64()), pa.field("reason", pa.string()),
    pa.field("failed_at", pa.timestamp("us", tz="UTC")), pa.field("config_hash", pa.string()),
])


# -- inputs ---------------------------------------------------------------------------------
def _walk(root: str) -> list[str]:
    out = []
    for d, _dirs, files in os.walk(root):
        out += [os.path.join(d, f) for f in files if f.startswith("sdR-") and f.endswith((".fit.gz", ".fit"))]
    return sorted(out)


def _from_table(path: str) -> list[str]:
    """Paths from a downloads table (``path``, ``status``) or an exposure manifest
    (``cameras``, ``mjd``, ``expnum``; frames expected at ``Layout(<root>).raw_frame``)."""
    from arcray.io import read_bytes

    table = pq.read_table(pa.BufferReader(read_bytes(path)))
    names = set(table.column_names)
    if "path" in names:
        rows = table.to_pylist()
        return sorted(r["path"] for r in rows if r.get("status", "ok") in ("ok", "skipped") and r["path"])
    if {"cameras", "mjd", "expnum"} <= names:
        layout = Layout(os.path.dirname(os.path.dirname(os.path.abspath(path))))
        return sorted(layout.raw_frame(c, r["mjd"], r["expnum"]) for r in table.to_pylist()
                      for c in (r["cameras"] or ()))
    raise InputError(f"{path}: neither a downloads table (path, status) nor a manifest (cameras, mjd, expnum)")


def discover_inputs(raw: str) -> list[str]:
    """Raw frame paths under a directory tree, or listed by a downloads table / manifest."""
    if str(raw).endswith(".parquet"):
        return _from_table(raw)
    if is_uri(raw):
        raise InputError(f"{raw}: give a local directory, or a downloads table/manifest for URIs")
    if not os.path.isdir(raw):
        raise InputError(f"raw frames: {raw} is not a directory or a .parquet table")
    return _walk(raw)


# -- one frame (plain Python, no Ray) -------------------------------------------------------
def calibrate_file(path: str, layout: Layout, config: CalibConfig) -> dict[str, Any]:
    """Read, calibrate and write one frame; never raises for bad input (status ``failed``)."""
    from arcray.calib.frame import calibrate_frame
    from arcray.calib.metadata import parse_frame_name
    from arcray.calib.reader import read_raw
    from arcray.calib.table import frame_table, views_metadata, write_options
    from arcray.io import atomic_write_parquet, provenance, read_bytes

    t0 = time.perf_counter()
    name = parse_frame_name(path)
    row: dict[str, Any] = dict.fromkeys(STATUS_FIELDS)
    row.update(path=str(path), camera=name[0] if name else None, expnum=name[1] if name else None)
    try:
        frame = read_raw(read_bytes(path) if is_uri(path) else path)
        cf = calibrate_frame(frame.data, frame.header, config, camera=row["camera"], expnum=row["expnum"],
                             keep_frame=config.full_frame != "none")
        meta = cf.meta
        out = layout.calibrated_frame(meta["camera"], meta["flavor"], meta["mjd"], meta["expnum"])
        prov = provenance(config.config_hash(), cf.steps, source=os.path.basename(str(path)),
                          views=views_metadata(cf, config), config=config.to_json_dict())
        atomic_write_parquet(out, frame_table(cf, config), prov, **write_options(config))
        row.update(status="ok", camera=meta["camera"], flavor=meta["flavor"], mjd=meta["mjd"],
                   expnum=meta["expnum"], output=out)
    except ArcrayError as exc:
        row.update(status="failed", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bad frame must not stop the run
        row.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:500])
    row.update(seconds=time.perf_counter() - t0, worker=os.getpid(), finished=time.time())
    return row


class CalibrateActor:
    """``map_batches`` callable: one instance per pool actor; counts frames in ray.util.metrics."""

    def __init__(self, root: str, config_json: dict):
        from ray.util import metrics

        from arcray.calib.reader import reuse_large_buffers

        reuse_large_buffers()  # ~20 ms/frame of page faults saved (see its docstring)
        self.layout = Layout(root)
        self.config = CalibConfig.model_validate(config_json)
        self.frames = metrics.Counter("arcray_calibrate_frames", "frames calibrated, by status",
                                      tag_keys=("status", "camera"))
        self.seconds = metrics.Histogram("arcray_calibrate_seconds", "seconds per frame",
                                         boundaries=[0.1, 0.25, 0.5, 1, 2, 5, 10])

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        rows = [calibrate_file(str(p), self.layout, self.config) for p in batch["path"]]
        for r in rows:
            self.frames.inc(1, tags={"status": r["status"], "camera": str(r["camera"])})
            self.seconds.observe(r["seconds"])
        return {k: np.array([r[k] for r in rows], dtype=object) for k in STATUS_FIELDS}


# -- the run --------------------------------------------------------------------------------
def _write_failures(layout: Layout, processed: Iterable[str], failed: list[dict], config_hash: str) -> None:
    """Failures table = earlier failures of frames not processed now + this run's failures."""
    from arcray.io import atomic_write_parquet, exists, provenance, read_bytes

    done = set(processed)
    keep: list[dict] = []
    if exists(layout.calibrated_failures):
        old = pq.read_table(pa.BufferReader(read_bytes(layout.calibrated_failures)))
        keep = [r for r in old.to_pylist() if r["path"] not in done]
    now = datetime.now(timezone.utc)
    new = [{"path": r["path"], "camera": r["camera"], "mjd": r["mjd"], "expnum": r["expnum"],
            "reason": r["reason"], "failed_at": now, "config_hash": config_hash} for r in failed]
    table = pa.Table.from_pylist(keep + new, schema=FAILURES_SCHEMA)
    atomic_write_parquet(layout.calibrated_failures, table, provenance(config_hash, ["calibrate"]))


def run_calibrate(raw: str, layout: Layout, config: CalibConfig, *, workers: int = 2, smoke: bool = False,
                  progress: Callable[..., None] | None = None, address: str | None = None,
                  on_row: Callable[[dict], None] | None = None) -> StageSummary:
    """Calibrate every frame under/listed by ``raw`` into ``layout``; bad frames become rows of
    ``layout.calibrated_failures`` (the summary's ``n_failed``), never an exception.
    ``on_row``: called with each frame's status row (``STATUS_FIELDS``) as it arrives."""
    import ray

    from arcray.raycluster import ensure_ray

    t0 = time.perf_counter()
    paths = discover_inputs(raw)
    if smoke:
        paths = paths[:SMOKE_FRAMES]
    if not paths:
        raise InputError(f"no sdR-*.fit.gz frames found under {raw}")
    ensure_ray(address)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    workers = max(1, min(workers, len(paths)))
    ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=min(len(paths), 1000))
    ds = ds.map_batches(CalibrateActor, fn_constructor_kwargs={"root": layout.root,
                                                              "config_json": config.to_json_dict()},
                        batch_size=1, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=workers))
    failed, n_ok = [], 0
    for row in ds.iter_rows():
        if row["status"] == "ok":
            n_ok += 1
        else:
            failed.append(row)
            log.warning("calibrate failed %s: %s", row["path"], row["reason"])
        if progress is not None:
            progress(1)
        if on_row is not None:
            on_row(row)
    _write_failures(layout, paths, failed, config.config_hash())
    return StageSummary(stage="calibrate", n_ok=n_ok, n_failed=len(failed), seconds=time.perf_counter() - t0,
                        unit="frames", failures=layout.calibrated_failures,
                        outputs={"calibrated": layout.calibrated, "failures": layout.calibrated_failures})
