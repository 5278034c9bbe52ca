"""A real local Ray instance for tests marked ``ray`` (one per test session)."""

from __future__ import annotations

import os
import signal
import time

import pytest


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """Start a private local Ray instance (8 logical CPUs, small object store); shut down at end."""
    import ray

    from arcray.raycluster import apply_local_env

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    apply_local_env(num_cpus=8)
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=8,
            object_store_memory=600 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=True,
            logging_level="ERROR",
        )
    yield ray
    ray.shutdown()


def kill_group(pgid: int) -> None:
    """Stop only the processes of one ``ray start`` head: its process group (its own session),
    SIGTERM then SIGKILL, waiting for the group to be gone (tests that start a head in a subprocess)."""
    for sig, wait_s in ((signal.SIGTERM, 3), (signal.SIGKILL, 2)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
