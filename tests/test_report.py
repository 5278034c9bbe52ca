import pandas as pd
import pyarrow as pa

from arcray.io import atomic_write_parquet
from arcray.paths import Layout
from arcray.report.html import build_report

SECTIONS = ["qa", "curves", "loss_latent", "recon", "scatter", "pearson", "drift", "flagged", "predictions",
            "mse", "px", "predict", "represent"]


def test_a_root_with_nothing_to_report_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    import pytest

    from arcray.cli.main import main

    for root in (tmp_path / "nonexistent", tmp_path):
        with pytest.raises(SystemExit) as ei:
            main(["report", "--root", str(root)])
        err = capsys.readouterr().err.strip().splitlines()
        assert ei.value.code == 2 and len(err) == 1 and err[0].startswith("arcray: error: report: "), err
    assert not (tmp_path / "nonexistent").exists() and list(tmp_path.iterdir()) == []


def test_scores_only_fill_their_sections(tmp_path):
    layout = Layout(str(tmp_path))
    scores = pd.DataFrame({"camera": "b1", "model": ["autoencoder", "linear"], "split": "test", "n": 3,
                           "mse": [0.01, 0.03], "px_dy": [0.1, 0.3], "px_dx": [0.1, 0.2], "px": [0.14, 0.36]})
    atomic_write_parquet(layout.scores, pa.Table.from_pandas(scores))
    rep = build_report(str(tmp_path))
    page = open(rep.index).read()
    assert list(rep.sections) == SECTIONS
    assert {k for k, src in rep.sections.items() if src} == {"mse", "px"}
    assert rep.sections["mse"] == rep.sections["px"] == [layout.scores]
    assert page.count("not run") == len(SECTIONS) - 2
    assert "0.03" in page and 'src="fig/px_errors.png"' in page
    assert (tmp_path / "report" / "fig" / "px_errors.png").stat().st_size > 1000
    assert rep.line() == f"report: 2/{len(SECTIONS)} sections filled -> {layout.report_index}"
