"""`arcray submit` and `arcray jobs ...`: run stages as Ray jobs on a cluster and follow them.

Thin: options are parsed here, the work is in :mod:`arcray.deploy.submit`.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Optional

import typer

from arcray.cli.apps import app, jobs_app
from arcray.cli.options import DashboardAddress as AddressOpt


@app.command(
    "submit",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def submit_cmd(
    ctx: typer.Context,
    stage: Annotated[str, typer.Argument(help="Stage to run: a script jobs/<stage>.py.")],
    address: AddressOpt = "",
    wait: Annotated[bool, typer.Option("--wait", help="Follow the logs until the job ends; "
                                       "exit non-zero unless it succeeded.")] = False,
    submission_id: Annotated[Optional[str], typer.Option(
        "--submission-id", help="Job id (default arcray-<stage>-<time>-<hex>); "
        "a repeated id is refused, so a retried submit never runs twice.")] = None,
    env: Annotated[Optional[list[str]], typer.Option(
        "--env", help="NAME=VALUE for the job's environment (repeatable; never a secret: "
        "pass NAME_FILE pointing at a Secret mounted on the cluster).")] = None,
) -> None:
    """Submit a stage as a Ray job: `arcray submit STAGE [stage options] --address URL`.

    Options that submit does not know go to the stage; put them after `--` when they clash.
    """
    from arcray.deploy import submit as dep
    from arcray.errors import ConfigError

    _quiet_ray()
    extra = {}
    for item in env or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--env {item!r}: expected NAME=VALUE")
        extra[name] = value
    dep.stage_script(stage)  # an unknown stage fails before any network call
    dep.job_env(extra)  # so does a secret passed with --env
    client = dep.connect(address)
    done = dep.submit(address, stage, list(ctx.args), submission_id=submission_id, env=extra,
                      client=client)
    typer.echo(f"submitted {done.submission_id}")
    typer.echo(f"dashboard {done.dashboard}")
    if wait:
        dep.follow(client, done.submission_id, _out)
        state = dep.wait(client, done.submission_id)
        dep.raise_if_failed(state)
        typer.echo(f"{done.submission_id} {state['status']}")


def _quiet_ray() -> None:
    """Ray's SDK logs every upload step at INFO/WARNING; the CLI prints what matters itself."""
    import logging

    import ray.job_submission  # noqa: F401 - sets its loggers' levels on import; undone below

    for name in ("ray", "ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _out(chunk: str) -> None:
    typer.echo(chunk, nl=False)


def _time(ms: Optional[int]) -> str:
    if not ms:
        return "-"
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


@jobs_app.command("list")
def list_cmd(address: AddressOpt = "") -> None:
    """Every job on the cluster, newest first: id, status, start (UTC), stage."""
    from arcray.deploy import submit as dep

    for row in dep.list_jobs(dep.connect(address)):
        typer.echo(f"{row['submission_id']}\t{row['status']}\t{_time(row['start_time'])}\t"
                   f"{row['stage'] or row['entrypoint']}")


@jobs_app.command("status")
def status_cmd(
    job_id: Annotated[str, typer.Argument(help="Submission id.")],
    address: AddressOpt = "",
) -> None:
    """Status of one job; exits non-zero when it FAILED or was STOPPED."""
    from arcray.deploy import submit as dep

    state = dep.info(dep.connect(address), job_id)
    typer.echo(f"{state['submission_id']} {state['status']}")
    if state["message"]:
        typer.echo(state["message"].strip().splitlines()[-1])
    if state["status"] in ("FAILED", "STOPPED"):
        dep.raise_if_failed(state)


@jobs_app.command("logs")
def logs_cmd(
    job_id: Annotated[str, typer.Argument(help="Submission id.")],
    address: AddressOpt = "",
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Stream until the job ends.")] = False,
) -> None:
    """The job's driver output (stdout and stderr)."""
    from arcray.deploy import submit as dep

    _quiet_ray()
    client = dep.connect(address)
    if follow:
        dep.follow(client, job_id, _out)
    else:
        typer.echo(dep.logs(client, job_id), nl=False)


@jobs_app.command("stop")
def stop_cmd(
    job_id: Annotated[str, typer.Argument(help="Submission id.")],
    address: AddressOpt = "",
) -> None:
    """Ask a running job to stop."""
    from arcray.deploy import submit as dep

    stopped = dep.stop(dep.connect(address), job_id)
    typer.echo(f"{job_id} {'stopping' if stopped else 'was not running'}")
