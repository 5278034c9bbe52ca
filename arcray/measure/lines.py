"""Every usable lamp line on every fiber of an arc: identification, centre, width, flux. Pure numpy.

Identification: a candidate line is a line-list entry of a quality in ``qualities`` (fitarcimage
uses the unblended lines) emitted by one of the site's lamps, at least ``edge_margin_px`` from the
bottom and top rows, with no listed line within ``isolation_px`` rows brighter than
``isolation_ratio`` of it. Its expected position on fiber ``f`` is the nominal model
(``optics.nominal_line_positions``) plus the frame's global shift (``offsets``): identification
is by position, so a line is never confused with another unless the shift is wrong by a line
spacing, which the OFFSET flag and the field fit's 1 px rejection then catch.

Measurement, per fiber (not per bundle: the per-line table is a product, Excalibur's
representation, and a bundle sum would blur the 2.5 px line curvature and the field across its 125
px), all (fiber, line) stamps of the frame at once:

1. one gather of ``(2*stamp_half_rows+1) x (2*stamp_half_cols+1)`` stamps from the pixel source;
2. two marginal profiles per stamp (arc2trace's ``marginal_gfit``): the x-profile (rows within
   ``xprofile_half_rows`` summed) and the y-profile (columns within ``yprofile_half_cols``
   summed), each fitted with a pixel-integrated Gaussian (``profiles.fit_profiles``); any listed
   line within ``neighbour_line_px`` is an extra component of the y-profile;
3. a pilot on every ``pilot_stride``-th fiber from the nominal prediction, its x-profiles fitted
   with the adjacent fibers of the bundle as free components at their nominal spacing; the
   displacement and width fields fitted to the pilot predict every line to a few hundredths of a
   px, so one or two Gauss-Newton steps finish each final fit, in which the adjacent fibers are
   held at their predicted profiles (``neighbour_model``);
4. a pixel that is masked (saturated, not read, bad column) within ``core_px`` of the predicted
   centre excludes the line (SATURATED / MASKED); masked pixels farther out get zero weight.

The x centre is the trace centre at the line's row (the flux centroid), the y centre the line's
row, ``sigma_y`` the line width along rows (BOSS's WSIGMA), ``sigma_x`` across (the trace width).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtr

from arcray import optics
from arcray.calib import steps as calib_mask
from arcray.instrument import N_FIBERS
from arcray.measure import flags as F
from arcray.measure.config import MeasureConfig
from arcray.measure.field import fit_component, fit_displacement
from arcray.measure.profiles import ProfileFit, fit_profiles, gaussians
from arcray.measure.source import PixelSource


FINAL_ITERATIONS = 3  # steps of the fits started from the pilot's fields (1 is almost always enough)


@dataclass(frozen=True)
class LineSet:
    """The candidate lines of a camera (index = column of the per-line arrays)."""

    ids: np.ndarray  # [L] indices into optics.lines(camera)
    wave: np.ndarray  # [L] A
    lamp: tuple[str, ...]
    intensity: np.ndarray  # [L] line-list intensity
    neighbours: np.ndarray  # [L, 2] row offsets of listed lines modelled in the y-profile (NaN: none)
    x0: np.ndarray  # [500, L] nominal columns
    y0: np.ndarray  # [500, L] nominal rows


@lru_cache(maxsize=32)
def candidate_lines(camera: str, qualities: tuple[str, ...], isolation_px: float, isolation_ratio: float,
                    neighbour_line_px: float, edge_margin_px: float) -> LineSet:
    ll = optics.lines(camera)
    h = optics.detector_size(camera)[0]
    ids, neigh = [], []
    for i in range(len(ll)):
        if ll.quality[i] not in qualities or not ll.lamp[i]:
            continue
        if not edge_margin_px <= ll.row[i] <= h - 1 - edge_margin_px:
            continue
        d = ll.row - ll.row[i]
        d[i] = np.inf
        bright = ll.intensity >= isolation_ratio * ll.intensity[i]
        if (bright & (np.abs(d) < isolation_px)).any():
            continue
        below = d[(d < 0) & (d >= -neighbour_line_px)]
        above = d[(d > 0) & (d <= neighbour_line_px)]
        neigh.append([below.max() if below.size else np.nan, above.min() if above.size else np.nan])
        ids.append(i)
    ids_a = np.array(ids, np.intp)
    x0, y0 = optics.nominal_line_positions(camera, line_ids=ids_a)
    for a in (x0, y0):
        a.setflags(write=False)
    return LineSet(ids=ids_a, wave=ll.wave[ids_a], lamp=tuple(ll.lamp[i] for i in ids),
                   intensity=ll.intensity[ids_a], neighbours=np.array(neigh, float).reshape(-1, 2), x0=x0, y0=y0)


def _lines_key(config: MeasureConfig) -> tuple:
    return (tuple(config.qualities), config.isolation_px, config.isolation_ratio, config.neighbour_line_px,
            config.edge_margin_px)


def lines_for(camera: str, config: MeasureConfig) -> LineSet:
    return candidate_lines(camera, *_lines_key(config))


@dataclass(frozen=True)
class Stamps:
    """Marginal profiles of every (fiber, line) stamp, flattened fiber-major (``i = f * L + l``)."""

    xprof: np.ndarray  # [n, C] e- (rows summed)
    xuse: np.ndarray | None  # [n, C] bool (None: every element usable)
    xorigin: np.ndarray  # [n] column of element 0
    yprof: np.ndarray  # [n, R]
    yuse: np.ndarray | None
    yorigin: np.ndarray  # [n] row of element 0
    flags: np.ndarray  # [n] uint16 (DEAD_FIBER, EDGE, SATURATED, MASKED)
    ycols: tuple[int, int]  # absolute column range summed into yprof, relative to xorigin
    xrows: tuple[int, int]  # rows summed into xprof, relative to yorigin
    xsum: np.ndarray  # [n] sum of each x-profile (e-)


def gather(source: PixelSource, px: np.ndarray, py: np.ndarray, alive: np.ndarray, *, half_rows: int,
           half_cols: int, xprofile_half_rows: int, yprofile_half_cols: int, core_px: float) -> Stamps:
    """Stamps of ``2*half_rows+1`` x ``2*half_cols+1`` px around predicted ``(px, py)`` (flat
    arrays) and their marginal profiles; masked pixels within ``core_px`` of a prediction flag it."""
    hr, hc = half_rows, half_cols
    nr, nc = 2 * hr + 1, 2 * hc + 1
    h, w = source.shape
    r_want, c_want = np.rint(py).astype(np.intp) - hr, np.rint(px).astype(np.intp) - hc
    r0, c0 = np.clip(r_want, 0, h - nr), np.clip(c_want, 0, w - nc)
    flags = np.where(alive, 0, F.DEAD_FIBER).astype(np.uint16)
    flags[(np.abs(r0 - r_want) > 1) | (np.abs(c0 - c_want) > 1)] |= F.EDGE
    e, m = source.stamps(r0, c0, nr, nc)
    xr, yc = xprofile_half_rows, yprofile_half_cols
    rs, cs = slice(hr - xr, hr + xr + 1), slice(hc - yc, hc + yc + 1)
    if m.any():
        rows_in = np.abs(r0[:, None] + np.arange(nr) - py[:, None]) <= core_px
        cols_in = np.abs(c0[:, None] + np.arange(nc) - px[:, None]) <= core_px
        mc = m * (rows_in[:, :, None] & cols_in[:, None, :])
        flags[(mc & calib_mask.SATURATED).any(axis=(1, 2))] |= F.SATURATED
        flags[(mc & (calib_mask.NOT_READ | calib_mask.BAD_COLUMN)).any(axis=(1, 2))] |= F.MASKED
        good = m == 0
        e = np.where(good, e, np.float32(0.0))
        xuse, yuse = good[:, rs, :].all(axis=1), good[:, :, cs].all(axis=2)
    else:
        xuse, yuse = None, None
    xprof = np.einsum("nrc->nc", e[:, rs, :])  # einsum: 3-5x faster than .sum over a short axis
    return Stamps(xprof=xprof, xuse=xuse, xorigin=c0.astype(np.float64), yprof=np.einsum("nrc->nr", e[:, :, cs]),
                  yuse=yuse, yorigin=r0.astype(np.float64), flags=flags, ycols=(hc - yc, hc + yc),
                  xrows=(hr - xr, hr + xr), xsum=xprof @ np.ones(nc, np.float32))


@lru_cache(maxsize=32)
def _x_components_cached(camera: str, lines_key: tuple, cols_half: int) -> np.ndarray:
    out = _x_components(camera, candidate_lines(camera, *lines_key), cols_half)
    out.setflags(write=False)
    return out


def _x_components(camera: str, lines: LineSet, cols_half: int) -> np.ndarray:
    """``[500 * L, 3]`` offsets of the own trace and the adjacent fibers (NaN: none near)."""
    x0 = lines.x0
    alive = optics.traces(camera).alive
    left = np.full_like(x0, np.nan)
    right = np.full_like(x0, np.nan)
    left[1:] = np.where(alive[:-1, None], x0[:-1] - x0[1:], np.nan)
    right[:-1] = np.where(alive[1:, None], x0[1:] - x0[:-1], np.nan)
    reach = cols_half + 4.0  # a neighbour whose centre is farther than this leaves no trace in the stamp
    left[np.abs(left) > reach] = np.nan
    right[np.abs(right) > reach] = np.nan
    return np.stack([np.zeros(x0.size), left.ravel(), right.ravel()], axis=1)


def _rows(use: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if use is None else use[idx]


def _neighbour_sums(sums: np.ndarray, idx: np.ndarray, stride: int) -> np.ndarray:
    """Starting fluxes ``[len(idx), 3]``: each profile's own sum and the sums of the same line on
    the adjacent fibers (``stride`` = lines per fiber apart in the flat arrays)."""
    own = sums[idx]
    left = np.where(idx >= stride, sums[np.maximum(idx - stride, 0)], own)
    right = np.where(idx + stride < sums.size, sums[np.minimum(idx + stride, sums.size - 1)], own)
    return np.stack([own, left, right], axis=1)


def neighbour_model(st: Stamps, idx: np.ndarray, xp: np.ndarray, sp: np.ndarray, offs: np.ndarray,
                    stride: int) -> np.ndarray:
    """The adjacent fibers' predicted x-profiles inside each stamp ``idx`` (``[len(idx), C]`` e-),
    held fixed in the final fits (the pilot fits them freely).

    Centres ``xp`` and widths ``sp`` come from the pilot's fields; fluxes from the stamps' sums
    corrected for the share of each sum that the neighbours put in (one Jacobi step of the
    tridiagonal system along the fibers: their error is the square of the share, < 1 %)."""
    n, c = st.xprof.shape
    sums = st.xsum
    lo = st.xorigin - 0.5
    hi = st.xorigin + c - 0.5
    sp = np.where(np.isfinite(sp), sp, 1.0)

    def share(i, j):  # fraction of stamp j's trace inside stamp i's columns
        return ndtr((hi[i] - xp[j]) / sp[j]) - ndtr((lo[i] - xp[j]) / sp[j])

    every = np.arange(n)
    left_ok, right_ok = np.isfinite(offs[:, 1]), np.isfinite(offs[:, 2])
    jl, jr = np.maximum(every - stride, 0), np.minimum(every + stride, n - 1)
    t_l = np.where(left_ok, share(every, jl), 0.0)
    t_r = np.where(right_ok, share(every, jr), 0.0)
    own = share(every, every)
    first = sums / np.maximum(own + t_l + t_r, 1e-6)
    flux = (sums - t_l * first[jl] - t_r * first[jr]) / np.maximum(own, 1e-6)
    out = np.zeros((idx.size, c), np.float32)
    for ok, j in ((left_ok, jl), (right_ok, jr)):
        sel = ok[idx]
        jj = j[idx][sel]
        out[sel] += gaussians(c, st.xorigin[idx][sel], xp[jj], sp[jj], flux[jj])
    return out


def _y_components(lines: LineSet) -> np.ndarray:
    """``[L, 3]`` offsets of the own line and its listed neighbours, present ones first (NaN: none)."""
    raw = np.concatenate([np.zeros((len(lines.ids), 1)), lines.neighbours], axis=1)
    return np.array([np.concatenate([r[np.isfinite(r)], r[~np.isfinite(r)]]) for r in raw]).reshape(-1, 3)


def _fit_y(st: Stamps, idx, mu0, sigma0, offs_l, n_lines: int, rv: float, config: MeasureConfig,
           iterations: int) -> ProfileFit:
    """Row profiles, grouped by how many neighbour lines they model (1 to 3 components)."""
    n_comp_l = np.isfinite(offs_l).sum(axis=1)  # per line
    line = idx % n_lines
    n_comp = n_comp_l[line]
    sigma0 = np.broadcast_to(np.asarray(sigma0, float), idx.shape)
    parts, order = [], []
    for nc in np.unique(n_comp_l):
        sel = np.flatnonzero(n_comp == nc)
        if not sel.size:
            continue
        ii = idx[sel]
        parts.append(fit_profiles(st.yprof[ii], _rows(st.yuse, ii), st.yorigin[ii], mu0[sel], sigma0[sel],
                                  offs_l[line[sel], :nc], rv, iterations=iterations, converge=config.converge_px,
                                  sigma_bounds=config.sigma_bounds_px))
        order.append(sel)
    return _merge(parts, np.concatenate(order) if order else np.zeros(0, np.intp), idx.size)


def _merge(parts: list[ProfileFit], order: np.ndarray, n: int) -> ProfileFit:
    """One ProfileFit of ``n`` profiles from the groups' fits (``order``: their positions)."""
    out = {}
    for name in ProfileFit.__dataclass_fields__:
        arr = np.zeros(n, bool) if name == "ok" else np.full(n, np.nan)
        if parts:
            arr[order] = np.concatenate([getattr(p, name) for p in parts])
        out[name] = arr
    return ProfileFit(**out)


