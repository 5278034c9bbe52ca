"""The calibration stage on Ray Data: raw sdR frames -> one Parquet file per frame.

Streaming: the dataset holds only file paths; each actor of a pool reads, calibrates and writes
one frame at a time (``calibrate_file``) and returns a small status row, so no more than
``workers`` frames are in memory whatever the number of inputs. While the frame is in memory it is
also measured (``arcray.measure``: lines of arcs, traces of flats, fields, BOSS QA), the only time
the full-resolution pixels exist: the per-line / per-trace table and the per-frame row are written
beside the calibrated frame (``Layout.measured_lines`` / ``measured_traces`` / ``measured_row``).
Output names are deterministic (``Layout.calibrated_frame``) and written atomically, so a rerun
replaces files and never duplicates.

Nothing lost, nothing trusted blindly:

- Inputs are keyed by ``(observatory, camera, expnum)`` from the file name, never by the path
  string (``arcray.calib.identity``); one key is processed once per run.
- A frame whose header contradicts its name or night directory (``CAMERAS``, ``EXPOSURE``, ``MJD``)
  is refused with both sides in the reason.
- After a run, the calibrated dataset and ``Layout.calibrated_failures`` partition the run's keys:
  a frame that fails now loses its earlier outputs, a frame that succeeds now leaves the failures
  table (``arcray.pipeline.calibrate_state``). The summary counts what is there.
- A rerun reuses (``n_skipped``) a calibrated frame whose provenance records the same source size
  and mtime, the same calibration config hash and the same measurement config; anything else is
  recalibrated (``force=True``: everything is).
- One run per root at a time (``arcray.locks.stage_lock``); an unwritable root or a bad ``raw``
  argument is refused before Ray starts.

Bad inputs become rows of ``Layout.calibrated_failures`` and the run goes on: the summary counts
them and the caller's ``--max-failures`` decides (``arcray.stages``).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from arcray.calib.config import CalibConfig
from arcray.calib.identity import FrameKey, frame_key, night_mjd
from arcray.errors import ArcrayError, ConfigError, InputError
from arcray.paths import Layout, is_uri
from arcray.pipeline.calibrate_state import (FAILURES_SCHEMA, check_writable, existing_places, output_place,
                                             remove_outputs, write_failures)
from arcray.pipeline.measure import qa_word as _qa_word, write_measurement  # noqa: F401 (re-exported)
from arcray.stages import StageSummary

__all__ = ["FAILURES_SCHEMA", "SMOKE_FRAMES", "STATUS_FIELDS", "calibrate_file", "discover_inputs",
           "frame_inputs", "run_calibrate", "write_measurement"]

log = logging.getLogger(__name__)
SMOKE_FRAMES = 4
STATUS_FIELDS = ("path", "status", "reason", "observatory", "camera", "flavor", "mjd", "expnum", "output",
                 "seconds", "worker", "finished", "qa")  # worker: PID; finished: epoch s (throughput)
# status: ok (calibrated now), skipped (output up to date, reused), failed (reason says why)
# qa: the measured traffic light (green/yellow/red), "not measured" or "measurement failed"
BAD_NAME = "file name is not sdR-<camera>-<expnum:08d>.fit[.gz]"


# -- inputs ---------------------------------------------------------------------------------
def _walk(root: str) -> list[str]:
    out = []
    for d, _dirs, files in os.walk(root):
        out += [os.path.join(d, f) for f in files if f.startswith("sdR-") and f.endswith((".fit.gz", ".fit"))]
    return sorted(out)


def _from_table(path: str) -> list[str]:
    """Paths from a downloads table (``path``, ``status``) or an exposure manifest
    (``cameras``, ``mjd``, ``expnum``; frames expected at ``Layout(<root>).raw_frame``)."""
    from arcray.io import exists, read_bytes

    if not exists(path):
        raise InputError(f"{path}: no such downloads table or manifest")
    try:
        table = pq.read_table(pa.BufferReader(read_bytes(path)))
    except (pa.ArrowException, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: not a Parquet table ({first})") from None
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
    """Raw frame paths under a directory tree, or listed by a downloads table / manifest; local
    paths made absolute."""
    if str(raw).endswith(".parquet"):
        paths = _from_table(raw)
    elif is_uri(raw):
        raise InputError(f"{raw}: give a local directory, or a downloads table/manifest for URIs")
    elif not os.path.isdir(raw):
        raise InputError(f"raw frames: {raw} is not a directory or a .parquet table")
    else:
        paths = _walk(raw)
    return [p if is_uri(p) else os.path.abspath(p) for p in paths]


def frame_inputs(raw: str, *, smoke: bool = False) -> list[str]:
    """The frames one run processes: ``discover_inputs`` with one path per frame key (the first,
    in sorted order; a second file claiming the same frame is logged and ignored), the first
    ``SMOKE_FRAMES`` with ``smoke``. Paths whose name is not a frame's are kept (they fail)."""
    seen: dict[Any, str] = {}
    for p in discover_inputs(raw):
        key = frame_key(p) or ("path", p)
        if key in seen:
            if seen[key] != p:
                log.warning("calibrate: %s is the same frame as %s; using the first", p, seen[key])
            continue
        seen[key] = p
    paths = list(seen.values())
    return paths[:SMOKE_FRAMES] if smoke else paths


