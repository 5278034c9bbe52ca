"""Small parts of the simulated archive server: request statistics, Range parsing, directory pages."""

from __future__ import annotations

import html
import os
import re
import threading
from collections import Counter

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class ServerStats:
    """Thread-safe counters: requests per path, statuses, Range headers, injected faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests: Counter = Counter()  # path -> n
            self.methods: Counter = Counter()  # (method, path) -> n
            self.status: Counter = Counter()  # code -> n
            self.faults: Counter = Counter()  # kind -> n
            self.ranges: list[tuple[str, str]] = []  # (path, Range header)
            self.bytes_sent = 0

    def count(self, path: str, method: str = "GET") -> int:
        """Record one request of ``path``; return its 0-based ordinal (for fault decisions)."""
        with self._lock:
            n = self.requests[path]
            self.requests[path] += 1
            self.methods[(method, path)] += 1
            return n

    def record(self, *, status: int | None = None, fault: str | None = None,
               rng: tuple[str, str] | None = None, nbytes: int = 0) -> None:
        with self._lock:
            if status is not None:
                self.status[status] += 1
            if fault:
                self.faults[fault] += 1
            if rng:
                self.ranges.append(rng)
            self.bytes_sent += nbytes

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": dict(self.requests), "status": {str(k): v for k, v in self.status.items()},
                    "faults": dict(self.faults), "ranges": [list(r) for r in self.ranges],
                    "bytes_sent": self.bytes_sent, "total": sum(self.requests.values())}


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """One ``bytes=a-b`` / ``a-`` / ``-n`` range -> ``(start, end_exclusive)``; None if unsatisfiable.

    Malformed and multi-range headers give False: answered with the whole file (RFC 9110 allows it).
    """
    m = _RANGE_RE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return False
    a, b = m.group(1), m.group(2)
    if not a:
        n = int(b)
        return (max(0, size - n), size) if n > 0 and size > 0 else None
    start = int(a)
    end = min(size, int(b) + 1) if b else size
    if start >= size or (b and int(b) < start):
        return None
    return (start, end)


def dir_listing(url_path: str, local: str) -> str:
    rows = []
    for name in sorted(os.listdir(local)):
        full = os.path.join(local, name)
        slash = "/" if os.path.isdir(full) else ""
        size = "-" if slash else str(os.path.getsize(full))
        rows.append(f'<tr><td><a href="{html.escape(name)}{slash}">{html.escape(name)}{slash}</a></td>'
                    f'<td align="right">{size}</td></tr>')
    return (f"<html><head><title>Index of {html.escape(url_path)}</title></head><body>"
            f"<h1>Index of {html.escape(url_path)}</h1><table>\n" + "\n".join(rows) +
            "\n</table></body></html>\n")
