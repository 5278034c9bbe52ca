"""What a predictor predicts: a state vector per exposure, and how that state becomes a field.

Every predictor in ``arcray.predict.models`` works on a ``[N, K]`` array of states and never looks at
what the K numbers mean; scoring turns states into ``optics.Field`` coefficients (``[N, 12]``) and
compares line by line (``optics.rms_line_errors``). ``MeasuredField`` is the identity on the 12
terms the measurement fits (``measure.schema.FRAME_SCHEMA``). A latent representation (an
autoencoder's code, issue 16) plugs in with ``terms`` = its latent columns and ``fields`` = decode
then measure (or a learned map), without any change to the predictors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from arcray.errors import InputError
from arcray.optics import FIELD_TERMS


class Representation(Protocol):
    """``terms``: the columns holding the state; ``states(frames)``: ``[N, K]`` (NaN where a row has
    none); ``fields(states)``: ``[N, 12]`` field coefficients (``FIELD_TERMS`` order) of states."""

    name: str
    terms: tuple[str, ...]

    def states(self, frames: pd.DataFrame) -> np.ndarray: ...

    def fields(self, states: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class MeasuredField:
    """The fitted 12-term field of every measured arc (px at the detector's edge)."""

    name: str = "measured_field"
    terms: tuple[str, ...] = FIELD_TERMS

    def states(self, frames: pd.DataFrame) -> np.ndarray:
        missing = [t for t in self.terms if t not in frames.columns]
        if missing:
            raise InputError(f"measured field columns missing: {', '.join(missing)}")
        return frames[list(self.terms)].to_numpy(dtype=np.float64, na_value=np.nan)

    def fields(self, states: np.ndarray) -> np.ndarray:
        return np.asarray(states, dtype=np.float64)