# -- one frame (plain Python, no Ray) -------------------------------------------------------
def source_stat(path: str) -> tuple[int, int]:
    """``(size in bytes, mtime in ns)`` of a source file (local or URI); ``InputError`` if absent."""
    if not is_uri(path):
        try:
            st = os.stat(path)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
        return st.st_size, st.st_mtime_ns
    from pyarrow import fs as pafs

    fs, p = pafs.FileSystem.from_uri(path)
    info = fs.get_file_info(p)
    if info.type != pafs.FileType.File:
        raise InputError(f"cannot read {path}: no such file")
    return int(info.size), int(info.mtime_ns or 0)


def _measure_hash(measure) -> str | None:
    """The measurement's config hash and its row's columns: a frame measured by a version of arcray
    that wrote other columns (e.g. before the gap background and noise) is measured again."""
    if measure is None:
        return None
    import hashlib

    from arcray.measure.schema import FRAME_SCHEMA

    columns = hashlib.sha256(",".join(FRAME_SCHEMA.names).encode()).hexdigest()[:12]
    return f"{measure.config_hash()}-{columns}"


def _reuse(previous: str, stat: tuple[int, int], layout: Layout, config: CalibConfig, measure) -> dict | None:
    """The status fields of ``previous`` (an earlier calibrated file of this frame) when it is up to
    date: same source size and mtime, same config hash, same measurement config and (measuring)
    its measurement row present. None: recalibrate."""
    from arcray.io import exists, read_bytes, read_provenance

    try:
        prov = read_provenance(previous) or {}
    except (OSError, pa.ArrowException):
        return None
    src = prov.get("source_stat") or {}
    if ([src.get("size"), src.get("mtime_ns")] != list(stat) or prov.get("config_hash") != config.config_hash()
            or prov.get("measure_hash") != _measure_hash(measure)):
        return None
    hit = output_place(previous)
    if hit is None:
        return None
    (obs, cam, exp), (flavor, mjd) = hit
    row = dict(status="skipped", observatory=obs, camera=cam, flavor=flavor, mjd=mjd, expnum=exp, output=previous)
    if measure is not None:
        mrow = layout.measured_row(cam, flavor, mjd, exp)
        if not exists(mrow):
            return None
        t = pq.read_table(pa.BufferReader(read_bytes(mrow)), columns=["measured", "status", "reason"])
        row["qa"] = _qa_word(t.to_pylist()[0])
    return row


