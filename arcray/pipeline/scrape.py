"""The scrape stage: the observing-log archive -> per-month and merged manifests, months in Ray tasks.

- ``scrape(...)``: the driver logs in once (a wrong password stops here, before any task), reads
  the month index, and fetches + parses each month not yet scraped in its own Ray task
  (``scrape_month``; each task logs in with its own ``requests.Session``). Every month is written
  atomically to ``Layout.manifest_month("YYYY-MM")`` (provenance: source URL, message count, parser
  warnings, scrape time); then all month files under the root are merged into ``Layout.manifest``.
- Incremental: a month whose file exists is neither fetched nor logged in for, unless
  ``refresh=True``. A month that failed leaves no file, so the next run retries it; it is counted in
  ``ScrapeSummary.n_failed`` (the caller's ``--max-failures`` decides), never raised.

The credentials travel to the tasks as a task argument (a ``Credentials`` whose repr hides the
password); they are never logged, put in a runtime_env or in job metadata. The pure parts (month
specs, merging, the offline ``parse_files``) live in ``arcray.ingest.manifest``. The archive URL
recorded in each month's provenance passes ``arcray.urls.redact``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow.parquet as pq

from arcray.credentials import Credentials
from arcray.errors import ArcrayError, AuthError
from arcray.ingest import logparse
from arcray.ingest.mailman_client import MailmanClient
from arcray.ingest.manifest import make_root_dir, rows_to_table, write_merged_manifest
from arcray.io import atomic_write_parquet, exists, provenance
from arcray.paths import Layout
from arcray.stages import StageSummary
from arcray.urls import check_base_url, redact

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class ScrapeSummary(StageSummary):
    """Months ``fetched`` now (``n_ok``), ``cached`` (``n_skipped``), ``failed`` (month -> reason,
    ``n_failed``) and ``missing`` from the archive; parser ``warnings``; the merged manifest."""

    manifest_path: str = ""
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
        prov = provenance(steps=["scrape"], source=redact(client.url), month=month, n_messages=res.n_messages,
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


def _fetch(base_url: str, layout: Layout, todo: list[str], creds: Credentials | None, use_ray: bool,
           on_done, before_tasks) -> tuple[list[MonthResult], list[str], int]:
    """Log in, read the month index, scrape the months in it: ``(results, not in the index, requests)``."""
    if creds is None:
        raise AuthError("credentials are needed to fetch months not scraped yet")
    client = MailmanClient(base_url, creds)
    client.login()
    index = client.month_index()
    jobs = [(m, index[m]) for m in todo if m in index]
    if before_tasks and use_ray and len(jobs) > 1:
        before_tasks()  # e.g. start Ray: only once the archive has accepted the login
    results = _run_tasks(jobs, base_url, creds, layout.root, use_ray, on_done)
    for res in results:
        if res.error_type == "AuthError":
            raise AuthError(res.reason)
    return results, [m for m in todo if m not in index], client.n_requests


def scrape(base_url: str, root: str, months: list[str], creds: Credentials | None, *,
           refresh: bool = False, use_ray: bool = True, on_done=None, before_tasks=None) -> ScrapeSummary:
    """Scrape ``months`` from the archive at ``base_url`` into the manifests under ``root``.

    ``creds`` may be None only when every month is already scraped (then nothing is fetched).
    ``before_tasks()`` runs after the login and before the months' Ray tasks (the CLI starts Ray
    there, so a wrong password or archive URL fails in seconds without a cluster).
    Raises ``AuthError`` (wrong password) before any month is fetched, ``ConfigError`` for a base
    URL that is not http(s) or carries credentials, ``InputError`` for a root that cannot be created.
    """
    t0 = time.perf_counter()
    check_base_url(base_url, service="mailman")
    layout = Layout(root)
    make_root_dir(os.path.dirname(layout.manifest_month("0000-00")), root)
    todo = [m for m in months if refresh or not exists(layout.manifest_month(m))]
    results, missing, n_requests = _fetch(base_url, layout, todo, creds, use_ray, on_done, before_tasks) if todo else ([], [], 0)
    fetched = sorted(r.month for r in results if r.status == "ok")
    missing += [r.month for r in results if r.status == "missing"]
    failed = {r.month: r.reason for r in results if r.status == "failed"}
    if fetched or not exists(layout.manifest):
        merged = write_merged_manifest(layout)
    else:
        fs, path = layout.filesystem(layout.manifest)
        merged = pq.read_table(path, filesystem=fs)
    return ScrapeSummary(
        stage="scrape", n_ok=len(fetched), n_skipped=len(months) - len(todo), n_failed=len(failed),
        seconds=time.perf_counter() - t0, unit="months",
        notes=(f"{merged.num_rows} exposures -> {layout.manifest}",),
        outputs={"manifest": layout.manifest}, manifest_path=layout.manifest, fetched=fetched,
        cached=[m for m in months if m not in todo], missing=missing, failed=failed,
        warnings=[w for r in results for w in r.warnings], n_exposures=merged.num_rows,
        n_requests=n_requests + sum(r.n_requests for r in results))
