"""The whole-detector field in the rendered pixels: each term moves or widens the lines where it should.

Measured on noiseless light (``frames.render_light``, trimmed electrons) against a nominal frame of
the same exposure: shifts by Fourier-interpolated cross-correlation of window profiles, line
centres by Gaussian-weighted centroids, widths by second moments. The expected values come from the
set coefficients (and, for the centroid test, from the truth API).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from scipy.ndimage import median_filter

from arcray import optics
from arcray.instrument import OBSERVATORY
from arcray.optics import Field
from arcray.sim.frames import render_light
from arcray.sim.light import hartmann_defocus
from arcray.sim.schedule import sample_exposure
from arcray.sim.state import CalibState
from arcray.sim.truth import true_lines


def xshift(a: np.ndarray, b: np.ndarray) -> float:
    """Shift ``s`` (px) with ``b(x) ~ a(x - s)``: peak of the Fourier-interpolated cross-correlation
    of the mean-removed, Hann-tapered profiles, refined to 1e-4 px."""
    n = a.size
    w = np.hanning(n)
    fa, fb = np.fft.rfft((a - a.mean()) * w), np.fft.rfft((b - b.mean()) * w)
    k = np.arange(fa.size)
    cross = np.conj(fa) * fb * np.where((k == 0) | (k == n // 2), 1.0, 2.0)

    def cc(s):
        return (cross * np.exp(2j * np.pi * k * s / n)).real.sum(-1)

    lags = np.linspace(-2, 2, 401)
    s = lags[np.argmax(cc(lags[:, None]))]
    for step in (0.01, 0.001, 0.0001):
        grid = s + np.arange(-10, 11) * step
        s = grid[np.argmax(cc(grid[:, None]))]
    return float(s)


def centroids(img, x, y, sw=1.0, hw=6):
    """Gaussian-weighted (``sw`` px) iterative centroids of the blobs near ``(x, y)``."""
    offs = np.arange(-hw, hw + 1)
    for _ in range(40):
        rows = np.rint(y).astype(int)[:, None, None] + offs[None, :, None]
        cols = np.rint(x).astype(int)[:, None, None] + offs[None, None, :]
        w = np.exp(-0.5 * (((cols - x[:, None, None]) / sw) ** 2 + ((rows - y[:, None, None]) / sw) ** 2))
        wi = w * img[rows, cols]
        nx, ny = (wi * cols).sum((1, 2)) / wi.sum((1, 2)), (wi * rows).sum((1, 2)) / wi.sum((1, 2))
        done = max(np.abs(nx - x).max(), np.abs(ny - y).max()) < 1e-7
        x, y = nx, ny
        if done:
            break
    return x, y


def row_widths(img, x, y, hw=7):
    """Gaussian width along rows of each line (second moment of the +-3-column sum, pixel-corrected)."""
    rows = np.rint(y).astype(int)[:, None, None] + np.arange(-hw, hw + 1)[None, :, None]
    cols = np.rint(x).astype(int)[:, None, None] + np.arange(-3, 4)[None, None, :]
    prof = img[rows, cols].sum(-1)
    r = rows[:, :, 0]
    m = (prof * r).sum(1) / prof.sum(1)
    return np.sqrt((prof * (r - m[:, None]) ** 2).sum(1) / prof.sum(1) - 1 / 12)


def col_widths(img, x, row):
    """Gaussian width across columns of the traces centred at ``x`` on one ``row``: least-squares
    fit of a pixel-integrated Gaussian (centre fixed, amplitude free) to the central 5 pixels, which
    the neighbouring fibers (6.5 px away) do not reach."""
    from scipy.special import ndtr

    cols = np.rint(x).astype(int)[:, None] + np.arange(-2, 3)[None, :]
    data = img[row][cols].astype(float)
    grid = np.arange(0.8, 1.6, 0.0005)
    d = cols[None] - x[None, :, None]
    model = ndtr((d + 0.5) / grid[:, None, None]) - ndtr((d - 0.5) / grid[:, None, None])
    amp = (model * data).sum(-1) / (model * model).sum(-1)
    resid = ((amp[..., None] * model - data) ** 2).sum(-1)
    return grid[np.argmin(resid, axis=0)]


@lru_cache(maxsize=None)
def exposure(flavor="arc", hartmann="Out", camera="b1"):
    return sample_exposure(flavor, hartmann, OBSERVATORY[camera], stow=False if hartmann == "Out" else None)


@lru_cache(maxsize=None)
def light(flavor="arc", hartmann="Out", camera="b1", **terms):
    img = render_light(camera, exposure(flavor, hartmann, camera), CalibState(field=Field(**terms)))
    img.setflags(write=False)
    return img


def isolated_lines(camera: str, min_gap: float = 12.0, margin: float = 20.0) -> np.ndarray:
    rows = optics.lines(camera).row
    h = optics.detector_size(camera)[0]
    gap = np.array([np.min(np.abs(np.delete(rows, i) - rows[i])) for i in range(rows.size)])
    return np.flatnonzero((gap > min_gap) & (rows > margin) & (rows < h - margin))


def _edge_windows(camera: str, term: str):
    """Two windows (slices) at opposite edges for ``term`` and the profile axis to sum over."""
    h, w = optics.detector_size(camera)
    if term in ("a1", "b1"):  # left and right edges, central rows
        wins = [(slice(1500, 2600), slice(c, c + 256)) for c in (300, w - 556)]
    else:  # bottom and top edges, central columns
        wins = [(slice(r, r + 300), slice(1800, 2300)) for r in (400, h - 420)]  # the first blue line is at row ~450
    return wins, (0 if term in ("a1", "a2") else 1)  # x shifts: sum over rows; y shifts: over columns


@pytest.mark.parametrize("term", ["a1", "a2", "b1", "b2"])
def test_each_term_moves_opposite_edges_opposite_ways_by_the_set_amount(term):
    """a1 (magnification) and b1 move the left and right edges, a2 and b2 (dispersion scale) the
    bottom and top, in opposite directions by ``coefficient x u`` (or ``v``) there."""
    cam, value = "b1", 0.3
    nom, moved = light(), light(**{term: value})
    h, w = nom.shape
    wins, axis = _edge_windows(cam, term)
    shifts = []
    for win in wins:
        # expected: the coefficient times the light-weighted u (a1, b1) or v (a2, b2) of the window
        rr, cc = np.mgrid[win]
        uv = (cc - w / 2) / (w / 2) if term in ("a1", "b1") else (rr - h / 2) / (h / 2)
        want = value * float((nom[win] * uv).sum() / nom[win].sum())
        got = xshift(nom[win].sum(axis=axis), moved[win].sum(axis=axis))
        assert got == pytest.approx(want, abs=0.03), (term, win, got, want)
        shifts.append(got)
    assert shifts[0] < -0.2 and shifts[1] > 0.2  # opposite directions, ~0.24-0.26 px each


def test_a_global_shift_moves_every_window_alike():
    nom, moved = light(), light(a0=0.3, b0=-0.4)
    for term in ("a1", "a2"):
        for win in _edge_windows("b1", term)[0]:
            assert xshift(nom[win].sum(0), moved[win].sum(0)) == pytest.approx(0.3, abs=0.01)
            assert xshift(nom[win].sum(1), moved[win].sum(1)) == pytest.approx(-0.4, abs=0.01)


def test_focus_tilt_widths_per_quadrant_differ_as_set():
    cam = "b1"
    f = Field(s0=1.1, su=0.15, sv=-0.10)
    img = light(s0=1.1, su=0.15, sv=-0.10)
    fibers = np.flatnonzero(optics.traces(cam).alive)[::3]
    x, y, s = (a.ravel() for a in optics.line_positions(cam, f, fibers, isolated_lines(cam)))
    h, w = img.shape
    measured = row_widths(img, x, y)
    bright = img[np.rint(y).astype(int), np.rint(x).astype(int)] > 300
    quads = {}
    for name, sel in {"lower-left": (x < w / 2) & (y < h / 2), "lower-right": (x >= w / 2) & (y < h / 2),
                      "upper-left": (x < w / 2) & (y >= h / 2), "upper-right": (x >= w / 2) & (y >= h / 2)}.items():
        m = sel & bright
        assert m.sum() > 100
        quads[name] = (float(np.median(measured[m])), float(np.median(s[m])))
        assert quads[name][0] == pytest.approx(quads[name][1], abs=0.01), name
    u = lambda q: np.median(((x - w / 2) / (w / 2))[q])  # noqa: E731
    left, right = (x < w / 2) & bright, (x >= w / 2) & bright
    diff = np.median(measured[right]) - np.median(measured[left])
    assert diff == pytest.approx(0.15 * (u(right) - u(left)), abs=0.015)
    assert quads["lower-right"][0] - quads["upper-right"][0] > 0.05  # sv < 0: the bottom is wider


def test_truth_line_centres_agree_with_centroids_on_a_noiseless_frame():
    cam = "b1"
    terms = dict(a0=0.4, a1=0.25, a2=-0.2, a3=0.1, b0=-0.6, b1=0.2, b2=0.3, b3=-0.1, s0=1.1, su=0.1,
                 sv=-0.08, sr=0.1)
    img = light(**terms)
    row = {"camera": cam, **terms}
    fibers = np.flatnonzero(optics.traces(cam).alive)[::7]
    x, y, s = (a.ravel() for a in true_lines(row, fibers, isolated_lines(cam)))
    keep = img[np.rint(y).astype(int), np.rint(x).astype(int)] > 200
    assert keep.sum() > 1000
    mx, my = centroids(img, x[keep] + 0.3, y[keep] - 0.3)  # start off the answer
    assert np.abs(mx - x[keep]).max() < 0.02 and np.abs(my - y[keep]).max() < 0.02
    assert np.sqrt(np.mean((mx - x[keep]) ** 2)) < 0.005
    assert np.abs(row_widths(img, x[keep], y[keep]) - s[keep]).max() < 0.01
    # and the nominal positions are NOT good enough (the field matters by > 0.5 px somewhere)
    x0, y0 = (a.ravel() for a in optics.nominal_line_positions(cam, fibers, isolated_lines(cam)))
    assert np.hypot(mx - x0[keep], my - y0[keep]).max() > 0.5


def test_flat_traces_follow_dx_and_the_width_field():
    cam = "b1"
    nom, moved = light("flat"), light("flat", a1=0.3, su=0.15)
    h, w = nom.shape
    wins, _ = _edge_windows(cam, "a1")
    got = [xshift(nom[win].sum(0), moved[win].sum(0)) for win in wins]
    for win, g in zip(wins, got):
        rr, cc = np.mgrid[win]
        want = 0.3 * float((nom[win] * (cc - w / 2) / (w / 2)).sum() / nom[win].sum())
        assert g == pytest.approx(want, abs=0.03)
    f = Field(a1=0.3, su=0.15)
    fibers = np.flatnonzero(optics.traces(cam).alive)
    xt, st = optics.trace(cam, fibers, 2050.0, f)
    widths = col_widths(moved, xt, 2050)
    assert np.abs(widths - st).max() < 0.01
    assert np.median(widths[-60:]) - np.median(widths[:60]) == pytest.approx(
        np.median(st[-60:]) - np.median(st[:60]), abs=0.01)
    assert np.median(st[-60:]) - np.median(st[:60]) > 0.2


def test_hartmann_defocus_follows_the_local_width():
    """Left and Right door frames separate lines by 2 x the defocus of the local width: with a
    focus tilt, by more on the side where the lines are wider."""
    cam = "b1"
    terms = dict(s0=1.05, su=0.15)
    left, right = light("arc", "Left", **terms), light("arc", "Right", **terms)
    assert not left[:700].any() and left[800:1300].any()  # APO sub-frame
    h, w = left.shape
    seps = []
    for c0 in (300, w - 556):
        win = (slice(800, 1340), slice(c0, c0 + 256))
        sep = xshift(left[win].sum(1), right[win].sum(1))
        rr, cc = np.mgrid[win]
        u, v = (cc - w / 2) / (w / 2), (rr - h / 2) / (h / 2)
        sig = Field(**terms).sigma(u, v)
        want = 2 * float((left[win] * hartmann_defocus(sig)).sum() / left[win].sum())
        assert sep == pytest.approx(want, abs=0.03)
        seps.append(sep)
    assert seps[1] - seps[0] > 0.25  # wider on the right: a larger Hartmann separation


def test_science_sky_lines_follow_the_field():
    cam = "r1"
    nom, moved = light("science", camera=cam), light("science", camera=cam, b0=0.5, b2=0.3)
    h, w = nom.shape
    for r0 in (600, h - 1200):
        win = (slice(r0, r0 + 600), slice(1800, 2300))
        hp = [p - median_filter(p, 41) for p in (nom[win].sum(1), moved[win].sum(1))]
        rr, _ = np.mgrid[win]
        lines = np.clip(hp[0], 0, None)[:, None] * np.ones(win[1].stop - win[1].start)
        want = 0.5 + 0.3 * float((lines * (rr - h / 2) / (h / 2)).sum() / lines.sum())
        assert xshift(*hp) == pytest.approx(want, abs=0.03)
