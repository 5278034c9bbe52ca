"""Render one raw sdR frame of the simulated world from an explicit calibration state.

``render_frame(camera, exposure, state, seed) -> (uint16[4224, 4352], astropy Header)`` is pure
(no I/O); ``frame_bytes`` gives the gzip-compressed FITS file. Same inputs, same bytes.

Physics (in trimmed coordinates, then placed in the raw amps of ``arcray.instrument.GEOMETRY``):

- 500 fiber traces at ``instrument.fiber_x`` + ``dx``, bent by a bow of 8-12 px and a fan-out tilt
  of up to +-8 px over the rows; dead fibers (``DEAD_FIBERS``) dark; throughput fixed per fiber;
- arcs: every lamp line in range at ``row_of_wavelength + dy`` (+ a 2.5 px line curvature towards
  the edges), a 2-D Gaussian of width ``sigma`` integrated over pixels, flux = relative intensity x
  ``A`` x exposure time, scaled per camera so that the brightest line peaks ~58000 ADU above
  bias at ``A=1``, ``sigma=1`` (brighter fibers / lamps occasionally reach 65535);
  Hartmann Left/Right arcs: half the light, lines displaced by -+ the defocus, only rows 850:1400;
- flats: a smooth 3100 K lamp continuum x blaze along each trace (profile width ``sigma``);
- science: sky continuum, sky emission lines and a per-fiber object continuum;
- detector: per-amp bias pedestal, gain (``instrument.gains``), read noise, Poisson noise (a
  Gaussian approximation: ``N(0, sqrt(rn^2 + signal))``, drawn as random row windows of a fixed
  2^22-sample normal pool for speed), overscan/prescan holding bias + read noise only, a few hot
  columns and readout-transient columns, cosmic rays ~ DARKTIME, saturation at 65535.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
from astropy.io import fits

from arcray.instrument import (DEAD_FIBERS, GEOMETRY, N_FIBERS, RAW_SHAPE, READ_NOISE_E, SATURATION_ADU,
                               arc_lines, fiber_x, gains, row_of_wavelength, wavelength_of_row)
from arcray.sim.header import SUBFRAME_ROWS, BLOCK, build_header, encode_header, ones_complement_sum
from arcray.sim.state import CalibState
from arcray.sim.types import SimExposure

PEAK_ADU = 58000.0  # brightest arc line, centred, A=1, sigma=1, throughput 1: ADU above bias
FLAT_E_PER_ROW = 90000.0  # e- per row along a trace at the flat-lamp peak (25 s APO, 100 s LCO)
CENTRE_FRACTION = 0.3829249  # fraction of a sigma=1 Gaussian in the central pixel (1-D)
NQ, K = 128, 12  # sub-pixel phase bins, profile width in columns
POOL_BITS = 22
SKY_LINES = ((5577.34, 3000), (5889.95, 900), (6300.30, 1600), (6363.78, 500), (6863.96, 1200),
             (7316.28, 1500), (7340.88, 1500), (7750.64, 1800), (7794.11, 1800), (7913.71, 2000),
             (7993.33, 2000), (8344.60, 2500), (8399.17, 2500), (8430.17, 2200), (8827.10, 3000),
             (8885.85, 2800), (8919.63, 2600), (9375.98, 3000), (9439.67, 2800), (9872.14, 2500))
GZIP_LEVEL = 1


@lru_cache(maxsize=None)
def _pool() -> np.ndarray:
    return np.random.default_rng(20231201).standard_normal(1 << POOL_BITS, dtype=np.float32)


@lru_cache(maxsize=None)
def _instrument(camera: str) -> dict:
    """Fixed properties of one camera (same in every world): throughputs, trace shapes, defects."""
    rng = np.random.default_rng(zlib.crc32(camera.encode()))
    obs = "apo" if camera.endswith("1") else "lco"
    nrow, ncol = GEOMETRY[camera].trimmed_shape
    x0 = fiber_x(camera)
    s = (x0 - ncol / 2) / (ncol / 2)
    thru = np.clip(rng.normal(1.0, 0.04, N_FIBERS), 0.88, 1.08)
    thru[np.array(DEAD_FIBERS[obs]) - 1] = 0.0
    rows = np.arange(nrow)
    blaze = 0.35 + 0.65 * np.exp(-0.5 * ((rows - 0.55 * nrow) / (0.35 * nrow)) ** 2)
    wave = wavelength_of_row(camera, rows)
    hot = [(int(c), int(r)) for c, r in zip(rng.integers(300, ncol - 300, 4), rng.integers(0, nrow, 4))]
    return {"obs": obs, "nrow": nrow, "ncol": ncol, "x0": x0, "s": s, "thru": thru,
            "bow": 8.0 + 4.0 * s ** 2, "tilt": 8.0 * s, "blaze": blaze.astype(np.float32), "wave": wave,
            "hot": hot, "bias": rng.uniform(600, 1100, 4).round(1)}


@lru_cache(maxsize=None)
def _arc_lines(camera: str) -> tuple[np.ndarray, np.ndarray]:
    """(row, flux e- per line at A=1, 1 s, throughput 1) of the lamp lines inside the camera."""
    inst = _instrument(camera)
    lines = arc_lines(inst["obs"])
    rows = row_of_wavelength(camera, np.array([ln.wave for ln in lines]))
    inten = np.array([ln.intensity for ln in lines])
    ok = np.isfinite(rows) & (inten > 0)
    rows, inten = rows[ok], inten[ok]
    blz = np.interp(rows, np.arange(inst["nrow"]), inst["blaze"])
    ref_exptime = 4.09 if inst["obs"] == "apo" else 45.09
    gain = float(np.mean(gains(camera, 60708 if inst["obs"] == "apo" else 60900)))
    total = PEAK_ADU * gain / CENTRE_FRACTION ** 2 / ref_exptime
    return rows, inten * blz / np.max(inten * blz) * total


def _gauss_1d(centres: np.ndarray, sigma: float, n: int, halfwidth: int, weights: np.ndarray) -> np.ndarray:
    """Sum over ``centres`` (any shape (..., m)) of pixel-integrated Gaussians on ``n`` pixels."""
    from scipy.special import ndtr

    flat_c, flat_w = centres.reshape(-1), np.broadcast_to(weights, centres.shape).reshape(-1)
    base = np.floor(flat_c).astype(np.int64)
    offs = np.arange(-halfwidth, halfwidth + 1)
    pix = base[:, None] + offs[None, :]
    cdf = ndtr((pix[:, :, None] + np.array([-0.5, 0.5]) - flat_c[:, None, None]) / sigma)
    vals = (cdf[..., 1] - cdf[..., 0]) * flat_w[:, None]
    lead = int(np.prod(centres.shape[:-1])) if centres.ndim > 1 else 1
    group = np.repeat(np.arange(lead), centres.shape[-1] * offs.size)
    ok = (pix >= 0) & (pix < n)
    idx = group[ok.reshape(-1)] * n + pix.reshape(-1)[ok.reshape(-1)]
    out = np.bincount(idx, vals.reshape(-1)[ok.reshape(-1)], minlength=lead * n)
    return out.reshape(*centres.shape[:-1], n) if centres.ndim > 1 else out


def _spectra(camera: str, exp: SimExposure, state: CalibState, rng: np.random.Generator) -> np.ndarray | None:
    """Electrons per row along each fiber trace, shape (500, nrow), or None (no light)."""
    inst = _instrument(camera)
    nrow, s = inst["nrow"], inst["s"]
    scale = (inst["thru"][:, None] * inst["blaze"][None, :]).astype(np.float32)
    if exp.flavor == "arc":
        rows, flux = _arc_lines(camera)
        dy = state.dy
        if exp.is_hartmann:
            defocus = 0.8 * (state.sigma - 0.95) / 0.4 + 0.3
            dy += -defocus if exp.hartmann == "Left" else defocus
            flux = flux * 0.5
        centres = rows[None, :] + dy + 2.5 * s[:, None] ** 2
        spec = _gauss_1d(centres, state.sigma, nrow, int(np.ceil(5 * state.sigma)), flux * state.A * exp.exptime)
        return spec.astype(np.float32) * inst["thru"][:, None].astype(np.float32)
    if exp.flavor == "flat":
        lam = inst["wave"] * 1e-8  # cm
        bb = 1.0 / (lam ** 5 * (np.exp(1.4388 / (lam * 3100.0)) - 1.0))
        bb = bb / np.max(bb * inst["blaze"])
        ref = 25.1 if inst["obs"] == "apo" else 100.1  # LCO's flat lamps are ~4x fainter
        prof = (FLAT_E_PER_ROW * state.A * exp.exptime / ref * bb).astype(np.float32)
        return scale * prof[None, :]
    if exp.flavor == "science":
        sky_rows = row_of_wavelength(camera, np.array([w for w, _ in SKY_LINES]))
        ok = np.isfinite(sky_rows)
        sky_flux = np.array([f for _, f in SKY_LINES], dtype=float)[ok] * exp.exptime / 900.0
        sky = _gauss_1d(sky_rows[ok][None, :] + state.dy, state.sigma, nrow, 6, sky_flux)[0]
        obj = rng.lognormal(np.log(60.0), 1.0, N_FIBERS) * exp.exptime / 900.0
        cont = 25.0 * exp.exptime / 900.0 + obj[:, None] * np.ones(nrow)[None, :]
        return scale * (cont + sky[None, :]).astype(np.float32)
    return None


@lru_cache(maxsize=16)
def _profile_table(sigma: float) -> np.ndarray:
    """Pixel-integrated Gaussian weights W[q, k] for sub-pixel phase q/NQ, columns floor(x)-5+k."""
    from scipy.special import ndtr

    phase = (np.arange(NQ) + 0.5) / NQ
    k = np.arange(K) - (K // 2 - 1)
    edges = (k[None, :, None] + np.array([-0.5, 0.5])[None, None, :] - phase[:, None, None]) / sigma
    cdf = ndtr(edges)
    return (cdf[..., 1] - cdf[..., 0]).astype(np.float32)


def _add_traces(raw: np.ndarray, camera: str, spec: np.ndarray, state: CalibState, rows: slice) -> None:
    """Add fiber traces (spectra ``spec`` along their curved centres) into ``raw`` (electrons).

    A trace's integer column changes only ~10-30 times over the rows, so each fiber is added as a
    few dense ``(run of rows) x K`` blocks with pixel-integrated Gaussian weights from a table."""
    inst = _instrument(camera)
    geo = GEOMETRY[camera]
    img = raw[geo.amps[0].rows.start:, geo.amps[0].cols.start:]
    nrow = inst["nrow"]
    y = np.arange(rows.start, rows.stop)
    u = ((y - nrow / 2) / (nrow / 2)).astype(np.float32)
    table = _profile_table(round(float(state.sigma), 3))
    lead = K // 2 - 1
    alive = np.flatnonzero(inst["thru"] > 0)
    for chunk in np.array_split(alive, 5):
        xc = (inst["x0"][chunk, None] + state.dx + inst["bow"][chunk, None] * (u * u)[None, :]
              + inst["tilt"][chunk, None] * u[None, :]).astype(np.float32)
        base = np.floor(xc)
        weights = table[((xc - base) * NQ).astype(np.intp)]
        weights *= spec[chunk][:, rows, None]
        base = base.astype(np.int64) - lead
        for i in range(chunk.size):
            b = base[i]
            cuts = (np.flatnonzero(b[1:] != b[:-1]) + 1).tolist()
            for a, z in zip([0] + cuts, cuts + [b.size]):
                c = int(b[a])
                img[rows.start + a:rows.start + z, c:c + K] += weights[i, a:z]


def _add_defects(raw: np.ndarray, camera: str, exp: SimExposure, rng: np.random.Generator) -> None:
    """Hot columns (charge trailing to the readout edge) and cosmic rays, in electrons."""
    inst = _instrument(camera)
    geo = GEOMETRY[camera]
    r_off, c_off = geo.amps[0].rows.start, geo.amps[0].cols.start
    darktime = float(exp.extra.get("env", {}).get("DARKTIME", exp.exptime + 12.0))
    half = inst["nrow"] // 2
    for col, row in inst["hot"]:
        lo, hi = (0, row) if row < half else (row, inst["nrow"])
        raw[r_off + lo:r_off + hi, c_off + col] += 40.0 + 0.3 * darktime
    n_cr = int(rng.poisson(4 + 0.25 * darktime))
    if n_cr == 0:
        return
    start = rng.uniform([0, 0], [inst["nrow"], inst["ncol"]], (n_cr, 2))
    ang = rng.uniform(0, np.pi, n_cr)
    length = rng.exponential(4.0, n_cr) + 1.0
    steps = np.arange(0, 16, 0.5)
    ry = start[:, 0:1] + np.sin(ang)[:, None] * steps[None, :]
    rx = start[:, 1:2] + np.cos(ang)[:, None] * steps[None, :]
    ok = (steps[None, :] <= length[:, None]) & (ry < inst["nrow"]) & (rx < inst["ncol"]) & (rx >= 0)
    charge = np.broadcast_to(rng.uniform(600, 2500, (n_cr, 1)), ok.shape)[ok]
    np.add.at(raw, (ry[ok].astype(int) + r_off, rx[ok].astype(int) + c_off), charge)


def _detector(raw_e: np.ndarray, camera: str, exp: SimExposure, rng: np.random.Generator) -> np.ndarray:
    """Electrons -> ADU: bias, gain, read + shot noise per amp, transients, saturation (uint16)."""
    inst = _instrument(camera)
    geo = GEOMETRY[camera]
    g = gains(camera, exp.mjd)
    rn = READ_NOISE_E[camera]
    pool = _pool()
    windows = np.lib.stride_tricks.sliding_window_view(pool, RAW_SHAPE[1])
    z = windows[rng.integers(0, pool.size - RAW_SHAPE[1], RAW_SHAPE[0])]
    bias = inst["bias"] + rng.normal(0, 0.5, 4)
    out = raw_e
    for amp in range(4):
        rs = slice(0, 2112) if amp < 2 else slice(2112, RAW_SHAPE[0])
        cs = slice(0, 2176) if amp % 2 == 0 else slice(2176, RAW_SHAPE[1])
        sig = out[rs, cs]
        noise = z[rs, cs]
        np.maximum(sig, 0.0, out=sig)
        sd = np.sqrt(sig + rn * rn)
        sd *= noise
        sig += sd
        sig *= np.float32(1.0 / g[amp])
        sig += np.float32(bias[amp] + 0.5)
    for col in geo.transient_cols:
        out[:, col] += 6.0
    np.clip(out, 0, SATURATION_ADU, out=out)
    return out.astype(np.uint16)


def frame_rng(camera: str, expnum: int, seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 4, int(expnum), zlib.crc32(camera.encode())]))


def render_frame(camera: str, exposure: SimExposure, state: CalibState, seed: int
                 ) -> tuple[np.ndarray, fits.Header]:
    """The raw frame (uint16 ADU, shape (4224, 4352)) and header (with valid DATASUM/CHECKSUM)
    of ``camera``'s file of ``exposure`` rendered from ``state``; ``seed`` is the world seed."""
    data, header = _render(camera, exposure, state, seed)
    encode_fits(data, header)  # fills DATASUM / CHECKSUM into ``header``
    return data, header


