"""Integration: calibrate frames rendered by the simulator (``arcray.sim``, fixture ``sim_frame``)
through its real on-disk encoding."""

from __future__ import annotations

import numpy as np
import pytest

from arcray.calib import steps
from arcray.calib.frame import calibrate_frame
from arcray.calib.reader import read_raw
from arcray.instrument import GEOMETRY

pytestmark = pytest.mark.slow


def _via_bytes(data, header):
    from arcray.sim.frames import encode_fits

    frame = read_raw(encode_fits(data, header))
    np.testing.assert_array_equal(frame.data, data)
    return frame


def _peak_offset(cf) -> float:
    prof = cf.windows[0].sum(axis=1)
    i = int(prof.argmax())
    w = prof[i - 3:i + 4] - np.median(prof)
    return float((np.arange(i - 3, i + 4) * w).sum() / w.sum()) - cf.windows.shape[-2] // 2


def test_sim_arc_lines_land_in_window_centres_and_follow_dy(sim_frame):
    base = _via_bytes(*sim_frame("b1", "arc", dy=0.0, seed=3))
    cf0 = calibrate_frame(base.data, base.header)
    assert cf0.meta["camera"] == "b1" and cf0.meta["flavor"] == "arc" and cf0.meta["observatory"] == "apo"
    assert np.isfinite(cf0.windows).all() and np.isfinite(cf0.binned).all()
    sat = sum(int((base.data[a.rows, a.cols] >= 65535).sum()) for a in GEOMETRY["b1"].amps)
    assert int(((cf0.mask & steps.SATURATED) != 0).sum()) == sat
    off0 = _peak_offset(cf0)
    assert abs(off0) < 2.5  # the Hg 4358 window is centred on the line the simulator drew
    shifted = _via_bytes(*sim_frame("b1", "arc", dy=3.0, seed=3))
    off3 = _peak_offset(calibrate_frame(shifted.data, shifted.header))
    assert off3 - off0 == pytest.approx(3.0, abs=0.5)


def test_sim_hartmann_subframe(sim_frame):
    frame = _via_bytes(*sim_frame("b1", "arc", hartmann="Left", seed=4))
    cf = calibrate_frame(frame.data, frame.header)
    assert cf.meta["is_hartmann"] and cf.meta["is_subframe"]
    zero_rows = ~frame.data.any(axis=1)
    r0 = GEOMETRY["b1"].amps[0].rows.start
    not_read = ((cf.mask & steps.NOT_READ) != 0).all(axis=1)
    np.testing.assert_array_equal(not_read[:2112 - r0], zero_rows[r0:2112])
    assert not_read[2112 - r0:].all()
    read = ~not_read
    assert read.sum() >= 540 and np.isfinite(cf.electrons[read]).all()