def calibrate_file(path: str, layout: Layout, config: CalibConfig, measure=None, *,
                   previous: str | None = None) -> dict[str, Any]:
    """Read, check, calibrate and write one frame; never raises for bad input (status ``failed``).
    ``measure``: a ``MeasureConfig`` to measure it too (None: calibration only). ``previous``: this
    frame's calibrated file from an earlier run, reused (status ``skipped``) when up to date."""
    from arcray.calib.frame import calibrate_frame
    from arcray.calib.identity import check_identity
    from arcray.calib.reader import read_raw
    from arcray.calib.table import frame_table, views_metadata, write_options
    from arcray.io import atomic_write_parquet, provenance, read_bytes

    t0 = time.perf_counter()
    key = frame_key(path)
    row: dict[str, Any] = dict.fromkeys(STATUS_FIELDS)
    row.update(path=str(path), mjd=night_mjd(path))
    if key is not None:
        row.update(observatory=key[0], camera=key[1], expnum=key[2])
    try:
        if key is None:
            raise InputError(BAD_NAME)
        stat = source_stat(path)
        reused = _reuse(previous, stat, layout, config, measure) if previous else None
        if reused is not None:
            row.update(reused)
        else:
            frame = read_raw(read_bytes(path) if is_uri(path) else path)
            check_identity(frame.header, camera=key[1], expnum=key[2], mjd=row["mjd"])
            cf = calibrate_frame(frame.data, frame.header, config, camera=key[1], expnum=key[2],
                                 keep_frame=config.full_frame != "none")
            meta = cf.meta
            out = layout.calibrated_frame(meta["camera"], meta["flavor"], meta["mjd"], meta["expnum"])
            prov = provenance(config.config_hash(), cf.steps, source=os.path.basename(str(path)),
                              source_stat={"size": stat[0], "mtime_ns": stat[1]},
                              measure_hash=_measure_hash(measure),
                              views=views_metadata(cf, config), config=config.to_json_dict())
            atomic_write_parquet(out, frame_table(cf, config), prov, **write_options(config))
            if measure is not None:
                from arcray.measure.calibrated import measure_calibrated

                row["qa"] = write_measurement(layout, measure_calibrated(frame.data, cf, config, measure), measure)
            row.update(status="ok", observatory=meta["observatory"], camera=meta["camera"], flavor=meta["flavor"],
                       mjd=meta["mjd"], expnum=meta["expnum"], output=out)
    except ArcrayError as exc:
        row.update(status="failed", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bad frame must not stop the run
        row.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:500])
    if row["status"] == "failed" and row["mjd"] is None:
        row["mjd"] = _header_mjd(path)
    row.update(seconds=time.perf_counter() - t0, worker=os.getpid(), finished=time.time())
    return row


def _header_mjd(path: str) -> int | None:
    """The MJD a failed frame's header states, if any of its header can be read."""
    from arcray.calib.identity import peek_header
    from arcray.calib.metadata import as_int
    from arcray.io import read_bytes

    try:
        header = peek_header(read_bytes(path))
    except OSError:
        return None
    return None if header is None else as_int(header.get("MJD"))


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

        rows = [calibrate_file(str(p), self.layout, self.config, self.measure, previous=str(prev) or None)
                for p, prev in zip(batch["path"], batch["previous"])]
        for r in rows:
            self.frames.inc(1, tags={"status": r["status"], "camera": str(r["camera"])})
            self.seconds.observe(r["seconds"])
        return {k: np.array([r[k] for r in rows], dtype=object) for k in STATUS_FIELDS}


# -- the run --------------------------------------------------------------------------------
def _row_key(row: dict) -> tuple:
    key = frame_key(row["path"])
    return key if key is not None else ("path", row["path"])


