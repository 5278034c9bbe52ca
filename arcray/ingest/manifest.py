"""BOSS rows -> the exposure manifest (Arrow/Parquet) and the original study's JSON.

Manifest schema (``docs/design.md``, ``Layout.manifest``): one row per exposure.
The study JSON is ``{"arcs": {"<mjd>": ["<expnum:08d>", ...]}, "flats": {...}}`` with Hartmann
frames excluded and every list sorted, as the original study's scraper wrote it.
"""

from __future__ import annotations

from datetime import timezone
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from arcray.ingest.logparse import BossRow

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
