"""The fast path (views straight from raw ADU, ``keep_frame=False``) against the full-frame path."""

from __future__ import annotations

import numpy as np
import pytest

from arcray.calib import direct
from arcray.calib.config import CalibConfig, CameraOverride, WindowSpec
from arcray.calib.frame import calibrate_frame
from arcray.testing.frames import make_raw_frame
from arcray.calib.views import bin_mean, central_square
from arcray.instrument import GEOMETRY

EPS32 = float(np.finfo(np.float32).eps)


def _assert_same(raw, header, cfg):
    full = calibrate_frame(raw, header, cfg)
    fast = calibrate_frame(raw, header, cfg, keep_frame=False)
    assert fast.electrons is None and fast.mask is None  # the full frame was never built
    assert fast.trimmed_shape == full.electrons.shape
    np.testing.assert_array_equal(fast.windows, full.windows)  # same float32 operations
    np.testing.assert_array_equal(fast.windows_mask, full.windows_mask)
    np.testing.assert_array_equal(fast.binned_mask, full.binned_mask)
    assert fast.window_origins == full.window_origins and fast.bias_adu == full.bias_adu
    # binned: the full path's own float32 summation error is <= ~2 f eps * mean |e-| of a block
    f = cfg.bin_factor
    rs, cs = central_square(full.electrons.shape, cfg.binned_size)
    scale = bin_mean(np.abs(full.electrons[rs, cs]), f)
    err = np.abs(fast.binned.astype(np.float64) - full.binned)
    assert (err <= 4 * f * EPS32 * scale + 1e-6).all(), float((err / (scale + 1e-6)).max())
    assert fast.binned.dtype == np.float32 and fast.binned.shape == full.binned.shape
    return full, fast


def test_fast_path_matches_full_frame_with_saturation_and_bad_columns():
    kf = make_raw_frame("b1", seed=21, saturate_wave=4799.91)
    # bad columns (1/8 of a block > 0.1) and windows straddling the amp corners (2056, 2048)
    cfg = CalibConfig(binned_bad_fraction=0.1, cameras={"b1": CameraOverride(bad_columns=(1000, 2300), windows=(
        WindowSpec(name="corner", row=2056, col=2048), WindowSpec(name="edge", row=0, col=4095),
        WindowSpec(name="line", wave=4799.91, bundle=6)))})
    full, fast = _assert_same(kf.raw, kf.header, cfg)
    assert full.windows_mask.any() and full.binned_mask.any()  # the flags were exercised
    assert (fast.binned_mask & 4).any() and (fast.windows_mask & 1).any()


def test_fast_path_matches_full_frame_red_row_overscan_hartmann():
    kf = make_raw_frame("r1", seed=22, subframe_rows=(850, 1400), header={"HARTMANN": "Left"},
                        saturate_wave=7032.41)
    raw = kf.raw.copy()
    raw[900:950, 300:310] = 2 * raw[900:950, 300:310] // 3  # a bias feature the row method follows
    full, fast = _assert_same(raw, kf.header, CalibConfig(overscan="row"))
    assert (fast.binned_mask & 2).any() and (fast.binned[0] == 0).all()  # rows not read: 0 e-


def test_fast_path_values_are_electrons():
    kf = make_raw_frame("b1", seed=23)
    cf = calibrate_frame(kf.raw, kf.header, keep_frame=False)
    rs, cs = central_square(kf.truth_e.shape, 4096)
    truth = bin_mean(kf.truth_e[rs, cs], 8)
    # an 8x8 mean has read noise / 8; bias recovered far below that
    resid = cf.binned - truth
    assert abs(float(resid.mean())) < 0.01 and float(resid.std()) == pytest.approx(kf.read_noise_e / 8, rel=0.05)


def test_unaligned_binned_square_falls_back_to_full_path():
    geo = GEOMETRY["b1"]
    assert all(direct.binned_aligned(GEOMETRY[c], 4096, 8) for c in GEOMETRY)
    assert not direct.binned_aligned(geo, 4040, 8)  # amp edge 2056 - 36 = 2020 is not on an 8 edge
    kf = make_raw_frame("b1", seed=24)
    cfg = CalibConfig(binned_size=4040)
    fast = calibrate_frame(kf.raw, kf.header, cfg, keep_frame=False)
    full = calibrate_frame(kf.raw, kf.header, cfg)
    np.testing.assert_array_equal(fast.binned, full.binned)
