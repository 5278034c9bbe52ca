"""Download one raw frame from the SAS: retries, resume with ``Range``, verification, atomic rename.

A file is fetched into ``<dest>.part`` (its validators in ``<dest>.part.json``), resumed with
``Range``/``If-Range`` after a dropped connection or a killed run, verified (length, gzip CRC by
full decompression, FITS header readable, ``CAMERAS``/``EXPOSURE`` match the name) and only then
renamed to ``dest``: a file at its final path is always complete. No Ray here; the actor pool in
``arcray.pipeline.download`` runs one ``SasClient`` per actor.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import tempfile
import time
from dataclasses import dataclass

import requests

from arcray.credentials import Credentials
from arcray.errors import AuthError, RemoteError
from arcray.paths import is_uri
from arcray.urls import redact

FITS_BLOCK = 2880
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class VerifyError(Exception):
    """A downloaded file is not a complete, matching sdR frame (message = the reason)."""


class _Retry(Exception):
    def __init__(self, reason: str, *, discard: bool = False):
        super().__init__(reason)
        self.discard = discard


class _Fail(Exception):
    pass


@dataclass(frozen=True)
class FrameTask:
    camera: str
    mjd: int
    expnum: int
    url: str
    dest: str
    refetch: bool = False  # the file at ``dest`` is not trusted (size differs from its row): replace it


@dataclass
class FetchResult:
    """One row of the downloads table (plus counters the Ray layer turns into metrics)."""

    camera: str
    mjd: int
    expnum: int
    path: str
    status: str  # ok | skipped | failed
    bytes: int = 0  # size of the file at ``path`` (0 when failed)
    attempts: int = 0
    seconds: float = 0.0
    reason: str = ""
    retries: int = 0
    downloaded: int = 0  # bytes received over the network by this run
    resumed_from: int = 0  # offset of the first Range resume (0 = none)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_s: float = 0.5  # first back-off; doubles each attempt
    backoff_max_s: float = 8.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0  # between bytes, not for the whole file

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential back-off with jitter: uniform in [0.5, 1] x min(cap, base * 2^(attempt-1))."""
        return min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


def verify_frame_bytes(data: bytes, camera: str, expnum: int, *, expected_len: int | None = None) -> None:
    """Raise ``VerifyError`` unless ``data`` is a complete gzipped sdR frame of ``camera``/``expnum``."""
    from isal import igzip

    if expected_len is not None and len(data) != expected_len:
        raise VerifyError(f"length {len(data)} != expected {expected_len}")
    try:
        raw = igzip.decompress(data)
    except (OSError, EOFError, ValueError) as exc:
        raise VerifyError(f"gzip check failed: {exc}") from None
    header, hdr_len = _fits_header(raw)
    try:
        bitpix, naxis = abs(int(header["BITPIX"])), int(header["NAXIS"])
        n_data = bitpix // 8 * math.prod(int(header[f"NAXIS{i + 1}"]) for i in range(naxis)) if naxis else 0
    except (KeyError, ValueError):
        raise VerifyError("FITS header lacks BITPIX/NAXIS") from None
    if len(raw) < hdr_len + n_data:
        raise VerifyError(f"FITS data short: {len(raw)} < {hdr_len + n_data} bytes")
    cam = str(header.get("CAMERAS", "")).strip()
    if cam != camera:
        raise VerifyError(f"header CAMERAS={cam!r} does not match {camera!r}")
    try:
        exp = int(header.get("EXPOSURE"))
    except (TypeError, ValueError):
        raise VerifyError("header EXPOSURE missing or not an integer") from None
    if exp != int(expnum):
        raise VerifyError(f"header EXPOSURE={exp} does not match {int(expnum)}")


