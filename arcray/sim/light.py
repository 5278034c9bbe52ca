"""The light on one camera's trimmed detector (electrons, noiseless), placed by ``arcray.optics``.

``add_light(img, camera, exposure, state, rng, rows)`` adds into ``img`` (trimmed rows x cols,
float32) every photon of the frame: what ``frames`` then puts through the detector.

Physics (the state's ``field`` displaces and widens everything, as calibration-state.md §2 says):

- 500 fiber traces (dead fibers dark, throughput fixed per fiber); the displaced trace of a fiber
  and its local width at every row are ``optics.trace`` (the field maps each nominal point
  ``(x0, y0)`` to ``(x0 + dx, y0 + dy)``);
- arcs: every line of ``optics.lines(camera)`` on every fiber at ``optics.line_positions`` (its
  displaced row and local width), flux = relative intensity x blaze x lamp brightness (the lamp
  that emits it, ``CalibState.brightness``; lines no lamp of the site names follow the mean of the
  lamps) x exposure time x throughput, scaled per camera so that the brightest line peaks ~58000
  ADU above bias at brightness 1, width 1 px; Hartmann Left/Right arcs: half the light, each line
  moved along rows by -+ the defocus of its LOCAL width, ``0.8 (sigma - 0.95)/0.4 + 0.3`` px;
- flats: a 3100 K lamp continuum x blaze along each displaced trace, profile of the local width;
- science: sky continuum, sky emission lines placed by the field like lamp lines, and a per-fiber
  object continuum;
- a scattered-light glow when the state carries that fault.

How it is drawn (vectorised; no Python loop over lines or rows): each fiber gets a 1-D spectrum
along rows (lines as pixel-integrated Gaussians of their own width, summed by ``np.bincount``),
which is spread across columns along the displaced trace with a pixel-integrated Gaussian looked up
in a table by sub-pixel phase (1/``NQ`` px) and width. The width is quantised to ``SIG_STEP`` =
0.005 px per (fiber, row): quantisation error <= 0.0025 px anywhere on the detector.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from arcray import optics
from arcray.instrument import DEAD_FIBERS, GEOMETRY, N_FIBERS, gains, row_of_wavelength, wavelength_of_row
from arcray.sim.instrument_faults import glow
from arcray.sim.state import CalibState
from arcray.sim.types import SimExposure

PEAK_ADU = 58000.0  # brightest arc line, centred, brightness 1, width 1, throughput 1: ADU above bias
FLAT_E_PER_ROW = 90000.0  # e- per row along a trace at the flat-lamp peak (25 s APO, 100 s LCO)
CENTRE_FRACTION = 0.3829249  # fraction of a sigma=1 Gaussian in the central pixel (1-D)
NQ, K = 128, 12  # sub-pixel phase bins, profile width in columns
SIG_MIN, SIG_STEP = optics.SIGMA_CLIP[0], 0.005  # width table: 0.85 ... 1.45 px in 0.005 px steps
N_SIG = int(round((optics.SIGMA_CLIP[1] - optics.SIGMA_CLIP[0]) / SIG_STEP)) + 1
SKY_LINES = ((5577.34, 3000), (5889.95, 900), (6300.30, 1600), (6363.78, 500), (6863.96, 1200),
             (7316.28, 1500), (7340.88, 1500), (7750.64, 1800), (7794.11, 1800), (7913.71, 2000),
             (7993.33, 2000), (8344.60, 2500), (8399.17, 2500), (8430.17, 2200), (8827.10, 3000),
             (8885.85, 2800), (8919.63, 2600), (9375.98, 3000), (9439.67, 2800), (9872.14, 2500))


@lru_cache(maxsize=None)
def instrument(camera: str) -> dict:
    """Fixed properties of one camera (same in every world): throughputs, blaze, defects, bias."""
    rng = np.random.default_rng(zlib.crc32(camera.encode()))
    obs = "apo" if camera.endswith("1") else "lco"
    nrow, ncol = GEOMETRY[camera].trimmed_shape
    thru = np.clip(rng.normal(1.0, 0.04, N_FIBERS), 0.88, 1.08)
    thru[np.array(DEAD_FIBERS[obs]) - 1] = 0.0
    rows = np.arange(nrow)
    blaze = 0.35 + 0.65 * np.exp(-0.5 * ((rows - 0.55 * nrow) / (0.35 * nrow)) ** 2)
    hot = [(int(c), int(r)) for c, r in zip(rng.integers(300, ncol - 300, 4), rng.integers(0, nrow, 4))]
    return {"obs": obs, "nrow": nrow, "ncol": ncol, "thru": thru, "alive": np.flatnonzero(thru > 0),
            "blaze": blaze.astype(np.float32), "wave": wavelength_of_row(camera, rows), "hot": hot,
            "bias": rng.uniform(600, 1100, 4).round(1)}


@lru_cache(maxsize=None)
def line_flux(camera: str) -> np.ndarray:
    """e- per line of ``optics.lines(camera)`` at brightness 1, 1 s, throughput 1."""
    inst = instrument(camera)
    ll = optics.lines(camera)
    blz = np.interp(ll.row, np.arange(inst["nrow"]), inst["blaze"])
    ref_exptime = 4.09 if inst["obs"] == "apo" else 45.09
    gain = float(np.mean(gains(camera, 60708 if inst["obs"] == "apo" else 60900)))
    total = PEAK_ADU * gain / CENTRE_FRACTION ** 2 / ref_exptime
    return ll.intensity * blz / np.max(ll.intensity * blz) * total


def _gauss_rows(centres: np.ndarray, sigmas: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """``[F, n]``: per row of ``centres`` (``[F, L]``), the sum of L pixel-integrated Gaussians of
    widths ``sigmas`` and total ``weights`` on ``n`` pixels (NaN centres contribute nothing)."""
    from scipy.special import ndtr

    f_n, _ = centres.shape
    good = np.isfinite(centres)
    c = np.where(good, centres, -1e6)
    s = np.broadcast_to(sigmas, c.shape)
    hw = int(np.ceil(5 * float(np.max(s)))) + 1
    base = np.floor(c).astype(np.int64)
    edges = (base[..., None] + np.arange(-hw, hw + 2) - 0.5 - c[..., None]) / s[..., None]
    vals = np.diff(ndtr(edges), axis=-1) * np.where(good, weights, 0.0)[..., None]
    pix = base[..., None] + np.arange(-hw, hw + 1)
    ok = (pix >= 0) & (pix < n)
    idx = (np.arange(f_n)[:, None, None] * n + pix)[ok]
    return np.bincount(idx, vals[ok], minlength=f_n * n).reshape(f_n, n)


def hartmann_defocus(sigma: np.ndarray) -> np.ndarray:
    """Line displacement (px along rows) of a Hartmann door at local width ``sigma``."""
    return 0.8 * (sigma - 0.95) / 0.4 + 0.3


def lamp_scale(camera: str, state: CalibState) -> np.ndarray:
    """Brightness of the lamp of every line of ``optics.lines(camera)``."""
    obs = instrument(camera)["obs"]
    site = optics.LAMPS[obs]
    mean = float(np.mean([state.brightness(lp) for lp in site]))
    return np.array([state.brightness(lp) if lp else mean for lp in optics.lines(camera).lamp])


def spectra(camera: str, exp: SimExposure, state: CalibState, rng: np.random.Generator) -> np.ndarray | None:
    """Electrons per row along each ALIVE fiber's trace (``instrument(camera)["alive"]`` order),
    shape ``[n_alive, nrow]`` float32, or None (no light)."""
    inst = instrument(camera)
    nrow, alive = inst["nrow"], inst["alive"]
    thru = inst["thru"][alive]
    if exp.flavor == "arc":
        _, y, sig = optics.line_positions(camera, state.field, fibers=alive)
        flux = line_flux(camera) * lamp_scale(camera, state) * exp.exptime
        if exp.is_hartmann:
            y = y + (-1.0 if exp.hartmann == "Left" else 1.0) * hartmann_defocus(sig)
            flux = flux * 0.5
        spec = _gauss_rows(y, sig, flux[None, :] * thru[:, None], nrow)
        return spec.astype(np.float32)
    scale = (thru[:, None] * inst["blaze"][None, :]).astype(np.float32)
    if exp.flavor == "flat":
        lam = inst["wave"] * 1e-8  # cm
        bb = 1.0 / (lam ** 5 * (np.exp(1.4388 / (lam * 3100.0)) - 1.0))
        bb = bb / np.max(bb * inst["blaze"])
        ref = 25.1 if inst["obs"] == "apo" else 100.1  # LCO's flat lamps are ~4x fainter
        prof = (FLAT_E_PER_ROW * state.brightness("FF") * exp.exptime / ref * bb).astype(np.float32)
        return scale * prof[None, :]
    if exp.flavor == "science":
        obj = rng.lognormal(np.log(60.0), 1.0, N_FIBERS)[alive] * exp.exptime / 900.0
        waves = np.array([w for w, _ in SKY_LINES])
        ok = np.isfinite(row_of_wavelength(camera, waves))
        x0, y0 = optics.nominal_wavelength_positions(camera, waves[ok], alive)
        _, y, sig = optics.displace(camera, state.field, x0, y0)
        sky_flux = np.array([f for _, f in SKY_LINES], dtype=float)[ok] * exp.exptime / 900.0
        sky = _gauss_rows(y, sig, np.broadcast_to(sky_flux, y.shape), nrow)
        cont = 25.0 * exp.exptime / 900.0 + obj[:, None]
        return scale * (cont + sky).astype(np.float32)
    return None


@lru_cache(maxsize=None)
def profile_tables() -> np.ndarray:
    """Pixel-integrated Gaussian weights ``W[s, q, k]``: width ``SIG_MIN + s*SIG_STEP``, sub-pixel
    phase ``(q + 0.5)/NQ``, column ``floor(x) - (K/2 - 1) + k``."""
    from scipy.special import ndtr

    sig = SIG_MIN + SIG_STEP * np.arange(N_SIG)
    phase = (np.arange(NQ) + 0.5) / NQ
    k = np.arange(K) - (K // 2 - 1)
    edges = k[None, :, None] + np.array([-0.5, 0.5])[None, None, :] - phase[:, None, None]
    cdf = ndtr(edges[None] / sig[:, None, None, None])
    out = (cdf[..., 1] - cdf[..., 0]).astype(np.float32)
    out.setflags(write=False)
    return out


def sigma_level(sigma: np.ndarray) -> np.ndarray:
    """Index into ``profile_tables`` of each width (nearest 0.005 px)."""
    return np.clip(np.rint((sigma - SIG_MIN) / SIG_STEP), 0, N_SIG - 1).astype(np.intp)


def trace_geometry(camera: str, field: optics.Field, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """``(x, width level)`` of every alive fiber's displaced trace at ``rows``, ``[n_alive, n_rows]``."""
    alive = instrument(camera)["alive"]
    y = np.arange(rows.start, rows.stop, dtype=float)
    x, sig = optics.trace(camera, alive[:, None], y[None, :], field)
    return x, sigma_level(sig)


