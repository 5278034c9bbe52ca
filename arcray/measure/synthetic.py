"""Known-answer arcs and flats for the measurement tests and benchmark (independent of ``arcray.sim``).

Each (fiber, line) of an arc is painted at ``optics.line_positions(camera, field)`` as a product of
exact pixel integrals (differences of normal CDFs) of a Gaussian of the local width: along rows
centred on the line's true row ``y``, across columns centred on ``x + slope * (row - y)`` (the
trace's nominal slope there), so the line's flux centroid is exactly ``(x, y)``. Flats paint every
row of every alive fiber at ``optics.trace_x(camera, fiber, row, field)`` with the width field
there. Noise is Gaussian with the Poisson + read-noise variance (as the simulator draws it);
``to_raw`` turns electrons into a full raw frame (bias pedestal, gain per amp, overscan holding
bias + read noise, clipped at 65535 ADU). Nothing here is used by the pipeline itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from arcray import optics
from arcray.instrument import GEOMETRY, N_FIBERS, RAW_SHAPE, READ_NOISE_E, SATURATION_ADU, gains

CENTRE_FRACTION_2D = 0.3829249 ** 2  # share of a centred sigma = 1 px Gaussian's flux in its peak pixel
BIAS_ADU = (1012.25, 987.5, 1040.75, 1003.0)  # amps 0..3


@dataclass(frozen=True)
class Painted:
    electrons: np.ndarray  # float32 [H, W] trimmed frame, with noise when asked
    throughput: np.ndarray  # [500] relative, 0 for dead fibers
    flux: np.ndarray | None  # arcs: [500, n_lines] true line fluxes (e-); flats: None


def throughputs(camera: str, seed: int = 0, spread: float = 0.04) -> np.ndarray:
    """Fixed fiber throughputs (~1 +- spread), 0 for the camera's dead fibers."""
    rng = np.random.default_rng(seed)
    thru = np.clip(rng.normal(1.0, spread, N_FIBERS), 0.85, 1.15)
    thru[~optics.traces(camera).alive] = 0.0
    return thru


def _pixel_weights(centres: np.ndarray, sigma: np.ndarray, first: np.ndarray, n: int) -> np.ndarray:
    """Exact pixel integrals ``[..., n]`` of Gaussians at ``centres`` over pixels ``first + 0..n-1``."""
    k = first[..., None] + np.arange(n)
    s = sigma[..., None]
    c = centres[..., None]
    return ndtr((k + 0.5 - c) / s) - ndtr((k - 0.5 - c) / s)


def _add(img: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
    h, w = img.shape
    ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w) & (vals != 0)
    idx = rows[ok].astype(np.int64) * w + cols[ok]
    img += np.bincount(idx, vals[ok], minlength=h * w).reshape(h, w).astype(np.float32)


def arc_electrons(camera: str, field: optics.Field, *, lamp_scale: dict[str, float] | None = None,
                  peak_e: float = 50000.0, unassigned_scale: float = 1.0, throughput: np.ndarray | None = None,
                  seed: int = 0, noise: bool = True, read_noise_e: float | None = None) -> Painted:
    """An arc: every listed line of ``camera`` at its true position and width under ``field``.

    Fluxes follow the line list's relative intensities times ``lamp_scale[lamp]`` (0 = lamp out;
    lines no lamp of the site emits take ``unassigned_scale``), the brightest line peaking at
    ``peak_e`` e- in its central pixel at sigma = 1 px and throughput 1."""
    h, w = optics.detector_size(camera)
    ll = optics.lines(camera)
    scale = np.array([unassigned_scale if not lamp else (lamp_scale or {}).get(lamp, 1.0) for lamp in ll.lamp])
    thru = throughputs(camera) if throughput is None else np.asarray(throughput, float)
    flux_line = ll.intensity / ll.intensity.max() * peak_e / CENTRE_FRACTION_2D * scale
    x, y, sig = optics.line_positions(camera, field)
    flux = thru[:, None] * flux_line[None, :]
    t = optics.traces(camera)
    vy = (y - h / 2.0) / (h / 2.0)
    slope = (2.0 * t.bow[:, None] * vy + t.tilt[:, None]) / (h / 2.0)  # d(trace x)/d(row), nominal
    img = np.zeros((h, w), np.float32)
    rr = 9  # rows / columns each side: > 6 sigma at the widest clip
    for f0 in range(0, N_FIBERS, 50):
        sl = slice(f0, f0 + 50)
        keep = flux[sl] > 0
        xs, ys, ss, fl, sp = (a[sl][keep] for a in (x, y, sig, flux, slope))
        r_first = np.floor(ys).astype(np.int64) - rr
        wy = _pixel_weights(ys, ss, r_first, 2 * rr + 1)  # [m, R]
        rows = r_first[:, None] + np.arange(2 * rr + 1)
        xc = xs[:, None] + sp[:, None] * (rows - ys[:, None])  # [m, R]
        c_first = np.floor(xc).astype(np.int64) - rr
        wx = _pixel_weights(xc, np.broadcast_to(ss[:, None], xc.shape), c_first, 2 * rr + 1)  # [m, R, C]
        vals = fl[:, None, None] * wy[:, :, None] * wx
        cols = c_first[:, :, None] + np.arange(2 * rr + 1)
        _add(img, np.broadcast_to(rows[:, :, None], vals.shape), cols, vals)
    if noise:
        img = _noisy(img, camera, seed, read_noise_e)
    return Painted(electrons=img, throughput=thru, flux=flux)