@dataclass(frozen=True)
class LineMeasurement:
    """Per (fiber, line) results, each ``[500, L]`` (NaN where not measured)."""

    lines: LineSet
    x: np.ndarray
    y: np.ndarray
    x_err: np.ndarray
    y_err: np.ndarray
    sigma_x: np.ndarray
    sigma_y: np.ndarray
    sigma_y_err: np.ndarray
    flux: np.ndarray  # e-
    flux_err: np.ndarray
    background: np.ndarray  # e- per px
    x_pred: np.ndarray  # prediction the flags were judged against (nominal + shift + pilot field)
    y_pred: np.ndarray
    flags: np.ndarray  # uint16


def _fit_both(st: Stamps, idx, x_start, y_start, sx0, sy0, xoffs, yoffs_l, n_lines, rn2, config, iterations,
              fixed=None):
    """x and y fits of stamps ``idx``; ``fixed``: the neighbours' x-profiles (then the x fit has one
    free component), else the neighbours are free components."""
    xr, yc = config.xprofile_half_rows, config.yprofile_half_cols
    if fixed is None:
        offs, amp0 = xoffs[idx], _neighbour_sums(st.xsum, idx, n_lines)
    else:
        offs, amp0 = np.zeros((idx.size, 1)), None
    fx = fit_profiles(st.xprof[idx], _rows(st.xuse, idx), st.xorigin[idx], x_start, sx0, offs, (2 * xr + 1) * rn2,
                      amp0=amp0, fixed=fixed, iterations=iterations, converge=config.converge_px,
                      sigma_bounds=config.sigma_bounds_px)
    fy = _fit_y(st, idx, y_start, sy0, yoffs_l, n_lines, (2 * yc + 1) * rn2, config, iterations)
    return fx, fy


