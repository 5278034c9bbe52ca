"""Trace centres and widths of every fiber of a flat, at several rows. Pure numpy.

At ``flat_rows`` rows spread over the detector (``edge_margin_px`` from the ends), each alive
fiber's trace is collapsed over ``2*flat_half_rows+1`` rows into an x-profile (the trace moves
< 0.1 px over them, symmetrically, so the centre is the trace's at the middle row) and fitted
with its bundle neighbours as components at their nominal spacing (a flat lights every fiber at
once, so the neighbours always overlap), by the same pilot-then-all scheme as the arcs
(``lines``). Flats cannot show the row terms (b0..b3); they give the x terms a0..a3 and the trace
width field (BOSS's XSIGMA).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from arcray import optics
from arcray.instrument import N_FIBERS
from arcray.measure import flags as F
from arcray.measure.config import MeasureConfig
from arcray.measure.field import fit_component
from arcray.measure.lines import FINAL_ITERATIONS, _neighbour_sums, _rows, gather, neighbour_model
from arcray.measure.profiles import fit_profiles
from arcray.measure.source import PixelSource


@dataclass(frozen=True)
class TraceMeasurement:
    """Per (fiber, sample row) results, each ``[500, R]`` (NaN where not measured)."""

    rows: np.ndarray  # [R] trimmed rows of the samples
    x_nom: np.ndarray  # nominal trace centres
    x: np.ndarray
    x_err: np.ndarray
    sigma: np.ndarray
    sigma_err: np.ndarray
    flux: np.ndarray  # e- per row
    flux_err: np.ndarray
    x_pred: np.ndarray
    flags: np.ndarray  # uint16


def sample_rows(camera: str, config: MeasureConfig) -> np.ndarray:
    h = optics.detector_size(camera)[0]
    lo = max(config.edge_margin_px, config.flat_half_rows + 1)
    return np.rint(np.linspace(lo, h - 1 - lo, config.flat_rows)).astype(np.intp)


def _neighbour_offsets(camera: str, rows: np.ndarray, half_cols: int) -> tuple[np.ndarray, np.ndarray]:
    t = optics.traces(camera)
    f = np.arange(N_FIBERS)
    x_nom = optics.trace_x(camera, f[:, None], rows[None, :])  # [500, R]
    left = np.full_like(x_nom, np.nan)
    right = np.full_like(x_nom, np.nan)
    left[1:] = np.where(t.alive[:-1, None], x_nom[:-1] - x_nom[1:], np.nan)
    right[:-1] = np.where(t.alive[1:, None], x_nom[1:] - x_nom[:-1], np.nan)
    reach = half_cols + 4.0
    left[np.abs(left) > reach] = np.nan
    right[np.abs(right) > reach] = np.nan
    return x_nom, np.stack([np.zeros(x_nom.size), left.ravel(), right.ravel()], axis=1)


def measure_traces(source: PixelSource, camera: str, config: MeasureConfig, shift_x: float,
                   read_noise_e: float) -> TraceMeasurement:
    """Measure every alive fiber's trace at ``sample_rows`` (``shift_x``: the global x shift)."""
    rows = sample_rows(camera, config)
    n_r = rows.size
    x_nom, offs = _neighbour_offsets(camera, rows, config.stamp_half_cols)
    alive = np.repeat(optics.traces(camera).alive, n_r)
    px = x_nom.ravel() + shift_x
    py = np.tile(rows, N_FIBERS).astype(float)
    hr = config.flat_half_rows
    st = gather(source, px, py, alive, half_rows=hr, half_cols=config.stamp_half_cols, xprofile_half_rows=hr,
                yprofile_half_cols=0, core_px=config.core_px)
    rv = (2 * hr + 1) * float(read_noise_e) ** 2
    sums = st.xsum
    fiber = np.repeat(np.arange(N_FIBERS), n_r)

    def fit(idx, mu0, sig0, fixed=None, iterations=config.iterations):
        o, a0 = (offs[idx], _neighbour_sums(sums, idx, n_r)) if fixed is None else (np.zeros((idx.size, 1)), None)
        return fit_profiles(st.xprof[idx], _rows(st.xuse, idx), st.xorigin[idx], mu0, sig0, o, rv, amp0=a0,
                            fixed=fixed, iterations=iterations, converge=config.converge_px,
                            sigma_bounds=config.sigma_bounds_px)

    ok0 = st.flags == 0
    pilot = np.flatnonzero(ok0 & (fiber % config.pilot_stride == 0))
    fp = fit(pilot, px[pilot], config.sigma_guess_px)
    good = fp.ok & (fp.amp / fp.amp_err >= config.min_snr) & (np.abs(fp.mu - px[pilot]) <= config.pilot_offset_px)
    u, v = optics.normalised(camera, x_nom.ravel(), py)
    xp, s0, piloted = px, np.full(px.size, config.sigma_guess_px), False
    if good.sum() >= max(20, config.min_field_points // 4):
        kw = dict(clip_sigma=config.clip_sigma, rounds=config.fit_rounds, floor=config.position_floor_px)
        fdx = fit_component("x", u[pilot][good], v[pilot][good], (fp.mu - x_nom.ravel()[pilot])[good],
                            fp.mu_err[good], reject=config.reject_px, **kw)
        fs = fit_component("s", u[pilot][good], v[pilot][good], fp.sigma[good], fp.sigma_err[good], **kw)
        if np.isfinite(fdx.coef).all() and np.isfinite(fs.coef).all():
            xp = x_nom.ravel() + fdx.predict("x", u, v)
            s0 = np.clip(fs.predict("s", u, v), *config.sigma_bounds_px)
            piloted = True
    todo = np.flatnonzero(ok0)
    if piloted:
        fr = fit(todo, xp[todo], s0[todo], neighbour_model(st, todo, xp, s0, offs, n_r),
                 min(config.iterations, FINAL_ITERATIONS))
    else:
        fr = fit(todo, xp[todo], s0[todo])
    return _assemble(rows, x_nom, st, todo, fr, xp, s0 if piloted else None, config)


def _assemble(rows, x_nom, st, todo, fr, xp, widths, config: MeasureConfig) -> TraceMeasurement:
    shape = x_nom.shape
    n_rows = 2 * config.flat_half_rows + 1

    def full(vals):
        out = np.full(st.flags.size, np.nan)
        out[todo] = vals
        return out.reshape(shape)

    flags = st.flags.copy()
    snr = fr.amp / fr.amp_err
    bad = np.zeros(todo.size, np.uint16)
    bad[~fr.ok] |= F.NOT_CONVERGED
    bad[~(snr >= config.min_snr)] |= F.LOW_SNR
    tol = config.max_offset_px if widths is not None else config.pilot_offset_px
    bad[~(np.abs(fr.mu - xp[todo]) <= tol) & np.isfinite(fr.mu)] |= F.OFFSET
    if widths is not None:
        bad[~(np.abs(fr.sigma - widths[todo]) <= config.max_width_dev_px) & np.isfinite(fr.sigma)] |= F.WIDTH
    flags[todo] |= bad
    flux = full(fr.amp / n_rows)
    with warnings.catch_warnings():  # a row without any used trace (no light) has no median: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.where(flags.reshape(shape) == 0, flux, np.nan), axis=0)  # per sample row
    faint = ~(flux >= config.good_fiber_flux_fraction * med[None, :]) & np.isfinite(flux)
    flags = flags.reshape(shape)
    flags[faint] |= F.FAINT
    return TraceMeasurement(rows=rows, x_nom=x_nom, x=full(fr.mu), x_err=full(fr.mu_err), sigma=full(fr.sigma),
                            sigma_err=full(fr.sigma_err), flux=flux, flux_err=full(fr.amp_err / n_rows),
                            x_pred=np.asarray(xp).reshape(shape), flags=flags)
