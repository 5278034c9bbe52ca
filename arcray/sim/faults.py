"""Fault injection for the simulated archive server, parsed from one spec string.

``FaultSpec.parse("error_rate=0.2,drop_rate=0.1,truncate_rate=0.1,slow_rate=0.1,cookie_expiry=5,"
"missing=sdR-b1-00012345;sdR-r1-00012345,latency_ms=50,bandwidth_mbps=20,seed=1")``

Keys (all off by default):

- ``error_rate``: fraction of requests answered 500 or 503 (half each, 503 with ``Retry-After: 1``).
- ``drop_rate``: fraction of file responses whose connection is closed mid-body (after the headers
  announced the full ``Content-Length``): the client sees an incomplete read.
- ``truncate_rate``: fraction of file responses that serve a *consistently* truncated file (the
  ``Content-Length`` matches the short body, as if the archive held a half-written file): only a
  gzip/CRC check on the client can tell.
- ``corrupt_rate``: fraction of file responses with full length but flipped bytes in the body
  (gzip CRC mismatch on the client).
- ``slow_rate`` / ``slow_s``: fraction of requests delayed by ``slow_s`` seconds (default 3) before
  the headers (triggers client read timeouts).
- ``cookie_expiry``: a Mailman session cookie stops working after this many requests made with it.
- ``missing``: frame names (``sdR-b1-00012345``, with or without ``.fit.gz``), separated by ``;``
  or ``|``, answered 404 on the SAS although they exist.
- ``latency_ms``: added to every request (remote-archive round trip).
- ``bandwidth_mbps``: cap per connection in megaBYTES per second (10**6 B/s), like "20 MB/s".
- ``seed``: decisions are a function of (seed, path, n-th request of that path), so a run with the
  same requests sees the same faults whatever the thread interleaving.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, fields

from arcray.errors import ConfigError

_FLOAT_KEYS = ("error_rate", "drop_rate", "truncate_rate", "corrupt_rate", "slow_rate", "slow_s",
               "latency_ms", "bandwidth_mbps")
_INT_KEYS = ("cookie_expiry", "seed")


def _frame_key(name: str) -> str:
    name = name.strip().rsplit("/", 1)[-1]
    for ext in (".gz", ".fit", ".fits"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name


@dataclass(frozen=True)
class FaultSpec:
    error_rate: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    corrupt_rate: float = 0.0
    slow_rate: float = 0.0
    slow_s: float = 3.0
    cookie_expiry: int = 0  # 0 = never
    missing: frozenset = field(default_factory=frozenset)
    latency_ms: float = 0.0
    bandwidth_mbps: float = 0.0  # MB/s per connection, 0 = unlimited
    seed: int = 0

    @classmethod
    def parse(cls, spec: str | None) -> "FaultSpec":
        """Parse ``key=value,key=value``; unknown keys or bad values raise ``ConfigError``."""
        if not spec or not spec.strip():
            return cls()
        known = {f.name for f in fields(cls)}
        kw: dict = {}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ConfigError(f"bad fault spec item {item!r} (known keys: {', '.join(sorted(known))})")
            try:
                if key in _FLOAT_KEYS:
                    kw[key] = float(value)
                elif key in _INT_KEYS:
                    kw[key] = int(value)
                else:
                    kw[key] = frozenset(_frame_key(v) for v in value.replace("|", ";").split(";") if v.strip())
            except ValueError:
                raise ConfigError(f"bad value in fault spec item {item!r}") from None
        for key in ("error_rate", "drop_rate", "truncate_rate", "corrupt_rate", "slow_rate"):
            if not 0.0 <= kw.get(key, 0.0) <= 1.0:
                raise ConfigError(f"fault spec {key} must be within 0..1")
        return cls(**kw)

    @property
    def active(self) -> bool:
        return self != FaultSpec(seed=self.seed)

    def is_missing(self, path: str) -> bool:
        return bool(self.missing) and _frame_key(path) in self.missing

    def rng(self, path: str, n: int) -> random.Random:
        """A generator fixed by (seed, path, n): the n-th request of a path always draws the same."""
        digest = hashlib.sha256(f"{self.seed}\0{path}\0{n}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def decide(self, path: str, n: int, *, body: bool) -> "Decision":
        """What happens to the n-th request of ``path`` (``body``: a file response, may be cut)."""
        r = self.rng(path, n)
        draws = [r.random() for _ in range(6)]
        d = Decision(slow=draws[0] < self.slow_rate)
        if draws[1] < self.error_rate:
            d.error = 503 if draws[2] < 0.5 else 500
        elif body and draws[3] < self.drop_rate:
            d.drop_fraction = 0.05 + 0.9 * draws[2]
        elif body and draws[4] < self.truncate_rate:
            d.truncate_fraction = 0.1 + 0.8 * draws[2]
        elif body and draws[5] < self.corrupt_rate:
            d.corrupt_seed = int(draws[2] * 2**31)
        return d


@dataclass
class Decision:
    slow: bool = False
    error: int = 0
    drop_fraction: float = 0.0  # close the connection after this fraction of the body
    truncate_fraction: float = 0.0  # serve only this fraction of the file (consistent length)
    corrupt_seed: int = -1  # >= 0: flip bytes in the body

    @property
    def kind(self) -> str | None:
        if self.error:
            return f"error{self.error}"
        if self.drop_fraction:
            return "drop"
        if self.truncate_fraction:
            return "truncate"
        if self.corrupt_seed >= 0:
            return "corrupt"
        return None


def corrupt(data: bytes, seed: int) -> bytes:
    """Flip a few bytes in the second half of ``data`` (keeps the gzip header intact)."""
    if len(data) < 64:
        return bytes(b ^ 0xFF for b in data)
    r = random.Random(seed)
    buf = bytearray(data)
    for _ in range(8):
        i = r.randrange(len(buf) // 2, len(buf) - 8)
        buf[i] ^= 0xFF
    return bytes(buf)