def _usable(fx: ProfileFit, fy: ProfileFit, x_pred, y_pred, config: MeasureConfig) -> np.ndarray:
    """Pilot fits good enough to fit the fields to."""
    snr = fy.amp / fy.amp_err
    return (fx.ok & fy.ok & (snr >= config.min_snr) & (np.abs(fx.mu - x_pred) <= config.pilot_offset_px)
            & (np.abs(fy.mu - y_pred) <= config.pilot_offset_px))


def _pilot_field(camera, lines, idx, fx, fy, ok, config):
    """Displacement and width fields fitted to the pilot fibers' lines (None when too few)."""
    x0, y0 = lines.x0.ravel()[idx], lines.y0.ravel()[idx]
    u, v = optics.normalised(camera, x0, y0)
    k = ok
    if k.sum() < max(20, config.min_field_points // 4):
        return None
    fdx, fdy = fit_displacement(u[k], v[k], fx.mu[k] - x0[k], fy.mu[k] - y0[k], fx.mu_err[k], fy.mu_err[k],
                                reject_px=config.reject_px, clip_sigma=config.clip_sigma,
                                rounds=config.fit_rounds, floor_px=config.position_floor_px)
    fsx = fit_component("s", u[k], v[k], fx.sigma[k], fx.sigma_err[k], clip_sigma=config.clip_sigma,
                        rounds=config.fit_rounds, floor=config.position_floor_px)
    fsy = fit_component("s", u[k], v[k], fy.sigma[k], fy.sigma_err[k], clip_sigma=config.clip_sigma,
                        rounds=config.fit_rounds, floor=config.position_floor_px)
    if not all(np.isfinite(f.coef).all() for f in (fdx, fdy, fsx, fsy)):
        return None
    return fdx, fdy, fsx, fsy


def measure_lines(source: PixelSource, camera: str, config: MeasureConfig, shift: tuple[float, float],
                  read_noise_e: float) -> LineMeasurement:
    """Measure every candidate line on every alive fiber of an arc (see the module docstring).

    ``shift``: the frame's global ``(dx, dy)`` against the nominal model (``offsets``)."""
    lines = lines_for(camera, config)
    n_l = len(lines.ids)
    alive = np.repeat(optics.traces(camera).alive, n_l)
    x0, y0 = lines.x0.ravel(), lines.y0.ravel()
    px, py = x0 + shift[0], y0 + shift[1]
    st = gather(source, px, py, alive, half_rows=config.stamp_half_rows, half_cols=config.stamp_half_cols,
                xprofile_half_rows=config.xprofile_half_rows, yprofile_half_cols=config.yprofile_half_cols,
                core_px=config.core_px)
    rn2 = float(read_noise_e) ** 2
    xoffs = _x_components_cached(camera, _lines_key(config), config.stamp_half_cols)
    yoffs_l = _y_components(lines)
    fit_ok = st.flags == 0
    fiber = np.repeat(np.arange(N_FIBERS), n_l)
    pilot = np.flatnonzero(fit_ok & (fiber % config.pilot_stride == 0))
    sg = config.sigma_guess_px
    fxp, fyp = _fit_both(st, pilot, px[pilot], py[pilot], sg, sg, xoffs, yoffs_l, n_l, rn2, config,
                         config.iterations)
    field = _pilot_field(camera, lines, pilot, fxp, fyp, _usable(fxp, fyp, px[pilot], py[pilot], config), config)
    piloted = field is not None
    if piloted:
        u, v = optics.normalised(camera, x0, y0)
        fdx, fdy, fsx, fsy = field
        xp, yp = x0 + fdx.predict("x", u, v), y0 + fdy.predict("y", u, v)
        sx0 = np.clip(fsx.predict("s", u, v), *config.sigma_bounds_px)
        sy0 = np.clip(fsy.predict("s", u, v), *config.sigma_bounds_px)
    else:
        xp, yp, sx0, sy0 = px, py, np.full(px.size, sg), np.full(px.size, sg)
    todo = np.flatnonzero(fit_ok)
    fixed = neighbour_model(st, todo, xp, sx0, xoffs, n_l) if field is not None else None
    fx, fy = _fit_both(st, todo, xp[todo], yp[todo], sx0[todo], sy0[todo], xoffs, yoffs_l, n_l, rn2, config,
                       min(config.iterations, FINAL_ITERATIONS) if field is not None else config.iterations, fixed)
    return _assemble(lines, st, todo, fx, fy, xp, yp, (sx0, sy0) if piloted else None, config)


def _assemble(lines: LineSet, st: Stamps, todo, fx: ProfileFit, fy: ProfileFit, xp, yp, widths,
              config: MeasureConfig) -> LineMeasurement:
    """Per (fiber, line) arrays and flags; ``widths``: the pilot's predicted (sigma_x, sigma_y), or
    None when there was no pilot field (then every centre is judged against the nominal model +
    shift with ``pilot_offset_px``)."""
    n = st.flags.size
    shape = lines.x0.shape

    def full(vals, fill=np.nan):
        out = np.full(n, fill, float)
        out[todo] = vals
        return out.reshape(shape)

    flags = st.flags.copy()
    # share of the x-profile inside the columns summed into the y-profile: flux = y amplitude / share
    c_lo, c_hi = st.xorigin[todo] + st.ycols[0], st.xorigin[todo] + st.ycols[1]
    sx = np.where(np.isfinite(fx.sigma), fx.sigma, config.sigma_guess_px)
    share = ndtr((c_hi + 0.5 - fx.mu) / sx) - ndtr((c_lo - 0.5 - fx.mu) / sx)
    share = np.where(np.isfinite(share) & (share > 0.05), share, np.nan)
    snr = fy.amp / fy.amp_err
    bad = np.zeros(todo.size, np.uint16)
    bad[~(fx.ok & fy.ok)] |= F.NOT_CONVERGED
    bad[~(snr >= config.min_snr)] |= F.LOW_SNR
    tol = config.max_offset_px if widths is not None else config.pilot_offset_px
    far = ~((np.abs(fx.mu - xp[todo]) <= tol) & (np.abs(fy.mu - yp[todo]) <= tol))
    bad[far & np.isfinite(fx.mu)] |= F.OFFSET
    if widths is not None:
        dev = config.max_width_dev_px
        off = ~((np.abs(fx.sigma - widths[0][todo]) <= dev) & (np.abs(fy.sigma - widths[1][todo]) <= dev))
        bad[off & np.isfinite(fx.sigma)] |= F.WIDTH
    flags[todo] |= bad
    n_y = 2 * config.yprofile_half_cols + 1
    return LineMeasurement(
        lines=lines, x=full(fx.mu), y=full(fy.mu), x_err=full(fx.mu_err), y_err=full(fy.mu_err),
        sigma_x=full(fx.sigma), sigma_y=full(fy.sigma), sigma_y_err=full(fy.sigma_err),
        flux=full(fy.amp / share), flux_err=full(fy.amp_err / share), background=full(fy.background / n_y),
        x_pred=np.asarray(xp, float).reshape(shape), y_pred=np.asarray(yp, float).reshape(shape),
        flags=flags.reshape(shape))
