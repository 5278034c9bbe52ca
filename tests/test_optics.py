"""The shared optical model: nominal positions, field algebra and the line-error score."""

import numpy as np
import pytest

from arcray import optics
from arcray.instrument import GEOMETRY, fiber_x, row_of_wavelength


def test_field_terms_are_edge_displacements():
    f = optics.Field(a1=0.3, b2=-0.2, su=0.1)
    assert f.dx(1.0, 0.0) == pytest.approx(0.3) and f.dx(-1.0, 0.0) == pytest.approx(-0.3)
    assert f.dy(0.0, 1.0) == pytest.approx(-0.2)
    assert f.sigma(1.0, 0.0) == pytest.approx(1.1) and f.sigma(-1.0, 0.0) == pytest.approx(0.9)
    assert optics.Field(s0=2.0).sigma(0.0, 0.0) == pytest.approx(optics.SIGMA_CLIP[1])


def test_basis_matches_field():
    rng = np.random.default_rng(0)
    coef = rng.normal(size=12)
    f = optics.Field.from_array(coef)
    u, v = rng.uniform(-1, 1, 50), rng.uniform(-1, 1, 50)
    np.testing.assert_allclose(optics.basis("x", u, v) @ coef[0:4], f.dx(u, v))
    np.testing.assert_allclose(optics.basis("y", u, v) @ coef[4:8], f.dy(u, v))
    assert optics.Field.from_array(f.as_array()) == f
    assert optics.Field.from_mapping({"t_a1": 0.5}, prefix="t_") == optics.Field(a1=0.5)
    with pytest.raises(ValueError):
        optics.basis("z", u, v)


def test_nominal_positions_follow_instrument():
    cam = "b1"
    x, y = optics.nominal_line_positions(cam)
    ll = optics.lines(cam)
    assert x.shape == y.shape == (500, len(ll))
    assert len(ll) > 20 and set(ll.lamp) <= {"Ne", "HgCd", ""}
    h, w = GEOMETRY[cam].trimmed_shape
    assert np.all((y >= -3) & (y <= h + 3)) and np.all((x > 0) & (x < w))
    # centre fiber row ~ the wavelength solution; edge fibers bend by the curvature
    np.testing.assert_allclose(ll.row, row_of_wavelength(cam, ll.wave))
    s = optics.traces(cam).s
    np.testing.assert_allclose(y[0] - ll.row, optics.LINE_CURVATURE_PX * s[0] ** 2)
    # trace at the centre row is at fiber_x
    np.testing.assert_allclose(optics.trace_x(cam, np.arange(500), h / 2), fiber_x(cam))


def test_line_positions_and_rms_error():
    cam = "r1"
    true = optics.Field(a0=0.1, a1=0.2)
    x, y, s = optics.line_positions(cam, true)
    x0, y0 = optics.nominal_line_positions(cam)
    u, _ = optics.normalised(cam, x0, y0)
    np.testing.assert_allclose(x - x0, 0.1 + 0.2 * u)
    np.testing.assert_allclose(y, y0)
    err = optics.rms_line_error(cam, optics.Field(a0=0.1), true)
    assert 0.05 < err["x"] < 0.2 and err["y"] == 0.0 and err["xy"] == pytest.approx(err["x"])
    assert optics.rms_line_error(cam, true, true)["xy"] == 0.0
    assert optics.lamp_of_species("apo", "Hg I") == "HgCd" and optics.lamp_of_species("lco", "Hg I") == ""
