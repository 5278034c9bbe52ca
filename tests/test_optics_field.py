"""arcray.optics as a displacement map: lines lie on their displaced traces; vectorised scoring."""

from __future__ import annotations

import numpy as np
import pytest

from arcray import optics
from arcray.optics import Field

FIELD = Field(a0=0.4, a1=0.25, a2=-0.2, a3=0.1, b0=-0.9, b1=0.2, b2=0.3, b3=-0.1, s0=1.1, su=0.1, sv=-0.08, sr=0.1)


@pytest.mark.parametrize("cam", ["b1", "r2"])
def test_every_line_lies_on_its_displaced_trace(cam):
    x, y, s = optics.line_positions(cam, FIELD)
    fibers = np.arange(500)[:, None]
    xt, st = optics.trace(cam, fibers, y, FIELD)
    assert np.abs(xt - x).max() < 2e-4 and np.abs(st - s).max() < 1e-5
    np.testing.assert_allclose(optics.trace_x(cam, fibers, y, FIELD), xt)
    x0, y0 = optics.nominal_line_positions(cam)
    dx, dy, ds = optics.displace(cam, FIELD, x0, y0)
    np.testing.assert_array_equal(dx, x)
    np.testing.assert_array_equal(dy, y)


def test_a_pure_y_shift_moves_tilted_traces_by_their_slope_only():
    cam = "b1"
    rows = np.array([300.0, 2056.0, 3800.0])
    fibers = np.array([0, 250, 499])[:, None]
    moved = optics.trace_x(cam, fibers, rows, Field(b0=1.0)) - optics.trace_x(cam, fibers, rows)
    slope = (optics.trace_x(cam, fibers, rows + 0.5) - optics.trace_x(cam, fibers, rows - 0.5))
    np.testing.assert_allclose(moved, -slope, atol=2e-3)
    assert np.abs(moved).max() < 0.02 and np.abs(moved).max() > 0.005


def test_wavelength_positions_match_the_lamp_lines():
    cam = "r1"
    ll = optics.lines(cam)
    x, y = optics.nominal_wavelength_positions(cam, ll.wave[:5], np.arange(0, 500, 50))
    x0, y0 = optics.nominal_line_positions(cam, np.arange(0, 500, 50), np.arange(5))
    np.testing.assert_allclose(x, x0)
    np.testing.assert_allclose(y, y0)


def test_vectorised_scoring_equals_one_field_at_a_time():
    cam = "b1"
    rng = np.random.default_rng(1)
    true = optics.field_matrix([FIELD, Field(), Field(a1=0.1, s0=1.3)])
    pred = true + rng.normal(0, 0.05, true.shape)
    many = optics.rms_line_errors(cam, pred, true)
    for i in range(3):
        one = optics.rms_line_error(cam, Field.from_array(pred[i]), Field.from_array(true[i]))
        for k in ("x", "y", "xy", "sigma"):
            assert many[k][i] == pytest.approx(one[k])
    x0, y0 = optics.nominal_line_positions(cam, [3, 400])
    dx, dy, sig = optics.displacements(cam, true, x0, y0)
    u, v = optics.normalised(cam, x0.ravel(), y0.ravel())
    np.testing.assert_allclose(dx[0], FIELD.dx(u, v))
    np.testing.assert_allclose(dy[0], FIELD.dy(u, v))
    np.testing.assert_allclose(sig[0], FIELD.sigma(u, v))
