"""The calibration stage on Ray Data: raw sdR frames -> one Parquet file per frame.

Streaming: the dataset holds only file paths; each actor of a pool reads, calibrates and writes
one frame at a time (``calibrate_file``) and returns a small status row, so no more than
``workers`` frames are in memory whatever the number of inputs. While the frame is in memory it is
also measured (``arcray.measure``: lines of arcs, traces of flats, fields, BOSS QA), the only time
the full-resolution pixels exist: the per-line / per-trace table and the per-frame row are written
beside the calibrated frame (``Layout.measured_lines`` / ``measured_traces`` / ``measured_row``). Output names are deterministic
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
                 "worker", "finished", "qa")  # worker: PID; finished: epoch s (throughput, separate processes)
# qa: the measured traffic light (green/yellow/red), "not measured" or "measurement failed"
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
def write_measurement(layout: Layout, m, config) -> str:
    """Write one frame's measurement (``FrameMeasurement``) atomically; the per-frame row last, so it
    marks a complete measurement. A lines/traces table left from an earlier run of the same frame
    that this run did not produce is removed. Returns the row's ``qa`` status word."""
    from arcray.io import atomic_write_parquet, provenance, remove
    from arcray.measure.calibrated import FAILED_PREFIX
    from arcray.measure.schema import FRAME_SCHEMA, LINE_SCHEMA, TRACE_SCHEMA

    r = m.frame
    key = (r["camera"], r["mjd"], r["expnum"])
    prov = provenance(config.config_hash(), ["measure"], limits_version=r.get("limits_version"),
                      config=config.to_json_dict())
    for table, path, schema in ((m.lines, layout.measured_lines(*key), LINE_SCHEMA),
                                (m.traces, layout.measured_traces(*key), TRACE_SCHEMA)):
        if table is None:
            remove(path)
        else:  # lz4 without dictionaries: 4 ms against snappy's 15 ms for an arc's ~17,000 rows
            atomic_write_parquet(path, pa.table(table, schema=schema), prov, compression="lz4", use_dictionary=False)
    atomic_write_parquet(layout.measured_row(r["camera"], r["flavor"], r["mjd"], r["expnum"]),
                         pa.Table.from_pylist([r], schema=FRAME_SCHEMA), prov)
    if r["measured"]:
        return str(r["status"])
    return "measurement failed" if str(r["reason"] or "").startswith(FAILED_PREFIX) else "not measured"


def calibrate_file(path: str, layout: Layout, config: CalibConfig, measure=None) -> dict[str, Any]:
    """Read, calibrate and write one frame; never raises for bad input (status ``failed``).
    ``measure``: a ``MeasureConfig`` to measure it too (None: calibration only)."""
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
        if measure is not None:
            from arcray.measure.calibrated import measure_calibrated

            row["qa"] = write_measurement(layout, measure_calibrated(frame.data, cf, config, measure), measure)
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

    def __init__(self, root: str, config_json: dict, measure_json: dict | None = None):
        from ray.util import metrics

        from arcray.calib.reader import reuse_large_buffers

        reuse_large_buffers()  # ~20 ms/frame of page faults saved (see its docstring)
        self.layout = Layout(root)
        self.config = CalibConfig.model_validate(config_json)
        self.measure = None
        if measure_json is not None:
            from arcray.measure.config import MeasureConfig

            self.measure = MeasureConfig.model_validate(measure_json)
        self.frames = metrics.Counter("arcray_calibrate_frames", "frames calibrated, by status",
                                      tag_keys=("status", "camera"))
        self.seconds = metrics.Histogram("arcray_calibrate_seconds", "seconds per frame",
                                         boundaries=[0.1, 0.25, 0.5, 1, 2, 5, 10])

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        rows = [calibrate_file(str(p), self.layout, self.config, self.measure) for p in batch["path"]]
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
                  on_row: Callable[[dict], None] | None = None, measure=None) -> StageSummary:
    """Calibrate every frame under/listed by ``raw`` into ``layout``; bad frames become rows of
    ``layout.calibrated_failures`` (the summary's ``n_failed``), never an exception.
    ``on_row``: called with each frame's status row (``STATUS_FIELDS``) as it arrives.
    ``measure``: a ``MeasureConfig`` to measure every frame while it is in memory (None: don't)."""
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
    ds = ds.map_batches(CalibrateActor, fn_constructor_kwargs={
                            "root": layout.root, "config_json": config.to_json_dict(),
                            "measure_json": None if measure is None else measure.to_json_dict()},
                        batch_size=1, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=workers))
    failed, n_ok = [], 0
    qa: dict[str, int] = {}
    for row in ds.iter_rows():
        if row["status"] == "ok":
            n_ok += 1
            if row.get("qa"):
                qa[row["qa"]] = qa.get(row["qa"], 0) + 1
        else:
            failed.append(row)
            log.warning("calibrate failed %s: %s", row["path"], row["reason"])
        if progress is not None:
            progress(1)
        if on_row is not None:
            on_row(row)
    _write_failures(layout, paths, failed, config.config_hash())
    order = ("green", "yellow", "red", "not measured", "measurement failed")
    notes = ("QA " + ", ".join(f"{qa[k]} {k}" for k in order if k in qa),) if qa else ()
    outputs = {"calibrated": layout.calibrated, "failures": layout.calibrated_failures}
    if measure is not None:
        outputs["measured"] = layout.measured
    return StageSummary(stage="calibrate", n_ok=n_ok, n_failed=len(failed), seconds=time.perf_counter() - t0,
                        unit="frames", failures=layout.calibrated_failures, outputs=outputs, notes=notes)
