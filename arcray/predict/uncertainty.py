"""How wrong a prediction is likely to be, before the arc that would tell: a predicted RMS line error
and its 90 % upper bound, as a function of the hours since the latest usable arc.

The error of a prediction (``decision_error``) is the RMS over every alive fiber and lamp line of the
predicted minus the actual line centre (``optics.rms_line_errors``), the larger of x and y: an arc
may be skipped only when the prediction is within the tolerance along both axes.

``ErrorModel`` is fitted on *cross-validated* errors of training nights (each night predicted by a
model fitted without it, ``night.fit_night_model``), against the measured field:

- exposures with a reference arc: the unrecorded drift grows with the time since the reference, as
  a power of it (a random walk: exponent 1/2, a steady drift: 1), and the header-driven part of
  the prediction errs in proportion to how much it had to predict: ``change``, the RMS line
  distance (px, max of x and y) between the prediction and the reference arc itself. So
  ``log err = c0 + c1 log h + c2 log change`` (least squares, ``h`` at least ``MIN_HOURS``,
  ``change`` at least ``MIN_CHANGE``), ``expected = exp(c0) h^c1 change^c2`` with ``c1``, ``c2``
  kept in [0, 1.5]. With ``change`` the bound knows that a long gap in which nothing moved is
  safer than a short one across a slew or a collimator move, which a time-only rule cannot. (A
  linear model of ``err^2`` in ``h`` let the long gaps set the level of the short ones: 0.14 px
  predicted 15 min after an arc that was 0.02 px off.) The bound is ``q * expected``, ``q`` the
  conformal ``level`` quantile of ``err / expected`` (rank ``ceil((n + 1) level)`` of n), so it
  covers ``level`` of exposures whatever the shape of the distribution;
- exposures without one (the night's first arcs): one level, the RMS and the conformal quantile of
  their errors. With none in training the bound is infinite: an arc is needed.

``arc_needed = upper > tolerance`` (default 0.2 px, the Hartmann focus tolerance of
``calibration-state.md`` §5). ``tune_time_rule`` is the baseline decision that knows only time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from arcray import optics

LEVEL = 0.90
TOLERANCE = 0.2  # px
TOLERANCES = (0.1, 0.2, 0.3, 0.5)  # px, where the decision is scored
MIN_HOURS = 0.05  # h: a shorter gap is modelled as this one (3 min: the time to take an arc)
MIN_CHANGE = 0.01  # px: a smaller predicted change is modelled as this one
MAX_UNSAFE = 0.05  # share of skips whose error exceeds the tolerance a time-only rule may have


def line_errors(camera: str, predicted: np.ndarray, actual: np.ndarray) -> dict[str, np.ndarray]:
    """``optics.rms_line_errors`` that tolerates NaN rows (their errors are NaN)."""
    predicted, actual = np.asarray(predicted, float), np.asarray(actual, float)
    ok = np.isfinite(predicted).all(1) & np.isfinite(actual).all(1)
    out = {k: np.full(len(predicted), np.nan) for k in ("x", "y", "xy", "sigma")}
    if ok.any():
        for k, v in optics.rms_line_errors(camera, predicted[ok], actual[ok]).items():
            out[k][ok] = v
    return out


def decision_error(camera: str, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per row, max(RMS x, RMS y) line-centre error (px; NaN where either field is unknown)."""
    e = line_errors(camera, predicted, actual)
    return np.fmax(e["x"], e["y"])


def _conformal(values: np.ndarray, level: float) -> float:
    v = np.sort(values[np.isfinite(values)])
    if not len(v):
        return math.inf
    k = math.ceil((len(v) + 1) * level)
    return float(v[k - 1]) if k <= len(v) else float(v[-1]) * (1.0 + 1.0 / len(v))


def _log_features(h: np.ndarray, change: np.ndarray | None) -> np.ndarray:
    h = np.maximum(np.nan_to_num(np.asarray(h, float), nan=MIN_HOURS), MIN_HOURS)
    c = np.ones_like(h) if change is None else np.asarray(change, float)
    c = np.maximum(np.nan_to_num(c, nan=MIN_CHANGE), MIN_CHANGE)
    return np.column_stack([np.log(h), np.log(c)])


@dataclass(frozen=True)
class ErrorModel:
    """``expected(h, change)`` and ``upper(h, change)`` (px) of an exposure ``h`` hours after its
    reference arc whose prediction is ``change`` px from that arc (NaN ``h``: no reference arc)."""

    c0: float
    c1: float
    c2: float
    q: float
    first_rms: float
    first_upper: float
    level: float = LEVEL
    n: int = 0

    @classmethod
    def fit(cls, h: np.ndarray, err: np.ndarray, change: np.ndarray | None = None, *,
            level: float = LEVEL) -> "ErrorModel":
        h, err = np.asarray(h, float), np.asarray(err, float)
        ok = np.isfinite(err)
        ref = ok & np.isfinite(h)
        first = ok & ~np.isfinite(h)
        if ref.sum() >= 3:
            L = _log_features(h[ref], None if change is None else np.asarray(change, float)[ref])
            le = np.log(np.maximum(err[ref], 1e-4))
            c = np.zeros(2)
            live = [j for j in range(2) if np.ptp(L[:, j]) > 0]
            if live:
                A = np.column_stack([np.ones(len(le)), L[:, live]])
                c[live] = np.clip(np.linalg.lstsq(A, le, rcond=None)[0][1:], 0.0, 1.5)
            c0 = float(np.mean(le - L @ c))
            q = _conformal(err[ref] / np.exp(c0 + L @ c), level)
            c1, c2 = float(c[0]), float(c[1])
        else:
            c0, c1, c2, q = math.inf, 0.0, 0.0, 1.0
        first_rms = float(np.sqrt(np.mean(err[first] ** 2))) if first.any() else math.inf
        return cls(float(c0), c1, c2, float(q), first_rms, _conformal(err[first], level), level, int(ok.sum()))

    def expected(self, h, change=None) -> np.ndarray:
        h = np.atleast_1d(np.asarray(h, float))
        L = _log_features(h, change)
        with np.errstate(invalid="ignore", over="ignore"):
            e = np.exp(self.c0 + self.c1 * L[:, 0] + self.c2 * L[:, 1])
        return np.where(np.isfinite(h), e, self.first_rms)

    def upper(self, h, change=None) -> np.ndarray:
        h = np.atleast_1d(np.asarray(h, float))
        return np.where(np.isfinite(h), self.q * self.expected(h, change), self.first_upper)


def tune_time_rule(h: np.ndarray, err: np.ndarray, tolerance: float, *, max_unsafe: float = MAX_UNSAFE) -> float:
    """The largest age ``T`` (hours) such that skipping every arc whose latest arc is at most ``T``
    hours old leaves at most ``max_unsafe`` of those skips above ``tolerance`` (on the rows given:
    training nights). -inf when no ``T`` skips anything safely; first arcs (NaN ``h``) never skip."""
    h, err = np.asarray(h, float), np.asarray(err, float)
    ok = np.isfinite(h) & np.isfinite(err)
    best = -math.inf
    for t in np.unique(h[ok]):
        skip = ok & (h <= t)
        if np.mean(err[skip] > tolerance) <= max_unsafe:
            best = float(t)
    return best
