"""`arcray download`: fetch the manifest's raw frames from the SAS in parallel Ray actors."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.cli.options import (Cameras, MaxFailuresOpt, Progress, RayAddress, Root, csv, smoke_option,
                                workers_option)
from arcray.errors import ConfigError


@app.command("download")
def download(
    base_url: Annotated[str, typer.Option("--base-url", help="SAS root, e.g. https://data.sdss5.org/sas/.")],
    root: Root,
    manifest: Annotated[Optional[str], typer.Option(
        "--manifest", help="Exposure manifest to read instead of ROOT's (.parquet).")] = None,
    flavors: Annotated[str, typer.Option("--flavors", help="Flavors to fetch, comma-separated.")] = "arc,flat",
    cameras: Cameras = None,
    mjd_min: Annotated[Optional[int], typer.Option("--mjd-min", help="First MJD (inclusive).")] = None,
    mjd_max: Annotated[Optional[int], typer.Option("--mjd-max", help="Last MJD (inclusive).")] = None,
    include_hartmann: Annotated[bool, typer.Option("--include-hartmann", help="Also fetch Hartmann arcs.")] = False,
    workers: Annotated[int, workers_option("download actors (one SAS session each)")] = 8,
    max_attempts: Annotated[int, typer.Option("--max-attempts", help="Tries per file.")] = 6,
    read_timeout: Annotated[float, typer.Option("--read-timeout", help="Seconds between bytes.")] = 30.0,
    user: Annotated[Optional[str], typer.Option("--user", help="SAS user (else ARCRAY_SAS_USER / netrc).")] = None,
    password_file: Annotated[Optional[str], typer.Option("--password-file", help="File with the SAS password.")] = None,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Also check the gzip CRC of every file already downloaded; fetch damaged ones again.")] = False,
    wait: Annotated[float, typer.Option(
        "--wait", min=0, metavar="SECONDS",
        help="Wait this long for another download run on ROOT to finish (default 0: refuse at once).")] = 0.0,
    max_failures: MaxFailuresOpt = None,
    address: RayAddress = None,
    smoke: Annotated[bool, smoke_option("a few files only")] = False,
    progress: Progress = None,
) -> None:
    """Download, verify and place sdR frames under ROOT/raw/; one row per file in
    ROOT/manifest/downloads.parquet (failed files with their reason). One run per ROOT at a time;
    files recorded before are fetched again when missing or of another size (--verify: damaged)."""
    from pydantic import ValidationError

    from arcray.credentials import resolve
    from arcray.paths import Layout
    from arcray.pipeline.download import DownloadConfig, run_download
    from arcray.progress import progress_bar

    try:
        cfg = DownloadConfig(base_url=base_url, flavors=csv(flavors) or ("arc", "flat"), cameras=cameras,
                             mjd_min=mjd_min, mjd_max=mjd_max, include_hartmann=include_hartmann,
                             actors=workers, max_attempts=max_attempts, read_timeout_s=read_timeout,
                             smoke=smoke, verify=verify)
    except ValidationError as exc:
        raise ConfigError(f"bad download options: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    creds = resolve("sas", cfg.sas_root, user=user, password_file=password_file)
    with progress_bar("download", None, unit="files", enabled=progress) as advance:
        summary = run_download(Layout(root), cfg, creds, manifest_path=manifest, progress=advance,
                               address=address, wait_s=wait)
    typer.echo(summary.line())
    max_failures.check(summary)
