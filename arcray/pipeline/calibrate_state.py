"""What the calibrate stage keeps true between runs: outputs and failures partition the inputs.

For every frame key ``(observatory, camera, expnum)`` (``arcray.calib.identity``) that a run
processes, after the run exactly one of these holds, whatever earlier runs left:

- the frame calibrated (now, or earlier and reused): its one calibrated file and its measurement
  files are where ``Layout`` names them for the frame's (flavor, mjd), and the failures table has
  no row for it;
- the frame failed: it has no calibrated file and no measurement files anywhere (an earlier run's
  are deleted, one unlink per file), and the failures table has one row for it.

Keys this run did not process keep what they had. Earlier outputs of a key are found by listing
the calibrated dataset and the per-frame measurement rows (the two directories ``Layout`` names,
parsed with the same ``camera=/flavor=/mjd=/sdR-<cam>-<expnum>.parquet`` names it writes), because
a frame that fails now may have been calibrated under another flavor or night than it now claims.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from arcray.calib.identity import FrameKey
from arcray.errors import InputError
from arcray.instrument import OBSERVATORY
from arcray.paths import Layout, is_uri

FAILURES_SCHEMA = pa.schema([
    pa.field("path", pa.string()), pa.field("observatory", pa.string()), pa.field("camera", pa.string()),
    pa.field("mjd", pa.int32()), pa.field("expnum", pa.int64()), pa.field("reason", pa.string()),
    pa.field("failed_at", pa.timestamp("us", tz="UTC")), pa.field("config_hash", pa.string()),
])
Place = tuple[str, int]  # (flavor, mjd) under which a frame's outputs are filed
_OUTPUT = re.compile(r"camera=([br][12])/flavor=(\w+)/mjd=(\d+)/sdR-([br][12])-(\d{8})\.parquet$")


def output_place(path: str) -> tuple[FrameKey, Place] | None:
    """``.../camera=b1/flavor=arc/mjd=60708/sdR-b1-00380717.parquet`` -> (key, (flavor, mjd))."""
    m = _OUTPUT.search(str(path).replace(os.sep, "/"))
    if not m or m.group(1) != m.group(4):
        return None
    cam = m.group(1)
    return (OBSERVATORY[cam], cam, int(m.group(5))), (m.group(2), int(m.group(3)))


def existing_places(layout: Layout) -> tuple[dict[FrameKey, set[Place]], dict[FrameKey, set[Place]]]:
    """Where earlier runs filed each key: ``(calibrated, measured)``, key -> {(flavor, mjd)}."""
    from arcray.io import list_files

    found: tuple[dict, dict] = ({}, {})
    for index, base in zip(found, (layout.calibrated, layout.measured_rows)):
        for path in list_files(base, ".parquet"):
            hit = output_place(path)
            if hit:
                index.setdefault(hit[0], set()).add(hit[1])
    return found


def place_files(layout: Layout, key: FrameKey, place: Place) -> list[str]:
    """A frame's files filed under ``place``: measurement row first (it marks a complete
    measurement), its lines/traces tables, the calibrated frame last."""
    _obs, cam, exp = key
    flavor, mjd = place
    return [layout.measured_row(cam, flavor, mjd, exp), layout.measured_lines(cam, mjd, exp),
            layout.measured_traces(cam, mjd, exp), layout.calibrated_frame(cam, flavor, mjd, exp)]


def remove_outputs(layout: Layout, key: FrameKey, places: Iterable[Place], keep: Place | None = None) -> int:
    """Delete the key's files under ``places`` except those of ``keep`` (the place this run wrote
    or reused; None: delete all). One unlink per file, so each disappears whole. Returns the number
    of files removed."""
    from arcray.io import remove

    kept = set(place_files(layout, key, keep)) if keep is not None else set()
    return sum(remove(p) for place in places if place != keep
               for p in place_files(layout, key, place) if p not in kept)


def failure_key(row: dict) -> tuple:
    """The key of a failures-table row: the frame's, or its path when the name is not a frame's."""
    if row.get("camera") and row.get("expnum") is not None:
        cam = row["camera"]
        return (row.get("observatory") or OBSERVATORY.get(cam, ""), cam, int(row["expnum"]))
    return ("path", str(row.get("path")))


def write_failures(layout: Layout, processed: Iterable[tuple], failed: list[dict], config_hash: str) -> None:
    """Failures table = earlier failures of keys not processed now (one row per key, an older
    table's duplicates dropped) + this run's failures."""
    from arcray.io import atomic_write_parquet, exists, provenance, read_bytes

    done = set(processed)
    keep: dict[tuple, dict] = {}
    if exists(layout.calibrated_failures):
        old = pq.read_table(pa.BufferReader(read_bytes(layout.calibrated_failures)))
        for r in old.to_pylist():
            k = failure_key(r)
            if k not in done:
                r.setdefault("observatory", k[0] if k[0] != "path" else None)
                keep[k] = {f: r.get(f) for f in FAILURES_SCHEMA.names}
    now = datetime.now(timezone.utc)
    for r in failed:
        keep[failure_key(r)] = {"path": r["path"], "observatory": r.get("observatory"), "camera": r["camera"],
                                "mjd": r["mjd"], "expnum": r["expnum"], "reason": r["reason"], "failed_at": now,
                                "config_hash": config_hash}
    table = pa.Table.from_pylist(list(keep.values()), schema=FAILURES_SCHEMA)
    atomic_write_parquet(layout.calibrated_failures, table, provenance(config_hash, ["calibrate"]))


def check_writable(layout: Layout) -> None:
    """``InputError`` (exit 2) unless a file can be created in the (local) root: checked before
    Ray starts, so an unwritable root is one line, not a traceback at the end of the run. A URI
    root is checked by its first write."""
    if is_uri(layout.root):
        return
    import tempfile

    try:
        os.makedirs(layout.root, exist_ok=True)
        with tempfile.TemporaryFile(prefix=".tmp-writable-", dir=layout.root):
            pass
    except OSError as exc:
        raise InputError(f"pipeline root {layout.root} is not writable ({exc.strerror or exc})") from None
