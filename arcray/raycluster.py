"""Connecting to Ray: the only place that calls ``ray.init``, and what arcray lets Ray print.

Locally (no address) arcray starts a private Ray instance whose *logical* CPU count is larger than
the physical one, so training workers and Tune drivers never starve Ray Data's read tasks (see
``shared/notes/ray-2.60-kuberay-1.7.md``: "the classic hang").

Quiet output: the terminal shows arcray's own lines. Ray's noise is removed at its cause where
arcray can (``LOCAL_RAY_ENV``, Ray Data's and Tune's loggers), and under ``terminal_session`` (the
CLI) the Ray session is announced once with its log directory, and whatever Ray's native code writes
straight to this process's stderr (file descriptor 2: the driver's C++ core-worker log lines, such
as Ray Data's "has constructor arguments in the object store" for every actor pool it starts) goes
to ``<that log directory>/arcray-driver-stderr.log``; Python's own stderr (arcray's messages,
warnings, tracebacks) stays on the terminal.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

from arcray.errors import ClusterError


def default_local_cpus() -> int:
    return max(8, 2 * (os.cpu_count() or 2))


# Ray 2.60 defaults sized for large clusters that cost a small machine dearly; applied (unless the
# environment already sets them) to the private local instance only, whose raylet and workers
# inherit this process's environment. Clusters keep their own settings.
LOCAL_RAY_ENV = {
    # Every ``read_parquet`` lists files through 32 footer-reader actors: 32 Python processes,
    # ~16 s per read on 2 cores (1.5 s with 2).
    "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS": "2",
    # The Train V2 controller polls workers every 2 s and a worker's result queue holds one report,
    # so each ``ray.train.report`` waits up to 2 s: an epoch of a small model never took less.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    # One more actor process per training run that watches for node drains (preemption), which a
    # private single-node instance never sees.
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}
# The raylet's worker start-up concurrency, set to the instance's logical CPUs (``local_env``).
# Ray sizes it min(physical cores, num_cpus) = 2 on a 2-core machine and warns "(raylet) WARNING:
# N PYTHON worker processes have been started ..., which is 4x the maximum expected startup
# concurrency (2)" at 8, 10, 12 ... processes; the demo's 14-CPU instance runs 26 during tune (four
# trials of driver + Train controller + worker + Ray Data tasks), all of them expected. Sized to the
# instance, the warning comes at 4 x 14 = 56 processes, i.e. only when something is really wrong.
STARTUP_CONCURRENCY_ENV = "RAY_worker_maximum_startup_concurrency"


def local_env(num_cpus: int) -> dict[str, str]:
    """``LOCAL_RAY_ENV`` plus the start-up concurrency of an instance of ``num_cpus`` logical CPUs."""
    return {**LOCAL_RAY_ENV, STARTUP_CONCURRENCY_ENV: str(int(num_cpus))}


def apply_local_env(environ=os.environ, *, num_cpus: int | None = None) -> None:
    """Set ``local_env`` where not already set (before ``ray.init`` starts a local instance)."""
    for key, value in local_env(num_cpus or default_local_cpus()).items():
        environ.setdefault(key, value)


def _quiet_ray_data() -> None:
    """Ray Data logs every dataset execution at INFO on the driver; keep warnings only."""
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # "Progress bars disabled": arcray draws its own bars
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


@dataclass(frozen=True)
class RaySession:
    """The Ray instance this process uses: ``local`` (started here) or a cluster at ``address``."""

    address: str
    local: bool
    num_cpus: float
    dashboard_url: str | None
    logs_dir: str | None

    def line(self) -> str:
        where = f"local instance, {self.num_cpus:g} CPUs" if self.local else f"cluster {self.address}"
        dash = f", dashboard {self.dashboard_url}" if self.dashboard_url else ""
        logs = f", logs in {self.logs_dir}" if self.logs_dir else ""
        return f"ray: {where}{dash}{logs}"


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None, quiet: bool = True,
               object_store_bytes: int | None = None, dashboard: bool = False) -> RaySession:
    """Connect to ``address`` (``auto``, ``ray://...``, ``host:port``) or start a local instance.

    Idempotent: when Ray is already initialised in this process it only describes that session.
    Inside a Ray job (``RAY_ADDRESS`` set by the job submission) it joins that cluster.
    ``dashboard``: start the dashboard with a local instance.
    """
    import ray

    if quiet:
        _quiet_ray_data()
    if ray.is_initialized():
        return _attach(_describe(None))
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = {}
    if not address:
        num_cpus = num_cpus or default_local_cpus()
        apply_local_env(num_cpus=num_cpus)
        kwargs.update(
            num_cpus=num_cpus,
            object_store_memory=object_store_bytes or 2 * 1024**3,
            include_dashboard=dashboard,
            log_to_driver=not quiet,
            configure_logging=True,
            logging_level="ERROR" if quiet else "INFO",
        )
    try:
        # "local" always starts a private instance, even when a `ray start` cluster runs on this host.
        # Its processes inherit this environment: arcray's secrets are kept out of it (the download
        # actors get credentials by object reference), and a watchdog ends it with this process.
        with (_secrets_kept_out() if not address else nullcontext()):
            ctx = ray.init(address=address or "local", ignore_reinit_error=True, **kwargs)
    except ConnectionError as exc:  # pragma: no cover - message depends on Ray internals
        raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    if not address:
        _watch_local_instance()
    if quiet:
        _quiet_ray_data()
    url = getattr(ctx, "dashboard_url", None)
    url = f"http://{url}" if url and not str(url).startswith("http") else (url or None)
    return _attach(_describe(address, url))


def secret_variables(environ=os.environ) -> list[str]:
    """arcray's own secret variables (``ARCRAY_*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``), by name."""
    return [k for k in environ if k.startswith("ARCRAY_") and any(w in k for w in ("PASSWORD", "TOKEN", "SECRET"))
            and not k.endswith("_FILE")]


@contextmanager
def _secrets_kept_out() -> Iterator[None]:
    """Remove ``secret_variables`` from this process's environment while a local instance starts
    (its raylet, GCS and every worker inherit the environment), then put them back."""
    saved = {k: os.environ.pop(k) for k in secret_variables()}
    try:
        yield
    finally:
        os.environ.update(saved)


def _watch_local_instance() -> None:
    """Start the watchdog (``arcray.raywatch``) that ends this private instance with this process."""
    import ray

    from arcray.raywatch import start_watchdog

    node = getattr(ray._private.worker.global_worker, "node", None)
    if node is None:
        return
    pids = [p.process.pid for procs in node.all_processes.values() for p in procs if p.process is not None]
    env = {k: v for k, v in os.environ.items() if k not in secret_variables()}
    start_watchdog(os.getpid(), pids, env)


def _describe(address: str | None, dashboard_url: str | None = None) -> RaySession:
    import ray

    node = getattr(ray._private.worker.global_worker, "node", None)
    logs = node.get_logs_dir_path() if node is not None else None
    local = address is None and not os.environ.get("RAY_ADDRESS")
    return RaySession(address=address or "local", local=local,
                      num_cpus=float(ray.cluster_resources().get("CPU", 0)),
                      dashboard_url=dashboard_url, logs_dir=logs)


# -- what the terminal shows (the CLI's session) ---------------------------------------------
class _Terminal:
    """Announces the Ray session once and keeps Ray's native stderr off the terminal."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo, self.announced = echo, False
        self.saved_fd: int | None = None
        self.saved_stderr = None

    def attach(self, session: RaySession) -> None:
        if self.announced:
            return
        self.announced = True
        self.echo(session.line())
        if session.logs_dir and self.saved_fd is None:
            self._redirect(os.path.join(session.logs_dir, "arcray-driver-stderr.log"))

    def _redirect(self, path: str) -> None:
        try:
            sys.stderr.flush()
            python_on_fd2 = sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):  # a captured or wrapped stderr (tests)
            python_on_fd2 = False
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.saved_fd = os.dup(2)
        if python_on_fd2:  # Python's stderr keeps writing to the terminal, native code does not
            self.saved_stderr = sys.stderr
            sys.stderr = os.fdopen(os.dup(self.saved_fd), "w", buffering=1, encoding=sys.stderr.encoding,
                                   errors=sys.stderr.errors)
        os.dup2(target, 2)
        os.close(target)

    def restore(self) -> None:
        if self.saved_fd is None:
            return
        if self.saved_stderr is not None:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = self.saved_stderr
        os.dup2(self.saved_fd, 2)
        os.close(self.saved_fd)
        self.saved_fd = None


_TERMINAL: _Terminal | None = None


def _attach(session: RaySession) -> RaySession:
    if _TERMINAL is not None:
        _TERMINAL.attach(session)
    return session


@contextmanager
def terminal_session(echo: Callable[[str], None]) -> Iterator[None]:
    """Within the block, the first ``ensure_ray`` prints ``RaySession.line()`` through ``echo`` and
    sends the process's native stderr (fd 2) to the session's log directory; both end with it."""
    global _TERMINAL
    previous, _TERMINAL = _TERMINAL, _Terminal(echo)
    try:
        yield
    finally:
        _TERMINAL.restore()
        _TERMINAL = previous


def announcing() -> bool:
    """True inside ``terminal_session`` (the session line is printed by ``ensure_ray`` itself)."""
    return _TERMINAL is not None
