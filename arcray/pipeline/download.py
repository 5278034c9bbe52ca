"""The download stage: the manifest's raw frames from the SAS, fetched by a pool of Ray actors.

``select_frames`` (manifest rows -> frame list) and ``plan`` (frames not yet present -> tasks) are
pure; ``DownloadActor`` holds one ``arcray.ingest.sas_client.SasClient`` (one ``requests.Session``)
and is driven by ``ray.util.ActorPool.map_unordered``; the downloads table
(``arcray.ingest.manifest``, ``Layout.downloads``) gets one row per file and is rewritten
atomically as results arrive. A file that keeps failing becomes a row with its reason and never
stops the run (``DownloadSummary.n_failed``; the caller's ``--max-failures`` decides).

Before any actor starts (``check_remote``): the base URL's shape (``arcray.urls.check_base_url``,
in ``DownloadConfig``: http(s), a host, no credentials in it), ONE request to the SAS root (an
unreachable host fails in seconds, a refused login as ``AuthError``) and ONE ``HEAD`` of the first
planned frame (a 404 there and for its observatory's directory means a wrong SAS path: one
``InputError``, not a failure per file).

One run per root at a time: the body holds ``arcray.locks.stage_lock(layout, "download")`` (a
second run waits ``wait_s`` or refuses with ``LockedError``), so two runs never interleave their
rewrites of the downloads table.

Reruns verify what they skip (``plan``): an ``ok`` row whose file is missing or whose size differs
from the row's ``bytes`` is fetched again, always (a stat per file); with ``verify=True`` every
other ``ok`` file also goes to an actor, which checks its gzip CRC and FITS header
(``sas_client.verify_file``) and fetches it again only if that fails. ``DownloadSummary.n_refetched``
counts the files fetched again. Every URL recorded or printed passes ``arcray.urls.redact``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from arcray.config import StageConfig
from arcray.credentials import Credentials
from arcray.errors import InputError
from arcray.ingest.manifest import DOWNLOADS_SCHEMA, make_root_dir, read_downloads, write_downloads
from arcray.ingest.sas_client import FetchResult, FrameTask, RetryPolicy, SasClient
from arcray.io import exists, read_bytes
from arcray.locks import lock_path, stage_lock
from arcray.paths import Layout, is_uri, sas_relpath
from arcray.stages import StageSummary
from arcray.urls import check_base_url, check_reachable, redact

SMOKE_FILES = 4


class DownloadConfig(StageConfig):
    """Options of ``arcray download`` (no secrets here: this is hashed into provenance)."""

    base_url: str = Field(description="SAS root URL, e.g. https://data.sdss5.org/sas/ (a bare host gets /sas/)")
    flavors: tuple[str, ...] = Field(("arc", "flat"), description="manifest flavors to fetch")
    cameras: Optional[tuple[str, ...]] = Field(None, description="cameras to fetch (None: all listed)")
    mjd_min: Optional[int] = Field(None, description="first MJD (inclusive)")
    mjd_max: Optional[int] = Field(None, description="last MJD (inclusive)")
    include_hartmann: bool = Field(False, description="also fetch Hartmann focus arcs")
    actors: int = Field(8, ge=1, le=256, description="parallel download actors (CLI: --workers)")
    actor_cpus: float = Field(0.5, gt=0, description="logical CPUs reserved per actor")
    max_attempts: int = Field(6, ge=1, description="tries per file")
    backoff_s: float = Field(0.5, ge=0, description="first retry back-off, s (doubles, jittered)")
    backoff_max_s: float = Field(8.0, ge=0, description="back-off cap, s")
    connect_timeout_s: float = Field(10.0, gt=0, description="TCP connect timeout, s")
    read_timeout_s: float = Field(30.0, gt=0, description="timeout between received bytes, s")
    limit: Optional[int] = Field(None, ge=1, description="fetch at most this many files")
    smoke: bool = Field(False, description=f"fetch at most {SMOKE_FILES} files")
    verify: bool = Field(False, description="check the gzip CRC and header of every file already "
                                            "recorded ok (else only its presence and size)")

    @field_validator("base_url")
    @classmethod
    def _shape(cls, v: str) -> str:  # ConfigError (not a ValidationError): refused before any write
        return check_base_url(v, option="--base-url", service="sas")

    @property
    def sas_root(self) -> str:
        parts = urlsplit(self.base_url)
        path = parts.path if parts.path not in ("", "/") else "/sas/"
        return f"{parts.scheme}://{parts.netloc}{path.rstrip('/')}/"

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.backoff_s, self.backoff_max_s,
                           self.connect_timeout_s, self.read_timeout_s)


@dataclass(frozen=True)
class DownloadSummary(StageSummary):
    """``n_ok`` fetched now, ``n_skipped`` already present, ``n_failed`` (rows in ``failures``,
    the downloads table); ``bytes`` received; ``startup_s`` creating the actors (in ``seconds``);
    ``n_refetched`` of ``n_ok`` were recorded ok before but missing, of another size or damaged."""

    n_selected: int = 0
    n_refetched: int = 0
    bytes: int = 0
    startup_s: float = 0.0

    @property
    def table(self) -> str:
        return self.failures or ""


def select_frames(manifest: pa.Table, cfg: DownloadConfig) -> list[tuple[str, int, int]]:
    """``[(camera, mjd, expnum), ...]`` of the manifest rows that pass the filters, sorted."""
    need = {"mjd", "expnum", "flavor", "cameras", "is_hartmann"}
    missing = need - set(manifest.column_names)
    if missing:
        raise InputError(f"manifest lacks columns {sorted(missing)}")
    out = set()
    for row in manifest.select(sorted(need)).to_pylist():
        if row["flavor"] not in cfg.flavors or (row["is_hartmann"] and not cfg.include_hartmann):
            continue
        if (cfg.mjd_min is not None and row["mjd"] < cfg.mjd_min) or \
                (cfg.mjd_max is not None and row["mjd"] > cfg.mjd_max):
            continue
        for cam in row["cameras"] or ():
            if cfg.cameras is None or cam in cfg.cameras:
                out.add((cam, int(row["mjd"]), int(row["expnum"])))
    frames = sorted(out, key=lambda f: (f[1], f[2], f[0]))
    cap = min(x for x in (cfg.limit, SMOKE_FILES if cfg.smoke else None, len(frames)) if x is not None)
    return frames[:cap]


def result_row(res: FetchResult) -> dict:
    row = {f.name: getattr(res, f.name, None) for f in DOWNLOADS_SCHEMA}
    row["finished_at"] = datetime.now(timezone.utc)
    return row


def plan(layout: Layout, cfg: DownloadConfig, frames, rows) -> list[FrameTask]:
    """Tasks for the frames not yet trustworthily present.

    A frame is skipped only when its row says ``ok``/``skipped`` and its file exists with the
    row's size (and, with ``cfg.verify``, not even then: an actor checks its CRC and header). A
    file whose size differs is not trusted (``refetch``): it is fetched again and replaced."""
    todo = []
    for cam, mjd, expnum in frames:
        dest = layout.raw_frame(cam, mjd, expnum)
        url = cfg.sas_root + sas_relpath(cam, mjd, expnum)
        row = rows.get((cam, expnum))
        if row and row["status"] in ("ok", "skipped"):
            size = _size(dest)
            if size is not None and size == row["bytes"]:
                if cfg.verify:
                    todo.append(FrameTask(cam, mjd, expnum, url, dest))
                continue
            todo.append(FrameTask(cam, mjd, expnum, url, dest, refetch=size is not None))
            continue
        todo.append(FrameTask(cam, mjd, expnum, url, dest))
    return todo


def _size(path: str) -> int | None:
    """Size of the file at ``path`` (local or URI), None when there is none."""
    if not is_uri(path):
        try:
            return os.path.getsize(path)
        except OSError:
            return None
    from pyarrow import fs as pafs

    fs, inner = pafs.FileSystem.from_uri(path)
    info = fs.get_file_info(inner)
    return info.size if info.type == pafs.FileType.File else None


def read_manifest(path: str, cfg: DownloadConfig) -> list[tuple[str, int, int]]:
    """The selected frames of the manifest at ``path``; ``InputError`` if missing or not Parquet."""
    if not exists(path):
        raise InputError(f"manifest {path} not found (run `arcray scrape` first, or pass --manifest)")
    try:
        table = pq.read_table(pa.BufferReader(read_bytes(path)))
    except IsADirectoryError:
        raise InputError(f"manifest {path} is a directory, not a Parquet file") from None
    except (pa.ArrowException, OSError) as exc:
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(f"manifest {path} is not a readable Parquet file ({why})") from None
    return select_frames(table, cfg)


def check_remote(cfg: DownloadConfig, credentials: Credentials, first: FrameTask) -> None:
    """Before any actor: the SAS root answers (one request, seconds), the login is accepted and
    the first planned frame is there (one ``HEAD``). When that frame is a 404, one more ``HEAD``
    of its observatory's directory (``.../spectro/apo/``) tells a wrong SAS path (``InputError``)
    from one frame missing on the SAS (left to the pool: a failed row)."""
    check_reachable(cfg.sas_root, auth=credentials.as_tuple(), what="the SAS")
    probe = SasClient(credentials, policy=cfg.policy)
    try:
        if probe.probe(first.url) != 404:  # AuthError here: nothing downloaded yet
            return
        tree = first.url.rsplit("/", 2)[0] + "/"
        if probe.probe(tree) != 404:
            return
    finally:
        probe.close()
    raise InputError(f"the first frame, {redact(first.url)}, is not on the SAS and neither is "
                     f"{redact(tree)} (HTTP 404): is --base-url the SAS root (the directory holding "
                     f"{sas_relpath(first.camera, first.mjd, first.expnum).split('/')[0]}/)?")


def _actor_class():
    import ray
    from ray.util import metrics

    @ray.remote(max_restarts=1, max_task_retries=0)
    class DownloadActor:
        """One SAS session; counts files, bytes, retries and failures as Ray metrics.

        The credentials come with each ``fetch`` as a reference to one object in the object store
        (``ray.put`` on the driver), never as constructor arguments: Ray keeps an actor's creation
        task spec, arguments included, in the GCS to restart it. A restarted actor opens its
        session on its next call."""

        def __init__(self, policy: RetryPolicy, seed: int):
            self.policy, self.seed = policy, seed
            self.client: SasClient | None = None
            self.files = metrics.Counter("arcray_download_files", "frames finished", tag_keys=("status",))
            self.bytes = metrics.Counter("arcray_download_bytes", "bytes received from the SAS")
            self.retries = metrics.Counter("arcray_download_retries", "retried attempts")
            self.failures = metrics.Counter("arcray_download_failures", "frames that failed for good")

        def ready(self) -> bool:
            return True

        def fetch(self, task: FrameTask, credentials: Credentials) -> FetchResult:
            try:
                if self.client is None:
                    self.client = SasClient(credentials, policy=self.policy, seed=self.seed)
                res = self.client.fetch(task)
            except Exception as exc:  # a bug must not kill the pool: the file gets a row
                res = FetchResult(task.camera, task.mjd, task.expnum, task.dest, "failed",
                                  reason=f"internal error: {type(exc).__name__}: {exc}")
            self.files.inc(1, tags={"status": res.status})
            if res.downloaded:
                self.bytes.inc(res.downloaded)
            if res.retries:
                self.retries.inc(res.retries)
            if res.status == "failed":
                self.failures.inc(1)
            return res

    return DownloadActor


def run_download(layout: Layout, cfg: DownloadConfig, credentials: Credentials, *,
                 manifest_path: str | None = None, progress: Callable[..., None] | None = None,
                 flush_every_s: float = 2.0, address: str | None = None,
                 wait_s: float = 0.0) -> DownloadSummary:
    """Fetch the selected frames; rewrite ``layout.downloads``; return counts (no exception for
    failed files: they are rows of the downloads table). Holds the root's ``download`` lock,
    waiting up to ``wait_s`` for another run (``LockedError`` after that)."""
    frames = read_manifest(manifest_path or layout.manifest, cfg)
    if not frames:
        raise InputError("no frames in the manifest match the filters")
    make_root_dir(os.path.dirname(lock_path(layout, "download")), layout.root)
    with stage_lock(layout, "download", wait_s=wait_s):
        return _download(layout, cfg, credentials, frames, progress, flush_every_s, address)


def _download(layout, cfg, credentials, frames, progress, flush_every_s, address) -> DownloadSummary:
    t0 = time.monotonic()
    rows = read_downloads(layout.downloads)
    todo = plan(layout, cfg, frames, rows)
    previous = {(t.camera, t.expnum) for t in todo if (t.camera, t.expnum) in rows
                and rows[(t.camera, t.expnum)]["status"] in ("ok", "skipped")}
    results: list[FetchResult] = []
    startup = 0.0
    if todo:
        check_remote(cfg, credentials, todo[0])
        if progress:
            progress(0, total=len(todo))
        results, startup = _run_pool(todo, cfg, credentials, rows, layout, progress, flush_every_s, address)
        write_downloads(layout.downloads, rows, cfg.config_hash(), redact(cfg.sas_root))
    n_failed = sum(r.status == "failed" for r in results)
    n_new = sum(r.status == "ok" for r in results)
    n_refetched = sum(r.status == "ok" and (r.camera, r.expnum) in previous for r in results)
    n_skipped = len(frames) - n_new - n_failed
    nbytes = sum(r.downloaded for r in results)
    notes = (f"{n_skipped} already present" + (", verified" if cfg.verify else ""),
             *((f"{n_refetched} fetched again (missing, wrong size or damaged)",) if n_refetched else ()),
             f"{nbytes / 1e6:.1f} MB")
    return DownloadSummary(stage="download", n_ok=n_new, n_skipped=n_skipped, n_failed=n_failed,
                           seconds=time.monotonic() - t0, unit="files", failures=layout.downloads,
                           outputs={"downloads": layout.downloads, "raw": layout.raw_root},
                           notes=notes, n_selected=len(frames), bytes=nbytes, startup_s=startup,
                           n_refetched=n_refetched)


def _run_pool(todo, cfg, credentials, rows, layout, progress, flush_every_s,
              address) -> tuple[list[FetchResult], float]:
    import ray
    from ray.util import ActorPool, metrics

    from arcray.raycluster import ensure_ray

    ensure_ray(address)
    n = min(cfg.actors, len(todo))
    cls = _actor_class()
    t_start = time.monotonic()
    actors = [cls.options(num_cpus=cfg.actor_cpus).remote(cfg.policy, seed=i) for i in range(n)]
    ray.get([a.ready.remote() for a in actors])
    creds = ray.put(credentials)  # one object; each call carries only its reference
    startup = time.monotonic() - t_start
    pending = metrics.Gauge("arcray_download_pending", "frames not yet finished in this run")
    results, last_flush, nbytes, t0 = [], time.monotonic(), 0, time.monotonic()
    try:
        pool = ActorPool(actors)
        for res in pool.map_unordered(lambda a, t: a.fetch.remote(t, creds), todo):
            results.append(res)
            key = (res.camera, res.expnum)
            if not (res.status == "skipped" and key in rows and rows[key]["status"] == "ok"
                    and rows[key]["bytes"] == res.bytes):  # verified as recorded: the row stands
                rows[key] = result_row(res)
            nbytes += res.downloaded
            pending.set(len(todo) - len(results))
            if progress:
                rate = nbytes / 1e6 / max(1e-3, time.monotonic() - t0)
                progress(1, description=f"download {nbytes / 1e6:,.0f} MB {rate:.1f} MB/s")
            if time.monotonic() - last_flush > flush_every_s:
                write_downloads(layout.downloads, rows, cfg.config_hash(), redact(cfg.sas_root))
                last_flush = time.monotonic()
    finally:
        for a in actors:
            ray.kill(a)
    return results, startup
