"""Which frame a file is, and whether its header agrees. Pure (no Ray; reads only what it is given).

A raw frame is keyed by ``(observatory, camera, expnum)`` (``FrameKey``), taken from its file name
``sdR-<camera>-<expnum:08d>.fit[.gz]`` (the name is authoritative, boss-formats.md section 1), never
by the path string: the same file given once by a relative and once by an absolute path, or found
through a downloads table and through a directory walk, is one frame.

Nothing is trusted blindly: before a frame is calibrated, ``check_identity`` compares what the
path says with what the header says, and a mislabelled file (a ``b1`` frame renamed ``sdR-r1-...``,
a frame filed under another night's directory) is refused with a reason naming both sides:

- file name camera   vs header ``CAMERAS``  (checked when the header has the keyword)
- file name expnum   vs header ``EXPOSURE`` (idem)
- night directory    vs header ``MJD``      (when the file sits in a directory named by a 5-digit
  MJD, as in the SAS tree ``.../spectro/<obs>/<mjd>/sdR-...``; any other directory says nothing)
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Any

from arcray.calib.metadata import as_int, parse_frame_name
from arcray.errors import InputError
from arcray.instrument import OBSERVATORY

FrameKey = tuple[str, str, int]  # (observatory, camera, expnum)
_NIGHT = re.compile(r"^\d{5}$")  # an MJD directory of the SAS tree (5 digits until MJD 100000)
PEEK_BYTES = 64 * 2880  # a header rarely has more than ~20 blocks; 64 bound the work on junk


def frame_key(path: str) -> FrameKey | None:
    """``.../sdR-b1-00380717.fit.gz`` -> ``("apo", "b1", 380717)``; None if the name is not a frame's."""
    name = parse_frame_name(path)
    return (OBSERVATORY[name[0]], name[0], name[1]) if name else None


def night_mjd(path: str) -> int | None:
    """The MJD of the night directory holding ``path`` (``.../60708/sdR-...``), or None."""
    parent = os.path.basename(os.path.dirname(str(path).rstrip("/")))
    return int(parent) if _NIGHT.match(parent) else None


def check_identity(header: dict[str, Any], *, camera: str, expnum: int, mjd: int | None = None) -> None:
    """Raise ``InputError`` when the header contradicts the file name (``camera``, ``expnum``) or
    the night directory (``mjd``; None: not known from the path). A keyword the header lacks is
    not a contradiction (the metadata step reports missing required keywords)."""
    said = []
    cam = str(header.get("CAMERAS") or "").strip()
    if cam and cam != camera:
        said.append(f"file name says {camera}, header CAMERAS says {cam}")
    exp = as_int(header.get("EXPOSURE"))
    if header.get("EXPOSURE") is not None and exp != int(expnum):
        said.append(f"file name says exposure {int(expnum)}, header EXPOSURE says {header.get('EXPOSURE')}")
    hdr_mjd = as_int(header.get("MJD"))
    if mjd is not None and hdr_mjd is not None and hdr_mjd != int(mjd):
        said.append(f"night directory says MJD {int(mjd)}, header MJD says {hdr_mjd}")
    if said:
        raise InputError("mislabelled frame: " + "; ".join(said))


def peek_header(buf: bytes) -> dict[str, Any] | None:
    """The primary header of a (possibly gzipped, possibly truncated) FITS file's bytes, or None
    when it has none that parses. For failure rows (their MJD) only: no validation of the data."""
    from arcray.calib.reader import GZIP_MAGIC, parse_header

    try:
        if buf[:2] == GZIP_MAGIC:
            buf = zlib.decompressobj(wbits=31).decompress(buf, PEEK_BYTES)  # a truncated tail is fine
        return parse_header(buf[:PEEK_BYTES])[0]
    except (InputError, zlib.error, ValueError):
        return None
