"""Measurement inside calibration and the night pass, on the simulated world against its truth.

The session's ``sim_world`` (one reduced APO night: per camera a bias, two arcs, a Hartmann pair,
two flats and a science frame, full size) is calibrated with measurement on a real local Ray; then
``run_measure`` fits each arc against the night's reference arc and writes one table (and FITS).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from arcray import optics
from arcray.calib.config import CalibConfig
from arcray.measure.config import MeasureConfig
from arcray.paths import Layout
from arcray.sim.truth import field_of

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def measured(ray_local, sim_world, tmp_path_factory):
    from arcray.pipeline.calibrate import run_calibrate
    from arcray.pipeline.measure import run_measure

    layout = Layout(str(tmp_path_factory.mktemp("measured")))
    cal = run_calibrate(sim_world.sas_root, layout, CalibConfig(), workers=2, measure=MeasureConfig())
    summary = run_measure(layout.root, export_fits=True)
    truth = pd.read_parquet(sim_world.truth)
    return layout, cal, summary, truth


def test_calibrate_measures_every_frame_it_writes(measured):
    layout, cal, _, truth = measured
    assert cal.n_failed == 0 and cal.n_ok == len(truth) == 16
    assert any(n.startswith("QA ") and "not measured" in n for n in cal.notes), cal.notes
    for r in truth.itertuples():
        row = pq.read_table(layout.measured_row(r.camera, r.flavor, r.mjd, r.expnum)).to_pylist()[0]
        measurable = r.flavor in ("arc", "flat") and r.hartmann == "Out"
        assert row["measured"] == measurable, (r.camera, r.expnum, row["reason"])
        lines = layout.measured_lines(r.camera, r.mjd, r.expnum)
        traces = layout.measured_traces(r.camera, r.mjd, r.expnum)
        assert os.path.exists(lines) == (measurable and r.flavor == "arc")
        assert os.path.exists(traces) == (measurable and r.flavor == "flat")
        if measurable and r.flavor == "arc":
            assert "measure" in (pq.read_schema(lines).metadata or {}).get(b"arcray", b"").decode()


def test_fitted_fields_match_the_worlds_truth(measured):
    layout, _, _, truth = measured
    frames = pd.read_parquet(layout.measured_frames)
    true = truth.set_index(["camera", "mjd", "expnum"])
    arcs = frames[frames["measured"] & (frames["flavor"] == "arc")]
    clean = [r for _, r in arcs.iterrows() if pd.isna(true.loc[(r["camera"], r["mjd"], r["expnum"]), "fault"])]
    assert len(arcs) == 4 and len(clean) >= 3
    for r in clean:
        fit = optics.Field.from_mapping({k: r[k] for k in optics.FIELD_TERMS})
        err = optics.rms_line_error(r["camera"], fit, field_of(true.loc[(r["camera"], r["mjd"], r["expnum"])]))
        assert err["x"] < 0.03 and err["y"] < 0.03, (r["camera"], r["expnum"], err)


def test_arcs_are_fitted_against_the_nights_first_good_arc(measured):
    layout, _, summary, _ = measured
    frames = pd.read_parquet(layout.measured_frames)
    arcs = frames[frames["measured"] & (frames["flavor"] == "arc")]
    for cam, d in arcs.groupby("camera"):
        first = int(d["expnum"].min())
        assert summary.references[(cam, int(d["mjd"].iloc[0]))] == first
        assert (d["ref_expnum"] == first).all()
        ref = d[d["expnum"] == first].iloc[0]
        assert max(abs(ref[f"ref_{t}"]) for t in ("a0", "a1", "a2", "b0", "b1", "b2")) < 1e-6
        other = d[d["expnum"] != first].iloc[0]
        # arc2trace's shift to the reference = the difference of the two fits to the nominal model
        assert abs(other["ref_b0"] - (other["b0"] - ref["b0"])) < 0.01
        assert abs(other["ref_a0"] - (other["a0"] - ref["a0"])) < 0.01
    flats = frames[frames["flavor"] == "flat"]
    assert flats["measured"].all() and flats["NGOODFIBER"].notna().all() and flats["ref_expnum"].isna().all()
    assert set(frames["status"].dropna()) <= {"green", "yellow", "red"}
    assert frames["MC1TEMDN"].notna().all() and frames["date_obs"].notna().all()


def test_fits_export_and_rerun_are_the_same_table(measured):
    from astropy.io import fits

    from arcray.pipeline.measure import run_measure

    layout, _, _, _ = measured
    before = pq.read_table(layout.measured_frames)
    with fits.open(layout.measured_frames_fits) as hdul:
        tab = hdul["MEASURE"]
        assert tab.header["NAXIS2"] == before.num_rows
        names = tab.columns.names
        assert tab.columns[names.index("a0")].unit == "px" and tab.columns[names.index("WAVEMID")].unit == "A"
        np.testing.assert_allclose(tab.data["a0"], before.column("a0").to_numpy(zero_copy_only=False), equal_nan=True)
    run_measure(layout.root)
    assert pq.read_table(layout.measured_frames).equals(before)


def test_bad_references_are_one_line_errors(measured, capsys):
    from arcray.cli.main import main

    layout, _, _, _ = measured
    for refs, words in (("b1:60280", "not CAMERA:MJD:EXPNUM"), ("x9:60280:1", "not CAMERA:MJD:EXPNUM")):
        with pytest.raises(SystemExit) as ei:
            main(["measure", "--root", layout.root, "--references", refs])
        err = capsys.readouterr().err.strip().splitlines()
        assert ei.value.code == 2 and len(err) == 1 and words in err[0], err
    mjd = int(pd.read_parquet(layout.measured_frames)["mjd"].iloc[0])
    with pytest.raises(SystemExit) as ei:
        main(["measure", "--root", layout.root, "--references", f"b1:{mjd}:99999999"])
    err = capsys.readouterr().err.strip().splitlines()
    assert ei.value.code == 2 and len(err) == 1 and "not among the night's measured arcs" in err[0], err
    with pytest.raises(SystemExit) as ei:
        main(["measure", "--root", layout.root + "-empty"])
    err = capsys.readouterr().err.strip().splitlines()
    assert ei.value.code == 2 and "run `arcray calibrate` first" in err[0]


def test_a_pass_over_one_camera_or_night_keeps_every_other_row(measured):
    from arcray.pipeline.measure import run_measure

    layout, _, _, _ = measured
    before = pq.read_table(layout.measured_frames)
    mjd = int(before.column("mjd")[0].as_py())
    assert run_measure(layout.root, cameras=["b1"]).n_ok == 4  # 2 arcs, 2 flats
    assert pq.read_table(layout.measured_frames).equals(before)
    from arcray.errors import InputError

    with pytest.raises(InputError):
        run_measure(layout.root, mjds=[mjd + 1000])  # a night without measured frames
    assert pq.read_table(layout.measured_frames).equals(before)
