import pandas as pd
import pyarrow as pa

from arcray.io import atomic_write_parquet
from arcray.paths import Layout
from arcray.report.html import build_report


def test_empty_root_says_not_run(tmp_path):
    page = open(build_report(str(tmp_path))).read()
    assert page.count("not run") == 10  # every section, no crash


def test_scores_only_fill_their_sections(tmp_path):
    layout = Layout(str(tmp_path))
    scores = pd.DataFrame({"camera": "b1", "model": ["autoencoder", "linear"], "split": "test", "n": 3,
                           "mse": [0.01, 0.03], "px_dy": [0.1, 0.3], "px_dx": [0.1, 0.2], "px": [0.14, 0.36]})
    atomic_write_parquet(layout.scores, pa.Table.from_pandas(scores))
    page = open(build_report(str(tmp_path))).read()
    assert page.count("not run") == 8
    assert "0.03" in page and "px_errors.png" in page
    assert (tmp_path / "report" / "fig" / "px_errors.png").stat().st_size > 1000
