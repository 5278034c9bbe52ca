"""``arcray scrape``: observing-log archive -> exposure manifest (or, offline, the study's JSON)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from arcray.cli.apps import app

DEFAULT_BASE_URL = "https://mailman.sdss.org"


@app.command("scrape")
def scrape_cmd(
    paths: Annotated[Optional[list[str]], typer.Argument(
        help="With --from-file: saved monthly archives (.txt or .txt.gz).", show_default=False)] = None,
    base_url: Annotated[str, typer.Option(
        "--base-url", help="Mailman host (or the full private-archive URL).")] = DEFAULT_BASE_URL,
    out: Annotated[Optional[str], typer.Option(
        "--out", "--root", help="Artefact root (directory or pyarrow/fsspec URI).")] = None,
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
    smoke: Annotated[bool, typer.Option("--smoke", help="Scrape only the first requested month.")] = False,
    address: Annotated[Optional[str], typer.Option(
        "--address", help="Ray cluster address (default: RAY_ADDRESS or a local instance).")] = None,
    no_ray: Annotated[bool, typer.Option("--no-ray", help="Fetch months sequentially, without Ray.")] = False,
) -> None:
    """Scrape the sloan-25mlog archive into the exposure manifest (incremental per month)."""
    from arcray.errors import ConfigError
    from arcray.ingest.manifest import study_json

    if from_file:
        if not paths:
            raise ConfigError("--from-file needs at least one archive PATH")
        from arcray.ingest.scrape import parse_files

        table, warnings = parse_files(paths)
        _warn(warnings)
        if as_json:
            typer.echo(json.dumps(study_json(table), indent=1, sort_keys=True))
        else:
            typer.echo(f"{table.num_rows} exposures in {len(paths)} file(s)", err=True)
        return
    if paths:
        raise ConfigError(f"unexpected arguments {paths!r} (archive files need --from-file)")
    if not out or not months:
        raise ConfigError("arcray scrape needs --root ROOT and --months (or --from-file PATH ...)")
    summary = _scrape(base_url, out, months, user, password_file, refresh, smoke, address, no_ray)
    if as_json:
        import pyarrow.parquet as pq

        from arcray.paths import Layout

        fs, path = Layout(out).filesystem(summary.manifest_path)
        typer.echo(json.dumps(study_json(pq.read_table(path, filesystem=fs)), indent=1, sort_keys=True))


def _scrape(base_url, out, months, user, password_file, refresh, smoke, address, no_ray):
    from arcray.credentials import resolve
    from arcray.errors import PartialFailure
    from arcray.ingest.mailman_client import archive_url
    from arcray.ingest.scrape import parse_months, scrape
    from arcray.paths import Layout
    from arcray.io import exists
    from arcray.progress import progress_bar

    wanted = parse_months(months)[:1] if smoke else parse_months(months)
    layout = Layout(out)
    need_fetch = refresh or any(not exists(layout.manifest_month(m)) for m in wanted)
    creds = resolve("mailman", archive_url(base_url), user=user, password_file=password_file) \
        if need_fetch else None
    if need_fetch and not no_ray and len(wanted) > 1:
        from arcray.raycluster import ensure_ray

        ensure_ray(address)
    with progress_bar("scrape months", len(wanted)) as advance:
        summary = scrape(base_url, out, wanted, creds, refresh=refresh, use_ray=not no_ray,
                         on_done=lambda _r: advance())
    _warn(summary.warnings + [f"month {m} is not in the archive" for m in summary.missing])
    typer.echo(f"scraped {len(summary.fetched)} month(s), {len(summary.cached)} already scraped, "
               f"{summary.n_exposures} exposures -> {summary.manifest_path}", err=True)
    if summary.failed:
        detail = "; ".join(f"{m}: {r}" for m, r in sorted(summary.failed.items()))
        raise PartialFailure(f"{len(summary.failed)} month(s) failed: {detail}",
                             n_ok=len(summary.fetched), n_failed=len(summary.failed))
    return summary


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        typer.echo(f"arcray: warning: {w}", err=True)