def add_traces(img: np.ndarray, camera: str, spec: np.ndarray, field: optics.Field, rows: slice) -> None:
    """Add the spectra ``spec`` (``[n_alive, nrow]``) along their displaced traces into ``img``.

    A trace's integer column changes only ~10-30 times over the rows, so each fiber is added as a
    few dense ``(run of rows) x K`` blocks of table weights."""
    x, level = trace_geometry(camera, field, rows)
    tables = profile_tables()
    lead = K // 2 - 1
    for chunk in np.array_split(np.arange(x.shape[0]), 5):
        base = np.floor(x[chunk])
        phase = np.minimum(((x[chunk] - base) * NQ).astype(np.intp), NQ - 1)
        weights = tables[level[chunk], phase]
        weights *= spec[chunk][:, rows, None]
        base = base.astype(np.int64) - lead
        for i in range(chunk.size):
            b = base[i]
            cuts = (np.flatnonzero(b[1:] != b[:-1]) + 1).tolist()
            for a, z in zip([0] + cuts, cuts + [b.size]):
                c = int(b[a])
                img[rows.start + a:rows.start + z, c:c + K] += weights[i, a:z]


def add_light(img: np.ndarray, camera: str, exp: SimExposure, state: CalibState, rng: np.random.Generator,
              rows: slice) -> None:
    """Add the frame's light (electrons) into the trimmed image ``img`` at ``rows``."""
    spec = spectra(camera, exp, state, rng)
    if spec is not None and np.any(spec):
        add_traces(img, camera, spec, state.field, rows)
    if state.fault == "scattered_light":
        img[rows] += glow(dict(state.fault_params), img.shape)[rows]
