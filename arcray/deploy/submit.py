"""Submit arcray stages to a running Ray cluster as Ray jobs, and follow them.

A stage is a script ``jobs/<stage>.py`` of the project (``sim-render`` -> ``jobs/sim_render.py``).
The job runs ``python jobs/<stage>.py <stage options>`` with the project directory uploaded as its
``working_dir``. Secrets never travel with a job: the runtime environment carries only user names
and the *paths* of password files (``ARCRAY_<SERVICE>_PASSWORD_FILE``), which the cluster mounts from
Kubernetes Secrets. Errors are :class:`arcray.errors.ClusterError` / :class:`ConfigError` with a
one-line message.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import re
import shlex
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import arcray
from arcray.errors import ClusterError, ConfigError

log = logging.getLogger(__name__)

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")

# Never uploaded with a job (gitignore syntax, relative to the project directory; .gitignore'd
# paths are skipped by Ray as well).
WORKING_DIR_EXCLUDES = (
    ".git", ".venv", "/data/", "/demo-out/", "/out/", "/work/", "/helm/", "/k8s/",
    "__pycache__", ".pytest_cache", "*.parquet", "*.fit", "*.fit.gz", "*.fits", "*.pt",
)

# Environment variables passed through from the submitting shell when set: a user name or the
# *path* of a password file on the cluster, never a password.
PASSTHROUGH_ENV = (
    "ARCRAY_MAILMAN_USER", "ARCRAY_MAILMAN_PASSWORD_FILE",
    "ARCRAY_SAS_USER", "ARCRAY_SAS_PASSWORD_FILE",
)
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|COOKIE)(?!_FILE$)",
                          re.IGNORECASE)
_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def project_dir() -> Path:
    """The directory holding ``jobs/`` (the checkout, or the image's ``/app``)."""
    env = os.environ.get("ARCRAY_PROJECT_DIR")
    return Path(env) if env else Path(arcray.__file__).resolve().parent.parent


def available_stages(root: Path | None = None) -> list[str]:
    """Stage names that have a ``jobs/<stage>.py`` script (``_`` shown as ``-``)."""
    jobs = (root or project_dir()) / "jobs"
    return sorted(p.stem.replace("_", "-") for p in jobs.glob("*.py") if not p.stem.startswith("_"))


def stage_script(stage: str, root: Path | None = None) -> str:
    """``jobs/<stage>.py`` relative to the project directory; ConfigError for an unknown stage."""
    root = root or project_dir()
    stages = available_stages(root)
    if stage not in stages:
        known = ", ".join(stages) or "none (no jobs/ directory in " + str(root) + ")"
        raise ConfigError(f"unknown stage {stage!r}: choose one of {known}")
    return f"jobs/{stage.replace('-', '_')}.py"


def entrypoint(stage: str, args: Iterable[str] = (), root: Path | None = None) -> str:
    """The shell command the job runs: ``python jobs/<stage>.py <args>`` (args shell-quoted)."""
    return shlex.join(["python", stage_script(stage, root), *args])


def job_env(extra: dict[str, str] | None = None, environ: dict[str, str] | None = None
            ) -> dict[str, str]:
    """Environment for the job: pass-through names set locally, plus ``extra`` (checked).

    A variable whose *name* looks like a secret (``*PASSWORD``, ``*TOKEN``...) is refused: mount
    the secret on the cluster and pass the file's path as ``<NAME>_FILE`` instead.
    """
    environ = os.environ if environ is None else environ
    env = {k: environ[k] for k in PASSTHROUGH_ENV if environ.get(k)}
    for service in ("MAILMAN", "SAS"):
        if environ.get(f"ARCRAY_{service}_PASSWORD"):
            log.warning("ARCRAY_%s_PASSWORD is set here but is not sent with the job; the "
                        "cluster reads ARCRAY_%s_PASSWORD_FILE from a mounted Secret",
                        service, service)
    for name, value in (extra or {}).items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"bad environment variable name {name!r}")
        if _SECRET_NAME.search(name):
            raise ConfigError(f"refusing to send {name} with a job: secrets stay on the cluster "
                              f"(mount a Secret and set {name}_FILE to its path)")
        env[name] = value
    return env


def runtime_env(root: Path | None = None, env: dict[str, str] | None = None) -> dict:
    """``working_dir`` = the project directory (data, venv, git excluded) and ``env_vars``."""
    root = root or project_dir()
    return {"working_dir": str(root), "excludes": list(WORKING_DIR_EXCLUDES),
            "env_vars": dict(env or {})}


