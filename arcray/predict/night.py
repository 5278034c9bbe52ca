"""One camera's model for one night: the predictors fitted on the other nights, the error model from
their cross-validated errors, and the time-only baseline rules; and the prediction of a night.

``fit_night_model(frames, ...)`` takes the training rows (one camera, never the night to predict:
the caller removes it, ``evaluate.leave_one_night_out`` does and tests check). Inside, the training
nights are split by night again (``folds`` groups) to get errors the model did not see
(``uncertainty``), for the primary predictor (default ``refarc``) and for ``reuse``.

``predict_night(model, frames)`` predicts every row of ``frames`` (one camera; every flavor), each
exposure from the header and the usable arcs of its night taken before it. Long table: one row
per (exposure, predictor or reference); the primary predictor's rows carry the predicted RMS
error, the 90 % bound and ``arc_needed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from arcray.errors import InputError
from arcray.predict.features import hours_since, latest_arc, usable_arcs
from arcray.predict.models import PREDICTORS, Predictors, fit_predictors
from arcray.predict.representation import MeasuredField, Representation
from arcray.predict.uncertainty import (LEVEL, TOLERANCE, TOLERANCES, ErrorModel, decision_error,
                                        tune_time_rule)

TIME_RULE_SOURCES = ("reuse", "primary")  # what a time-only rule predicts when it skips
HISTORY_NIGHTS = 30  # nights a model is fitted on: the nearest to the one predicted (0: every night)


def training_nights(frames: pd.DataFrame, night: int, history: int = HISTORY_NIGHTS) -> pd.DataFrame:
    """The rows of ``frames`` (one camera) to fit the model of ``night`` on: never that night, and
    of the others only the ``history`` nights nearest to it in time (earlier first on a tie), so a
    night's fit costs the same in the first month and the fifth year (``history`` 0: every night)."""
    if history < 0:
        raise InputError(f"history must be >= 0 nights, got {history}")
    mjd = frames["mjd"].astype(int)
    others = frames[mjd != int(night)]
    if not history:
        return others
    nights = np.array(sorted(others["mjd"].astype(int).unique()))
    order = np.lexsort((nights > night, np.abs(nights - int(night))))  # nearest, then earlier first
    return others[others["mjd"].astype(int).isin(set(nights[order[:history]].tolist()))]


@dataclass
class NightModel:
    camera: str
    representation: Representation
    predictors: Predictors
    primary: str
    errors: ErrorModel
    time_rules: dict[tuple[str, float], float] = field(default_factory=dict)  # (source, tol) -> T hours
    training_nights: tuple[int, ...] = ()


def _prepare(frames: pd.DataFrame, rep: Representation) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frames = frames.sort_values(["camera", "mjd", "expnum"], kind="stable").reset_index(drop=True)
    states = rep.states(frames)
    return frames, states, usable_arcs(frames, states)


def oof_predictions(frames: pd.DataFrame, states: np.ndarray, usable: np.ndarray, kind: str, *,
                    folds: int = 5, seed: int = 0, **fit_kw) -> np.ndarray:
    """``kind``'s prediction of every row by a model fitted without the row's night (``folds`` groups
    of whole nights; ``fit_kw`` to ``fit_predictors``)."""
    from sklearn.model_selection import GroupKFold

    nights = frames["mjd"].to_numpy()
    k = min(folds, len(np.unique(nights[usable])))
    if k < 2:
        raise InputError("the error model needs measured arcs on at least 2 training nights "
                         f"(found {len(np.unique(nights[usable]))})")
    out = np.full(states.shape, np.nan)
    for tr, te in GroupKFold(n_splits=k).split(frames, groups=nights):
        sub, ss, su = frames.iloc[tr].reset_index(drop=True), states[tr], usable[tr]
        p = fit_predictors(sub, ss, su, kinds=(kind,), seed=seed, **fit_kw)
        held = frames.iloc[te].reset_index(drop=True)
        out[te] = p.predict(held, states[te], usable[te])[kind]
    return out


