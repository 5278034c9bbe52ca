"""Per-camera regressors from header metadata to the autoencoder's latent vector.

Four kinds, fitted on the training nights of one camera:

- ``linear``: ordinary least squares on the raw metadata (the original study's model);
- ``ridge``: standardised metadata, L2 penalty;
- ``gbr``: gradient-boosted trees (scikit-learn ``GradientBoostingRegressor``, one per latent
  dimension);
- ``refarc``: the *reference-arc* model. A calibration state drifts within a night in ways no header
  value records (a random walk), so the best guess for an arc is the night's previous arc moved by
  what the header says changed since. It predicts the *change* of the latent since the night's
  previous arc (same camera, earlier exposure) from the previous latent and the change in metadata,
  ridge regression; the penalty therefore shrinks towards "same as the reference arc" (a random
  walk), not towards zero. The first arc of a night has no reference and falls back to a
  metadata-only ridge whose slopes are fitted *within* nights (night fixed effects: each night's
  unrecorded offset is a nuisance, not signal) and whose level is the mean over all training frames.

Every kind but ``linear`` sees angles (``ANGLES``: ALT, AZ, ROTPOS, ...) as their sine and cosine: a
flexure or a projection goes with the sine/cosine of an angle, and 359 deg is next to 1 deg. Ridge
penalties (``ridge``, ``refarc``) are chosen per latent dimension by cross-validation with whole
nights as folds.

Measured on the demo world (8 nights, 10 arcs a night, 34 columns; every night predicted by a
model fitted on the other 7, decoded and scored in px of line shift, ratio to the reference-arc
floor): old refarc b1 0.276 px (1.34x), r1 0.285 (1.34x); this one b1 0.219 (1.06x), r1 0.235
(1.11x). On the synthetic random-walk world (24 nights): 0.199 (1.14x) -> 0.194 (1.11x).

Inputs are a DataFrame ``meta`` (one row per frame: ``mjd``, ``expnum`` and metadata columns named as
the FITS keywords) and a latent array ``Z[N, L]`` in the same row order. Missing header values
(NaN) are replaced by the training median.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from arcray.errors import ConfigError, InputError

REGRESSORS = ("linear", "ridge", "gbr", "refarc")

# Header keywords the study (and the simulator's physics) suggest; those present are used.
DEFAULT_METADATA = (
    "MC1TEMDN", "MC1THT", "MC1TRCB", "MC1TRCT", "MC1TBCB", "MC1TBCT", "MC1HUMHT", "MC1HUMCO",
    "AIRTEMP", "DEWPOINT", "TRUSTEMP", "HUMIDITY", "PRESSURE", "WINDS", "WINDD",
    "ALT", "AZ", "ROTPOS", "IPA", "SPA", "RA", "DEC", "FOCUS",
    "M2PISTON", "M2XTILT", "M2YTILT", "M1XTILT", "M1YTILT",
    "COLLA", "COLLB", "COLLC", "EXPTIME", "DARKTIME", "CCDTEMP", "LN2TEMP", "mjd",
)
# Header keywords that are angles in degrees: encoded as (sin, cos) by every kind but ``linear``.
ANGLES = frozenset({"ALT", "AZ", "ROTPOS", "IPA", "SPA", "RA", "WINDD", "GUSTD"})


def metadata_columns(meta: pd.DataFrame, candidates=DEFAULT_METADATA) -> list[str]:
    """The candidate keywords present in ``meta`` as numeric columns with at least one value."""
    cols = []
    for c in candidates:
        if c in meta.columns and pd.api.types.is_numeric_dtype(meta[c]) and meta[c].notna().any():
            cols.append(c)
    return cols


def previous_arc_index(meta: pd.DataFrame) -> np.ndarray:
    """For each row, the row index of the same night's previous exposure (same camera), else -1.

    Rows are ordered within a night by ``expnum`` (monotonic in time on the real instrument).
    """
    for c in ("mjd", "expnum"):
        if c not in meta.columns:
            raise InputError(f"reference-arc model needs column {c!r}")
    cam = meta["camera"].to_numpy() if "camera" in meta.columns else np.zeros(len(meta), object)
    key = pd.DataFrame({"cam": cam, "mjd": meta["mjd"].to_numpy(), "exp": meta["expnum"].to_numpy(),
                        "pos": np.arange(len(meta))})
    key = key.sort_values(["cam", "mjd", "exp"], kind="stable")
    prev = key.groupby(["cam", "mjd"], sort=False)["pos"].shift(1)
    out = np.full(len(meta), -1, dtype=np.int64)
    out[key["pos"].to_numpy()] = prev.fillna(-1).astype(np.int64).to_numpy()
    return out


@dataclass
class LatentRegressor:
    """A fitted regressor; ``predict(meta, Z_ref)`` returns ``[N, L]`` latents."""

    kind: str
    columns: list[str]
    medians: np.ndarray
    model: object
    fallback: object | None = None  # refarc: metadata-only model for frames without a reference
    info: dict = field(default_factory=dict)
    angles: bool = False  # encode the ANGLES columns as (sin, cos)

    def features(self, meta: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in meta.columns]
        if missing:
            raise InputError(f"metadata columns missing for prediction: {', '.join(missing)}")
        X = meta[self.columns].to_numpy(dtype=np.float64, na_value=np.nan)
        X = np.where(np.isnan(X), self.medians[None, :], X)
        return encode_angles(X, self.columns) if self.angles else X

    def predict(self, meta: pd.DataFrame, Z_ref: np.ndarray | None = None) -> np.ndarray:
        """Predict latents. ``refarc`` needs ``Z_ref``: the actual latents of all rows of ``meta``."""
        X = self.features(meta)
        if self.kind != "refarc":
            return as_2d(self.model.predict(X))
        if Z_ref is None:
            raise InputError("the reference-arc model needs the actual latents of the reference arcs")
        Z_ref = as_2d(Z_ref)
        prev = previous_arc_index(meta)
        out = as_2d(self.fallback.predict(X))
        has = prev >= 0
        if has.any():
            feats = _refarc_features(X, Z_ref, prev, has)
            out[has] = Z_ref[prev[has]] + as_2d(self.model.predict(feats))
        return out


def encode_angles(X: np.ndarray, columns: list[str]) -> np.ndarray:
    """``X`` with each ``ANGLES`` column (degrees) replaced by its sine and cosine."""
    parts = []
    for j, c in enumerate(columns):
        if c in ANGLES:
            r = np.radians(X[:, j])
            parts += [np.sin(r), np.cos(r)]
        else:
            parts.append(X[:, j])
    return np.column_stack(parts) if parts else X


def as_2d(y) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y[:, None] if y.ndim == 1 else y


def _refarc_features(X: np.ndarray, Z: np.ndarray, prev: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``[z_prev, delta metadata]``. The absolute metadata are left out on purpose: the reference
    latent already encodes the state they explain, and with few training nights they only add
    variance (on the known world: test px 0.30 with them, 0.19 without; floor 0.17)."""
    p = prev[rows]
    return np.hstack([Z[p], X[rows] - X[p]])


