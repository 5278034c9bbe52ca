"""Pixel sources: stamps from raw ADU are bit-identical to the same stamps of the full calibrated frame."""

from __future__ import annotations

import numpy as np
import pytest

from arcray.calib import steps
from arcray.calib.config import CalibConfig, CameraOverride
from arcray.calib.frame import calibrate_frame
from arcray.testing.frames import make_raw_frame
from arcray.instrument import GEOMETRY
from arcray.measure import FrameSource, RawSource


def _raw_source(kf, camera: str, method: str, bad_columns=()) -> RawSource:
    """A RawSource with the biases, gains and unread rows calibration uses (calib.frame)."""
    geo = GEOMETRY[camera]
    unread = steps.unread_rows(kf.raw, kf.header, geo)
    biases = [steps.bias_level(kf.raw, a, method=method, read_rows=~unread, transient_cols=geo.transient_cols)
              for a in geo.amps]
    return RawSource(kf.raw, geo, biases, kf.gains, unread, saturation_adu=65535, bad_columns=bad_columns)


def _origins(shape, n, size, rng):
    h, w = shape
    r0 = rng.integers(0, h - size[0] + 1, n)
    c0 = rng.integers(0, w - size[1] + 1, n)
    split_r, split_c = 2056 if h == 4112 else 2064, 2048 if w == 4096 else 2057
    # stamps straddling the amp boundaries (both, rows, columns) and touching the frame's corners
    r0[:4] = [split_r - 3, split_r - 5, 10, 0]
    c0[:4] = [split_c - 2, 100, split_c - 4, w - size[1]]
    return r0, c0


@pytest.mark.parametrize("camera,method,kw", [
    ("b1", "median", dict(saturate_wave=4799.91)),
    ("r1", "row", dict(saturate_wave=7032.41, subframe_rows=(850, 1400), header={"HARTMANN": "Left"})),
])
def test_raw_stamps_are_bit_identical_to_the_full_frame(camera, method, kw):
    kf = make_raw_frame(camera, seed=5, poisson=True, **kw)
    bad = (1000, 2300)
    cfg = CalibConfig(overscan=method, cameras={camera: CameraOverride(bad_columns=bad)})
    full = calibrate_frame(kf.raw, kf.header, cfg, keep_frame=True)
    raw_src = _raw_source(kf, camera, method, bad)
    frame_src = FrameSource(full.electrons, full.mask)
    assert (full.mask & 4).any() and ((full.mask & 1).any() or "subframe_rows" in kw)  # flags exercised
    r0, c0 = _origins(full.electrons.shape, 3000, (11, 9), np.random.default_rng(1))
    e_raw, m_raw = raw_src.stamps(r0, c0, 11, 9)
    e_full, m_full = frame_src.stamps(r0, c0, 11, 9)
    assert e_raw.dtype == np.float32 and m_raw.dtype == np.uint8
    np.testing.assert_array_equal(e_raw.view(np.uint32), e_full.view(np.uint32))  # bits, not values
    np.testing.assert_array_equal(m_raw, m_full)
    e_blk, m_blk = raw_src.block(slice(None), slice(None))
    np.testing.assert_array_equal(e_blk.view(np.uint32), full.electrons.view(np.uint32))
    np.testing.assert_array_equal(m_blk, full.mask)
    if "subframe_rows" in kw:  # rows not read: 0 e- and flagged, in stamps as in the full frame
        assert (m_blk[0] & 2).all() and (e_blk[0] == 0).all()


def test_sources_refuse_stamps_off_the_frame():
    frame = FrameSource(np.zeros((4112, 4096), np.float32))
    with pytest.raises(ValueError, match="must lie on"):
        frame.stamps(np.array([4110]), np.array([0]), 5, 5)
    with pytest.raises(ValueError, match="must lie on"):
        frame.stamps(np.array([0]), np.array([-1]), 5, 5)
    with pytest.raises(ValueError, match="differ"):
        FrameSource(np.zeros((10, 10), np.float32), np.zeros((10, 11), np.uint8))