def fit_night_model(frames: pd.DataFrame, *, camera: str, representation: Representation | None = None,
                    kinds: tuple[str, ...] = PREDICTORS, primary: str = "refarc",
                    tolerances: tuple[float, ...] = TOLERANCES, folds: int = 5, level: float = LEVEL,
                    seed: int = 0) -> NightModel:
    """Fit one camera's predictors, error model and time-only rules on ``frames`` (training nights)."""
    rep = representation or MeasuredField()
    frames = frames[frames["camera"] == camera]
    if frames.empty:
        raise InputError(f"no training exposures of camera {camera}")
    frames, states, usable = _prepare(frames, rep)
    if primary not in kinds:
        kinds = (*kinds, primary)
    predictors = fit_predictors(frames, states, usable, kinds=kinds, seed=seed)
    actual = rep.fields(states)
    h = hours_since(frames, latest_arc(frames, usable))
    hint = {"within_alpha": predictors.info["fallback_alpha"]} if "fallback_alpha" in predictors.info else {}
    oof = oof_predictions(frames, states, usable, primary, folds=folds, seed=seed, **hint)
    reused = rep.fields(predictors.predict(frames, states, usable)["reuse"])
    err = {"primary": decision_error(camera, rep.fields(oof), actual),
           "reuse": decision_error(camera, reused, actual)}
    for e in err.values():
        e[~usable] = np.nan
    errors = ErrorModel.fit(h, err["primary"], decision_error(camera, rep.fields(oof), reused), level=level)
    rules = {(src, float(t)): tune_time_rule(h, err[src], t) for src in TIME_RULE_SOURCES for t in tolerances}
    return NightModel(camera=camera, representation=rep, predictors=predictors, primary=primary, errors=errors,
                      time_rules=rules, training_nights=tuple(int(m) for m in np.unique(frames["mjd"])))


def predict_night(model: NightModel, frames: pd.DataFrame, *, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Every row of ``frames`` (``model.camera``'s exposures) predicted by every predictor (module
    docstring). Columns: keys, ``flavor``, ``date_obs``, ``predictor``, ``primary``, the state terms,
    the field terms (when the representation's terms are not the field's), ``ref_expnum``,
    ``hours_since_arc``, ``imputed`` (header values replaced by training medians), and on the primary
    rows ``predicted_change`` (px from the reference arc), ``expected_error``, ``upper90``,
    ``tolerance``, ``arc_needed``."""
    from arcray.optics import FIELD_TERMS

    frames = frames[frames["camera"] == model.camera]
    overlap = sorted(set(frames["mjd"].astype(int)) & set(model.training_nights))
    if overlap:
        raise InputError(f"nights {overlap} were used to fit the model: predict them with a model fitted without them")
    rep = model.representation
    frames, states, usable = _prepare(frames, rep)
    preds = model.predictors.predict(frames, states, usable)
    ref = latest_arc(frames, usable)
    h = hours_since(frames, ref)
    _, imputed = model.predictors.encoder.raw(frames)
    base = pd.DataFrame({"camera": frames["camera"].to_numpy(), "mjd": frames["mjd"].astype("int32").to_numpy(),
                         "expnum": frames["expnum"].astype("int64").to_numpy(),
                         "flavor": frames["flavor"].to_numpy() if "flavor" in frames else None,
                         "date_obs": pd.to_datetime(frames["date_obs"]).to_numpy(),
                         "ref_expnum": pd.array(np.where(ref >= 0, frames["expnum"].to_numpy()[np.clip(ref, 0, None)], -1),
                                                dtype="Int64"),
                         "hours_since_arc": h, "imputed": imputed.astype("int32")})
    base.loc[ref < 0, "ref_expnum"] = pd.NA
    change = decision_error(model.camera, rep.fields(preds[model.primary]), rep.fields(preds["reuse"]))
    parts = []
    for kind, S in preds.items():
        part = base.copy()
        part.insert(3, "predictor", kind)
        part.insert(4, "primary", kind == model.primary)
        for j, t in enumerate(rep.terms):
            part[t] = S[:, j]
        if tuple(rep.terms) != FIELD_TERMS:
            F = rep.fields(S)
            for j, t in enumerate(FIELD_TERMS):
                part[f"field_{t}"] = F[:, j]
        primary = kind == model.primary
        exp_, up = model.errors.expected(h, change), model.errors.upper(h, change)
        part["predicted_change"] = np.where(primary, change, np.nan)
        part["expected_error"] = np.where(primary, exp_, np.nan)
        part["upper90"] = np.where(primary, up, np.nan)
        part["tolerance"] = float(tolerance)
        part["arc_needed"] = pd.array(np.where(primary, up > tolerance, False), dtype="boolean")
        if not primary:
            part["arc_needed"] = pd.NA
        parts.append(part)
    order = {k: i for i, k in enumerate(preds)}
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values(["camera", "mjd", "expnum", "predictor"], key=lambda s: s.map(order) if s.name == "predictor" else s,
                          kind="stable").reset_index(drop=True)
    return out
