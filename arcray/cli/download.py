"""`arcray download`: fetch the manifest's raw frames from the SAS in parallel Ray actors."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.errors import ConfigError, PartialFailure


def _csv(value: Optional[str]) -> Optional[tuple[str, ...]]:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    return items or None


@app.command("download")
def download(
    base_url: Annotated[str, typer.Option("--base-url", help="SAS root, e.g. https://data.sdss5.org/sas/.")],
    root: Annotated[str, typer.Option("--root", help="arcray data root (local dir or fs URI).")],
    manifest: Annotated[Optional[str], typer.Option("--manifest", help="Manifest Parquet (default: ROOT's).")] = None,
    flavor: Annotated[str, typer.Option("--flavor", help="Flavors, comma-separated.")] = "arc,flat",
    camera: Annotated[Optional[str], typer.Option("--camera", help="Cameras, e.g. b1,r1 (default all).")] = None,
    mjd_min: Annotated[Optional[int], typer.Option("--mjd-min", help="First MJD (inclusive).")] = None,
    mjd_max: Annotated[Optional[int], typer.Option("--mjd-max", help="Last MJD (inclusive).")] = None,
    include_hartmann: Annotated[bool, typer.Option("--include-hartmann", help="Also fetch Hartmann arcs.")] = False,
    actors: Annotated[int, typer.Option("--actors", help="Parallel download actors.")] = 8,
    max_attempts: Annotated[int, typer.Option("--max-attempts", help="Tries per file.")] = 6,
    read_timeout: Annotated[float, typer.Option("--read-timeout", help="Seconds between bytes.")] = 30.0,
    user: Annotated[Optional[str], typer.Option("--user", help="SAS user (else ARCRAY_SAS_USER / netrc).")] = None,
    password_file: Annotated[Optional[str], typer.Option("--password-file", help="File with the SAS password.")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Fetch only a few frames.")] = False,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar.")] = None,
) -> None:
    """Download, verify and place sdR frames; ends with `N ok, M failed` (exit 1 if M > 0)."""
    from pydantic import ValidationError

    from arcray.credentials import resolve
    from arcray.ingest.download import DownloadConfig, run_download
    from arcray.paths import Layout
    from arcray.progress import progress_bar

    try:
        cfg = DownloadConfig(base_url=base_url, flavors=_csv(flavor) or ("arc", "flat"), cameras=_csv(camera),
                             mjd_min=mjd_min, mjd_max=mjd_max, include_hartmann=include_hartmann,
                             actors=actors, max_attempts=max_attempts, read_timeout_s=read_timeout,
                             smoke=smoke)
    except ValidationError as exc:
        raise ConfigError(f"bad download options: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    creds = resolve("sas", cfg.sas_root, user=user, password_file=password_file)
    layout = Layout(root)
    with progress_bar("download", None, unit="files", enabled=progress) as advance:
        summary = run_download(layout, cfg, creds, manifest_path=manifest, progress=advance)
    typer.echo(summary.line())
    typer.echo(f"downloads table: {summary.table}")
    if summary.n_failed:
        raise PartialFailure(f"{summary.n_ok + summary.n_skipped} ok, {summary.n_failed} failed "
                             f"(reasons in {summary.table})", n_ok=summary.n_ok + summary.n_skipped,
                             n_failed=summary.n_failed)
