"""Calibration core on full-size frames of known bias, gain, read noise and line positions."""

from __future__ import annotations

import numpy as np
import pytest

from arcray.calib import steps
from arcray.calib.config import CalibConfig, CameraOverride, WindowSpec
from arcray.calib.frame import calibrate_frame
from arcray.calib.reader import read_raw
from arcray.errors import InputError
from arcray.instrument import GEOMETRY, row_of_wavelength
from arcray.testing.frames import fits_bytes, gzip_bytes, make_raw_frame


@pytest.fixture(scope="module")
def b1_sat():
    return make_raw_frame("b1", seed=11, saturate_wave=4358.34)


@pytest.fixture(scope="module")
def r1_frame():
    return make_raw_frame("r1", seed=12, bias_adu=(850.3, 901.7, 1200.2, 777.9))


def _check_recovered(kf, cf):
    good = cf.mask == 0
    resid = (cf.electrons - kf.truth_e)[good]
    # bias recovered far below one read noise; the pixel scatter IS the read noise
    assert abs(float(resid.mean())) < 0.05 * kf.read_noise_e
    assert float(resid.std()) == pytest.approx(kf.read_noise_e, rel=0.05)
    for amp in GEOMETRY[cf.camera].amps:
        blk = (cf.electrons - kf.truth_e)[amp.trim_rows, amp.trim_cols][good[amp.trim_rows, amp.trim_cols]]
        assert abs(float(blk.mean())) < 0.05
    np.testing.assert_allclose(cf.bias_adu, kf.bias_adu, atol=0.05)
    np.testing.assert_allclose(cf.gains, kf.gains)


def test_electrons_recovered_within_read_noise_median(b1_sat):
    raw_before = b1_sat.raw.copy()
    cf = calibrate_frame(b1_sat.raw, b1_sat.header, CalibConfig())
    np.testing.assert_array_equal(b1_sat.raw, raw_before)  # input never mutated
    assert cf.electrons.dtype == np.float32 and cf.electrons.shape == (4112, 4096)
    _check_recovered(b1_sat, cf)


def test_electrons_recovered_row_overscan(r1_frame):
    cf = calibrate_frame(r1_frame.raw, r1_frame.header, CalibConfig(overscan="row"))
    assert cf.electrons.shape == (4128, 4114)
    assert "overscan:row" in cf.steps
    _check_recovered(r1_frame, cf)


def test_provenance_lists_the_steps_that_ran(b1_sat):
    full = calibrate_frame(b1_sat.raw, b1_sat.header, CalibConfig(overscan="row"))
    fast = calibrate_frame(b1_sat.raw, b1_sat.header, CalibConfig(overscan="row"), keep_frame=False)
    expected = ("unread_rows", "overscan:row", "trim", "gain", "mask:saturation,not_read,bad_columns",
                "views:windows128,binned8")
    assert full.steps == fast.steps == expected
    # the verbs record themselves only inside recording(), each once, in the order they ran
    assert steps.apply_gain(np.ones(3, np.uint16), 2.0).tolist() == [2.0, 2.0, 2.0]
    with steps.recording() as ran:
        steps.apply_gain(np.ones(3, np.uint16), 2.0)
        steps.bias_level(b1_sat.raw, GEOMETRY["b1"].amps[0])
        steps.apply_gain(np.ones(3, np.uint16), 2.0)
    assert ran == ["gain", "overscan:median"]


