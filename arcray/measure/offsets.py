"""The global shift of a frame against the nominal model, and the arc-template correlation BESTCORR.

Before any line is centroided, the frame's global shift (a few px at most) is found by
cross-correlation, as arc2trace does (``image.xcorr2d`` before ``automark``):

- across fibers (x): the columns of a few bands of rows are summed into one profile each (for an
  arc, bands around the nominal rows of its brightest lines, wide enough for the largest row
  shift searched; for a flat, any rows) and correlated with a comb of Gaussians at the alive
  fibers' nominal trace centres. The bundle gaps (16 px against the 6.55-6.73 px pitch) make the
  true shift stand out from the one-pitch aliases;
- along rows (y, arcs only): the spectrum of the five central fibers (a 7-column boxcar at the
  x-shifted nominal traces, median over the fibers, as fitarcimage's ``djs_median``) against a
  template of the lamp lines (line-list intensities, Gaussians of 1 px), both square-rooted so the
  brightest lines do not decide alone.

Both profiles are high-passed (minus a 31-px running mean) so scattered light does not pull the
peak. The integer peak is refined by a parabola through its neighbours.

BESTCORR (fitarcimage ``lampfit``/``corrlamps``): the largest Pearson correlation, over the
searched lags, between the central spectrum capped at 3000 e- and smoothed to 10 px FWHM, and the
square root of the line-list template at 10 px FWHM.
"""

from __future__ import annotations

import numpy as np

from arcray import optics
from arcray.instrument import N_FIBERS
from arcray.measure.source import PixelSource

