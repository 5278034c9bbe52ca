"""One advisory lock per (pipeline root, stage), so two runs of a stage never write the same records.

A cron run and a manual run of ``download`` on the same root used to race on the downloads table
(the last writer's table won, files on disk were marked failed). ``stage_lock(layout, "download")``
makes the second run wait (``wait_s``) or refuse with one line (``LockedError``, exit 2).

The lock is ``fcntl.flock`` on ``<root>/.locks/<stage>.lock``: the kernel releases it when the
holder's process ends however it ends (SIGKILL included), so a lock is never left stale by a
crashed run. The file also records who holds it (``host``, ``pid``, ``since``) for the message;
that record is only information. ``flock`` is local to one machine: on NFS or an object store
(a URI root) it is no guarantee, and a URI root gets no lock (documented: run one scheduler per
root there, e.g. the KubeRay cron job's ``concurrencyPolicy: Forbid``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from typing import Iterator

from arcray.errors import ArcrayError
from arcray.paths import Layout, is_uri


class LockedError(ArcrayError):
    """Another run of the same stage holds the root's lock."""

    exit_code = 2


def lock_path(layout: Layout, stage: str) -> str:
    return os.path.join(layout.root, ".locks", f"{stage}.lock")


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            h = json.load(f)
        return f"pid {h['pid']} on {h['host']} since {h['since']}"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def stage_lock(layout: Layout, stage: str, *, wait_s: float = 0.0, poll_s: float = 0.5) -> Iterator[None]:
    """Hold the (root, stage) lock for the body; wait up to ``wait_s`` for it, then ``LockedError``."""
    if is_uri(layout.root):
        yield
        return
    import fcntl

    path = lock_path(layout, stage)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(0.0, wait_s)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockedError(f"{stage} is already running on {layout.root} ({_holder(path)}); "
                                      f"wait for it to finish or pass --wait SECONDS") from None
                time.sleep(poll_s)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock
