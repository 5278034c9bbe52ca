"""Issue 18, calibrate: nothing lost, nothing trusted blindly.

Mislabelled frames are refused, inputs are keyed by frame (not path), the calibrated dataset and
the failures table partition the last run's frames, up-to-date outputs are reused, bad arguments
are one line before Ray starts, and one calibrate runs per root at a time. Real files, a real
local Ray where a run is needed; one small set of generated frames for the whole module.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from arcray.calib.config import CalibConfig
from arcray.calib.identity import check_identity, frame_key, night_mjd, peek_header
from arcray.errors import ConfigError, InputError
from arcray.io import read_provenance
from arcray.measure.config import MeasureConfig
from arcray.paths import Layout
from arcray.testing.frames import fits_bytes, gzip_bytes, make_header, make_raw_frame

NIGHT = "sdsswork/data/boss/spectro/apo/60708"


@pytest.fixture(scope="module")
def frames():
    """Gzipped FITS bytes: a good b1 arc (exp 380717, MJD 60708) and the same frame as a flat."""
    kf = make_raw_frame("b1", seed=3, expnum=380717, mjd=60708)
    flat = dict(kf.header, FLAVOR="flat")
    return {"arc": gzip_bytes(fits_bytes(kf.raw, kf.header)), "flat": gzip_bytes(fits_bytes(kf.raw, flat))}


def _put(base, rel: str, data: bytes) -> str:
    p = base / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return str(p)


def _calibrated(layout) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(layout.calibrated) for f in fs if f.endswith(".parquet"))


def _failures(layout) -> list[dict]:
    return pq.read_table(layout.calibrated_failures).to_pylist()


def _main(args, capsys) -> tuple[int, str, str]:
    """Exit code, stdout, and stderr without the one ``ray: ...`` line a Ray stage prints."""
    from arcray.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines(keepends=True) if not line.startswith("ray: ")]
    return exc.value.code, out, "".join(lines)


# -- 1. identity: pure -----------------------------------------------------------------------
def test_identity_check_names_both_sides():
    hdr = make_header("b1", expnum=380717, mjd=60708)
    check_identity(hdr, camera="b1", expnum=380717, mjd=60708)
    check_identity(hdr, camera="b1", expnum=380717, mjd=None)  # no night directory: nothing to compare
    with pytest.raises(InputError, match="file name says r1, header CAMERAS says b1"):
        check_identity(hdr, camera="r1", expnum=380717)
    with pytest.raises(InputError, match="file name says exposure 380718, header EXPOSURE says 380717"):
        check_identity(hdr, camera="b1", expnum=380718)
    with pytest.raises(InputError, match="night directory says MJD 60709, header MJD says 60708"):
        check_identity(hdr, camera="b1", expnum=380717, mjd=60709)
    assert frame_key("/x/60708/sdR-b2-00047001.fit.gz") == ("lco", "b2", 47001)
    assert frame_key("/x/junk.fit.gz") is None
    assert night_mjd("a/b/60708/sdR-b1-00000001.fit.gz") == 60708 and night_mjd("incoming/sdR-b1-1.fit") is None


def test_peek_header_reads_a_truncated_gzip(frames):
    data = frames["arc"]
    assert peek_header(data[: len(data) // 3])["MJD"] == 60708
    assert peek_header(gzip_bytes(b"<html>401</html>")) is None and peek_header(b"\x1f\x8b junk") is None


# -- 1. identity: in the stage ---------------------------------------------------------------
@pytest.mark.ray
def test_mislabelled_frames_are_failures_not_outputs(ray_local, frames, tmp_path):
    from arcray.pipeline.calibrate import run_calibrate

    sas = tmp_path / "sas"
    _put(sas, f"{NIGHT}/sdR-r1-00380717.fit.gz", frames["arc"])  # a b1 frame renamed r1
    _put(sas, f"{NIGHT}/sdR-b1-00380718.fit.gz", frames["arc"])  # ... renumbered
    _put(sas, "sdsswork/data/boss/spectro/apo/60709/sdR-b1-00380717.fit.gz", frames["arc"])  # ... refiled
    layout = Layout(tmp_path / "out")
    s = run_calibrate(str(sas), layout, CalibConfig(), workers=2)
    assert (s.n_ok, s.n_skipped, s.n_failed) == (0, 0, 3)
    assert _calibrated(layout) == []
    reasons = {(r["camera"], r["expnum"]): r["reason"] for r in _failures(layout)}
    assert "file name says r1, header CAMERAS says b1" in reasons[("r1", 380717)]
    assert "header EXPOSURE says 380717" in reasons[("b1", 380718)]
    assert "night directory says MJD 60709, header MJD says 60708" in reasons[("b1", 380717)]


# -- 2. keyed by frame ------------------------------------------------------------------------
@pytest.mark.ray
def test_failures_keyed_by_frame_with_mjd_whatever_the_path(ray_local, frames, tmp_path, monkeypatch):
    from arcray.pipeline.calibrate import run_calibrate

    sas = tmp_path / "sas"
    short = frames["arc"][: len(frames["arc"]) // 3]
    _put(sas, "sdsswork/data/boss/spectro/apo/60709/sdR-b1-00380801.fit.gz", short)
    _put(sas, "sdsswork/data/boss/spectro/apo/60709/sdR-b1-00380802.fit.gz", gzip_bytes(b"<html>401</html>"))
    _put(sas, "incoming/sdR-r1-00380803.fit.gz",  # no night directory: the MJD comes from the header
         gzip_bytes(fits_bytes(np.zeros((64, 64), np.uint16), {"FLAVOR": "arc", "MJD": 60710})))
    _put(sas, "incoming/sdR-b1-00380804.fit.gz", short)  # truncated, but its header is readable
    layout = Layout(tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    assert run_calibrate("sas", layout, CalibConfig(), workers=2).n_failed == 4  # relative
    s = run_calibrate(str(sas), layout, CalibConfig(), workers=2)  # absolute: the same frames
    assert (s.n_failed, s.n_total) == (4, 4)
    rows = _failures(layout)
    assert len(rows) == 4 and len({(r["observatory"], r["camera"], r["expnum"]) for r in rows}) == 4
    assert {r["expnum"]: r["mjd"] for r in rows} == {380801: 60709, 380802: 60709, 380803: 60710, 380804: 60708}
    assert {r["observatory"] for r in rows} == {"apo"} and all(os.path.isabs(r["path"]) for r in rows)


# -- 3. stale outputs / 4. reuse ---------------------------------------------------------------
@pytest.mark.ray
def test_a_frame_that_fails_now_leaves_the_dataset_and_comes_back(ray_local, frames, tmp_path):
    from arcray.pipeline.calibrate import run_calibrate

    sas, layout, cfg, mcfg = tmp_path / "sas", Layout(tmp_path / "out"), CalibConfig(), MeasureConfig()
    src = _put(sas, f"{NIGHT}/sdR-b1-00380717.fit.gz", frames["arc"])
    arc = [layout.calibrated_frame("b1", "arc", 60708, 380717), layout.measured_row("b1", "arc", 60708, 380717),
           layout.measured_lines("b1", 60708, 380717)]
    s = run_calibrate(str(sas), layout, cfg, workers=1, measure=mcfg)
    assert (s.n_ok, s.n_failed) == (1, 0) and all(os.path.exists(p) for p in arc)

    _put(sas, f"{NIGHT}/sdR-b1-00380717.fit.gz", frames["arc"][:5000])  # corrupt now
    s = run_calibrate(str(sas), layout, cfg, workers=1, measure=mcfg)
    assert (s.n_ok, s.n_skipped, s.n_failed) == (0, 0, 1) and s.line().startswith("calibrate: 0 ok, 1 failed")
    assert not any(os.path.exists(p) for p in arc) and _calibrated(layout) == []
    assert [(r["camera"], r["expnum"], r["mjd"]) for r in _failures(layout)] == [("b1", 380717, 60708)]

    _put(sas, f"{NIGHT}/sdR-b1-00380717.fit.gz", frames["flat"])  # good again, now a flat
    s = run_calibrate(str(sas), layout, cfg, workers=1, measure=mcfg)
    assert (s.n_ok, s.n_failed) == (1, 0) and _failures(layout) == []
    assert _calibrated(layout) == [layout.calibrated_frame("b1", "flat", 60708, 380717)]
    assert os.path.exists(layout.measured_row("b1", "flat", 60708, 380717))
    assert os.path.exists(layout.measured_traces("b1", 60708, 380717))
    assert os.path.getsize(src) == len(frames["flat"])


@pytest.mark.ray
def test_rerun_reuses_up_to_date_frames_and_recalibrates_changed_ones(ray_local, frames, tmp_path):
    from arcray.pipeline.calibrate import run_calibrate

    sas, layout, cfg = tmp_path / "sas", Layout(tmp_path / "out"), CalibConfig()
    src = _put(sas, f"{NIGHT}/sdR-b1-00380717.fit.gz", frames["arc"])
    out = layout.calibrated_frame("b1", "arc", 60708, 380717)

    def run(**kw):
        s = run_calibrate(str(sas), layout, kw.pop("config", cfg), workers=1, **kw)
        return s.n_ok, s.n_skipped, s.n_failed

    assert run() == (1, 0, 0)
    prov = read_provenance(out)
    st = os.stat(src)
    assert prov["source_stat"] == {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    assert prov["config_hash"] == cfg.config_hash() and prov["measure_hash"] is None
    written = os.stat(out).st_mtime_ns
    s = run_calibrate(str(sas), layout, cfg, workers=1)
    assert (s.n_ok, s.n_skipped) == (0, 1) and s.line().startswith("calibrate: 1 ok, 0 failed frames (1 up to date")
    assert os.stat(out).st_mtime_ns == written and _calibrated(layout) == [out]
    assert run(force=True) == (1, 0, 0)  # --force
    assert run(config=CalibConfig(overscan="row")) == (1, 0, 0)  # another config
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the source changed (same size)
    assert run(config=CalibConfig(overscan="row")) == (1, 0, 0)
    assert run(config=CalibConfig(overscan="row"), measure=MeasureConfig()) == (1, 0, 0)  # now measured
    assert run(config=CalibConfig(overscan="row"), measure=MeasureConfig()) == (0, 1, 0)


# -- 5. one-line errors before Ray ------------------------------------------------------------
def test_bad_raw_root_and_workers_are_one_line(tmp_path, capsys):
    from arcray.pipeline.calibrate import run_calibrate

    sas = tmp_path / "sas"
    _put(sas, f"{NIGHT}/sdR-b1-00380717.fit.gz", b"not read")
    out = str(tmp_path / "out")
    (tmp_path / "not.parquet").write_text("path,status\n")
    (tmp_path / "file").write_text("")
    cases = [([out, "--raw", str(tmp_path / "missing.parquet")], "missing.parquet: no such downloads table"),
             ([out, "--raw", str(tmp_path / "not.parquet")], "not.parquet: not a Parquet table"),
             ([str(tmp_path / "file" / "root"), "--raw", str(sas)], "is not writable"),
             ([out, "--raw", str(sas), "--wait", "-1"], "--wait must be")]
    for args, said in cases:
        code, stdout, err = _main(["calibrate", "--no-progress", "--root", *args], capsys)
        assert (code, stdout, err.count("\n")) == (2, "", 1), (args, err)
        assert err.startswith("arcray: error: ") and said in err, err
    code, _, err = _main(["calibrate", "--root", out, "--raw", str(sas), "--workers", "0"], capsys)
    assert (code, err.count("\n")) == (2, 1) and err.startswith("arcray: error: ") and "--workers" in err, err
    with pytest.raises(ConfigError, match="--workers must be at least 1, got 0"):
        run_calibrate(str(sas), Layout(out), CalibConfig(), workers=0)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_read_only_root_is_refused_before_ray(tmp_path):
    from arcray.pipeline.calibrate import run_calibrate

    sas = tmp_path / "sas"
    _put(sas, f"{NIGHT}/sdR-b1-00380717.fit.gz", b"not read")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(InputError, match="is not writable"):
        run_calibrate(str(sas), Layout(ro), CalibConfig())


# -- 6. one run per root -----------------------------------------------------------------------
def test_a_second_calibrate_on_the_same_root_refuses_in_one_line(tmp_path, capsys):
    from arcray.locks import stage_lock

    sas = tmp_path / "sas"
    _put(sas, f"{NIGHT}/sdR-b1-00380717.fit.gz", b"not read")
    out = str(tmp_path / "out")
    with stage_lock(Layout(out), "calibrate"):
        for wait in ([], ["--wait", "0.3"]):
            code, stdout, err = _main(["calibrate", "--root", out, "--raw", str(sas), "--no-progress", *wait], capsys)
            assert (code, stdout, err.count("\n")) == (2, "", 1), err
            assert err.startswith("arcray: error: calibrate is already running on ")
    assert not os.path.exists(Layout(out).calibrated_failures)  # refused before any work