def flat_electrons(camera: str, field: optics.Field, *, peak_e_per_row: float = 60000.0,
                   throughput: np.ndarray | None = None, seed: int = 0, noise: bool = True,
                   read_noise_e: float | None = None) -> Painted:
    """A flat: every alive fiber's trace on every row under ``field``, ``peak_e_per_row`` e- per row
    at the spectrum's peak (a smooth continuum falling to 40 % at the ends)."""
    h, w = optics.detector_size(camera)
    thru = throughputs(camera) if throughput is None else np.asarray(throughput, float)
    alive = np.flatnonzero(thru > 0)
    img = np.zeros((h, w), np.float32)
    rr = 9
    for r0 in range(0, h, 256):
        rows = np.arange(r0, min(r0 + 256, h))
        xc = optics.trace_x(camera, alive[:, None], rows[None, :], field)  # [F, R]
        u, v = optics.normalised(camera, optics.trace_x(camera, alive[:, None], rows[None, :]), rows[None, :])
        sig = field.sigma(u, v)
        cont = 0.4 + 0.6 * np.exp(-0.5 * ((rows - 0.55 * h) / (0.35 * h)) ** 2)
        fl = thru[alive][:, None] * cont[None, :] * peak_e_per_row
        c_first = np.floor(xc).astype(np.int64) - rr
        vals = fl[:, :, None] * _pixel_weights(xc, sig, c_first, 2 * rr + 1)
        cols = c_first[:, :, None] + np.arange(2 * rr + 1)
        _add(img, np.broadcast_to(rows[None, :, None], vals.shape), cols, vals)
    if noise:
        img = _noisy(img, camera, seed, read_noise_e)
    return Painted(electrons=img, throughput=thru, flux=None)


def _noisy(img: np.ndarray, camera: str, seed: int, read_noise_e: float | None) -> np.ndarray:
    rn = READ_NOISE_E[camera] if read_noise_e is None else read_noise_e
    rng = np.random.default_rng(seed + 7919)
    sd = np.sqrt(np.maximum(img, 0.0) + np.float32(rn * rn))
    return (img + sd * rng.standard_normal(img.shape, dtype=np.float32)).astype(np.float32)


def to_raw(electrons: np.ndarray, camera: str, *, mjd: int = 60708, bias_adu=BIAS_ADU, seed: int = 0,
           read_noise_e: float | None = None) -> np.ndarray:
    """A full raw frame (uint16 ``[4224, 4352]``) holding ``electrons`` (already noisy) in its data
    regions: ADU = e- / gain + bias of each amp; overscan/prescan hold bias + read noise; values
    clipped into 0..65535 (saturation)."""
    geo = GEOMETRY[camera]
    g = gains(camera, mjd)
    rn = READ_NOISE_E[camera] if read_noise_e is None else read_noise_e
    rng = np.random.default_rng(seed + 104729)
    raw = np.empty(RAW_SHAPE, np.float32)
    for amp in geo.amps:  # every column of the amp's rows starts at bias + read noise
        cols = slice(0, 2176) if amp.amp % 2 == 0 else slice(2176, RAW_SHAPE[1])
        rows = slice(0, 2112) if amp.amp < 2 else slice(2112, RAW_SHAPE[0])
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        raw[rows, cols] = bias_adu[amp.amp] + rng.standard_normal(shape, dtype=np.float32) * np.float32(rn / g[amp.amp])
    for amp in geo.amps:
        e = electrons[amp.trim_rows, amp.trim_cols]
        raw[amp.rows, amp.cols] = e / np.float32(g[amp.amp]) + np.float32(bias_adu[amp.amp])
    return np.clip(np.rint(raw), 0, SATURATION_ADU).astype(np.uint16)


def raw_source(raw: np.ndarray, camera: str, *, mjd: int = 60708, overscan: str = "median",
               bad_columns: tuple[int, ...] = (), header: dict | None = None):
    """A ``RawSource`` over ``raw`` with the biases, gains and unread rows calibration computes
    (``arcray.calib.frame``: ``steps.unread_rows``, ``steps.bias_level`` per amp)."""
    from arcray.calib import steps
    from arcray.measure.source import RawSource

    geo = GEOMETRY[camera]
    unread = steps.unread_rows(raw, header or {}, geo)
    biases = [steps.bias_level(raw, a, method=overscan, read_rows=~unread, transient_cols=geo.transient_cols)
              for a in geo.amps]
    return RawSource(raw, geo, biases, gains(camera, mjd), unread, saturation_adu=SATURATION_ADU,
                     bad_columns=bad_columns)