def test_verbs_write_into_out_buffers_and_match_the_full_frame(b1_sat):
    geo = GEOMETRY["b1"]
    cf = calibrate_frame(b1_sat.raw, b1_sat.header, CalibConfig())
    unread = steps.unread_rows(b1_sat.raw, b1_sat.header, geo)
    biases = [steps.bias_level(b1_sat.raw, a, read_rows=~unread, transient_cols=geo.transient_cols)
              for a in geo.amps]
    box = (2000, 2100, 2000, 2100)  # straddles all four amps
    out = np.full((100, 100), np.nan, np.float32)
    got = steps.electrons_of_box(b1_sat.raw, geo, biases, cf.gains, unread, box, out=out)
    assert got is out and np.array_equal(out, cf.electrons[2000:2100, 2000:2100])
    assert [p.amp.amp for p in steps.trim_regions(geo, box)] == [0, 1, 2, 3]
    amp = geo.amps[3]
    adu = steps.subtract_overscan(b1_sat.raw, amp, bias=biases[3])
    assert adu.dtype == np.float32 and adu.shape == (amp.rows.stop - amp.rows.start, amp.cols.stop - amp.cols.start)
    np.testing.assert_array_equal(steps.apply_gain(adu, cf.gains[3]), cf.electrons[amp.trim_rows, amp.trim_cols])
    mask = steps.mask_of_box(b1_sat.raw, geo, saturation_adu=65535, unread=unread, box=box)
    np.testing.assert_array_equal(mask, cf.mask[2000:2100, 2000:2100])


