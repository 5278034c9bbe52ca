"""``arcray scrape``: observing-log archive -> exposure manifest (or, offline, the study's JSON)."""

from __future__ import annotations

import json
import os
from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.cli.options import MaxFailuresOpt, Progress, RayAddress, smoke_option

DEFAULT_BASE_URL = "https://mailman.sdss.org"


@app.command("scrape")
def scrape_cmd(
    paths: Annotated[Optional[list[str]], typer.Argument(
        help="With --from-file: saved monthly archives (.txt or .txt.gz).", show_default=False)] = None,
    base_url: Annotated[str, typer.Option(
        "--base-url", help="Mailman host (or the full private-archive URL).")] = DEFAULT_BASE_URL,
    root: Annotated[Optional[str], typer.Option(
        "--root", help="Pipeline root (directory or pyarrow/fsspec URI); the manifest goes to "
                       "ROOT/manifest/ (not needed with --from-file).")] = None,
    months: Annotated[Optional[str], typer.Option(
        "--months", help="YYYY-MM..YYYY-MM (inclusive) or a comma list.")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Fetch months already scraped again.")] = False,
    user: Annotated[Optional[str], typer.Option(
        "--user", help="Archive user (member e-mail); default ARCRAY_MAILMAN_USER or ~/.netrc.")] = None,
    password_file: Annotated[Optional[str], typer.Option(
        "--password-file", help="File holding the archive password (never pass it as an argument).")] = None,
    from_file: Annotated[bool, typer.Option(
        "--from-file", help="Parse the archives given as PATHS offline instead of scraping.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the study JSON {arcs, flats} (Hartmann excluded) to stdout.")] = False,
    max_failures: MaxFailuresOpt = None,
    address: RayAddress = None,
    no_ray: Annotated[bool, typer.Option("--no-ray", help="Fetch months one after the other, without Ray.")] = False,
    smoke: Annotated[bool, smoke_option("the first requested month only")] = False,
    progress: Progress = None,
) -> None:
    """Scrape the sloan-25mlog archive into the exposure manifest (incremental per month)."""
    from arcray.errors import ConfigError
    from arcray.ingest.manifest import study_json

    if from_file:
        if not paths:
            raise ConfigError("--from-file needs at least one archive PATH")
        from arcray.ingest.manifest import parse_files

        table, warnings = parse_files(paths)
        _warn(warnings)
        if table.num_rows == 0:
            from arcray.errors import InputError

            raise InputError(f"no '---- BOSS Data Summary ----' table in {', '.join(paths)}: "
                             "not a sloan-25mlog archive?")
        if as_json:
            typer.echo(json.dumps(study_json(table), indent=1, sort_keys=True))
        else:
            typer.echo(f"scrape: {table.num_rows} exposures in {len(paths)} file(s)", err=True)
        return
    if paths:
        raise ConfigError(f"unexpected arguments {paths!r} (archive files need --from-file)")
    if not root or not months:
        raise ConfigError("arcray scrape needs --root ROOT and --months (or --from-file PATH ...)")
    summary = _scrape(base_url, root, months, user, password_file, refresh, smoke, address, no_ray, progress)
    typer.echo(summary.line(), err=as_json)  # stdout carries the JSON
    if as_json:
        import pyarrow.parquet as pq

        from arcray.paths import Layout

        fs, path = Layout(root).filesystem(summary.manifest_path)
        typer.echo(json.dumps(study_json(pq.read_table(path, filesystem=fs)), indent=1, sort_keys=True))
    max_failures.check(summary)


def _scrape(base_url, root, months, user, password_file, refresh, smoke, address, no_ray, progress):
    from arcray.credentials import resolve
    from arcray.ingest.mailman_client import archive_url
    from arcray.ingest.manifest import make_root_dir, parse_months
    from arcray.io import exists
    from arcray.paths import Layout
    from arcray.pipeline.scrape import scrape
    from arcray.progress import progress_bar

    from arcray.urls import check_base_url, check_reachable

    check_base_url(base_url, service="mailman")
    wanted = parse_months(months)[:1] if smoke else parse_months(months)
    layout = Layout(root)
    make_root_dir(os.path.dirname(layout.manifest_month("0000-00")), root)
    need_fetch = refresh or any(not exists(layout.manifest_month(m)) for m in wanted)
    creds = resolve("mailman", archive_url(base_url), user=user, password_file=password_file) \
        if need_fetch else None
    if need_fetch:  # one request, seconds: an unreachable host fails before Ray and the retries
        check_reachable(archive_url(base_url), what="the Mailman archive")
    def start_ray():
        from arcray.raycluster import ensure_ray

        ensure_ray(address)

    with progress_bar("scrape", len(wanted), unit="months", enabled=progress) as advance:
        summary = scrape(base_url, root, wanted, creds, refresh=refresh, use_ray=not no_ray,
                         on_done=lambda _r: advance(), before_tasks=start_ray)
    _warn(summary.warnings + [f"month {m} is not in the archive" for m in summary.missing]
          + [f"month {m} failed: {r}" for m, r in sorted(summary.failed.items())])
    return summary


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        typer.echo(f"arcray: warning: {w}", err=True)
