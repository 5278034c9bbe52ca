"""Predictors of a camera's state from header values and the night's earlier arcs.

Predictors (fitted on the usable arcs of training nights, one set per camera):

- ``linear``: ordinary least squares on the raw header values (the study's model);
- ``ridge``: standardised header values, angles as sine and cosine, L2 penalty per state term
  chosen by cross-validation with whole nights as folds (``regress.fit_ridge``);
- ``gbr``: gradient-boosted trees per state term on the same features;
- ``refarc``: the header-driven state now, plus the night's latest usable arc's departure from
  the header-driven state *then*, decayed with the time since it:
  ``M(X_t) + exp(-dt / tau_k) * (S_ref - M(X_ref))``. ``M`` is a within-night ridge
  (``regress.fit_within``: slopes from the variation within nights, so it knows what a header
  change does; level from all training arcs). The departure ``S_ref - M(X_ref)`` is mostly the
  hidden walk, an Ornstein-Uhlenbeck process (``calibration-state.md`` §4): its best forecast
  decays towards zero with the walk's correlation time, so ``tau_k`` is chosen per state term
  (least squares over every (earlier usable arc, later usable arc) pair of the training nights,
  from ``DECAY_HOURS``; infinite: a random walk). An exposure with no earlier usable arc that
  night gets ``M(X_t)``, where the decay ends anyway. (The first version predicted the change
  ``S_t - S_ref`` by a ridge on ``[header change, hours]`` with an intercept, the mean change
  over all gaps: 0.14-0.17 px 15 min after an arc that reusing was 0.10-0.12 px off; on the demo
  world 0.307 px against 0.293 px for this form, 1.24x against 1.18x the floor.)

References, never used to skip an arc:

- ``reuse``: the latest usable arc's state unchanged (NaN where there is none);
- ``interp``: linear interpolation in time between the usable arcs before and after the exposure
  (only one of them: that one; none: NaN). It sees the future: an upper bound, shown only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from arcray.analysis.regress import as_2d, fit_ridge, fit_within
from arcray.errors import ConfigError, InputError
from arcray.predict.features import HeaderEncoder, hours, latest_arc, next_arc

PREDICTORS = ("linear", "ridge", "gbr", "refarc")
REFERENCES = ("reuse", "interp")
MIN_TRAINING_ARCS = 4
# h: the decay times refarc chooses from (the world's hidden walks have 6 h; inf: a random walk)
DECAY_HOURS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0, 48.0, np.inf)


@dataclass
class Predictors:
    """The fitted predictors of one camera (``predict`` gives every kind's states)."""

    encoder: HeaderEncoder
    models: dict[str, object] = field(default_factory=dict)
    fallback: object | None = None  # refarc: exposures without an earlier usable arc
    info: dict = field(default_factory=dict)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in PREDICTORS if k in self.models)

    def predict(self, frames: pd.DataFrame, states: np.ndarray, usable: np.ndarray) -> dict[str, np.ndarray]:
        """``{kind: [N, K]}`` for every fitted kind and both references. ``states``/``usable``: the
        known states of ``frames``' rows (only usable arcs' are read, and only as references)."""
        states = np.where(np.asarray(usable)[:, None], np.asarray(states, float), np.nan)
        X, _ = self.encoder.transform(frames)
        Xraw, _ = self.encoder.raw(frames)
        ref = latest_arc(frames, usable)
        out: dict[str, np.ndarray] = {}
        for kind in self.kinds:
            if kind == "linear":
                out[kind] = as_2d(self.models[kind].predict(Xraw))
            elif kind == "refarc":
                base = as_2d(self.fallback.predict(X))
                pred = base.copy()
                has = ref >= 0
                if has.any():
                    h = hours(frames)
                    w = self.models[kind].weights(h[has] - h[ref[has]])
                    pred[has] = base[has] + w * (states[ref[has]] - base[ref[has]])
                out[kind] = pred
            else:
                out[kind] = as_2d(self.models[kind].predict(X))
        out["reuse"] = reuse(frames, states, usable)
        out["interp"] = interpolate(frames, states, usable)
        return out


@dataclass(frozen=True)
class Decay:
    """``exp(-dt / tau)`` per state term (``tau`` in hours; ``inf``: no decay)."""

    tau: np.ndarray

    def weights(self, dt: np.ndarray) -> np.ndarray:
        """``[len(dt), K]`` weights of the reference's departure ``dt`` hours after it."""
        dt = np.maximum(np.nan_to_num(np.asarray(dt, float)), 0.0)
        return np.exp(-dt[:, None] / self.tau[None, :])

    @classmethod
    def fit(cls, departure_ref: np.ndarray, departure_now: np.ndarray, dt: np.ndarray) -> "Decay":
        """Per term, the ``DECAY_HOURS`` value with the least squared error of ``departure_now`` as
        ``exp(-dt / tau) * departure_ref`` (pairs of usable arcs of training nights)."""
        taus = np.asarray(DECAY_HOURS, float)
        w = np.exp(-np.maximum(np.nan_to_num(dt), 0.0)[:, None] / taus[None, :])  # [pairs, taus]
        err = ((departure_now[:, None, :] - w[:, :, None] * departure_ref[:, None, :]) ** 2).sum(0)  # [taus, K]
        return cls(taus[err.argmin(0)])


