"""Connecting to Ray: the only place that calls ``ray.init``.

Locally (no address) arcray starts a private Ray instance whose *logical* CPU count is larger than
the physical one, so training workers and Tune drivers never starve Ray Data's read tasks (see
``shared/notes/ray-2.60-kuberay-1.7.md``: "the classic hang").
"""

from __future__ import annotations

import logging
import os

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


def apply_local_env(environ=os.environ) -> None:
    """Set ``LOCAL_RAY_ENV`` where not already set (before ``ray.init`` starts a local instance)."""
    for key, value in LOCAL_RAY_ENV.items():
        environ.setdefault(key, value)


def _quiet_ray_data() -> None:
    """Ray Data logs every dataset execution at INFO on the driver; keep warnings only."""
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # "Progress bars disabled": arcray draws its own bars
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None, quiet: bool = True,
               object_store_bytes: int | None = None, dashboard: bool = False) -> str | None:
    """Connect to ``address`` (``auto``, ``ray://...``, ``host:port``) or start a local instance.

    Idempotent: does nothing when Ray is already initialised in this process. Inside a Ray job
    (``RAY_ADDRESS`` set by the job submission) it joins that cluster. Returns the dashboard URL
    when a local instance was started with ``dashboard=True``.
    """
    import ray

    if quiet:
        _quiet_ray_data()
    if ray.is_initialized():
        return None
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = {}
    if not address:
        apply_local_env()
        kwargs.update(
            num_cpus=num_cpus or default_local_cpus(),
            object_store_memory=object_store_bytes or 2 * 1024**3,
            include_dashboard=dashboard,
            log_to_driver=not quiet,
            configure_logging=True,
            logging_level="ERROR" if quiet else "INFO",
        )
    try:
        # "local" always starts a private instance, even when a `ray start` cluster runs on this host.
        ctx = ray.init(address=address or "local", ignore_reinit_error=True, **kwargs)
    except ConnectionError as exc:  # pragma: no cover - message depends on Ray internals
        raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    if quiet:
        _quiet_ray_data()
    url = getattr(ctx, "dashboard_url", None)
    return f"http://{url}" if url and not str(url).startswith("http") else url
