"""Least-squares fits of pixel-integrated Gaussians to many 1-D profiles at once. Pure numpy.

A profile is a line or trace collapsed onto one axis (the sum of a few rows or columns of a
stamp: arc2trace's "marginal" Gaussian fits). Its model is

    m_k = sum_j A_j P(k; mu + d_j, sigma) + b,   P(k; c, s) = integral over pixel k of N(t; c, s)

with one shared centre ``mu`` and width ``sigma``, components at FIXED offsets ``d_j`` from
``mu`` (``d_0 = 0`` is the measured line or trace; the others are its neighbours: the adjacent
fibers of a bundle, a nearby lamp line) with free fluxes ``A_j``, and a constant ``b``. Fixed
offsets come from the nominal instrument model, which knows the fiber pitch and the line list far
better than a fit to a few pixels could.

Numerics (every profile of a frame in one set of array operations, no Python loop over lines):

- the pixel integral of a Gaussian of width ``sigma`` is modelled as a Gaussian of variance
  ``sigma^2 + 1/12`` (the pixel's own variance) sampled at the pixel centres: even in ``k - mu``,
  so it does not bias a centre (< 1e-4 px on exact pixel-integrated profiles), and the width it
  returns is high by ~0.001 px at sigma = 1-1.45 px (``tests/test_measure_profiles.py``); one
  exponential per element, in float32, on coordinates local to each profile (so 4000-px positions
  lose nothing);
- start: fluxes from the caller (e.g. each profile's sum), then ``iterations`` Gauss-Newton steps
  with a small Levenberg damping; steps in ``mu`` clipped to ``max_step`` px, ``sigma`` kept inside
  ``sigma_bounds``; weights ``1 / (max(model, 0) + read variance)`` (Poisson + read noise), zero
  where an element holds a masked pixel; normal equations formed in float32 by one batched matrix
  product, solved by a batch-last Cholesky in float64;
- uncertainties are the square roots of the diagonal of ``(J^T W J)^-1`` at the last step (the
  noise model's, not rescaled by the fit's chi^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32
_INV_SQRT_2PI = F32(1.0 / np.sqrt(2.0 * np.pi))
PIXEL_VARIANCE = 1.0 / 12.0  # px^2: variance of a uniform pixel, added to sigma^2


@dataclass(frozen=True)
class ProfileFit:
    """Fit results, one entry per profile. Centres are absolute coordinates (px)."""

    mu: np.ndarray  # float64, px
    sigma: np.ndarray  # px
    amp: np.ndarray  # flux of component 0 (summed over the profile's pixels, e-)
    background: np.ndarray  # e- per profile element
    mu_err: np.ndarray
    sigma_err: np.ndarray
    amp_err: np.ndarray
    ok: np.ndarray  # bool: finite, sigma strictly inside its bounds, centre inside the profile


def _components(mu: np.ndarray, sigma: np.ndarray, offsets: np.ndarray, k: int):
    """Unit-flux components and their mu/sigma derivatives at the element centres, ``[n, J, K]``."""
    se = np.sqrt(sigma * sigma + F32(PIXEL_VARIANCE))
    inv = (F32(1.0) / se)[:, None, None]
    z = np.arange(k, dtype=F32)[None, None, :] - (mu[:, None] + offsets)[:, :, None]
    z *= inv
    z2 = z * z
    g = z2 * F32(-0.5)
    np.exp(g, out=g)
    g *= inv * _INV_SQRT_2PI
    dmu = g * z
    dmu *= inv
    z2 -= F32(1.0)
    z2 *= g
    z2 *= inv * (sigma / se)[:, None, None]
    return g, dmu, z2


def _cholesky_solve(a: np.ndarray, b: np.ndarray, n_tail: int = 0):
    """Solve ``a x = b`` for a batch of small systems, batch LAST (``a [P, P, n]`` symmetric
    positive definite, only the lower triangle read; ``b [P, n]``; float64): each entry is one
    contiguous vector, so the ``P^3/6`` scalar steps run over all systems at once. Non-positive
    pivots give NaN. Returns ``x [P, n]`` and ``diag(a^-1)`` of the LAST ``n_tail`` parameters
    ``[n_tail, n]`` (cheap: ``L^-1`` is lower triangular, so only its last rows are needed)."""
    p = a.shape[0]
    low = np.empty_like(a)  # low[i, j] for i >= j; low[j, j] holds 1 / L_jj
    tmp = np.empty_like(b[0])
    for j in range(p):
        d = low[j, j]
        np.copyto(d, a[j, j])
        for m in range(j):
            np.multiply(low[j, m], low[j, m], out=tmp)
            d -= tmp
        d[~(d > 0)] = np.nan
        np.sqrt(d, out=d)
        np.reciprocal(d, out=d)
        for i in range(j + 1, p):
            v = low[i, j]
            np.copyto(v, a[i, j])
            for m in range(j):
                np.multiply(low[i, m], low[j, m], out=tmp)
                v -= tmp
            v *= d
    y = np.empty_like(b)
    for j in range(p):
        np.copyto(y[j], b[j])
        for m in range(j):
            np.multiply(low[j, m], y[m], out=tmp)
            y[j] -= tmp
        y[j] *= low[j, j]
    x = np.empty_like(b)
    for j in range(p - 1, -1, -1):
        np.copyto(x[j], y[j])
        for m in range(j + 1, p):
            np.multiply(low[m, j], x[m], out=tmp)
            x[j] -= tmp
        x[j] *= low[j, j]
    if not n_tail:
        return x, None
    first = p - n_tail  # (L^-1)[i, j] for i >= j >= first: forward substitution inside the tail
    inv = {}
    for j in range(first, p):
        inv[j, j] = low[j, j]
        for i in range(j + 1, p):
            v = -low[i, j] * inv[j, j]
            for m in range(j + 1, i):
                v -= low[i, m] * inv[m, j]
            inv[i, j] = v * low[i, i]
    var = np.empty((n_tail, b.shape[1]))
    for t, j in enumerate(range(first, p)):
        var[t] = sum(inv[i, j] ** 2 for i in range(j, p))
    return x, var


def gaussians(k: int, origin: np.ndarray, centres: np.ndarray, sigma: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """``[n, K]`` profiles of the model's components (pixel-integrated Gaussians, as fitted) of
    ``flux`` at absolute ``centres`` on elements ``origin + 0..K-1``; non-finite inputs give 0."""
    c = np.asarray(centres, np.float64) - np.asarray(origin, np.float64)
    ok = np.isfinite(c) & np.isfinite(flux) & np.isfinite(sigma)
    se = np.sqrt(np.where(ok, sigma, 1.0) ** 2 + PIXEL_VARIANCE).astype(F32)
    z = (np.arange(k, dtype=F32)[None, :] - np.where(ok, c, 0.0).astype(F32)[:, None]) / se[:, None]
    g = np.exp(F32(-0.5) * z * z)
    g *= (np.where(ok, flux, 0.0) * _INV_SQRT_2PI / se).astype(F32)[:, None]
    return g


def fit_profiles(data: np.ndarray, usable: np.ndarray, origin: np.ndarray, mu0: np.ndarray,
                 sigma0: np.ndarray | float, offsets: np.ndarray, read_var: np.ndarray | float, *,
                 amp0: np.ndarray | None = None, fixed: np.ndarray | None = None, iterations: int = 3,
                 converge: float = 0.0,
                 sigma_bounds: tuple[float, float] = (0.5, 3.0), max_step: float = 1.0) -> ProfileFit:
    """Fit every profile ``data[i]`` (``[n, K]`` e-, element ``k`` centred on ``origin[i] + k``).

    ``usable``: bool ``[n, K]`` (False: weight 0; None: all usable). ``mu0``: starting centres (absolute px).
    ``offsets``: ``[n, J]`` component offsets from ``mu`` (px); column 0 must be 0; NaN = no such
    component (its flux is held at 0). ``read_var``: variance of an element without signal
    (e-^2; scalar or ``[n, K]``). ``amp0``: starting fluxes ``[n, J]`` (default: each profile's
    sum for every component). ``fixed``: a known extra model ``[n, K]`` (e-; e.g. the neighbour
    fibers' predicted profiles), subtracted from the data and counted in the noise model.
    ``iterations``: most Gauss-Newton steps; a profile whose centre and width steps are both below
    ``converge`` px stops early (its variances are from that step).
    """
    data = np.asarray(data, F32)
    n, k = data.shape
    if fixed is not None:
        fixed = np.asarray(fixed, F32)
        data = data - fixed
    origin = np.asarray(origin, np.float64)
    offsets = np.asarray(offsets, F32)
    present = np.isfinite(offsets)
    offs = np.where(present, offsets, F32(0.0)).astype(F32)
    nj = offs.shape[1]
    mu = (np.asarray(mu0, np.float64) - origin).astype(F32)
    sigma = np.broadcast_to(np.asarray(sigma0, F32), (n,)).astype(F32)
    w_use = None if usable is None else usable.astype(F32)
    rv = np.asarray(read_var, F32)
    absent = np.concatenate([np.zeros((n, 1), bool), ~present[:, 1:], np.zeros((n, 3), bool)], axis=1)
    if amp0 is None:
        amp0 = np.repeat(((data if w_use is None else data * w_use) @ np.ones(k, F32))[:, None], nj, axis=1)
    amps = np.where(present, np.asarray(amp0, F32), F32(0.0)).astype(F32)
    bg = np.zeros(n, F32)
    var = np.full((3, n), np.nan)  # amp0, sigma, mu
    active = np.arange(n)
    for _ in range(max(iterations, 1)):
        a = slice(None) if active.size == n else active  # a slice: in-place updates, no fancy copies

        def sub(arr, a=a):
            return arr if arr is None or arr.ndim == 0 else arr[a]
        step, v = _gn_step(sub(data), sub(w_use), sub(rv), sub(mu), sub(sigma), sub(offs), sub(present),
                           sub(amps), sub(bg), sub(absent), sub(fixed))
        var[:, a] = v
        step = np.nan_to_num(step).astype(F32)  # order: bg, neighbour fluxes, flux, sigma, mu
        bg[a] += step[0]
        if nj > 1:
            amps[a, 1:] += np.where(present[a, 1:], step[1:nj].T, F32(0.0))
        amps[a, 0] += step[nj]
        dmu = np.clip(step[nj + 2], -max_step, max_step)
        new_sigma = np.clip(sigma[a] + np.clip(step[nj + 1], -0.5, 0.5), *sigma_bounds).astype(F32)
        moving = (np.abs(dmu) >= converge) | (np.abs(new_sigma - sigma[a]) >= converge)
        mu[a] += dmu
        sigma[a] = new_sigma
        active = (np.arange(n) if isinstance(a, slice) else a)[moving]
        if active.size == 0:
            break
    err = np.sqrt(np.where(var > 0, var, np.nan))
    inside = (sigma > sigma_bounds[0] * 1.0001) & (sigma < sigma_bounds[1] * 0.9999)
    ok = np.isfinite(err[2]) & np.isfinite(mu) & inside & (mu > -0.5) & (mu < k - 0.5)
    return ProfileFit(mu=origin + mu.astype(np.float64), sigma=sigma.astype(np.float64),
                      amp=amps[:, 0].astype(np.float64), background=bg.astype(np.float64),
                      mu_err=err[2], sigma_err=err[1], amp_err=err[0], ok=ok)


def _gn_step(data, w_use, rv, mu, sigma, offs, present, amps, bg, absent, fixed):
    """One Gauss-Newton step for a set of profiles: ``(step [P, n], variances [3, n])``, parameters
    ordered (constant, neighbour fluxes, flux, sigma, mu) so the three that need a variance come
    last. The Jacobian is kept as P contiguous ``[n, K]`` columns: the normal matrix is then
    P(P+1)/2 row-wise dot products, already batch-last for the Cholesky."""
    nj = offs.shape[1]
    g, dmu, dsig = _components(mu, sigma, offs, data.shape[1])
    g *= present[:, :, None]
    cols = [None] + [g[:, j] for j in range(1, nj)] + [g[:, 0]]  # None: the constant's column of ones
    d_s = dsig[:, 0] * amps[:, :1]
    d_m = dmu[:, 0] * amps[:, :1]
    model = g[:, 0] * amps[:, :1]
    for j in range(1, nj):
        d_s += dsig[:, j] * amps[:, j:j + 1]
        d_m += dmu[:, j] * amps[:, j:j + 1]
        model += g[:, j] * amps[:, j:j + 1]
    cols += [d_s, d_m]
    model += bg[:, None]
    w = np.maximum(model if fixed is None else model + fixed, 0.0)
    w += rv
    np.reciprocal(w, out=w)
    if w_use is not None:
        w *= w_use
    return _solve_normal(cols, w, data - model, absent)


def _solve_normal(cols: list, w: np.ndarray, resid: np.ndarray, absent: np.ndarray):
    """Gauss-Newton step ``(J^T W J) x = J^T W r`` for every profile, ``cols``: the Jacobian's
    ``[n, K]`` columns (``None`` = a column of ones), and the variances of the last three
    parameters. A Levenberg damping of 1e-4 of the diagonal keeps near-degenerate systems stable;
    absent components (zero columns) get a unit diagonal, so their step is 0."""
    p = len(cols)
    n, k = w.shape
    ones = np.ones(k, F32)
    jw = [w if c is None else c * w for c in cols]
    normal = np.empty((p, p, n))
    grad = np.empty((p, n))
    for i in range(p):
        grad[i] = np.einsum("nk,nk->n", jw[i], resid)
        for j in range(i + 1):
            normal[i, j] = jw[i] @ ones if cols[j] is None else np.einsum("nk,nk->n", jw[i], cols[j])
        normal[i, i] = normal[i, i] * (1.0 + 1e-4) + absent[:, i]
    return _cholesky_solve(normal, grad, 3)
