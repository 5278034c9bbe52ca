"""Scrape the observing-log archive: months in parallel Ray tasks -> per-month and merged manifests.

- ``scrape(...)``: the driver logs in once (a wrong password stops here, before any task), reads
  the month index, and fetches + parses each month not yet scraped in its own Ray task (each task
  logs in with its own ``requests.Session``). Every month is written atomically to
  ``Layout.manifest_month("YYYY-MM")`` (provenance: source URL, message count, parser warnings,
  scrape time); then all month files under the root are merged into ``Layout.manifest``.
- Incremental: a month whose file exists is neither fetched nor logged in for, unless
  ``refresh=True``. A month that failed leaves no file, so the next run retries it.
- ``parse_files(paths)``: the offline path (saved ``.txt``/``.txt.gz`` archives), no network.

The credentials travel to the tasks as a task argument (a ``Credentials`` whose repr hides the
password); they are never logged, put in a runtime_env or in job metadata.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from arcray.credentials import Credentials
from arcray.errors import ArcrayError, AuthError, InputError
from arcray.ingest import logparse
from arcray.ingest.mailman_client import MailmanClient
from arcray.ingest.manifest import MANIFEST_SCHEMA, merge_manifests, rows_to_table
from arcray.io import atomic_write_parquet, exists, provenance, read_bytes
from arcray.paths import Layout

log = logging.getLogger(__name__)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_months(spec: str) -> list[str]:
    """``2023-11..2024-01`` (inclusive range) or ``2023-11,2023-12`` -> ``["2023-11", ...]``."""
    months: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        ends = [e.strip() for e in part.split("..")]
        if len(ends) > 2 or not all(_MONTH.match(e) and 1 <= int(e[5:]) <= 12 for e in ends):
            raise InputError(f"bad --months {spec!r}: use YYYY-MM..YYYY-MM or YYYY-MM,YYYY-MM")
        (y0, m0), (y1, m1) = [(int(e[:4]), int(e[5:])) for e in (ends[0], ends[-1])]
        if (y1, m1) < (y0, m0):
            raise InputError(f"bad --months {spec!r}: range ends before it starts")
        while (y0, m0) <= (y1, m1):
            months.append(f"{y0:04d}-{m0:02d}")
            y0, m0 = (y0 + 1, 1) if m0 == 12 else (y0, m0 + 1)
    if not months:
        raise InputError("no months given")
    return sorted(set(months))


@dataclass
class MonthResult:
    month: str
    status: str  # "ok" | "missing" | "failed"
    n_rows: int = 0
    n_messages: int = 0
    n_requests: int = 0
    warnings: list[str] = field(default_factory=list)
    reason: str = ""
    error_type: str = ""


@dataclass
class ScrapeSummary:
    manifest_path: str
    fetched: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    n_exposures: int = 0
    n_requests: int = 0


def scrape_month(base_url: str, creds: Credentials, month: str, root: str, url: str | None = None,
                 *, retries: int = 5, backoff: float = 0.5) -> MonthResult:
    """Fetch, parse and write one month (runs inside a Ray task or inline). Never raises ArcrayError."""
    client = MailmanClient(base_url, creds, retries=retries, backoff=backoff)
    try:
        data = client.fetch_month(month, url)
        if data is None:
            return MonthResult(month, "missing", n_requests=client.n_requests)
        res = logparse.parse_archive(data, month)
        table = rows_to_table(res.rows)
        prov = provenance(steps=["scrape"], source=client.url, month=month, n_messages=res.n_messages,
                          warnings=res.warnings, scraped_at=datetime.now(timezone.utc).isoformat())
        atomic_write_parquet(Layout(root).manifest_month(month), table, prov)
        return MonthResult(month, "ok", table.num_rows, res.n_messages, client.n_requests, res.warnings)
    except ArcrayError as exc:
        return MonthResult(month, "failed", n_requests=client.n_requests, reason=str(exc),
                           error_type=type(exc).__name__)


def _run_tasks(jobs: list[tuple[str, str]], base_url: str, creds: Credentials, root: str,
               use_ray: bool, on_done=None) -> list[MonthResult]:
    if not use_ray or len(jobs) <= 1:
        results = []
        for month, url in jobs:
            results.append(scrape_month(base_url, creds, month, root, url))
            on_done and on_done(results[-1])
        return results
    import ray

    task = ray.remote(num_cpus=0.5, max_retries=0)(scrape_month)
    pending = [task.remote(base_url, creds, month, root, url) for month, url in jobs]
    results = []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        results.append(ray.get(done[0]))
        on_done and on_done(results[-1])
    return results


def month_files(layout: Layout) -> list[str]:
    """Every per-month manifest under the root (``manifest/months/*.parquet``)."""
    from pyarrow import fs as pafs

    fs, base = layout.filesystem(os.path.dirname(layout.manifest_month("0000-00")))
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    return sorted(i.path for i in infos if i.path.endswith(".parquet") and _MONTH.match(
        os.path.basename(i.path)[:-8]))


def write_merged_manifest(layout: Layout) -> pa.Table:
    fs, _ = layout.filesystem()
    tables = [pq.read_table(p, filesystem=fs) for p in month_files(layout)]
    merged = merge_manifests(tables)
    months = sorted(set(merged.column("month").to_pylist()))
    atomic_write_parquet(layout.manifest, merged, provenance(steps=["scrape", "merge"], months=months))
    return merged


def scrape(base_url: str, root: str, months: list[str], creds: Credentials | None, *,
           refresh: bool = False, use_ray: bool = True, on_done=None) -> ScrapeSummary:
    """Scrape ``months`` from the archive at ``base_url`` into the manifests under ``root``.

    ``creds`` may be None only when every month is already scraped (then nothing is fetched).
    Raises ``AuthError`` (wrong password) before any month is fetched.
    """
    layout = Layout(root)
    summary = ScrapeSummary(layout.manifest)
    todo = [m for m in months if refresh or not exists(layout.manifest_month(m))]
    summary.cached = [m for m in months if m not in todo]
    if todo:
        if creds is None:
            raise AuthError("credentials are needed to fetch months not scraped yet")
        client = MailmanClient(base_url, creds)
        client.login()
        index = client.month_index()
        summary.n_requests += client.n_requests
        summary.missing = [m for m in todo if m not in index]
        jobs = [(m, index[m]) for m in todo if m in index]
        for res in _run_tasks(jobs, base_url, creds, layout.root, use_ray, on_done):
            summary.n_requests += res.n_requests
            summary.warnings += res.warnings
            if res.status == "ok":
                summary.fetched.append(res.month)
            elif res.status == "missing":
                summary.missing.append(res.month)
            else:
                if res.error_type == "AuthError":
                    raise AuthError(res.reason)
                summary.failed[res.month] = res.reason
    if summary.fetched or not exists(layout.manifest):
        merged = write_merged_manifest(layout)
    else:
        fs, path = layout.filesystem(layout.manifest)
        merged = pq.read_table(path, filesystem=fs)
    summary.n_exposures = merged.num_rows
    summary.fetched.sort()
    return summary


def parse_files(paths: list[str]) -> tuple[pa.Table, list[str]]:
    """Parse saved monthly archives offline; reposts are resolved across all files."""
    tables, warnings = [], []
    for path in paths:
        if not exists(path):
            raise InputError(f"no such archive file: {path}")
        res = logparse.parse_archive(read_bytes(path), logparse.month_of_filename(os.path.basename(path)))
        warnings += [f"{os.path.basename(path)}: {w}" for w in res.warnings]
        tables.append(rows_to_table(res.rows))
    table = merge_manifests(tables) if tables else MANIFEST_SCHEMA.empty_table()
    return table, warnings
