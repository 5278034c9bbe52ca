"""`arcray predict`: the calibration state of every exposure of a night, without its arcs' pixels.

``run_predict`` (no Ray: a few hundred arcs fit in a second per model on one core):

1. reads every frame's measured state (``Layout.measured_frames``, written by ``arcray measure``)
   and the header values of every calibrated exposure, any flavor (the calibrated dataset's
   metadata columns only; no tensors are read). Without a calibrated dataset the housekeeping
   columns of the measured table (``pipeline.measure.CONTEXT_COLUMNS``) are the header values;
2. per camera and requested night, fits ``arcray.predict.fit_night_model`` on the ``history``
   other nights nearest to it (``predict.night.training_nights``: 30 by default, so a night costs
   the same in any year of the archive; 0 takes every other night) and predicts every exposure of
   the night (``predict_night``): each predictor's field, the predicted RMS error, its 90 % bound and ``arc_needed`` (bound > tolerance);
3. writes per night ``Layout.predictions_night`` (Parquet, sorted, one row per exposure and
   predictor: a rerun writes the same table), its FITS binary table ``Layout.predictions_night_fits``,
   and ``Layout.predict_scores``: the night's predictions scored against its measured arcs.

``run_evaluate`` (``arcray predict --evaluate``) predicts *every* night by models fitted without it
and scores it against the simulated world's truth (``--truth``) or the measured arcs: the tables
``Layout.predict_eval_{scored,table,decisions}`` and the figures ``predict_timeline_figure`` and
(truth only) ``predict_quiver_figure`` per camera, which the report's ``predict`` section shows.

A camera with too few measured arcs on the other nights is a failed item (logged, counted), not a
dead stage; no measured table at all, a night with no exposures, or an exposure number that is
nowhere are one-line errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray.analysis.regress import DEFAULT_METADATA
from arcray.errors import ArcrayError, InputError
from arcray.io import atomic_write_bytes, atomic_write_parquet, exists, provenance, read_bytes
from arcray.optics import FIELD_TERMS
from arcray.paths import Layout
from arcray.predict.night import HISTORY_NIGHTS
from arcray.stages import StageSummary

log = logging.getLogger(__name__)
_STATE_COLUMNS = ["camera", "mjd", "expnum", "flavor", "measured", "status", *FIELD_TERMS]
_KEYS = ["camera", "mjd", "expnum"]


def load_exposures(root: str, cameras: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per (camera, exposure): header values of every calibrated exposure with, for measured
    frames, ``measured``, ``status`` and the fitted field (module docstring, step 1)."""
    import pyarrow.parquet as pq

    layout = Layout(root)
    if not exists(layout.measured_frames):
        raise InputError(f"no measured frames at {layout.measured_frames}: run `arcray measure --root {root}` first")
    mt = pq.read_table(pa.BufferReader(read_bytes(layout.measured_frames)))
    measured = mt.to_pandas()
    head_cols = [c for c in ("date_obs", "is_hartmann", *DEFAULT_METADATA) if c != "mjd"]
    statuses = [c for c in measured.columns if c.endswith("_status")]  # per QA quantity (usable_arcs)
    if exists(layout.calibrated):
        from arcray.calib.table import open_calibrated, read_calibrated_columns

        names = set(open_calibrated(layout.calibrated).schema.names)
        cols = _KEYS + ["flavor"] + [c for c in head_cols if c in names]
        header = read_calibrated_columns(layout.calibrated, cols).to_pandas()
        state = measured[[c for c in _STATE_COLUMNS if c in measured.columns] + statuses].drop(columns=["flavor"])
        frames = header.merge(state, on=_KEYS, how="outer")
        frames["flavor"] = frames["flavor"].fillna(frames["expnum"].map(dict(zip(measured["expnum"], measured["flavor"]))))
    else:
        log.warning("no calibrated dataset under %s: header values from the measured table only", layout.calibrated)
        frames = measured[[c for c in measured.columns if c in set(_STATE_COLUMNS) | set(head_cols) | set(statuses)]].copy()
    frames["camera"] = frames["camera"].astype(str)
    frames["mjd"] = frames["mjd"].astype(int)
    frames["expnum"] = frames["expnum"].astype(np.int64)
    if cameras:
        frames = frames[frames["camera"].isin(set(cameras))]
    if frames.empty:
        raise InputError(f"no exposures of cameras {', '.join(cameras or [])} in {root}")
    return frames.sort_values(_KEYS, kind="stable").reset_index(drop=True)


def nights_of(frames: pd.DataFrame, mjd: int | None, exposures: Iterable[int] | None) -> list[int]:
    """The nights to predict: ``mjd`` and/or the nights of ``exposures`` (``InputError`` for unknown ones)."""
    nights = set()
    if mjd is not None:
        if not (frames["mjd"] == int(mjd)).any():
            raise InputError(f"no exposures of night {mjd} in the calibrated metadata or the measured table")
        nights.add(int(mjd))
    for e in exposures or ():
        m = frames.loc[frames["expnum"] == int(e), "mjd"]
        if m.empty:
            raise InputError(f"exposure {e} is in neither the calibrated metadata nor the measured table")
        nights.add(int(m.iloc[0]))
    if not nights:
        raise InputError("give a night (--mjd) or exposures (--exposures) to predict")
    return sorted(nights)