def test_row_overscan_follows_a_bias_ramp():
    kf = make_raw_frame("b1", seed=3)
    raw = kf.raw.astype(np.int32)
    ramp = (np.arange(raw.shape[0]) // 200).astype(np.int32)[:, None]  # bias steps of 1 ADU / 200 rows
    raw = (raw + ramp).astype(np.uint16)
    med = calibrate_frame(raw, kf.header, CalibConfig(overscan="median"))
    row = calibrate_frame(raw, kf.header, CalibConfig(overscan="row"))
    err_med = (med.electrons - kf.truth_e)[med.mask == 0]
    err_row = (row.electrons - kf.truth_e)[row.mask == 0]
    assert abs(err_row.mean()) < 0.05 and err_row.std() < 1.05 * kf.read_noise_e
    assert err_med.std() > 1.5 * kf.read_noise_e  # the per-amp level cannot follow the ramp


def test_saturation_masked_never_clipped(b1_sat):
    cf = calibrate_frame(b1_sat.raw, b1_sat.header)
    sat_raw = b1_sat.raw == 65535
    assert sat_raw.sum() > 5
    sat = (cf.mask & steps.SATURATED) != 0
    assert sat.sum() == sat_raw.sum()
    vals = cf.electrons[sat]
    # kept at the measured level, in electrons: (65535 - bias) * gain, far above the study's tanh cap
    assert vals.min() == pytest.approx((65535 - b1_sat.bias_adu[0]) * b1_sat.gains[0], rel=1e-3)
    assert vals.min() > 50 * np.percentile(cf.electrons, 99.9)


def test_hartmann_subframe_rows_masked_and_zeroed():
    kf = make_raw_frame("b1", seed=5, subframe_rows=(850, 1400), header={"HARTMANN": "Left"})
    cf = calibrate_frame(kf.raw, kf.header)
    amp0 = GEOMETRY["b1"].amps[0]
    first, last = 850 - 1 - amp0.rows.start, 1400 - 1 - amp0.rows.start  # trimmed rows read
    not_read = (cf.mask & steps.NOT_READ) != 0
    rows_bad = not_read.all(axis=1)
    assert not rows_bad[first:last + 1].any()
    assert rows_bad[:first].all() and rows_bad[last + 1:].all()
    assert (cf.electrons[rows_bad] == 0).all()
    read = cf.electrons[first:last + 1] - kf.truth_e[first:last + 1]
    assert abs(read.mean()) < 0.1  # bias taken from the rows that were read
    assert cf.meta["is_hartmann"] and cf.meta["is_subframe"] and cf.meta["hartmann"] == "Left"
    assert cf.binned_mask.any() and (cf.binned_mask[0] != 0).all()


def test_zero_rows_masked_without_keywords():
    kf = make_raw_frame("b1", seed=6)
    raw = kf.raw.copy()
    raw[3000:3010] = 0
    cf = calibrate_frame(raw, kf.header)
    t = 3000 - GEOMETRY["b1"].amps[2].rows.start + GEOMETRY["b1"].amps[2].trim_rows.start
    assert ((cf.mask[t:t + 10] & steps.NOT_READ) != 0).all()
    assert not ((cf.mask[t + 10] & steps.NOT_READ) != 0).any()


def test_bad_columns_from_camera_override(b1_sat):
    cfg = CalibConfig(cameras={"b1": CameraOverride(bad_columns=(500, 3000))})
    cf = calibrate_frame(b1_sat.raw, b1_sat.header, cfg)
    bad = (cf.mask & steps.BAD_COLUMN) != 0
    assert bad[:, 500 - 128].all() and bad[:, 3000 - 128].all()
    assert bad.sum() == 2 * cf.mask.shape[0]


def test_windows_centred_on_lines_and_binned_view(b1_sat):
    cf = calibrate_frame(b1_sat.raw, b1_sat.header)
    # 8 bright-line windows, then the 4 x 4 detector grid, 128 px each
    assert cf.windows.shape == (24, 128, 128) and cf.windows_mask.shape == (24, 128, 128)
    assert cf.binned.shape == (512, 512) and cf.binned_mask.shape == (512, 512)
    line_row = float(row_of_wavelength("b1", 4358.34))
    r0, c0 = cf.window_origins[0]
    assert r0 + 64 == pytest.approx(line_row, abs=1)
    # the line is the brightest row in its window, at its centre
    prof = cf.windows[0].sum(axis=1)
    assert abs(int(prof.argmax()) - 64) <= 1
    np.testing.assert_array_equal(cf.windows[0], cf.electrons[r0:r0 + 128, c0:c0 + 128])
    block = cf.electrons[8:16, 0:8].mean()  # binned covers the central 4096 square (rows 8..4103)
    assert cf.binned[0, 0] == pytest.approx(block, rel=1e-5, abs=1e-5)


def test_red_binned_shape_matches_blue(r1_frame):
    cf = calibrate_frame(r1_frame.raw, r1_frame.header)
    assert cf.binned.shape == (512, 512) and cf.windows.shape == (24, 128, 128)


def test_window_specs_by_pixel_and_clamped(b1_sat):
    cfg = CalibConfig(window_size=64, cameras={"b1": CameraOverride(
        windows=(WindowSpec(name="corner", row=0, col=0), WindowSpec(name="c", row=2000, col=1000)))})
    cf = calibrate_frame(b1_sat.raw, b1_sat.header, cfg)
    assert cf.window_origins == [(0, 0), (1968, 968)] and cf.windows.shape == (2, 64, 64)


def test_reader_roundtrip_and_bad_inputs(tmp_path):
    kf = make_raw_frame("b1", seed=2)
    data = fits_bytes(kf.raw, kf.header)
    gz = gzip_bytes(data)
    p = tmp_path / "sdR-b1-00380717.fit.gz"
    p.write_bytes(gz)
    frame = read_raw(p)
    np.testing.assert_array_equal(frame.data, kf.raw)
    assert frame.header["FLAVOR"] == "arc" and frame.header["TAI-BEG"] == 5245217920.0
    np.testing.assert_array_equal(read_raw(data).data, kf.raw)  # uncompressed bytes too
    with pytest.raises(InputError, match="gzip"):
        read_raw(gz[: len(gz) // 2])
    with pytest.raises(InputError, match="not a FITS"):
        read_raw(gzip_bytes(b"<html>not found</html>" * 200))
    with pytest.raises(InputError, match="wrong shape"):
        read_raw(fits_bytes(np.zeros((100, 120), np.uint16), {"FLAVOR": "arc"}))
    with pytest.raises(InputError, match="truncated FITS"):
        read_raw(data[: len(data) - 100_000])


def test_float16_full_frame_error_bound(b1_sat):
    cfg = CalibConfig(full_frame="float16")
    cf = calibrate_frame(b1_sat.raw, b1_sat.header, cfg)
    s = cfg.frame_float16_scale
    decoded = (cf.electrons / s).astype(np.float16).astype(np.float32) * s
    assert np.isfinite(decoded).all()  # no overflow even at saturation
    err = np.abs(decoded - cf.electrons)
    assert (err <= 2.0 ** -11 * np.abs(cf.electrons) + s * 2.0 ** -24).all()