def run_calibrate(raw: str, layout: Layout, config: CalibConfig, *, workers: int = 2, smoke: bool = False,
                  progress: Callable[..., None] | None = None, address: str | None = None,
                  on_row: Callable[[dict], None] | None = None, measure=None, force: bool = False,
                  wait_s: float = 0.0) -> StageSummary:
    """Calibrate every frame under/listed by ``raw`` into ``layout``; bad frames become rows of
    ``layout.calibrated_failures`` (the summary's ``n_failed``), never an exception.
    ``on_row``: called with each frame's status row (``STATUS_FIELDS``) as it arrives.
    ``measure``: a ``MeasureConfig`` to measure every frame while it is in memory (None: don't).
    ``force``: recalibrate frames whose output is up to date (default: reuse them, ``n_skipped``).
    ``wait_s``: how long to wait for another calibrate run on the same root (``LockedError`` after).
    Raises ``ConfigError``/``InputError`` (bad options, no frames, unwritable root) before Ray starts."""
    from arcray.locks import stage_lock

    t0 = time.perf_counter()
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    paths = frame_inputs(raw, smoke=smoke)
    if not paths:
        raise InputError(f"no sdR-*.fit.gz frames found under {raw}")
    check_writable(layout)
    with stage_lock(layout, "calibrate", wait_s=wait_s):
        counts, failed, qa = _run(paths, layout, config, workers=workers, progress=progress, address=address,
                                  on_row=on_row, measure=measure, force=force)
    order = ("green", "yellow", "red", "not measured", "measurement failed")
    notes = (f"{counts['skipped']} up to date, reused",) if counts["skipped"] else ()
    notes += ("QA " + ", ".join(f"{qa[k]} {k}" for k in order if k in qa),) if qa else ()
    outputs = {"calibrated": layout.calibrated, "failures": layout.calibrated_failures}
    if measure is not None:
        outputs["measured"] = layout.measured
    return StageSummary(stage="calibrate", n_ok=counts["ok"], n_skipped=counts["skipped"], n_failed=len(failed),
                        seconds=time.perf_counter() - t0, unit="frames", failures=layout.calibrated_failures,
                        outputs=outputs, notes=notes)


def _settle_reused(paths: list[str], previous: Callable[[str], str], layout: Layout, config: CalibConfig,
                   measure) -> tuple[list[dict], list[dict]]:
    """``(status rows of frames whose outputs are up to date, the other frames to calibrate)``.
    Settled on the driver (two Parquet footers a frame), so a rerun over calibrated frames starts
    no actor pool, or no Ray at all."""
    reused, todo = [], []
    for p in paths:
        prev = previous(p)
        try:
            fresh = bool(prev) and _reuse(prev, source_stat(p), layout, config, measure) is not None
        except OSError:
            fresh = False
        if fresh:
            reused.append(calibrate_file(p, layout, config, measure, previous=prev))
        else:
            todo.append({"path": p, "previous": prev})
    return reused, todo


def _run(paths: list[str], layout: Layout, config: CalibConfig, *, workers, progress, address, on_row, measure,
         force) -> tuple[dict[str, int], list[dict], dict[str, int]]:
    """The locked part of a run: the actor pool, then the outputs and failures made to agree."""
    import ray

    from arcray.raycluster import ensure_ray

    calibrated, measured = existing_places(layout)

    def previous(p: str) -> str:
        key: FrameKey | None = frame_key(p)
        places = calibrated.get(key, set()) if key else set()
        if force or len(places) != 1:
            return ""
        flavor, mjd = next(iter(places))
        return layout.calibrated_frame(key[1], flavor, mjd, key[2])

    reused, todo = _settle_reused(paths, previous, layout, config, measure)
    rows = iter(reused)
    if todo:
        ensure_ray(address)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        workers = max(1, min(workers, len(todo)))
        ds = ray.data.from_items(todo, override_num_blocks=min(len(todo), 1000))
        ds = ds.map_batches(CalibrateActor, fn_constructor_kwargs={
                                "root": layout.root, "config_json": config.to_json_dict(),
                                "measure_json": None if measure is None else measure.to_json_dict()},
                            batch_size=1, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=workers))
        rows = itertools.chain(reused, ds.iter_rows())
    failed: list[dict] = []
    counts = {"ok": 0, "skipped": 0}
    qa: dict[str, int] = {}
    for row in rows:
        key = _row_key(row)
        places = calibrated.get(key, set()) | measured.get(key, set())
        if row["status"] == "failed":
            failed.append(row)
            log.warning("calibrate failed %s: %s", row["path"], row["reason"])
            remove_outputs(layout, key, places)  # an earlier run's outputs of a frame that fails now
        else:
            counts[row["status"]] += 1
            if row.get("qa"):
                qa[row["qa"]] = qa.get(row["qa"], 0) + 1
            remove_outputs(layout, key, places, keep=(row["flavor"], int(row["mjd"])))
        if progress is not None:
            progress(1)
        if on_row is not None:
            on_row(row)
    write_failures(layout, [frame_key(p) or ("path", p) for p in paths], failed, config.config_hash())
    return counts, failed, qa