def _arrow(df: pd.DataFrame) -> pa.Table:
    t = pa.Table.from_pandas(df, preserve_index=False)
    unit = {t_: "px" for t_ in (*FIELD_TERMS, "predicted_change", "expected_error", "upper90", "tolerance")} | {"hours_since_arc": "h"}
    fields = [pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type)
                       else f.type, metadata={"unit": unit.get(f.name, "")}) for f in t.schema]
    return t.cast(pa.schema(fields))


def score_against_measured(preds: pd.DataFrame, frames: pd.DataFrame) -> pd.DataFrame:
    """The night's predictions scored against its measured, usable arcs (RMS px per camera and predictor)."""
    from arcray.predict.evaluate import accuracy, attach_errors
    from arcray.predict.features import usable_arcs

    states = frames[list(FIELD_TERMS)].to_numpy(float)
    ok = usable_arcs(frames, states)
    scored = attach_errors(preds, frames.loc[ok, ["camera", "expnum", *FIELD_TERMS]])
    return accuracy(scored)


def run_predict(root: str, *, mjd: int | None = None, exposures: Iterable[int] | None = None,
                cameras: Iterable[str] | None = None, tolerance: float = 0.2, history: int = HISTORY_NIGHTS,
                progress: Callable[..., None] | None = None) -> StageSummary:
    """Predict the requested nights (module docstring) and write their tables."""
    from arcray.pipeline.measure import fits_bytes
    from arcray.predict.night import fit_night_model, predict_night, training_nights

    t0 = time.perf_counter()
    if not tolerance > 0:
        raise InputError(f"--tolerance must be positive (px), got {tolerance}")
    if history < 0:
        raise InputError(f"--history must be >= 0 nights (0: every other night), got {history}")
    layout = Layout(root)
    frames = load_exposures(root, cameras)
    nights = nights_of(frames, mjd, exposures)
    n_ok = n_failed = 0
    notes, outputs, all_scores = [], {}, []
    for night in nights:
        parts, failed = [], []
        for cam in sorted(frames["camera"].unique()):
            fc = frames[frames["camera"] == cam]
            if not (fc["mjd"] == night).any():
                continue
            try:
                model = fit_night_model(training_nights(fc, night, history), camera=cam)
            except ArcrayError as exc:
                log.warning("predict %s night %s: %s", cam, night, exc)
                failed.append(f"{cam}: {exc}")
                n_failed += 1
                continue
            parts.append(predict_night(model, fc[fc["mjd"] == night], tolerance=tolerance))
            n_ok += 1
            if progress is not None:
                progress(1)
        if not parts:
            raise InputError(f"night {night}: no camera could be predicted ({'; '.join(failed)})")
        preds = pd.concat(parts, ignore_index=True)
        table = _arrow(preds)
        prov = provenance(None, ["predict"], night=night, tolerance=tolerance)
        atomic_write_parquet(layout.predictions_night(night), table, prov)
        atomic_write_bytes(layout.predictions_night_fits(night), fits_bytes(table))
        outputs[f"predictions {night}"] = layout.predictions_night(night)
        scores = score_against_measured(preds, frames[frames["mjd"] == night])
        if len(scores):  # a night whose arcs are all unusable (red, unmeasured) has nothing to score
            scores.insert(0, "mjd", night)
            all_scores.append(scores)
        primary = preds[preds["primary"]]
        if exposures:
            primary = primary[primary["expnum"].isin([int(e) for e in exposures])]
        need = int(primary["arc_needed"].fillna(True).sum())
        notes.append(f"night {night}: {len(primary)} exposures, {need} need an arc at {tolerance:g} px")
    if _merge_scores(layout, all_scores, nights):
        outputs["scores"] = layout.predict_scores
    return StageSummary(stage="predict", n_ok=n_ok, n_failed=n_failed, seconds=time.perf_counter() - t0,
                        unit="camera-nights", outputs=outputs, notes=tuple(notes))


def _merge_scores(layout: Layout, parts: list[pd.DataFrame], nights: list[int]) -> bool:
    """Replace the rows of ``nights`` in the scores table (other nights' rows are kept); False
    (nothing written) when there is neither a new score nor an earlier table."""
    import pyarrow.parquet as pq

    path = layout.predict_scores
    if exists(path):
        old = pq.read_table(pa.BufferReader(read_bytes(path))).to_pandas()
        parts = [old[~old["mjd"].isin(nights)], *parts]
    if not parts:
        return False
    scores = pd.concat(parts, ignore_index=True)
    scores = scores.sort_values(["mjd", "camera", "predictor", "subset"], kind="stable").reset_index(drop=True)
    atomic_write_parquet(path, pa.Table.from_pandas(scores, preserve_index=False), provenance(None, ["predict"]))
    return True


