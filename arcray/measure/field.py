"""Robust fits of the displacement and width fields to measured positions. Pure numpy.

The model is ``arcray.optics``'s: ``dx = B_x(u, v) @ (a0..a3)``, ``dy = B_y(u, v) @ (b0..b3)``,
``sigma = B_s(u, v) @ (s0, su, sv, sr)``, with ``(u, v)`` the NOMINAL position of each point
(where ``optics.line_positions`` evaluates the field). Against the nominal model the fitted
values are ``measured - nominal``; against a reference arc they are ``measured - reference``
(arc2trace's transform from the reference arc to this one: its 6 affine terms are a0, a1, a2,
b0, b1, b2; the quadratic a3, b3 come on top).

Rejection as arc2trace (``pyvista.image.transform``): fit, drop every point whose residual
exceeds ``reject_px`` on EITHER axis, refit; arcray repeats this ``fit_rounds`` times and also
drops points whose residual in units of its own error (``sqrt(err^2 + floor^2)``) lies beyond
``clip_sigma`` robust standard deviations (1.4826 MAD) of those pulls, so a few bad centroids
among thousands cannot move a 0.01 px term while faint lines (larger errors) are not clipped for
being faint. Weighted least squares with ``1 / (err^2 + floor^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arcray import optics


@dataclass(frozen=True)
class ComponentFit:
    """One field component (``x``, ``y`` or ``s``): 4 coefficients (px at the detector's edge)."""

    coef: np.ndarray  # [4], NaN when there were too few points
    err: np.ndarray  # [4] formal 1-sigma
    used: np.ndarray  # bool per input point: kept by the rejection
    rms: float  # weighted-free RMS of the kept residuals, px
    n_used: int
    n_rejected: int  # finite input points that were dropped

    def predict(self, kind: str, u, v) -> np.ndarray:
        """The component at ``(u, v)`` (any shape)."""
        u = np.asarray(u, float)
        return (optics.basis(kind, u, v) @ self.coef).reshape(u.shape)


def _empty(n: int) -> ComponentFit:
    nan = np.full(4, np.nan)
    return ComponentFit(coef=nan, err=nan.copy(), used=np.zeros(n, bool), rms=float("nan"), n_used=0,
                        n_rejected=0)


def _wlstsq(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares by the normal equations (4 unknowns, well conditioned on [-1, 1])."""
    aw = a * w[:, None]
    try:
        cov = np.linalg.inv(aw.T @ a)
    except np.linalg.LinAlgError:
        nan = np.full(a.shape[1], np.nan)
        return nan, nan.copy()
    return cov @ (aw.T @ b), np.sqrt(np.clip(np.diag(cov), 0, None))


def _robust_std(r: np.ndarray) -> float:
    """1.4826 MAD; from a regular subsample of at most ~4000 points (a scale for clipping needs
    no more, and the two medians dominate the fit's cost otherwise)."""
    if r.size == 0:
        return float("nan")
    r = r[:: max(1, r.size // 4000)]
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def fit_displacement(u, v, dx, dy, ex, ey, *, reject_px: float, clip_sigma: float, rounds: int,
                     floor_px: float, min_points: int = 8) -> tuple[ComponentFit, ComponentFit]:
    """Fit ``dx`` and ``dy`` (px) at nominal ``(u, v)`` together: a point rejected on either axis is
    dropped from both (arc2trace). ``ex``/``ey``: 1-sigma errors of ``dx``/``dy`` (px)."""
    u, v, dx, dy, ex, ey = (np.asarray(a, float).ravel() for a in (u, v, dx, dy, ex, ey))
    finite = np.isfinite(dx) & np.isfinite(dy) & np.isfinite(ex) & np.isfinite(ey)
    if finite.sum() < min_points:
        return _empty(dx.size), _empty(dx.size)
    bx, by = optics.basis("x", u, v), optics.basis("y", u, v)
    wx, wy = 1.0 / (ex ** 2 + floor_px ** 2), 1.0 / (ey ** 2 + floor_px ** 2)
    keep = finite.copy()
    for _ in range(rounds):
        cx, _ = _wlstsq(bx[keep], dx[keep], wx[keep])
        cy, _ = _wlstsq(by[keep], dy[keep], wy[keep])
        rx, ry = dx - bx @ cx, dy - by @ cy
        px, py = rx * np.sqrt(wx), ry * np.sqrt(wy)
        sx, sy = _robust_std(px[keep]), _robust_std(py[keep])
        new = finite & (np.abs(rx) <= reject_px) & (np.abs(ry) <= reject_px)
        new &= (np.abs(px) <= clip_sigma * max(sx, 1e-6)) & (np.abs(py) <= clip_sigma * max(sy, 1e-6))
        if new.sum() < min_points:
            break
        if np.array_equal(new, keep):
            break
        keep = new
    cx, ex_c = _wlstsq(bx[keep], dx[keep], wx[keep])
    cy, ey_c = _wlstsq(by[keep], dy[keep], wy[keep])
    rx, ry = dx - bx @ cx, dy - by @ cy
    n_rej = int(finite.sum() - keep.sum())
    fx = ComponentFit(cx, ex_c, keep, float(np.sqrt(np.mean(rx[keep] ** 2))), int(keep.sum()), n_rej)
    fy = ComponentFit(cy, ey_c, keep, float(np.sqrt(np.mean(ry[keep] ** 2))), int(keep.sum()), n_rej)
    return fx, fy


def fit_component(kind: str, u, v, values, errors, *, clip_sigma: float, rounds: int, floor: float,
                  reject: float = np.inf, min_points: int = 8) -> ComponentFit:
    """Fit one component (``x`` on flats, ``s`` widths) with the same rejection on one axis."""
    u, v, val, err = (np.asarray(a, float).ravel() for a in (u, v, values, errors))
    finite = np.isfinite(val) & np.isfinite(err)
    if finite.sum() < min_points:
        return _empty(val.size)
    b = optics.basis(kind, u, v)
    w = 1.0 / (err ** 2 + floor ** 2)
    keep = finite.copy()
    for _ in range(rounds):
        c, _ = _wlstsq(b[keep], val[keep], w[keep])
        r = val - b @ c
        pull = r * np.sqrt(w)
        s = _robust_std(pull[keep])
        new = finite & (np.abs(r) <= reject) & (np.abs(pull) <= clip_sigma * max(s, 1e-6))
        if new.sum() < min_points or np.array_equal(new, keep):
            break
        keep = new
    c, ce = _wlstsq(b[keep], val[keep], w[keep])
    r = val - b @ c
    return ComponentFit(c, ce, keep, float(np.sqrt(np.mean(r[keep] ** 2))), int(keep.sum()),
                        int(finite.sum() - keep.sum()))


def quadrant(camera: str, x, y) -> np.ndarray:
    """Amplifier quadrant (0 lower-left, 1 lower-right, 2 upper-left, 3 upper-right) of trimmed
    ``(x, y)``; the amps' own boundaries (``instrument.GEOMETRY``)."""
    from arcray.instrument import GEOMETRY

    amp0 = GEOMETRY[camera].amps[0]
    return (np.asarray(y) >= amp0.trim_rows.stop).astype(np.int8) * 2 + (np.asarray(x) >= amp0.trim_cols.stop)


def quadrant_medians(camera: str, x, y, values, used) -> np.ndarray:
    """Median of ``values`` over the used points of each quadrant ``[4]`` (NaN where none)."""
    q = quadrant(camera, x, y)
    vals = np.asarray(values, float)
    ok = np.asarray(used, bool) & np.isfinite(vals)
    out = np.full(4, np.nan)
    for i in range(4):
        sel = ok & (q == i)
        if sel.any():
            out[i] = float(np.median(vals[sel]))
    return out