CENTRAL_FIBERS = np.arange(N_FIBERS // 2 - 3, N_FIBERS // 2 + 2)  # 0-based 247..251
HIGHPASS_PX = 31


def _highpass(p: np.ndarray) -> np.ndarray:
    k = np.ones(HIGHPASS_PX) / HIGHPASS_PX
    return p - np.convolve(p, k, mode="same")


def _gauss_sum(n: int, centres: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Sum of Gaussians (peak = weight) on pixels 0..n-1."""
    half = int(np.ceil(5 * sigma))
    c = np.asarray(centres, float)
    k = np.floor(c).astype(np.int64)[:, None] + np.arange(-half, half + 2)
    vals = np.asarray(weights, float)[:, None] * np.exp(-0.5 * ((k - c[:, None]) / sigma) ** 2)
    ok = (k >= 0) & (k < n)
    return np.bincount(k[ok], vals[ok], minlength=n)[:n]


def _correlate(data: np.ndarray, template: np.ndarray, max_lag: int) -> np.ndarray:
    """``C[l] = sum_i data[i] * template[i - l]`` for ``l = -max_lag..max_lag`` (zero outside)."""
    n = data.size
    out = np.empty(2 * max_lag + 1)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        if lag >= 0:
            out[i] = data[lag:] @ template[:n - lag]
        else:
            out[i] = data[:n + lag] @ template[-lag:]
    return out


def peak_lag(corr: np.ndarray, max_lag: int) -> tuple[float, float]:
    """Refined lag of the largest value of ``corr`` (lags ``-max_lag..max_lag``) and its contrast:
    (peak - median) / (max - median), 1 for a clear peak; 0 when flat."""
    i = int(np.argmax(corr))
    lag = float(i - max_lag)
    if 0 < i < corr.size - 1:
        a, b, c = corr[i - 1], corr[i], corr[i + 1]
        den = a - 2 * b + c
        if den < 0:
            lag += float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    med = float(np.median(corr))
    contrast = float((corr[i] - med) / (abs(corr[i]) + abs(med))) if corr[i] != med else 0.0
    return lag, contrast


def _band_profile(source: PixelSource, rows: slice) -> np.ndarray:
    e, m = source.block(rows, slice(None))
    return np.where(m == 0, e, 0.0).sum(axis=0, dtype=np.float64)


def x_offset(source: PixelSource, camera: str, band_rows: list[float], max_lag: int,
             half_rows: int) -> tuple[float, float]:
    """Global shift across fibers (px, measured minus nominal) and its peak contrast, from bands of
    ``2 * half_rows + 1`` rows centred on ``band_rows`` (trimmed rows)."""
    h, w = source.shape
    t = optics.traces(camera)
    alive = np.flatnonzero(t.alive)
    total = np.zeros(2 * max_lag + 1)
    for yc in band_rows:
        r0 = int(np.clip(round(yc) - half_rows, 0, h - 1))
        r1 = int(np.clip(round(yc) + half_rows + 1, r0 + 1, h))
        prof = _band_profile(source, slice(r0, r1))
        xs = optics.trace_x(camera, alive, 0.5 * (r0 + r1 - 1))
        comb = _gauss_sum(w, xs, np.ones(xs.size), 1.2)
        total += _correlate(_highpass(prof), _highpass(comb), max_lag)
    return peak_lag(total, max_lag)


def central_spectrum(source: PixelSource, camera: str, dx: float) -> np.ndarray:
    """Median over the five central fibers of a 7-column boxcar along every row (e- per row)."""
    h, w = source.shape
    rows = np.arange(h)
    xs = optics.trace_x(camera, CENTRAL_FIBERS[:, None], rows[None, :]) + dx  # [5, H]
    c0 = np.clip(np.rint(xs).astype(np.intp) - 3, 0, w - 7)
    lo, hi = int(c0.min()), int(c0.max()) + 7  # one block holds the five traces on every row
    e, m = source.block(slice(None), slice(lo, hi))
    e = np.where(m == 0, e, np.float32(0.0))
    cum = np.concatenate([np.zeros((h, 1), np.float64), np.cumsum(e, axis=1, dtype=np.float64)], axis=1)
    idx = (c0 - lo).T  # [H, 5]
    spec = np.take_along_axis(cum, idx + 7, axis=1) - np.take_along_axis(cum, idx, axis=1)
    return np.median(spec, axis=1)


def line_template(camera: str, n: int, sigma: float) -> np.ndarray:
    """Lamp lines of the site (line-list intensities) at the central fibers' nominal rows."""
    ll = optics.lines(camera)
    lit = np.array([bool(lamp) for lamp in ll.lamp])
    s = optics.traces(camera).s[CENTRAL_FIBERS].mean()
    rows = ll.row[lit] + optics.LINE_CURVATURE_PX * s * s
    return _gauss_sum(n, rows, ll.intensity[lit], sigma)


def y_offset(spectrum: np.ndarray, camera: str, max_lag: int) -> tuple[float, float]:
    """Global shift along rows (px, measured minus nominal) of an arc's central spectrum."""
    data = _highpass(np.sqrt(np.maximum(spectrum, 0.0)))
    model = _highpass(np.sqrt(line_template(camera, spectrum.size, 1.0)))
    return peak_lag(_correlate(data, model, max_lag), max_lag)


def bestcorr(spectrum: np.ndarray, camera: str, max_lag: int, fwhm_px: float, cap_e: float) -> float:
    """fitarcimage's BESTCORR: best Pearson correlation of the capped, smoothed spectrum with the
    square root of the smoothed line template, over lags ``-max_lag..max_lag``."""
    sig = fwhm_px / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    half = int(np.ceil(4 * sig))
    kern = np.exp(-0.5 * (np.arange(-half, half + 1) / sig) ** 2)
    spec = np.convolve(np.minimum(spectrum, cap_e), kern / kern.sum(), mode="same")
    model = np.sqrt(line_template(camera, spectrum.size, sig))
    n = spec.size
    best = float("nan")  # no lag with any variance (no light): not measurable
    for lag in range(-max_lag, max_lag + 1):
        a = spec[max(lag, 0):n + min(lag, 0)]
        b = model[max(-lag, 0):n - max(lag, 0)]
        sa, sb = a.std(), b.std()
        if sa > 0 and sb > 0:
            c = float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))
            best = c if not best >= c else best
    return best
