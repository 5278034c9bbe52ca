"""Write one Parquet file a batch at a time, atomically (local paths and pyarrow filesystem URIs).

``atomic_write_parquet`` (``arcray.io``) needs the whole table in memory; a stage that produces its
output in batches (``embed``'s latents, one Ray Data block after another) keeps only one batch with
``ParquetStream``: each batch becomes a row group of a ``.tmp-*`` file beside the final name, renamed
into place when the stream closes without error and deleted when it does not, so a reader never sees
a half-written file and an earlier complete file survives a failed run. The schema (with the
provenance in its metadata) is fixed by the first batch; later batches are cast to it, so a column
that is all null in one batch does not change its type.
"""

from __future__ import annotations

import os
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from arcray.io import _fs, with_provenance
from arcray.paths import is_uri


class ParquetStream:
    """``with ParquetStream(path, prov) as s: s.write(batch)...``: row groups, renamed at the end."""

    def __init__(self, path: str, prov: dict | None = None, **write_options):
        self.path, self.prov, self.options = path, prov, write_options
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        fs, final = _fs(path)
        parent = final.rsplit("/", 1)[0] if is_uri(path) else os.path.dirname(final)
        self._fs, self._final, self._parent = fs, final, parent
        self._tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"

    def write(self, batch: pa.Table | pa.RecordBatch) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if self._writer is None:
            schema = table.schema.remove_metadata()
            self._schema = with_provenance(table.cast(schema), self.prov).schema if self.prov else schema
            self._fs.create_dir(self._parent, recursive=True)
            self._writer = pq.ParquetWriter(self._tmp, self._schema, filesystem=self._fs, **self.options)
        table = table.select(self._schema.names).cast(self._schema.remove_metadata())
        self._writer.write_table(table.replace_schema_metadata(self._schema.metadata))
        self.rows += table.num_rows

    def close(self, ok: bool = True) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        if ok:
            self._fs.move(self._tmp, self._final)
        else:
            self._fs.delete_file(self._tmp)

    def __enter__(self) -> "ParquetStream":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)
