"""Bad command lines are one line (`arcray: error: ...`) with exit code 2, never Click's boxed panel."""

from __future__ import annotations

import pytest

from arcray.cli.main import main


@pytest.mark.parametrize("argv, words", [
    (["calibrate", "--root", "/tmp/x", "--workers", "0"], "arcray calibrate: Invalid value for '--workers'"),
    (["calibrat"], "No such command 'calibrat'. Did you mean 'calibrate'?"),
    (["measure", "--root", "/tmp/x", "--bogus"], "arcray measure: No such option: --bogus"),
    (["embed"], "arcray embed: Missing option '--root'"),
])
def test_usage_errors_are_one_line_with_exit_2(argv, words, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    out = capsys.readouterr()
    err = out.err.strip().splitlines()
    assert ei.value.code == 2 and out.out == ""
    assert len(err) == 1 and err[0].startswith("arcray: error: ") and words in err[0], err
    assert "╭" not in out.err and "Traceback" not in out.err


def test_help_and_version_still_exit_0(capsys):
    for argv in (["--version"], ["report", "--help"]):
        with pytest.raises(SystemExit) as ei:
            main(argv)
        assert ei.value.code in (0, None)
    assert "arcray " in capsys.readouterr().out
