"""The simulated world's truth table and the pure functions that score against it.

``truth.parquet`` (``TRUTH_SCHEMA``): one row per (expnum, camera):

- keys: ``expnum, camera, mjd, flavor, hartmann, date_obs`` (UTC, start of integration);
- ``fault`` (one of ``instrument_faults.FAULT_KINDS``, null when clean), ``fault_detail``
  (``key=value;...`` parameters, null when clean);
- every field term ``t`` of ``optics.FIELD_TERMS`` (``a0..a3, b0..b3, s0, su, sv, sr``; px at the
  detector's edge) as ``t`` (true), ``t_header`` (what header values explain) and ``t_hidden``
  (``t - t_header``: the hidden walks, and a fault's effect);
- every lamp ``lamp_<L>`` for ``L`` in ``LAMP_COLUMNS`` (relative brightness of that lamp's light in
  the frame: 0.0 when it is off, null when the site has no such lamp), with ``_header``/``_hidden``;
- the first-version columns, kept for the stages that read them: ``dx = a0``, ``dy = b0``,
  ``sigma = s0``, ``A`` (mean brightness of the frame's lamps: both arc lamps on arcs, ``FF`` on
  flats; 1 on science, 0 on bias/dark) and ``dx_hidden, dy_hidden, sigma_hidden, A_hidden``.

On Hartmann Left/Right arcs the doors move every line along rows by -/+
``light.hartmann_defocus(sigma)`` on top of the field (a focus test, not a calibration state).

Scoring (``calibration-state.md`` §5), pure and vectorised, through ``arcray.optics``:
``field_of(row)`` -> ``Field``; ``true_lines(row)`` -> true ``(x, y, sigma)`` of every (fiber, line);
``line_error(predicted, row)`` -> RMS line-centre error of a predicted field; ``floors(truth)`` ->
per row, the floor a predictor given the latest usable arc reaches (what the hidden walks moved
since that arc) and the floor of a header-only predictor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray import optics
from arcray.errors import InputError
from arcray.optics import FIELD_TERMS, Field
from arcray.sim.state import CalibState, header_lamps
from arcray.sim.types import SimExposure

LAMP_COLUMNS = ("Ne", "HgCd", "HeAr", "FF")
_SITE_LAMPS = {"apo": ("Ne", "HgCd", "FF"), "lco": ("Ne", "HeAr", "FF")}
_F64 = pa.float64()

TRUTH_SCHEMA = pa.schema(
    [("expnum", pa.int64()), ("camera", pa.string()), ("mjd", pa.int32()), ("flavor", pa.string()),
     ("hartmann", pa.string()), ("date_obs", pa.timestamp("ms")), ("fault", pa.string()),
     ("fault_detail", pa.string())]
    + [(f"{t}{part}", _F64) for t in FIELD_TERMS for part in ("", "_header", "_hidden")]
    + [(f"lamp_{lp}{part}", _F64) for lp in LAMP_COLUMNS for part in ("", "_header", "_hidden")]
    + [(c, _F64) for c in ("dx", "dy", "sigma", "A", "dx_hidden", "dy_hidden", "sigma_hidden", "A_hidden")])


def truth_row(camera: str, exp: SimExposure, state: CalibState) -> dict:
    """One truth row (``TRUTH_SCHEMA`` names) of ``camera``'s frame of ``exp``."""
    total, hidden = state.field.as_array(), np.asarray(state.field_hidden)
    row: dict = {"expnum": exp.expnum, "camera": camera, "mjd": exp.mjd, "flavor": exp.flavor,
                 "hartmann": exp.hartmann, "date_obs": exp.date_obs,
                 "fault": state.fault or None, "fault_detail": state.fault_detail or None}
    for i, t in enumerate(FIELD_TERMS):
        row[t], row[f"{t}_header"], row[f"{t}_hidden"] = float(total[i]), float(total[i] - hidden[i]), float(hidden[i])
    lit, lit_hidden, lit_header = dict(state.lamps), dict(state.lamps_hidden), header_lamps(exp)
    for lp in LAMP_COLUMNS:
        here = lp in _SITE_LAMPS[exp.observatory]
        b, h = lit.get(lp, 0.0), lit_hidden.get(lp, 0.0)
        row[f"lamp_{lp}"] = b if here else None
        row[f"lamp_{lp}_header"] = lit_header.get(lp, 0.0) if here else None
        row[f"lamp_{lp}_hidden"] = h if here else None
    return row | {k: float(v) for k, v in state.as_dict().items()}


def truth_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TRUTH_SCHEMA)


# -- pure scoring API ------------------------------------------------------------------------

def _get(row, key):
    return row[key] if not isinstance(row, pd.Series) else row.at[key]


