"""The manifests: BOSS rows -> the exposure manifest (Arrow/Parquet), the downloads table, and
the original study's JSON. Pure (local or URI files through ``arcray.io``; no Ray, no network).

- Exposure manifest (``docs/design.md``, ``Layout.manifest``): one row per exposure, merged from
  the per-month files ``Layout.manifest_month`` (``write_merged_manifest``); ``parse_files``
  builds one offline from saved archives.
- Downloads table (``Layout.downloads``): one row per raw file, keyed by (camera, expnum).
- The study JSON is ``{"arcs": {"<mjd>": ["<expnum:08d>", ...]}, "flats": {...}}`` with Hartmann
  frames excluded and every list sorted, as the original study's scraper wrote it.
"""

from __future__ import annotations

import os
import re
from datetime import timezone
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arcray.errors import InputError
from arcray.ingest import logparse
from arcray.ingest.logparse import BossRow
from arcray.ingest.mbox import month_of_filename
from arcray.io import atomic_write_parquet, exists, list_files, provenance, read_bytes
from arcray.paths import Layout, is_uri

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")

MANIFEST_SCHEMA = pa.schema([
    pa.field("mjd", pa.int32(), nullable=False),
    pa.field("expnum", pa.int64(), nullable=False),
    pa.field("observatory", pa.string()),
    pa.field("flavor", pa.string()),  # arc | flat | science | bias | dark
    pa.field("hartmann", pa.string()),  # Out | Left | Right | Closed, null if unknown
    pa.field("is_hartmann", pa.bool_()),
    pa.field("exptime", pa.float32()),  # s
    pa.field("cameras", pa.list_(pa.string())),
    pa.field("layout", pa.string()),  # sloan_log | list | sos
    pa.field("msg_date", pa.timestamp("us", tz="UTC")),
    pa.field("subject", pa.string()),
    pa.field("month", pa.string()),  # YYYY-MM of the archive the row came from
])
STUDY_KEYS = {"arc": "arcs", "flat": "flats"}
DOWNLOADS_SCHEMA = pa.schema([
    pa.field("camera", pa.string()), pa.field("mjd", pa.int32()), pa.field("expnum", pa.int64()),
    pa.field("path", pa.string()), pa.field("status", pa.string()),  # ok | skipped | failed
    pa.field("bytes", pa.int64()), pa.field("attempts", pa.int32()), pa.field("seconds", pa.float64()),
    pa.field("reason", pa.string()), pa.field("finished_at", pa.timestamp("us", tz="UTC")),
])


def parse_months(spec: str) -> list[str]:
    """``2023-11..2024-01`` (inclusive range) or ``2023-11,2023-12`` -> ``["2023-11", ...]``."""
    months: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        ends = [e.strip() for e in part.split("..")]
        if len(ends) > 2 or not all(_MONTH.match(e) and 1 <= int(e[5:]) <= 12 for e in ends):
            raise InputError(f"bad --months {spec!r}: use YYYY-MM..YYYY-MM or YYYY-MM,YYYY-MM")
        (y0, m0), (y1, m1) = [(int(e[:4]), int(e[5:])) for e in (ends[0], ends[-1])]
        if (y1, m1) < (y0, m0):
            raise InputError(f"bad --months {spec!r}: range ends before it starts")
        while (y0, m0) <= (y1, m1):
            months.append(f"{y0:04d}-{m0:02d}")
            y0, m0 = (y0 + 1, 1) if m0 == 12 else (y0, m0 + 1)
    if not months:
        raise InputError("no months given")
    return sorted(set(months))


def rows_to_table(rows: Iterable[BossRow]) -> pa.Table:
    """Manifest table of ``rows`` (sorted by mjd, expnum)."""
    rows = sorted(rows, key=lambda r: (r.mjd, r.expnum))
    cols = {
        "mjd": [r.mjd for r in rows],
        "expnum": [r.expnum for r in rows],
        "observatory": [r.observatory for r in rows],
        "flavor": [r.flavor for r in rows],
        "hartmann": [r.hartmann for r in rows],
        "is_hartmann": [r.is_hartmann for r in rows],
        "exptime": [r.exptime for r in rows],
        "cameras": [list(r.cameras) for r in rows],
        "layout": [r.layout for r in rows],
        "msg_date": [r.msg_date.astimezone(timezone.utc) if r.msg_date else None for r in rows],
        "subject": [r.subject for r in rows],
        "month": [r.month for r in rows],
    }
    return pa.table(cols, schema=MANIFEST_SCHEMA)


def empty_manifest() -> pa.Table:
    return MANIFEST_SCHEMA.empty_table()


