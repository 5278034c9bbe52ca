"""How wrong a prediction is likely to be, before the arc that would tell: a predicted RMS line error
and its 90 % upper bound, as a function of the hours since the latest usable arc.

The error of a prediction (``decision_error``) is the RMS over every alive fiber and lamp line of the
predicted minus the actual line centre (``optics.rms_line_errors``), the larger of x and y: an arc
may be skipped only when the prediction is within the tolerance along both axes.

``ErrorModel`` is fitted on *cross-validated* errors of training nights (each night predicted by a
model fitted without it, ``night.fit_night_model``), against the measured field:

- exposures with a reference arc: the unrecorded drift grows with the time since the reference, as
  a power of it (a random walk: exponent 1/2, a steady drift: 1), so ``log err = c0 + c1 log h``
  (least squares, ``h`` at least ``MIN_HOURS``), ``expected(h) = exp(c0) h^c1`` with ``c1`` kept in
  [0, 1.5]. (A linear model of ``err^2`` in ``h`` let the long gaps set the level of the short ones:
  0.14 px predicted 15 min after an arc that was 0.02 px off.) The bound is ``q * expected(h)``, ``q`` the
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


@dataclass(frozen=True)
class ErrorModel:
    """``expected(h)`` and ``upper(h)`` (px) of an exposure ``h`` hours after its reference arc
    (NaN ``h``: no reference arc)."""

    c0: float
    c1: float
    q: float
    first_rms: float
    first_upper: float
    level: float = LEVEL
    n: int = 0

    @classmethod
    def fit(cls, h: np.ndarray, err: np.ndarray, *, level: float = LEVEL) -> "ErrorModel":
        h, err = np.asarray(h, float), np.asarray(err, float)
        ok = np.isfinite(err)
        ref = ok & np.isfinite(h)
        first = ok & ~np.isfinite(h)
        if ref.sum() >= 2:
            lh, le = np.log(np.maximum(h[ref], MIN_HOURS)), np.log(np.maximum(err[ref], 1e-4))
            c1 = float(np.clip(np.polyfit(lh, le, 1)[0], 0.0, 1.5)) if np.ptp(lh) > 0 else 0.0
            c0 = float(np.mean(le - c1 * lh))
            q = _conformal(err[ref] / np.exp(c0 + c1 * lh), level)
        else:
            c0, c1, q = math.inf, 0.0, 1.0
        first_rms = float(np.sqrt(np.mean(err[first] ** 2))) if first.any() else math.inf
        return cls(float(c0), float(c1), float(q), first_rms, _conformal(err[first], level), level, int(ok.sum()))

    def expected(self, h) -> np.ndarray:
        h = np.asarray(h, float)
        with np.errstate(invalid="ignore", over="ignore"):
            e = np.exp(self.c0 + self.c1 * np.log(np.maximum(np.nan_to_num(h), MIN_HOURS)))
        return np.where(np.isfinite(h), e, self.first_rms)

    def upper(self, h) -> np.ndarray:
        h = np.asarray(h, float)
        return np.where(np.isfinite(h), self.q * self.expected(h), self.first_upper)


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