def _render(camera: str, exposure: SimExposure, state: CalibState, seed: int) -> tuple[np.ndarray, fits.Header]:
    rng = frame_rng(camera, exposure.expnum, seed)
    raw = np.zeros(RAW_SHAPE, dtype=np.float32)
    geo = GEOMETRY[camera]
    r_off = geo.amps[0].rows.start
    sub = exposure.is_hartmann and exposure.observatory == "apo"
    rows = slice(0, geo.trimmed_shape[0])
    if sub:
        rows = slice(SUBFRAME_ROWS[0] - r_off, SUBFRAME_ROWS[1] - r_off)
    spec = _spectra(camera, exposure, state, rng)
    if spec is not None:
        _add_traces(raw, camera, spec, state, rows)
    _add_defects(raw, camera, exposure, rng)
    data = _detector(raw, camera, exposure, rng)
    if sub:
        data[:SUBFRAME_ROWS[0]] = 0
        data[SUBFRAME_ROWS[1]:] = 0
    return data, build_header(camera, exposure, seed)


def encode_fits(data: np.ndarray, header: fits.Header) -> bytes:
    """Uncompressed FITS bytes: header blocks + big-endian int16 (ADU - 32768) data, padded."""
    nbytes = data.size * 2
    padded = -(-nbytes // BLOCK) * BLOCK
    body = bytearray(padded)
    view = np.frombuffer(body, dtype=">u2", count=data.size).reshape(data.shape)
    np.bitwise_xor(data, np.uint16(0x8000), out=view)
    datasum = ones_complement_sum(np.frombuffer(body, dtype=">u4"))
    return encode_header(header, datasum) + bytes(body)


def frame_bytes(camera: str, exposure: SimExposure, state: CalibState, seed: int) -> bytes:
    """The gzip-compressed FITS file ``sdR-<cam>-<expnum>.fit.gz`` (gzip mtime 0: reproducible)."""
    from isal import igzip

    data, header = _render(camera, exposure, state, seed)
    return igzip.compress(encode_fits(data, header), compresslevel=GZIP_LEVEL, mtime=0)
