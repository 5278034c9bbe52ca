import numpy as np
import pytest

from arcray.analysis.lineshift import batch_shifts, measure_shift
from arcray.errors import InputError
from arcray.testing.latents import arc_frame


@pytest.mark.parametrize("dy,dx,sigma", [(0.3, 0.0, 1.0), (0.0, -0.27, 1.3), (1.45, 0.6, 1.0),
                                         (-2.2, 1.1, 1.2), (0.05, 0.0, 1.0)])
def test_known_subpixel_shift_recovered(dy, dx, sigma):
    ref = arc_frame(sigma=sigma)
    img = arc_frame(dy, dx, sigma=sigma, noise=5.0)
    my, mx = measure_shift(ref, img)
    assert abs(my - dy) < 0.05
    assert abs(mx - dx) < 0.05


def test_sign_convention_and_antisymmetry():
    a, b = arc_frame(), arc_frame(0.7, -0.4)
    fwd, back = measure_shift(a, b), measure_shift(b, a)
    assert fwd[0] > 0 and fwd[1] < 0
    assert np.allclose(fwd, [-back[0], -back[1]], atol=0.03)


def test_batch_scale_and_empty_frame():
    ref = np.stack([arc_frame(), np.zeros((128, 128))])
    img = np.stack([arc_frame(0.5, 0.25), np.zeros((128, 128))])
    out = batch_shifts(ref, img, pixel_scale=8.0)
    assert out.shape == (2, 2)
    assert abs(out[0, 0] - 4.0) < 0.3 and abs(out[0, 1] - 2.0) < 0.3
    assert np.isnan(out[1]).all()  # no signal: unknown, not zero


def test_bad_shapes_raise():
    with pytest.raises(InputError):
        measure_shift(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(InputError):
        batch_shifts(np.zeros((2, 8, 8)), np.zeros((8, 8)))
