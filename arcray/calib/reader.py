"""Reading raw ``sdR`` frames: gzip -> FITS header cards -> uint16 ADU array. Pure, no Ray.

The fast path (chosen by ``benchmarks/bench_calibrate.py``): decompress the whole file with
ISA-L (``isal.igzip``, ~2x ``gzip -dc``), parse the 80-column header cards directly, and view
the big-endian 16-bit data with ``numpy.frombuffer``. ``BZERO = 32768`` on signed 16-bit data
means ``physical = stored XOR 0x8000`` on the unsigned bits, which is one native-order pass.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arcray.errors import InputError
from arcray.instrument import RAW_SHAPE

BLOCK = 2880
CARD = 80
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class RawFrame:
    """A raw frame: ``data`` uint16 ADU ``[row, col]`` (4224 x 4352) and its header cards."""

    data: np.ndarray
    header: dict[str, Any]
    source: str = ""
    timings: dict[str, float] = field(default_factory=dict, compare=False)


_BUFFERS_REUSED: list[bool] = []


def reuse_large_buffers(threshold_mb: int = 256) -> bool:
    """Let glibc serve allocations below ``threshold_mb`` from its heap (process-wide, idempotent).

    A frame needs two ~37 MB buffers (inflated bytes, decoded ADU). Above glibc's default mmap
    threshold (32 MB at most) each is a fresh ``mmap`` and its ~9,300 pages fault in again on
    every frame: ~20 ms per frame on this machine. Reusing freed heap memory instead costs no
    extra memory in steady state (the same buffers are reused frame after frame). Called by the
    calibration workers; True when the allocator accepted it (False off glibc).
    """
    if _BUFFERS_REUSED:
        return _BUFFERS_REUSED[0]
    ok = False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc <malloc.h>
        size = threshold_mb * 1024 * 1024
        ok = bool(libc.mallopt(m_mmap_threshold, size)) and bool(libc.mallopt(m_trim_threshold, 2 * size))
    except (OSError, AttributeError):
        ok = False
    _BUFFERS_REUSED.append(ok)
    return ok


def _decompress(buf: bytes) -> bytes:
    try:
        from isal import igzip  # ISA-L: about twice as fast as zlib here
    except ImportError:  # pragma: no cover - isal is a dependency
        igzip = gzip
    try:
        return igzip.decompress(buf)
    except (EOFError, OSError, zlib.error, ValueError) as exc:
        raise InputError(f"bad gzip stream ({type(exc).__name__}: {exc}); truncated download?") from None
    except Exception as exc:  # isal raises its own error class for corrupt data
        raise InputError(f"bad gzip stream ({type(exc).__name__}: {exc})") from None


def parse_card_value(text: str) -> Any:
    """The value part of a card (after ``'= '``): str, bool, int, float, or the raw text."""
    s = text.strip()
    if s.startswith("'"):
        out, i = [], 1
        while i < len(s):
            ch = s[i]
            if ch == "'":
                if i + 1 < len(s) and s[i + 1] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(ch)
            i += 1
        return "".join(out).rstrip()
    s = s.split("/", 1)[0].strip()
    if s == "T":
        return True
    if s == "F":
        return False
    if s == "":
        return None
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s.replace("D", "E"))
    except ValueError:
        return s


def parse_header(buf: bytes | memoryview, *, max_blocks: int = 100) -> tuple[dict[str, Any], int]:
    """Parse the primary header at the start of ``buf`` -> ``(cards, data_offset_bytes)``."""
    header: dict[str, Any] = {}
    for block in range(max_blocks):
        chunk = bytes(buf[block * BLOCK:(block + 1) * BLOCK])
        if len(chunk) < BLOCK:
            raise InputError("not a FITS file (header ends before its END card)")
        if block == 0 and not chunk.startswith(b"SIMPLE  ="):
            raise InputError("not a FITS file (no SIMPLE card)")
        text = chunk.decode("ascii", errors="replace")
        for i in range(0, BLOCK, CARD):
            card = text[i:i + CARD]
            key = card[:8].strip()
            if key == "END":
                return header, (block + 1) * BLOCK
            if key and card[8:10] == "= ":
                header[key] = parse_card_value(card[10:])
    raise InputError("not a FITS file (no END card)")


def header_from_text(text: str) -> dict[str, Any]:
    """Cards given one per line (like ``arcray.instrument.example_header_text()``) -> dict."""
    header: dict[str, Any] = {}
    for line in text.splitlines():
        card = line.ljust(CARD)[:CARD]
        key = card[:8].strip()
        if key and card[8:10] == "= ":
            header[key] = parse_card_value(card[10:])
    return header


def _check_shape(header: dict[str, Any]) -> tuple[int, int]:
    if header.get("BITPIX") != 16 or header.get("NAXIS") != 2:
        raise InputError(f"wrong format: BITPIX={header.get('BITPIX')} NAXIS={header.get('NAXIS')}, "
                         "expected 16-bit 2-D")
    shape = (header.get("NAXIS2"), header.get("NAXIS1"))
    if shape != RAW_SHAPE:
        raise InputError(f"wrong shape: {shape[1]} x {shape[0]} (cols x rows), expected "
                         f"{RAW_SHAPE[1]} x {RAW_SHAPE[0]}")
    return RAW_SHAPE


def decode_fits(buf: bytes, *, source: str = "") -> RawFrame:
    """Uncompressed FITS bytes -> ``RawFrame`` (uint16 ADU, native byte order)."""
    header, offset = parse_header(buf)
    rows, cols = _check_shape(header)
    n = rows * cols
    if len(buf) < offset + 2 * n:
        raise InputError(f"truncated FITS data: {len(buf) - offset} of {2 * n} bytes")
    bzero = header.get("BZERO", 0)
    if header.get("BSCALE", 1) != 1 or bzero not in (0, 32768):
        raise InputError(f"unsupported scaling BSCALE={header.get('BSCALE')} BZERO={bzero}")
    stored = np.frombuffer(buf, dtype=">u2", count=n, offset=offset)
    data = np.empty(n, np.uint16)
    if bzero == 32768:  # one pass: byte swap + sign flip in the same ufunc loop
        np.bitwise_xor(stored, np.uint16(0x8000), out=data)
    else:
        data[...] = stored
    return RawFrame(data.reshape(rows, cols), header, source)


def read_raw(path_or_bytes: str | os.PathLike | bytes) -> RawFrame:
    """Read a raw frame from a path (``.fit`` or ``.fit.gz``) or from its bytes.

    Raises ``InputError`` for a truncated/corrupt gzip stream, a non-FITS file, a wrong shape or
    format. The returned array is a fresh writable uint16 array in ``[row, col]`` order.
    """
    import time

    t0 = time.perf_counter()
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        buf, source = bytes(path_or_bytes), "<bytes>"
    else:
        source = os.fspath(path_or_bytes)
        try:
            with open(source, "rb") as f:
                buf = f.read()
        except OSError as exc:
            raise InputError(f"cannot read {source}: {exc.strerror}") from None
    t1 = time.perf_counter()
    if buf[:2] == GZIP_MAGIC:
        buf = _decompress(buf)
    t2 = time.perf_counter()
    frame = decode_fits(buf, source=source)
    t3 = time.perf_counter()
    frame.timings.update(read_s=t1 - t0, gunzip_s=t2 - t1, decode_s=t3 - t2)
    return frame
