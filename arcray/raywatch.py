"""A private local Ray instance ends with the process that started it, however that process ends.

``ray.init()`` without an address starts a head (GCS, raylet, dashboard, monitor, log monitor) as
processes of their own; the driver's ``atexit`` stops them on a normal exit, but a SIGKILLed driver
(the OOM killer, ``kill -9``, a CI timeout) left the whole instance running: actors kept writing
into the pipeline root and the dashboard and runtime-env agents lived on under PID 1.

``start_watchdog(driver_pid, pids)`` starts ``python -m arcray.raywatch DRIVER PID...`` in its own
session. Once a second it lists the instance's processes (the recorded head processes and all their
descendants: workers, actors, dashboard and runtime-env agents) and checks that the driver is
alive; when the driver or the head is gone it ends every process it has seen that still runs:
SIGTERM, then SIGKILL after ``GRACE_S``, only processes whose command line still names Ray (a
recycled PID is left alone). Linux ``/proc`` only; elsewhere no watchdog is started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 1.0
GRACE_S = 3.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (the driver's parent has not reaped it yet) is gone for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _is_ray(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").lower()
    except OSError:
        return False
    return b"ray" in cmd


def instance_processes(pids: list[int]) -> list[int]:
    """``pids`` and all their descendants that still run a Ray command line."""
    kids = _children()
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo += kids.get(p, [])
    return [p for p in out if p != os.getpid() and _is_ray(p)]


def end_processes(procs: list[int]) -> None:
    """SIGTERM ``procs`` (those still alive and still Ray), SIGKILL what is left after ``GRACE_S``."""
    procs = [p for p in procs if p != os.getpid() and _alive(p) and _is_ray(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + GRACE_S
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(_alive(p) for p in procs):
            time.sleep(0.1)


def start_watchdog(driver_pid: int, pids: list[int], env: dict[str, str] | None = None) -> int | None:
    """Start the watchdog of a local instance (its PID), or None where ``/proc`` is missing."""
    if not os.path.isdir("/proc") or not pids:
        return None
    proc = subprocess.Popen([sys.executable, "-m", "arcray.raywatch", str(driver_pid), *map(str, pids)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True, env=env)
    return proc.pid


def main(argv: list[str]) -> None:
    """Watch the driver; the instance's processes (head and descendants) are re-listed at every
    poll, because the head processes die with the driver (Ray fate-shares them) while the agents
    and workers they started are re-parented to PID 1: they must be known before that happens."""
    driver, head = int(argv[0]), [int(p) for p in argv[1:]]
    known: set[int] = set(head)
    while _alive(driver) and any(_alive(p) for p in head):
        known.update(instance_processes(head))
        time.sleep(POLL_S)
    end_processes(sorted(known))


if __name__ == "__main__":
    main(sys.argv[1:])