def merge_manifests(tables: Iterable[pa.Table]) -> pa.Table:
    """Concatenate per-month manifests; a night posted again in a later month keeps only the
    latest post's rows (by ``msg_date``, then month); one row per exposure, sorted."""
    tables = [t.select(MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA) for t in tables]
    if not tables:
        return empty_manifest()
    df = pa.concat_tables(tables).to_pandas()
    if df.empty:
        return empty_manifest()
    import pandas as pd

    df["_d"] = df["msg_date"].fillna(pd.Timestamp("1970-01-01", tz="UTC"))
    last = df.sort_values(["_d", "month"], kind="stable").groupby("mjd").tail(1)[["mjd", "_d", "month"]]
    df = df.merge(last, on=["mjd", "_d", "month"]).drop(columns="_d")
    df = df.drop_duplicates("expnum", keep="last").sort_values(["mjd", "expnum"])
    return pa.Table.from_pandas(df, schema=MANIFEST_SCHEMA, preserve_index=False).replace_schema_metadata(None)


def study_json(manifest: pa.Table | Iterable[BossRow]) -> dict:
    """``{"arcs": {mjd: [expnum:08d, ...]}, "flats": {...}}``: Hartmann excluded, lists sorted."""
    if not isinstance(manifest, pa.Table):
        manifest = rows_to_table(manifest)
    out: dict[str, dict[str, list[str]]] = {"arcs": {}, "flats": {}}
    keep = pc.invert(pc.fill_null(manifest["is_hartmann"], False))
    sel = manifest.filter(keep).select(["mjd", "expnum", "flavor"]).to_pylist()
    for r in sel:
        key = STUDY_KEYS.get(r["flavor"])
        if key:
            out[key].setdefault(str(r["mjd"]), []).append(f"{r['expnum']:08d}")
    for key in out:
        out[key] = {mjd: sorted(set(v)) for mjd, v in sorted(out[key].items(), key=lambda kv: int(kv[0]))}
    return out


def month_files(layout: Layout) -> list[str]:
    """Every per-month manifest under the root (``Layout.manifest_month("YYYY-MM")``)."""
    months_dir = os.path.dirname(layout.manifest_month("0000-00"))
    return [p for p in list_files(months_dir, ".parquet") if _MONTH.match(os.path.basename(p)[:-8])]


def write_merged_manifest(layout: Layout) -> pa.Table:
    """Merge every per-month manifest into ``Layout.manifest`` (atomically); return it."""
    fs, _ = layout.filesystem()
    tables = [pq.read_table(layout.filesystem(p)[1], filesystem=fs) for p in month_files(layout)]
    merged = merge_manifests(tables)
    months = sorted(set(merged.column("month").to_pylist()))
    atomic_write_parquet(layout.manifest, merged, provenance(steps=["scrape", "merge"], months=months))
    return merged


def parse_files(paths: list[str]) -> tuple[pa.Table, list[str]]:
    """Parse saved monthly archives offline; reposts are resolved across all files."""
    tables, warnings = [], []
    for path in paths:
        if not exists(path):
            raise InputError(f"no such archive file: {path}")
        res = logparse.parse_archive(read_bytes(path), month_of_filename(os.path.basename(path)))
        warnings += [f"{os.path.basename(path)}: {w}" for w in res.warnings]
        tables.append(rows_to_table(res.rows))
    table = merge_manifests(tables) if tables else MANIFEST_SCHEMA.empty_table()
    return table, warnings


def make_root_dir(path: str, root: str) -> None:
    """Create the local directory ``path`` under the pipeline ``root`` (a URI needs none); an
    unusable root (``/dev/null/x``, no permission) is one ``InputError``, not a traceback later."""
    if is_uri(path):
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the root {root}: {exc.strerror or type(exc).__name__}") from None


def read_downloads(path: str) -> dict[tuple[str, int], dict]:
    """Existing downloads table as ``{(camera, expnum): row}`` (empty if none yet)."""
    if not exists(path):
        return {}
    table = pq.read_table(pa.BufferReader(read_bytes(path)))
    return {(r["camera"], int(r["expnum"])): r for r in table.to_pylist()}


def write_downloads(path: str, rows: dict[tuple[str, int], dict], config_hash: str | None,
                    base_url: str) -> None:
    """The downloads table, ordered by (mjd, expnum, camera), atomically (provenance: the
    download config's hash and the SAS root)."""
    ordered = [rows[k] for k in sorted(rows, key=lambda k: (rows[k]["mjd"], k[1], k[0]))]
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in DOWNLOADS_SCHEMA} for r in ordered],
                                 schema=DOWNLOADS_SCHEMA)
    atomic_write_parquet(path, table, provenance(config_hash, steps=["download"], base_url=base_url))