def run_evaluate(root: str, *, truth: str | None = None, cameras: Iterable[str] | None = None,
                 kinds: tuple[str, ...] | None = None, progress: Callable[..., None] | None = None,
                 quiver_exposures: int = 3) -> StageSummary:
    """Score ``arcray predict`` by nights held out: every night of every camera predicted by models
    fitted without it (``evaluate.leave_one_night_out``), against the simulated world's true field
    when ``truth`` (its ``truth.parquet``) is given (floors too), else against the measured usable
    arcs. Writes ``Layout.predict_eval_scored``, ``predict_eval_table``, ``predict_eval_decisions``,
    a night timeline per camera (``predict_timeline_figure``: the night with the most arcs) and,
    with a truth only, residual quivers of ``quiver_exposures`` test arcs per camera
    (``predict_quiver_figure``: the primary's largest errors of that night). ``kinds``: the
    predictors (default all)."""
    from arcray.analysis import predict_figures
    from arcray.predict.evaluate import (accuracy, attach_errors, coverage, decision_table, decisions,
                                         leave_one_night_out, predictor_table)
    from arcray.predict.features import usable_arcs
    from arcray.predict.uncertainty import TOLERANCES

    t0 = time.perf_counter()
    layout = Layout(root)
    frames = load_exposures(root, cameras)
    if frames["mjd"].nunique() < 3:
        raise InputError(f"evaluation holds out one night at a time and needs at least 3 nights ({frames['mjd'].nunique()} in {root})")
    true = None
    if truth is not None:
        if not exists(truth):
            raise InputError(f"no truth table at {truth}")
        import pyarrow.parquet as pq

        true = pq.read_table(pa.BufferReader(read_bytes(truth))).to_pandas()
        actual = true
    else:
        ok = usable_arcs(frames, frames[list(FIELD_TERMS)].to_numpy(float))
        actual = frames.loc[ok, ["camera", "expnum", *FIELD_TERMS]]
    preds, rules = leave_one_night_out(frames, progress=progress, **({"kinds": tuple(kinds)} if kinds else {}))
    scored = attach_errors(preds, actual)
    fl = None
    if true is not None:
        from arcray.sim.truth import floors

        fl = floors(true)
    acc, cov = accuracy(scored, fl), coverage(scored)
    dec = decisions(scored, rules, TOLERANCES)
    table = predictor_table(acc, cov, dec)
    prov = provenance(None, ["predict", "evaluate"], against="truth" if true is not None else "measured")
    for path, df in ((layout.predict_eval_scored, scored), (layout.predict_eval_table, table),
                     (layout.predict_eval_decisions, decision_table(dec))):
        atomic_write_parquet(path, pa.Table.from_pandas(df, preserve_index=False), prov)
    outputs = {"scored": layout.predict_eval_scored, "table": layout.predict_eval_table,
               "decisions": layout.predict_eval_decisions}
    primary = scored[scored["primary"]]
    for cam, g in primary.groupby("camera"):
        night = int(g[g["flavor"] == "arc"].groupby("mjd").size().idxmax()) if (g["flavor"] == "arc").any() \
            else int(g["mjd"].iloc[0])
        rows = g[g["mjd"] == night]
        outputs[f"timeline {cam}"] = predict_figures.night_timeline(
            rows, layout.predict_timeline_figure(cam),
            title=f"{cam}, night {night} (held out): predicted error after each arc vs the true error")
        if true is not None:
            pick = rows[rows["err"].notna()].nlargest(quiver_exposures, "err").sort_values("expnum")
            if len(pick):
                tf = true.set_index(["camera", "expnum"]).loc[[(cam, int(e)) for e in pick["expnum"]], list(FIELD_TERMS)]
                outputs[f"quiver {cam}"] = predict_figures.residual_quiver(
                    cam, pick[list(FIELD_TERMS)].to_numpy(float), tf.to_numpy(float),
                    [f"{cam} {night}/{int(e)}, {h:.1f} h after its arc" if np.isfinite(h) else f"{cam} {night}/{int(e)}, first arc"
                     for e, h in zip(pick["expnum"], pick["hours_since_arc"])],
                    layout.predict_quiver_figure(cam), title=f"{cam}, night {night}: {primary['predictor'].iloc[0]}'s "
                                                             "largest errors (held out)")
    notes = tuple(f"{r.camera} {r.predictor}: RMS {r.rms_xy:.3f} px" + (f" = {r.x_floor:.2f}x floor" if "x_floor" in table else "")
                  + f", {r.below_reuse * 100:.0f} % below reuse" for r in table.itertuples() if r.predictor == "refarc")
    return StageSummary(stage="predict-evaluate", n_ok=int(scored[["camera", "mjd"]].drop_duplicates().shape[0]), n_failed=0,
                        seconds=time.perf_counter() - t0, unit="camera-nights", outputs=outputs, notes=notes)
