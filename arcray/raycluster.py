"""Connecting to Ray: the only place that calls ``ray.init``.

Locally (no address) arcray starts a private Ray instance whose *logical* CPU count is larger than
the physical one, so training workers and Tune drivers never starve Ray Data's read tasks (see
``shared/notes/ray-2.60-kuberay-1.7.md``: "the classic hang").
"""

from __future__ import annotations

import os

from arcray.errors import ClusterError


def default_local_cpus() -> int:
    return max(8, 2 * (os.cpu_count() or 2))


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None, quiet: bool = True,
               object_store_bytes: int | None = None) -> None:
    """Connect to ``address`` (``auto``, ``ray://...``, ``host:port``) or start a local instance.

    Idempotent: does nothing when Ray is already initialised in this process. Inside a Ray job
    (``RAY_ADDRESS`` set by the job submission) it joins that cluster.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = {"log_to_driver": not quiet, "include_dashboard": False} if not address else {}
    if not address:
        kwargs["num_cpus"] = num_cpus or default_local_cpus()
        kwargs["object_store_memory"] = object_store_bytes or 2 * 1024**3
        kwargs["configure_logging"] = True
        kwargs["logging_level"] = "ERROR" if quiet else "INFO"
    try:
        # "local" always starts a private instance, even when a `ray start` cluster runs on this host.
        ray.init(address=address or "local", ignore_reinit_error=True, **kwargs)
    except ConnectionError as exc:  # pragma: no cover - message depends on Ray internals
        raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
