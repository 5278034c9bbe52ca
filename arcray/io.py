"""Atomic, idempotent writes (local paths and pyarrow filesystem URIs) and Parquet provenance.

Every artefact is written to a temporary name beside its final name and renamed into place, so a
reader never sees a half-written file and a crash leaves at most a ``.tmp-*`` file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from arcray import __version__
from arcray.paths import is_uri

PROVENANCE_KEY = b"arcray"


def _fs(path: str):
    from pyarrow import fs as pafs

    if is_uri(path):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename)."""
    if not is_uri(path):
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
        try:
            os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide reports and tables from a web server or a colleague
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    fs, p = _fs(path)
    parent = p.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, p)


def provenance(config_hash: str | None = None, steps: Iterable[str] = (), **extra: Any) -> dict:
    """The provenance record carried by every Parquet file arcray writes."""
    rec = {"arcray_version": __version__, "config_hash": config_hash, "steps": list(steps)}
    rec.update(extra)
    return rec


def with_provenance(table: pa.Table, prov: dict) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(prov, sort_keys=True, default=str).encode()
    return table.replace_schema_metadata(meta)


def read_provenance(path_or_schema) -> dict | None:
    schema = path_or_schema if isinstance(path_or_schema, pa.Schema) else pq.read_schema(path_or_schema)
    raw = (schema.metadata or {}).get(PROVENANCE_KEY)
    return json.loads(raw) if raw else None


def atomic_write_parquet(path: str, table: pa.Table, prov: dict | None = None, **kwargs: Any) -> None:
    """Write ``table`` (with provenance in its schema metadata) atomically to ``path``."""
    if prov is not None:
        table = with_provenance(table, prov)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **kwargs)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def exists(path: str) -> bool:
    if not is_uri(path):
        return os.path.exists(path)
    from pyarrow import fs as pafs

    fs, p = _fs(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def list_files(path: str, suffix: str = "") -> list[str]:
    """Every file below ``path`` (a directory or URI prefix; recursive) ending in ``suffix``, sorted;
    empty when ``path`` does not exist. Paths are returned in ``path``'s own form (local or URI)."""
    from pyarrow import fs as pafs

    fs, base = _fs(path)
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    found = sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix))
    if not is_uri(path):
        return found
    scheme = path.split("://", 1)[0]
    return [f"{scheme}://{p}" for p in found]


def remove(path: str) -> bool:
    """Delete the file ``path`` if it exists (local or URI); True when something was removed."""
    if not is_uri(path):
        try:
            os.unlink(path)
            return True
        except FileNotFoundError:
            return False
    if not exists(path):
        return False
    fs, p = _fs(path)
    fs.delete_file(p)
    return True


def read_bytes(path: str) -> bytes:
    if not is_uri(path):
        with open(path, "rb") as f:
            return f.read()
    fs, p = _fs(path)
    with fs.open_input_stream(p) as f:
        return f.read()
