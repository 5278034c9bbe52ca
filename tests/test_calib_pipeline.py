"""The calibrate stage end to end on a real local Ray: files written, failures, reruns, read-back."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from arcray.calib.config import CalibConfig
from arcray.calib.frame import calibrate_frame
from arcray.errors import PartialFailure
from arcray.io import read_provenance
from arcray.paths import Layout, sas_relpath
from arcray.stages import MaxFailures
from arcray.tensors import tensor_shape, to_ndarray
from arcray.testing.frames import fits_bytes, gzip_bytes, make_raw_frame

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GOOD = [  # camera, expnum, mjd, kwargs
    ("b1", 380717, 60708, {}),
    ("r1", 380717, 60708, {}),
    ("b1", 380720, 60708, {"subframe_rows": (850, 1400), "header": {"HARTMANN": "Left"}}),
    ("b2", 47001, 60800, {"header": {"FLAVOR": "flat"}}),
]


@pytest.fixture(scope="module")
def raw_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("sas")
    kept = {}
    for i, (cam, exp, mjd, kw) in enumerate(GOOD):
        kf = make_raw_frame(cam, seed=100 + i, expnum=exp, mjd=mjd, **kw)
        p = root / sas_relpath(cam, mjd, exp)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(gzip_bytes(fits_bytes(kf.raw, kf.header)))
        kept[(cam, exp)] = kf
    bad_dir = root / "sdsswork/data/boss/spectro/apo/60709"
    bad_dir.mkdir(parents=True)
    ok_bytes = (root / sas_relpath("b1", 60708, 380717)).read_bytes()
    (bad_dir / "sdR-b1-00380801.fit.gz").write_bytes(ok_bytes[: len(ok_bytes) // 3])
    (bad_dir / "sdR-b1-00380802.fit.gz").write_bytes(gzip_bytes(b"<html>401 Unauthorized</html>\n"))
    (bad_dir / "sdR-r1-00380803.fit.gz").write_bytes(
        gzip_bytes(fits_bytes(np.zeros((64, 64), np.uint16), {"FLAVOR": "arc", "MJD": 60709})))
    kf = make_raw_frame("b1", seed=9, expnum=380804, mjd=60709)
    hdr = {k: v for k, v in kf.header.items() if k != "FLAVOR"}
    (bad_dir / "sdR-b1-00380804.fit.gz").write_bytes(gzip_bytes(fits_bytes(kf.raw, hdr)))
    return root, kept


def _parquet_files(layout):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(layout.calibrated) for f in fs if f.endswith(".parquet"))


def test_calibrate_run_failures_rerun_and_readback(ray_local, raw_tree, tmp_path):
    from arcray.pipeline.calibrate import run_calibrate

    root, kept = raw_tree
    layout = Layout(tmp_path / "out")
    cfg = CalibConfig()
    summary = run_calibrate(str(root), layout, cfg, workers=2)  # bad frames never stop the run
    assert (summary.n_ok, summary.n_failed, summary.failures) == (4, 4, layout.calibrated_failures)
    assert summary.line().startswith("calibrate: 4 ok, 4 failed frames (")
    with pytest.raises(PartialFailure) as ei:  # the caller's policy decides
        MaxFailures.parse("3").check(summary)
    assert (ei.value.n_ok, ei.value.n_failed) == (4, 4) and ei.value.exit_code == 1
    assert str(ei.value).startswith("calibrate 4 of 8 frames failed (listed in ")
    MaxFailures.parse("0.5").check(summary)  # 4 of 8 allowed

    fails = pq.read_table(layout.calibrated_failures).to_pylist()
    reasons = {os.path.basename(r["path"]): r["reason"] for r in fails}
    assert "gzip" in reasons["sdR-b1-00380801.fit.gz"]
    assert "not a FITS" in reasons["sdR-b1-00380802.fit.gz"]
    assert "wrong shape" in reasons["sdR-r1-00380803.fit.gz"]
    assert "missing keywords" in reasons["sdR-b1-00380804.fit.gz"]
    assert {r["camera"] for r in fails} == {"b1", "r1"} and all(r["config_hash"] == cfg.config_hash() for r in fails)
    assert {(r["observatory"], r["mjd"]) for r in fails} == {("apo", 60709)}  # from the night directory

    files = _parquet_files(layout)
    assert len(files) == 4
    assert layout.calibrated_frame("b2", "flat", 60800, 47001) in files
    mtimes = {f: os.stat(f).st_mtime_ns for f in files}
    rerun = run_calibrate(str(root), layout, cfg, workers=1)
    assert (rerun.n_ok, rerun.n_skipped, rerun.n_failed) == (0, 4, 4)  # up-to-date outputs reused
    assert _parquet_files(layout) == files  # replaced, not duplicated
    assert all(os.stat(f).st_mtime_ns >= mtimes[f] for f in files)
    assert len(pq.read_table(layout.calibrated_failures)) == 4  # failures replaced too
    _check_readback(layout, kept, cfg)


def _check_readback(layout, kept, cfg) -> None:
    """The written dataset through pyarrow.dataset, pandas and Ray Data, against calibrate_frame."""
    # pyarrow.dataset, one camera (tensor shapes are the same for every camera anyway)
    dset = pads.dataset(layout.calibrated, format="parquet", partitioning="hive")
    tab = dset.to_table(filter=pads.field("camera") == "b1")
    assert sorted(tab["expnum"].to_pylist()) == [380717, 380720]
    tab = tab.sort_by("expnum")
    kf = kept[("b1", 380717)]
    ref = calibrate_frame(kf.raw, kf.header, cfg, keep_frame=False)  # the pipeline's path (full_frame=none)
    np.testing.assert_array_equal(to_ndarray(tab["windows"])[0], ref.windows)
    np.testing.assert_array_equal(to_ndarray(tab["binned"])[0], ref.binned)
    hart_mask = to_ndarray(tab["binned_mask"])[1]
    assert (hart_mask[0] != 0).all() and tab["is_hartmann"].to_pylist() == [False, True]
    prov = read_provenance(layout.calibrated_frame("b1", "arc", 60708, 380717))
    assert prov["config_hash"] == cfg.config_hash() and "overscan:median" in prov["steps"]
    assert prov["views"]["window_origins"] == [list(o) for o in ref.window_origins]
    assert prov["arcray_version"]

    # whole dataset: pyarrow (all cameras share one schema), pandas, Ray Data
    whole = dset.to_table(columns=["camera", "mjd", "expnum", "MC1TEMDN", "R2CAMT", "windows"])
    assert whole.num_rows == 4 and whole.schema.field("mjd").type == pa.int32()
    import pandas as pd

    # the partition keys are also columns of every file: read with partitioning=None (or via
    # pyarrow.dataset with partitioning="hive" as above); pandas' default hive inference would
    # add dictionary-typed duplicates of camera/flavor/mjd
    df = pd.read_parquet(layout.calibrated, partitioning=None)
    assert len(df) == 4 and set(df["camera"]) == {"b1", "r1", "b2"}
    w = to_ndarray(df["windows"], tensor_shape(dset.schema, "windows"))
    assert w.shape == (4, 24, 128, 128) and np.isfinite(w).all()
    import ray

    rows = ray.data.read_parquet(layout.calibrated).filter(expr="expnum == 380717 and camera == 'b1'").take_all()
    assert len(rows) == 1
    np.testing.assert_array_equal(rows[0]["windows"], ref.windows)
    np.testing.assert_array_equal(rows[0]["windows_mask"], ref.windows_mask)


def _main(args, capsys) -> tuple[int, str, str]:
    """Exit code, stdout, and stderr without the one ``ray: ...`` line a Ray stage prints."""
    from arcray.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    lines = err.splitlines(keepends=True)
    assert sum(line.startswith("ray: ") for line in lines) <= 1
    return exc.value.code, out, "".join(line for line in lines if not line.startswith("ray: "))


def test_cli_smoke_failure_policy_and_bad_options(ray_local, raw_tree, tmp_path, capsys):
    root, _ = raw_tree
    good = root / "sdsswork/data/boss/spectro/apo/60708"
    out = str(tmp_path / "cli")
    code, stdout, err = _main(["calibrate", "--root", out, "--raw", str(good), "--smoke", "--overscan", "row",
                               "--workers", "1", "--no-progress"], capsys)
    assert code == 0, err
    assert stdout.startswith("calibrate: 3 ok, 0 failed frames (")
    files = _parquet_files(Layout(out))
    assert len(files) == 3
    assert "overscan:row" in read_provenance(files[0])["steps"]
    # 4 bad frames of 8: everything else is written, then exit 1 unless --max-failures allows them
    code, stdout, err = _main(["calibrate", "--root", out, "--raw", str(root), "--no-progress"], capsys)
    assert code == 1 and "calibrate: 4 ok, 4 failed frames" in stdout
    assert err.count("\n") == 1 and err.startswith("arcray: error: calibrate 4 of 8 frames failed")
    assert len(_parquet_files(Layout(out))) == 4 and len(pq.read_table(Layout(out).calibrated_failures)) == 4
    code, _, err = _main(["calibrate", "--root", out, "--raw", str(root), "--max-failures", "50%",
                          "--no-progress"], capsys)
    assert code == 0, err
    code, stdout, err = _main(["calibrate", "--root", out, "--overscan", "mean"], capsys)
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert err.startswith("arcray: error: bad calibrate options: --overscan: ")
