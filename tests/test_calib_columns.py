"""Reading the calibrated dataset's scalar columns in chunks of files gives the whole-scan table."""

from __future__ import annotations

from arcray.calib.table import open_calibrated, read_calibrated_columns
from arcray.paths import Layout
from arcray.testing.calibrated import write_synthetic_dataset


def test_chunked_column_read_equals_one_scan(tmp_path):
    write_synthetic_dataset(str(tmp_path), mjds=(60000, 60001, 60002), frames_per_night=3, cameras=("b1", "r1"))
    path = Layout(str(tmp_path)).calibrated
    cols = ["camera", "mjd", "expnum", "flavor"]
    whole = open_calibrated(path).to_table(columns=cols).sort_by([("camera", "ascending"), ("expnum", "ascending")])
    for chunk in (1, 4, 1000):
        got = read_calibrated_columns(path, cols, chunk_files=chunk).sort_by([("camera", "ascending"),
                                                                             ("expnum", "ascending")])
        assert got.num_rows == 18
        assert got.schema == whole.schema  # the hive partition types too (mjd int32, camera string)
        assert got.equals(whole)
