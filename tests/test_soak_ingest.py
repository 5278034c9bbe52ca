"""The short soak (benchmarks/soak_ingest.py): one cycle with two overlapping downloads and a calibrate
SIGKILLed at a random moment, under HTTP faults, then a clean cycle: nothing lost, corrupt,
duplicated or stale, every frame byte-identical to the world's."""

from __future__ import annotations

import importlib.util
import os

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _soak_module():
    path = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "soak_ingest.py")
    spec = importlib.util.spec_from_file_location("soak_ingest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.timeout(900)
def test_short_soak_loses_and_corrupts_nothing(tmp_path):
    soak = _soak_module()
    lines: list[str] = []
    res = soak.soak(cycles=1, nights=1, kill=1.0, seed=5, tmp=str(tmp_path), echo=lines.append,
                    kill_window_s=(5.0, 9.0))  # after Ray's start, while frames are calibrated
    assert any("overlapping downloads" in ln for ln in lines) and any("calibrate killed" in ln for ln in lines), lines
    assert res["expected"] == res["present"] == res["byte_identical"] == res["calibrated"] == 8, res
    problems = {k: v for k, v in res.items()
                if k not in ("expected", "present", "byte_identical", "calibrated", "partition_ok") and v}
    assert problems == {} and res["partition_ok"], res