def _training_pairs(frames: pd.DataFrame, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (earlier, later) pair of usable arcs of one camera and night: ``(ref, row)`` positions."""
    refs, rows = [], []
    pos = np.flatnonzero(usable)
    sub = frames.iloc[pos]
    for _, g in sub.groupby(["camera", "mjd"], sort=False):
        order = g.sort_values("expnum", kind="stable")
        idx = [frames.index.get_loc(i) for i in order.index]
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                refs.append(idx[a])
                rows.append(idx[b])
    return np.asarray(refs, np.int64), np.asarray(rows, np.int64)


def reuse(frames: pd.DataFrame, states: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """The latest usable arc's state (NaN rows where there is none)."""
    ref = latest_arc(frames, usable)
    out = np.full((len(frames), states.shape[1]), np.nan)
    has = ref >= 0
    out[has] = states[ref[has]]
    return out


def interpolate(frames: pd.DataFrame, states: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Linear interpolation in time between the usable arcs before and after each row."""
    before, after = latest_arc(frames, usable), next_arc(frames, usable)
    h = hours(frames)
    out = np.full((len(frames), states.shape[1]), np.nan)
    for i in range(len(frames)):
        b, a = before[i], after[i]
        if b >= 0 and a >= 0 and np.isfinite(h[a] - h[b]) and h[a] > h[b]:
            w = np.clip((h[i] - h[b]) / (h[a] - h[b]), 0.0, 1.0)
            out[i] = (1 - w) * states[b] + w * states[a]
        elif b >= 0 or a >= 0:
            out[i] = states[b if b >= 0 else a]
    return out


def _gbr(seed: int):
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.multioutput import MultiOutputRegressor

    # classic single-threaded trees: a few hundred arcs need no histograms (regress.py says why)
    return MultiOutputRegressor(GradientBoostingRegressor(
        n_estimators=100, learning_rate=0.05, max_depth=3, min_samples_leaf=5, subsample=0.8, random_state=seed))


@dataclass(frozen=True)
class _Within:
    """``regress.fit_within``'s model at given per-term penalties (no cross-validation)."""

    model: object
    offset: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        return as_2d(self.model.predict(X)) + self.offset


def _fit_within_at(X: np.ndarray, Y: np.ndarray, nights: np.ndarray, alpha) -> _Within:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def demean(A):
        return A - pd.DataFrame(A).groupby(nights).transform("mean").to_numpy()

    m = make_pipeline(StandardScaler(), Ridge(alpha=np.asarray(alpha, float))).fit(demean(X), demean(Y))
    return _Within(m, (Y - as_2d(m.predict(X))).mean(0))


def fit_predictors(frames: pd.DataFrame, states: np.ndarray, usable: np.ndarray, *,
                   kinds: tuple[str, ...] = PREDICTORS, seed: int = 0, within_alpha=None) -> Predictors:
    """Fit ``kinds`` on the usable arcs of ``frames`` (one camera, the training nights).
    ``within_alpha``: refarc's per-term penalties, given instead of chosen by cross-validation (the
    error model's inner folds reuse the outer fit's: 35 ridge fits fewer per fold)."""
    from sklearn.linear_model import LinearRegression

    bad = [k for k in kinds if k not in PREDICTORS]
    if bad:
        raise ConfigError(f"unknown predictor {', '.join(bad)}; choose from {', '.join(PREDICTORS)}")
    usable = np.asarray(usable, bool)
    if usable.sum() < MIN_TRAINING_ARCS:
        raise InputError(f"too few usable measured arcs to fit a predictor: {int(usable.sum())} "
                         f"(need {MIN_TRAINING_ARCS}, from other nights)")
    train = frames.iloc[np.flatnonzero(usable)]
    S = np.asarray(states, float)
    Y = S[usable]
    encoder = HeaderEncoder.fit(train)
    X_all, _ = encoder.transform(frames)
    Xraw, _ = encoder.raw(train)
    X = X_all[usable]
    nights = train["mjd"].to_numpy()
    p = Predictors(encoder=encoder, info={"n_arcs": int(usable.sum()), "n_nights": int(len(np.unique(nights))),
                                          "columns": list(encoder.columns)})
    for kind in kinds:
        if kind == "linear":
            p.models[kind] = LinearRegression().fit(Xraw, Y)
        elif kind == "ridge":
            p.models[kind], p.info["ridge_alpha"] = fit_ridge(X, Y, nights, None)
        elif kind == "gbr":
            p.models[kind] = _gbr(seed).fit(X, Y)
        else:
            if within_alpha is None:
                p.fallback, p.info["fallback_alpha"] = fit_within(X, Y, nights, None)
            else:
                p.fallback, p.info["fallback_alpha"] = _fit_within_at(X, Y, nights, within_alpha), list(within_alpha)
            ref, rows = _training_pairs(frames, usable)
            if len(rows) < MIN_TRAINING_ARCS:
                raise InputError("the reference-arc model needs training nights with at least two usable arcs "
                                 f"(found {len(rows)} pairs)")
            dep = S - as_2d(p.fallback.predict(X_all))
            h = hours(frames)
            p.models[kind] = Decay.fit(dep[ref], dep[rows], h[rows] - h[ref])
            p.info["refarc_tau_hours"] = [float(t) for t in p.models[kind].tau]
            p.info["refarc_pairs"] = int(len(rows))
    return p
