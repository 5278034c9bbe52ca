"""Render one raw sdR frame of the simulated world from an explicit calibration state.

``render_frame(camera, exposure, state, seed) -> (uint16[4224, 4352], astropy Header)`` is pure
(no I/O); ``frame_bytes`` gives the gzip-compressed FITS file; ``render_light`` the noiseless light
alone (trimmed electrons, for tests and scoring). Same inputs, same bytes.

The light (lamp lines, flat traces, sky, scattered light) is ``arcray.sim.light``: every line of every
fiber at its displaced position and local width under the state's field. It is placed in the raw
amps of ``arcray.instrument.GEOMETRY`` and read out:

- detector: per-amp bias pedestal, gain (``instrument.gains``), read noise, Poisson noise (a
  Gaussian approximation: ``N(0, sqrt(rn^2 + signal))``, drawn as random row windows of a fixed
  2^22-sample normal pool for speed), overscan/prescan holding bias + read noise only, a few hot
  columns and readout-transient columns, cosmic rays ~ DARKTIME, saturation at 65535;
- an ``amp_noisy`` fault multiplies one amplifier's read noise or adds pickup pattern noise to it
  (data and overscan alike); Hartmann arcs at APO are sub-frames (rows 850:1400, the rest zero).

The header is built from the exposure alone (``arcray.sim.header``): a fault never shows in it.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
from astropy.io import fits

from arcray.instrument import GEOMETRY, RAW_SHAPE, READ_NOISE_E, SATURATION_ADU, gains
from arcray.sim.header import SUBFRAME_ROWS, BLOCK, build_header, encode_header, ones_complement_sum
from arcray.sim.instrument_faults import pattern
from arcray.sim.light import add_light, instrument
from arcray.sim.state import CalibState
from arcray.sim.types import SimExposure

POOL_BITS = 22
GZIP_LEVEL = 1


@lru_cache(maxsize=None)
def _pool() -> np.ndarray:
    return np.random.default_rng(20231201).standard_normal(1 << POOL_BITS, dtype=np.float32)


def _trimmed(raw: np.ndarray, camera: str) -> np.ndarray:
    geo = GEOMETRY[camera]
    nrow, ncol = geo.trimmed_shape
    r, c = geo.amps[0].rows.start, geo.amps[0].cols.start
    return raw[r:r + nrow, c:c + ncol]


def _light_rows(camera: str, exposure: SimExposure) -> slice:
    geo = GEOMETRY[camera]
    if exposure.is_hartmann and exposure.observatory == "apo":
        r_off = geo.amps[0].rows.start
        return slice(SUBFRAME_ROWS[0] - r_off, SUBFRAME_ROWS[1] - r_off)
    return slice(0, geo.trimmed_shape[0])


def _add_defects(raw: np.ndarray, camera: str, exp: SimExposure, rng: np.random.Generator) -> None:
    """Hot columns (charge trailing to the readout edge) and cosmic rays, in electrons."""
    inst = instrument(camera)
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


def _detector(raw_e: np.ndarray, camera: str, exp: SimExposure, rng: np.random.Generator,
              state: CalibState | None = None) -> np.ndarray:
    """Electrons -> ADU: bias, gain, read + shot noise per amp, transients, saturation (uint16)."""
    inst = instrument(camera)
    geo = GEOMETRY[camera]
    g = gains(camera, exp.mjd)
    rn = READ_NOISE_E[camera]
    pool = _pool()
    windows = np.lib.stride_tricks.sliding_window_view(pool, RAW_SHAPE[1])
    z = windows[rng.integers(0, pool.size - RAW_SHAPE[1], RAW_SHAPE[0])]
    bias = inst["bias"] + rng.normal(0, 0.5, 4)
    noisy = dict(state.fault_params) if state is not None and state.fault == "amp_noisy" else {}
    out = raw_e
    for amp in range(4):
        rs = slice(0, 2112) if amp < 2 else slice(2112, RAW_SHAPE[0])
        cs = slice(0, 2176) if amp % 2 == 0 else slice(2176, RAW_SHAPE[1])
        sig = out[rs, cs]
        noise = z[rs, cs]
        amp_rn = rn * float(noisy["factor"]) if noisy.get("amp") == amp and noisy["mode"] == "read" else rn
        np.maximum(sig, 0.0, out=sig)
        sd = np.sqrt(sig + amp_rn * amp_rn)
        sd *= noise
        sig += sd
        sig *= np.float32(1.0 / g[amp])
        sig += np.float32(bias[amp] + 0.5)
        if noisy.get("amp") == amp and noisy["mode"] == "pattern":
            sig += pattern(noisy, sig.shape[0], sig.shape[1])
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


def render_light(camera: str, exposure: SimExposure, state: CalibState, seed: int = 0) -> np.ndarray:
    """The noiseless light of the frame: trimmed electrons (float32, rows x cols), no bias, noise,
    cosmic rays or saturation (the same light ``render_frame`` reads out)."""
    nrow, ncol = GEOMETRY[camera].trimmed_shape
    img = np.zeros((nrow, ncol), dtype=np.float32)
    add_light(img, camera, exposure, state, frame_rng(camera, exposure.expnum, seed),
              _light_rows(camera, exposure))
    return img


def _render(camera: str, exposure: SimExposure, state: CalibState, seed: int) -> tuple[np.ndarray, fits.Header]:
    rng = frame_rng(camera, exposure.expnum, seed)
    raw = np.zeros(RAW_SHAPE, dtype=np.float32)
    add_light(_trimmed(raw, camera), camera, exposure, state, rng, _light_rows(camera, exposure))
    _add_defects(raw, camera, exposure, rng)
    data = _detector(raw, camera, exposure, rng, state)
    if exposure.is_hartmann and exposure.observatory == "apo":
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
