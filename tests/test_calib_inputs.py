"""Where the calibrate stage finds its frames: a directory tree, a downloads table, a manifest."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arcray.errors import InputError
from arcray.paths import Layout
from arcray.pipeline.calibrate import discover_inputs


def test_directory_tree_finds_only_sdr_frames(tmp_path):
    for rel in ("a/60708/sdR-b1-00000001.fit.gz", "b/sdR-r1-00000002.fit.gz", "a/other.fit.gz", "a/x.txt"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    got = discover_inputs(str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in got] == ["sdR-b1-00000001.fit.gz", "sdR-r1-00000002.fit.gz"]


def test_downloads_table_keeps_ok_and_skipped(tmp_path):
    t = pa.table({"path": ["/r/sdR-b1-1.fit.gz", "/r/sdR-b1-2.fit.gz", "/r/sdR-b1-3.fit.gz"],
                  "status": ["ok", "failed", "skipped"]})
    p = tmp_path / "downloads.parquet"
    pq.write_table(t, p)
    assert discover_inputs(str(p)) == ["/r/sdR-b1-1.fit.gz", "/r/sdR-b1-3.fit.gz"]


def test_manifest_maps_to_layout_raw_frames(tmp_path):
    layout = Layout(tmp_path)
    t = pa.table({"mjd": pa.array([60708], pa.int32()), "expnum": pa.array([380717], pa.int64()),
                  "cameras": [["b1", "r1"]]})
    (tmp_path / "manifest").mkdir()
    pq.write_table(t, layout.manifest)
    assert discover_inputs(layout.manifest) == sorted([layout.raw_frame("b1", 60708, 380717),
                                                       layout.raw_frame("r1", 60708, 380717)])


def test_bad_raw_argument(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        discover_inputs(str(tmp_path / "nope"))
    pq.write_table(pa.table({"x": [1]}), tmp_path / "t.parquet")
    with pytest.raises(InputError, match="neither a downloads table"):
        discover_inputs(str(tmp_path / "t.parquet"))