def field_of(row, part: str = "") -> Field:
    """The ``Field`` of a truth row (a mapping or a pandas row): ``part`` is ``""`` (true),
    ``"header"`` or ``"hidden"`` (the hidden part alone, as a field of increments; its ``s0`` is
    the hidden width, not a width)."""
    suffix = {"": "", "header": "_header", "hidden": "_hidden"}[part]
    return Field.from_array([float(_get(row, t + suffix)) for t in FIELD_TERMS])


def coeffs_of(truth: pd.DataFrame, part: str = "") -> np.ndarray:
    """``[N, 12]`` field coefficients of every row of a truth DataFrame."""
    suffix = {"": "", "header": "_header", "hidden": "_hidden"}[part]
    return truth[[t + suffix for t in FIELD_TERMS]].to_numpy(float)


def true_lines(row, fibers=None, line_ids=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True ``(x, y, sigma)`` (px, trimmed) of every (fiber, line) of the row's camera and state,
    each ``[n_fibers, n_lines]`` (``optics.line_positions``; ``optics.lines(camera)`` indexes lines)."""
    return optics.line_positions(str(_get(row, "camera")), field_of(row), fibers, line_ids)


def line_error(predicted: Field, row, fibers=None, line_ids=None) -> dict[str, float]:
    """RMS over every (alive fiber, line) of the predicted minus true line centre of one truth row
    (px): ``x``, ``y``, ``xy`` and the width error ``sigma``."""
    return optics.rms_line_error(str(_get(row, "camera")), predicted, field_of(row), fibers, line_ids)


def line_errors(truth: pd.DataFrame, predicted: np.ndarray) -> pd.DataFrame:
    """``line_error`` for every row of ``truth`` at once; ``predicted`` is ``[N, 12]`` (rows in the
    same order). Columns ``x, y, xy, sigma`` (px), index as ``truth``."""
    out = pd.DataFrame(index=truth.index, columns=["x", "y", "xy", "sigma"], dtype=float)
    predicted = np.asarray(predicted, float)
    true = coeffs_of(truth)
    for cam in truth["camera"].unique():
        m = (truth["camera"] == cam).to_numpy()
        err = optics.rms_line_errors(cam, predicted[m], true[m])
        for k, v in err.items():
            out.loc[m, k] = v
    return out


def usable_arcs(truth: pd.DataFrame) -> pd.Series:
    """True for the rows a predictor may take as its reference arc: clean, non-Hartmann arcs."""
    return (truth["flavor"] == "arc") & ~truth["hartmann"].isin(["Left", "Right"]) & truth["fault"].isna()


def floors(truth: pd.DataFrame, *, same_night: bool = True) -> pd.DataFrame:
    """Per row of ``truth``: the latest usable arc before it (``ref_expnum``, same camera, and the same
    night when ``same_night``) and the floors (px RMS over every fiber and line):

    - ``floor_ref_x/y/xy/sigma``: predictor knowing the row's header part exactly and the reference
      arc's hidden part (``header_t + hidden_ref``): what the hidden walks moved since that arc;
      NaN when there is no such arc;
    - ``floor_meta_x/y/xy/sigma``: predictor knowing the header part only (hidden taken as 0).
    """
    need = {"camera", "expnum", "mjd", "flavor", "hartmann", "fault"} | {t + "_hidden" for t in FIELD_TERMS}
    if need - set(truth.columns):
        raise InputError(f"truth table lacks columns: {', '.join(sorted(need - set(truth.columns)))}")
    t = truth.sort_values(["camera", "expnum"])
    ref = pd.Series(np.nan, index=t.index)
    usable = usable_arcs(t)
    group = ["camera", "mjd"] if same_night else ["camera"]
    for _, g in t.groupby(group, sort=False):
        last = np.nan
        for i, ok in zip(g.index, usable[g.index]):
            ref[i] = last  # strictly earlier arcs only
            if ok:
                last = g.at[i, "expnum"]
    head, hid = coeffs_of(t, "header"), coeffs_of(t, "hidden")
    by_exp = {(c, e): k for k, (c, e) in enumerate(zip(t["camera"], t["expnum"]))}
    has = ref.notna().to_numpy()
    ref_hidden = np.zeros_like(hid)
    ref_idx = [by_exp[(c, int(e))] for c, e in zip(t["camera"][has], ref[has])]
    ref_hidden[has] = hid[ref_idx]
    out = pd.DataFrame({"camera": t["camera"], "expnum": t["expnum"], "ref_expnum": ref.astype("Int64")},
                       index=t.index)
    meta = line_errors(t, head)
    with_ref = line_errors(t, head + ref_hidden)
    for k in ("x", "y", "xy", "sigma"):
        out[f"floor_ref_{k}"] = np.where(has, with_ref[k], np.nan)
        out[f"floor_meta_{k}"] = meta[k]
    return out.loc[truth.index]
