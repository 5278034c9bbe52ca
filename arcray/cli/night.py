"""`arcray night`: one night end to end (ingest, calibrate + measure, judge) and its health page."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.cli.options import Cameras, MaxFailuresOpt, RayAddress, Root, workers_option
from arcray.errors import ConfigError


@app.command("night")
def night_cmd(
    root: Root,
    mjd: Annotated[Optional[int], typer.Option("--mjd", help="The night's SDSS MJD.")] = None,
    yesterday: Annotated[bool, typer.Option(
        "--yesterday", help="The last night that has ended at APO (the nightly cron job's choice).")] = False,
    skip_ingest: Annotated[bool, typer.Option(
        "--skip-ingest", help="Start from frames already downloaded under ROOT/raw/ (no archive needed).")] = False,
    base_url: Annotated[Optional[str], typer.Option(
        "--base-url", help="SAS host root, as `arcray download` takes it (https://data.sdss5.org); credentials "
                           "from ARCRAY_SAS_* / ARCRAY_MAILMAN_* variables, their _PASSWORD_FILE, or ~/.netrc.")] = None,
    archive_url: Annotated[Optional[str], typer.Option(
        "--archive-url", help="Mailman host of the observing log, as `arcray scrape --base-url` takes it "
                              "(https://mailman.sdss.org; default: --base-url).")] = None,
    cameras: Cameras = None,
    workers: Annotated[int, workers_option("calibration actors (1 CPU each)")] = 2,
    trend_nights: Annotated[int, typer.Option(
        "--trend-nights", min=1, help="Nights shown in the page's trends.")] = 14,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", min=0.001, help="RMS line error (px) above which a predicted exposure needs an arc.")] = 0.2,
    max_failures: MaxFailuresOpt = None,
    address: RayAddress = None,
) -> None:
    """Scrape and download one night, calibrate and measure it, judge every calibration frame and
    write its page (ROOT/night/<mjd>/index.html) and the calendar (ROOT/night/index.html).
    Exit code 0 when no camera is red, 1 when one is; rerunning changes nothing."""
    from arcray.pipeline.night import IngestOptions, run_night, yesterday_mjd

    if (mjd is None) == (not yesterday):
        raise ConfigError("give exactly one of --mjd N and --yesterday")
    night = yesterday_mjd() if yesterday else int(mjd)
    ingest = None
    if not skip_ingest:
        if not base_url:
            raise ConfigError("--base-url is needed to fetch the night (or --skip-ingest to use ROOT/raw/)")
        from arcray.credentials import resolve
        from arcray.ingest.mailman_client import archive_url as mailman_archive
        from arcray.pipeline.download import DownloadConfig

        sas_root = DownloadConfig(base_url=base_url).sas_root
        mailman = archive_url or base_url
        ingest = IngestOptions(base_url=base_url, archive_url=mailman,
                               mailman=resolve("mailman", mailman_archive(mailman)), sas=resolve("sas", sas_root))
    summary, stages = run_night(root, night, ingest=ingest, cameras=cameras, workers=workers, address=address,
                                trend_nights=trend_nights, tolerance=tolerance, echo=typer.echo)
    for action in summary.actions:
        typer.echo(f"  {action}")
    typer.echo(summary.line())
    max_failures.check(*stages)
    if summary.red:
        raise typer.Exit(1)