def new_submission_id(stage: str, now: float | None = None) -> str:
    """``arcray-<stage>-<UTC yyyymmdd-hhmmss>-<4 hex>``: sortable, unique, readable."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"arcray-{stage}-{stamp}-{uuid.uuid4().hex[:4]}"


def dashboard_url(address: str, submission_id: str) -> str:
    return f"{address.rstrip('/')}/#/jobs/{submission_id}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 240 else text[:237] + "..."


def connect(address: str):
    """A ``JobSubmissionClient`` for ``http://HEAD:8265``; ClusterError when unreachable."""
    if not address:
        raise ConfigError("no cluster address: pass --address http://HEAD:8265 "
                          "(or set RAY_API_SERVER_ADDRESS)")
    if not re.match(r"^https?://", address):
        raise ConfigError(f"cluster address {address!r} must be the dashboard URL, "
                          "e.g. http://HEAD:8265")
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except ConnectionError:
        raise ClusterError(f"cannot reach the Ray dashboard at {address} "
                           "(is the cluster up and the port right?)") from None
    except Exception as exc:  # noqa: BLE001 - auth, version, HTTP errors from Ray's SDK
        if "auth" in str(exc).lower() or "401" in str(exc):
            raise ClusterError(f"the Ray cluster at {address} refused the request: token "
                               "authentication is on there; set RAY_AUTH_MODE=token and "
                               "RAY_AUTH_TOKEN (or ~/.ray/auth_token) to its token") from None
        raise ClusterError(f"cannot use the Ray cluster at {address}: {_one_line(exc)}") \
            from None


@dataclass(frozen=True)
class Submitted:
    submission_id: str
    dashboard: str
    entrypoint: str


def submit(address: str, stage: str, args: Iterable[str] = (), *,
           submission_id: str | None = None, env: dict[str, str] | None = None,
           root: Path | None = None, client=None) -> Submitted:
    """Submit ``jobs/<stage>.py <args>`` to the cluster at ``address``."""
    root = root or project_dir()
    command = entrypoint(stage, list(args), root)
    sid = submission_id or new_submission_id(stage)
    if not _SUBMISSION_ID.match(sid):
        raise ConfigError(f"bad submission id {sid!r}: letters, digits, '-', '_', '.' only")
    renv = runtime_env(root, job_env(env))
    metadata = {"arcray_stage": stage, "arcray_version": arcray.__version__,
                "ray_version": arcray.RAY_VERSION, "submitted_by": _user()}
    client = client or connect(address)
    try:
        sid = client.submit_job(entrypoint=command, runtime_env=renv, submission_id=sid,
                                metadata=metadata)
    except Exception as exc:  # noqa: BLE001 - Ray raises RuntimeError for every HTTP failure
        if "already" in str(exc).lower() or "exists" in str(exc).lower():
            raise ClusterError(f"submission id {sid} was already used on this cluster") from None
        raise ClusterError(f"submitting {stage} failed: {_one_line(exc)}") from None
    return Submitted(sid, dashboard_url(address, sid), command)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"


def _call(what: str, job_id: str, fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        if "404" in text or "does not exist" in text.lower() or "not found" in text.lower():
            raise ClusterError(f"no job {job_id!r} on this cluster") from None
        raise ClusterError(f"{what} {job_id} failed: {_one_line(exc)}") from None


def info(client, job_id: str) -> dict:
    """Status, message, times and metadata of one job."""
    d = _call("status of", job_id, client.get_job_info, job_id)
    return {"submission_id": d.submission_id or job_id, "status": str(d.status),
            "message": d.message or "", "entrypoint": d.entrypoint,
            "start_time": d.start_time, "end_time": d.end_time, "metadata": d.metadata or {}}


def list_jobs(client) -> list[dict]:
    """Every submitted job, newest first."""
    try:
        details = client.list_jobs()
    except Exception as exc:  # noqa: BLE001
        raise ClusterError(f"listing jobs failed: {_one_line(exc)}") from None
    rows = [{"submission_id": d.submission_id or d.job_id or "", "status": str(d.status),
             "start_time": d.start_time, "entrypoint": d.entrypoint,
             "stage": (d.metadata or {}).get("arcray_stage", "")}
            for d in details if getattr(d, "type", "SUBMISSION") in ("SUBMISSION", "submission")]
    return sorted(rows, key=lambda r: r["start_time"] or 0, reverse=True)


def logs(client, job_id: str) -> str:
    return _call("logs of", job_id, client.get_job_logs, job_id)


def follow(client, job_id: str, sink: Callable[[str], None]) -> None:
    """Stream the job's logs to ``sink`` until the job ends (``tail_job_logs``)."""
    info(client, job_id)  # a clear error for an unknown id before opening the websocket

    async def _tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sink(chunk)

    try:
        asyncio.run(_tail())
    except Exception as exc:  # noqa: BLE001
        raise ClusterError(f"following logs of {job_id} failed: {_one_line(exc)}") from None


def stop(client, job_id: str) -> bool:
    """Ask the job to stop; True if it was running."""
    return bool(_call("stopping", job_id, client.stop_job, job_id))


def wait(client, job_id: str, *, timeout_s: float | None = None, poll_s: float = 0.5) -> dict:
    """Poll until the job is terminal; return its :func:`info`. ClusterError on timeout."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        state = info(client, job_id)
        if state["status"] in TERMINAL:
            return state
        if deadline is not None and time.monotonic() > deadline:
            raise ClusterError(f"job {job_id} still {state['status']} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def raise_if_failed(state: dict) -> None:
    """ClusterError naming the job and Ray's last message line unless it SUCCEEDED."""
    if state["status"] != "SUCCEEDED":
        lines = [s for s in (state.get("message") or "").splitlines() if s.strip()]
        first = lines[0].split(", last available logs")[0] if lines else ""
        detail = f": {_one_line(first)}" if first else ""
        raise ClusterError(f"job {state['submission_id']} {state['status']}{detail}")
