"""Inputs of the predictors: which arcs may serve as a reference, which one each exposure gets, the
time since it, and the header values as a feature matrix.

Rules:

- A *usable* arc (``usable_arcs``) is an arc (not a Hartmann frame) whose measurement succeeded,
  whose traffic light is not red for where its lines are and whose state is finite. Only usable
  arcs are references or training targets. An arc red only for its line or trace width
  (``WIDTH_QUANTITIES``: the focus) stays usable: BOSS still reduces with it (SOS only warns), its
  line centres are measured as well as any, and its width is the true, bad focus, which is the
  state to predict (a two-month world that warms by 10 C has half its arcs past WSIGMA's red
  limit). Without the per-quantity statuses (``<QUANTITY>_status``) any red is unusable.
- An exposure's *latest arc* (``latest_arc``) is the usable arc of the same camera and night with
  the largest exposure number below its own (exposure numbers increase with time). An arc is never
  its own reference. The first arcs of a night have none (-1).
- ``next_arc`` is the first usable arc after it (same camera and night): only the interpolation
  reference, which sees the future, uses it.
- Header values (``HeaderEncoder``): the columns of ``regress.DEFAULT_METADATA`` present in the
  training rows; angles as sine and cosine (``regress.encode_angles``); an unknown value (NaN, or a
  column absent from the rows to predict) is replaced by its training median, and every row counts
  how many of its values were replaced (``imputed``). That is the documented fallback: the
  prediction goes on, the count says how much of it is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from arcray.analysis.regress import DEFAULT_METADATA, encode_angles, metadata_columns
from arcray.errors import InputError

KEYS = ("camera", "mjd", "expnum")
WIDTH_QUANTITIES = ("WSIGMA", "XSIGMA")  # QA quantities whose red says nothing about line positions


def usable_arcs(frames: pd.DataFrame, states: np.ndarray) -> np.ndarray:
    """Boolean per row: usable as a reference arc or a training target (module docstring)."""
    n = len(frames)

    def col(name, default):
        return frames[name].to_numpy() if name in frames.columns else np.full(n, default, dtype=object)

    arc = col("flavor", "arc") == "arc"
    hart = np.asarray(pd.Series(col("is_hartmann", False)).fillna(False).astype(bool))
    measured = np.asarray(pd.Series(col("measured", True)).fillna(False).astype(bool))
    red = col("status", None) == "red"
    statuses = [c for c in frames.columns if c.endswith("_status")]
    if statuses:  # red only where a quantity other than a width is red
        other = [c for c in statuses if c.removesuffix("_status") not in WIDTH_QUANTITIES]
        red &= (frames[other].to_numpy() == "red").any(axis=1) if other else False
    finite = np.isfinite(np.asarray(states, float)).all(axis=1)
    return arc & ~hart & measured & ~red & finite


def _order(frames: pd.DataFrame) -> pd.DataFrame:
    for c in KEYS:
        if c not in frames.columns:
            raise InputError(f"exposure table lacks column {c!r}")
    return pd.DataFrame({"cam": frames["camera"].to_numpy(), "mjd": frames["mjd"].to_numpy(),
                         "exp": frames["expnum"].to_numpy(), "pos": np.arange(len(frames))}
                        ).sort_values(["cam", "mjd", "exp"], kind="stable")


def latest_arc(frames: pd.DataFrame, usable: np.ndarray) -> np.ndarray:
    """Per row, the position of its latest usable arc (same camera and night, earlier exposure), else -1."""
    return _neighbour(frames, usable, forward=True)


def next_arc(frames: pd.DataFrame, usable: np.ndarray) -> np.ndarray:
    """Per row, the position of the next usable arc (same camera and night, later exposure), else -1."""
    return _neighbour(frames, usable, forward=False)


def _neighbour(frames: pd.DataFrame, usable: np.ndarray, *, forward: bool) -> np.ndarray:
    key = _order(frames)
    if not forward:
        key = key.iloc[::-1]
    pos = key["pos"].to_numpy()
    mark = pd.Series(np.where(np.asarray(usable)[pos], pos, np.nan), index=key.index)
    # the last usable arc strictly before each row: shift by one inside the group, then carry forward
    prev = mark.groupby([key["cam"], key["mjd"]], sort=False).transform(lambda s: s.shift(1).ffill())
    out = np.full(len(frames), -1, dtype=np.int64)
    out[pos] = prev.fillna(-1).astype(np.int64).to_numpy()
    return out


def hours(frames: pd.DataFrame) -> np.ndarray:
    """``date_obs`` as hours since an arbitrary epoch (float; NaN where unknown)."""
    if "date_obs" not in frames.columns:
        raise InputError("exposure table lacks date_obs: the time since the latest arc is unknown")
    t = pd.to_datetime(frames["date_obs"])
    return ((t - pd.Timestamp("2000-01-01")) / pd.Timedelta(hours=1)).to_numpy(dtype=np.float64, na_value=np.nan)


def hours_since(frames: pd.DataFrame, ref: np.ndarray) -> np.ndarray:
    """Hours between each row and its reference row ``ref`` (NaN where ``ref`` is -1)."""
    h = hours(frames)
    out = np.full(len(frames), np.nan)
    has = ref >= 0
    out[has] = h[has] - h[ref[has]]
    return out


@dataclass(frozen=True)
class HeaderEncoder:
    """Header columns -> feature matrix, with the training medians as the fallback for unknown values."""

    columns: tuple[str, ...]
    medians: np.ndarray
    angles: bool = True

    @classmethod
    def fit(cls, frames: pd.DataFrame, candidates=DEFAULT_METADATA, *, angles: bool = True) -> "HeaderEncoder":
        cols = metadata_columns(frames, candidates)
        if not cols:
            raise InputError("no usable header columns in the training exposures "
                             f"(looked for {', '.join(candidates[:6])}, ...)")
        X = frames[cols].to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(all="ignore"):
            med = np.nan_to_num(np.nanmedian(np.where(np.isnan(X).all(0, keepdims=True), 0.0, X), axis=0))
        return cls(tuple(cols), med, angles)

    def raw(self, frames: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(X, imputed)``: raw header values with unknowns replaced, and per row how many were."""
        n = len(frames)
        X = np.column_stack([frames[c].to_numpy(dtype=np.float64, na_value=np.nan) if c in frames.columns
                             else np.full(n, np.nan) for c in self.columns]) if n else np.zeros((0, len(self.columns)))
        bad = ~np.isfinite(X)
        return np.where(bad, self.medians[None, :], X), bad.sum(axis=1)

    def transform(self, frames: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        X, imputed = self.raw(frames)
        return (encode_angles(X, list(self.columns)) if self.angles else X), imputed