def _fits_header(raw: bytes) -> tuple[dict, int]:
    """``({keyword: value}, header length rounded up to whole 2880-byte blocks)``.

    A small card reader (no astropy import: the download actors stay light): ``KEY     = value``
    cards, quoted strings with ``''`` escapes, integers, floats, ``T``/``F``.
    """
    if not raw.startswith(b"SIMPLE  ="):
        raise VerifyError("not a FITS file (no SIMPLE card)")
    header: dict = {}
    for i in range(0, min(len(raw), 200 * FITS_BLOCK), 80):
        card = raw[i:i + 80]
        if card[:8] == b"END     ":
            return header, -(-(i + 80) // FITS_BLOCK) * FITS_BLOCK
        try:
            text = card.decode("ascii")
        except UnicodeDecodeError:
            raise VerifyError(f"FITS header unreadable: non-ASCII card at byte {i}") from None
        if text[8:10] == "= ":
            header[text[:8].strip()] = _card_value(text[10:])
    raise VerifyError("FITS header has no END card")


def _card_value(text: str):
    text = text.strip()
    if text.startswith("'"):
        out, j = [], 1
        while j < len(text):
            if text[j] == "'":
                if text[j + 1:j + 2] == "'":
                    out.append("'")
                    j += 2
                    continue
                return "".join(out).rstrip()
            out.append(text[j])
            j += 1
        raise VerifyError("FITS header unreadable: unterminated string")
    value = text.split("/", 1)[0].strip()
    if value in ("T", "F"):
        return value == "T"
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    return value


def verify_file(path: str, camera: str, expnum: int) -> int:
    """Verify the file at ``path`` (local or URI); return its size."""
    data = read_bytes(path)
    verify_frame_bytes(data, camera, expnum)
    return len(data)


class SasClient:
    """One ``requests.Session`` (connection reuse, HTTP Basic) that fetches frames robustly."""

    def __init__(self, credentials: Credentials, *, policy: RetryPolicy = RetryPolicy(),
                 staging_dir: str | None = None, seed: int | None = None):
        self.session = requests.Session()
        self.session.auth = credentials.as_tuple()
        self.session.headers["User-Agent"] = "arcray-download"
        self.policy = policy
        self.staging_dir = staging_dir
        self._rng = random.Random(seed)

    def __repr__(self) -> str:
        return f"SasClient(policy={self.policy!r})"

    def close(self) -> None:
        self.session.close()

    @property
    def _timeout(self) -> tuple[float, float]:
        return (self.policy.connect_timeout_s, self.policy.read_timeout_s)

    def probe(self, url: str) -> int:
        """One ``HEAD`` (retried on 5xx/network errors): ``AuthError`` when the SAS refuses the login."""
        last = ""
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                r = self.session.head(url, timeout=self._timeout, allow_redirects=True)
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if r.status_code in (401, 403):
                    raise AuthError(f"the SAS refused the credentials (HTTP {r.status_code}) at {_site(url)}")
                if r.status_code < 500:
                    return r.status_code
                last = f"HTTP {r.status_code}"
            time.sleep(self.policy.delay(attempt, self._rng))
        raise RemoteError(f"the SAS cannot be reached ({last}) at {_site(url)}")

    # -- one file ---------------------------------------------------------------------
    def fetch(self, task: FrameTask) -> FetchResult:
        """Download, verify and place ``task.dest``; never raises for a per-file problem."""
        t0 = time.monotonic()
        res = FetchResult(task.camera, task.mjd, task.expnum, task.dest, "failed")
        if exists(task.dest) and not task.refetch:
            try:
                res.bytes = verify_file(task.dest, task.camera, task.expnum)
                res.status, res.reason = "skipped", "already present, verified"
                res.seconds = time.monotonic() - t0
                return res
            except VerifyError:  # not written by us (we rename only verified files): fetch, replace
                pass
        part = self._part_path(task)
        while res.attempts < self.policy.max_attempts:
            res.attempts += 1
            try:
                total = self._attempt(task, part, res)
                data = read_bytes(part)
                verify_frame_bytes(data, task.camera, task.expnum, expected_len=total)
                self._place(part, task.dest, data)
                res.status, res.bytes, res.reason = "ok", len(data), ""
                break
            except _Fail as exc:
                res.reason = str(exc)
                break
            except (_Retry, VerifyError) as exc:
                res.reason = str(exc)
                if isinstance(exc, VerifyError) or exc.discard:
                    _discard(part)
            if res.attempts < self.policy.max_attempts:
                res.retries += 1
                time.sleep(self.policy.delay(res.attempts, self._rng))
        if res.status != "ok":
            res.reason = f"{res.reason} (after {res.attempts} attempt{'s' * (res.attempts != 1)})"
        res.seconds = time.monotonic() - t0
        return res

    def _part_path(self, task: FrameTask) -> str:
        if not is_uri(task.dest):
            return task.dest + ".part"
        base = self.staging_dir or os.path.join(tempfile.gettempdir(), "arcray-staging")
        return os.path.join(base, task.dest.split("://", 1)[1].lstrip("/") + ".part")

    def _attempt(self, task: FrameTask, part: str, res: FetchResult) -> int:
        """One GET into ``part`` (resuming if possible); returns the file's full length."""
        meta_path = part + ".json"
        offset, meta = 0, {}
        if os.path.exists(part) and os.path.exists(meta_path):
            try:
                with open(meta_path) as f:
                    meta = json.load(f)
                offset = os.path.getsize(part)
            except ValueError:  # validators unreadable: the part cannot be trusted
                _discard(part)
        elif os.path.exists(part):
            _discard(part)
        if offset and offset == meta.get("total"):
            return offset  # complete but not yet verified when the last run stopped
        headers = {}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
            if meta.get("etag") or meta.get("last_modified"):
                headers["If-Range"] = meta.get("etag") or meta["last_modified"]
        try:
            with self.session.get(task.url, headers=headers, stream=True, timeout=self._timeout) as r:
                start, total = self._check_response(r, offset)
                if start == 0:
                    os.makedirs(os.path.dirname(part), exist_ok=True)
                    _write_meta(meta_path, {"etag": r.headers.get("ETag"), "total": total,
                                            "last_modified": r.headers.get("Last-Modified")})
                elif not res.resumed_from:
                    res.resumed_from = start
                with open(part, "r+b" if start else "wb") as f:
                    f.seek(start)
                    f.truncate()
                    for chunk in r.iter_content(chunk_size=1 << 16):
                        f.write(chunk)
                        res.downloaded += len(chunk)
                    f.flush()
                    os.fsync(f.fileno())
        except requests.RequestException as exc:
            raise _Retry(f"network error: {type(exc).__name__}") from None
        size = os.path.getsize(part)
        if size != total:
            raise _Retry(f"short body: {size} of {total} bytes")
        return total

    @staticmethod
    def _check_response(r: requests.Response, offset: int) -> tuple[int, int]:
        """``(start offset of the body, full file length)`` or a retry/fail decision."""
        code = r.status_code
        if code == 404:
            raise _Fail("not found on the SAS (HTTP 404)")
        if code in (401, 403):
            raise _Fail(f"refused by the SAS (HTTP {code})")
        if code == 416:
            raise _Retry("HTTP 416 on resume (partial file longer than the remote one)", discard=True)
        if code >= 500 or code == 429:
            raise _Retry(f"HTTP {code}")
        if code == 200:
            length = r.headers.get("Content-Length")
            if length is None:
                raise _Retry("no Content-Length")
            return 0, int(length)
        if code == 206:
            m = _CONTENT_RANGE.match(r.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise _Retry(f"unexpected Content-Range {r.headers.get('Content-Range')!r}", discard=True)
            return offset, int(m.group(3))
        raise _Fail(f"unexpected HTTP {code}")

    @staticmethod
    def _place(part: str, dest: str, data: bytes) -> None:
        if is_uri(dest):
            from arcray.io import atomic_write_bytes

            atomic_write_bytes(dest, data)
            _discard(part)
            return
        os.replace(part, dest)
        try:
            os.unlink(part + ".json")
        except FileNotFoundError:
            pass


def _site(url: str) -> str:
    """The SAS root of a frame URL for messages (``.../sas/``), redacted."""
    head, sep, _ = url.partition("/sas/")
    return redact(head + sep if sep else url)


# Local paths without pyarrow (a download actor stays light); URIs through arcray.io.
def exists(path: str) -> bool:
    if not is_uri(path):
        return os.path.exists(path)
    from arcray import io

    return io.exists(path)


def read_bytes(path: str) -> bytes:
    if not is_uri(path):
        with open(path, "rb") as f:
            return f.read()
    from arcray import io

    return io.read_bytes(path)


def _write_meta(path: str, meta: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f)
    os.replace(tmp, path)


def _discard(part: str) -> None:
    for p in (part, part + ".json"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