ALPHAS = tuple(np.logspace(-2, 4, 13))


def _ridge(alpha):
    """Standardised ridge (``alpha=None``: placeholder, chosen later by ``_choose_alpha``); ``alpha``
    may be one value per target."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=1.0 if alpha is None else alpha))


def _choose_alpha(X: np.ndarray, Z: np.ndarray, nights: np.ndarray, folds: int = 5) -> np.ndarray:
    """Per latent dimension, the ridge penalty with the lowest cross-validated MSE, folds made of
    whole nights (frames of one night are correlated, so leave-one-frame-out would favour too little
    shrinkage). Dimensions differ in how much of them the metadata explain, hence one each."""
    from sklearn.model_selection import GroupKFold

    k = min(folds, len(np.unique(nights)))
    if k < 2:
        return np.ones(Z.shape[1])
    cv = list(GroupKFold(n_splits=k).split(X, Z, nights))
    err = np.zeros((len(ALPHAS), Z.shape[1]))
    for i, a in enumerate(ALPHAS):
        for tr, te in cv:
            m = _ridge(a).fit(X[tr], Z[tr])
            err[i] += ((as_2d(m.predict(X[te])) - Z[te]) ** 2).sum(0)
    return np.asarray(ALPHAS)[err.argmin(0)]


def fit_ridge(X: np.ndarray, Z: np.ndarray, nights: np.ndarray, alpha: float | None):
    a = _choose_alpha(X, Z, nights) if alpha is None else np.full(Z.shape[1], float(alpha))
    return _ridge(a).fit(X, Z), [float(v) for v in a]


class _Offset:
    """``model(X) + offset``: a slope model fitted on night-demeaned data, with its level."""

    def __init__(self, model, offset: np.ndarray):
        self.model, self.offset = model, offset

    def predict(self, X: np.ndarray) -> np.ndarray:
        return as_2d(self.model.predict(X)) + self.offset


def fit_within(X: np.ndarray, Z: np.ndarray, nights: np.ndarray, alpha: float | None):
    """Night fixed-effects ridge: slopes from the variation within nights (each night's hidden offset
    removed), level = mean residual over all frames. For a night's first arc, where no reference
    exists (demo world, first arcs: 0.30-0.32 px against 0.38-0.48 with the pooled ridge)."""
    def demean(A):
        return A - pd.DataFrame(A).groupby(nights).transform("mean").to_numpy()

    m, a = fit_ridge(demean(X), demean(Z), nights, alpha)
    return _Offset(m, (Z - as_2d(m.predict(X))).mean(0)), a


def _make(kind: str, *, alpha: float | None, seed: int):
    from sklearn.linear_model import LinearRegression

    if kind == "linear":
        return LinearRegression()
    if kind in ("ridge", "refarc"):
        return _ridge(alpha)
    if kind == "gbr":
        from sklearn.ensemble import GradientBoostingRegressor
        from sklearn.multioutput import MultiOutputRegressor

        # the classic (single-threaded) implementation: the histogram one's OpenMP threads crawl on
        # a shared small machine, and a few thousand frames need no histograms
        return MultiOutputRegressor(GradientBoostingRegressor(
            n_estimators=150, learning_rate=0.05, max_depth=3, min_samples_leaf=5, subsample=0.8,
            random_state=seed))
    raise ConfigError(f"unknown regressor {kind!r}; choose from {', '.join(REGRESSORS)}")


def fit_regressor(kind: str, meta: pd.DataFrame, Z: np.ndarray, *, columns: list[str] | None = None,
                  alpha: float | None = None, seed: int = 0) -> LatentRegressor:
    """Fit one regressor of ``kind`` on (training) rows ``meta`` -> ``Z``.

    ``alpha``: ridge penalty of ``ridge``/``refarc`` (None = chosen per latent dimension by
    night-grouped cross-validation).
    """
    if kind not in REGRESSORS:
        raise ConfigError(f"unknown regressor {kind!r}; choose from {', '.join(REGRESSORS)}")
    Z = as_2d(Z)
    if len(meta) != len(Z):
        raise InputError(f"metadata has {len(meta)} rows but latents {len(Z)}")
    columns = list(columns) if columns is not None else metadata_columns(meta)
    if not columns:
        raise InputError("no usable metadata columns to regress on")
    if len(meta) < 3:
        raise InputError(f"too few training frames to fit a regressor: {len(meta)}")
    X = meta[columns].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.where(np.isnan(X).all(0, keepdims=True), 0.0, X), axis=0)
    med = np.nan_to_num(med)
    reg = LatentRegressor(kind=kind, columns=columns, medians=med, model=_make(kind, alpha=alpha, seed=seed),
                          angles=kind != "linear")
    Xf = reg.features(meta)
    nights = meta["mjd"].to_numpy() if "mjd" in meta.columns else np.arange(len(meta))
    if kind == "ridge":
        reg.model, reg.info["alpha"] = fit_ridge(Xf, Z, nights, alpha)
        return reg
    if kind != "refarc":
        reg.model.fit(Xf, Z)
        return reg
    reg.fallback, reg.info["fallback_alpha"] = fit_within(Xf, Z, nights, alpha)
    prev = previous_arc_index(meta)
    has = prev >= 0
    reg.info["n_with_reference"] = int(has.sum())
    if has.sum() < 3:
        raise InputError("reference-arc model needs nights with at least two frames in training")
    F = _refarc_features(Xf, Z, prev, has)
    reg.model, reg.info["alpha"] = fit_ridge(F, Z[has] - Z[prev[has]], nights[has], alpha)
    return reg

