"""Per-camera regressors from header metadata to the autoencoder's latent vector.

Four kinds, fitted on the training nights of one camera:

- ``linear``: ordinary least squares on the metadata (the original study's model);
- ``ridge``: standardised metadata, L2 penalty;
- ``gbr``: gradient-boosted trees (scikit-learn ``GradientBoostingRegressor``, one per latent
  dimension);
- ``refarc``: the *reference-arc* model. A calibration state drifts within a night in ways no header
  value records (a random walk), so the best guess for an arc is the night's previous arc moved by
  what the header says changed since. Features: the latent of the night's previous arc (same camera,
  earlier exposure) and the change in metadata since it; ridge regression. The first arc of a night
  has no reference and falls back to a metadata-only ridge.

Ridge penalties (``ridge``, ``refarc``) are chosen by cross-validation with whole nights as folds.

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
INTERACT = False  # reference-arc model: z_prev x delta-metadata features (see _refarc_features)

# Header keywords the study (and the simulator's physics) suggest; those present are used.
DEFAULT_METADATA = (
    "MC1TEMDN", "MC1THT", "MC1TRCB", "MC1TRCT", "MC1TBCB", "MC1TBCT", "MC1HUMHT", "MC1HUMCO",
    "AIRTEMP", "DEWPOINT", "TRUSTEMP", "HUMIDITY", "PRESSURE", "WINDS", "WINDD",
    "ALT", "AZ", "ROTPOS", "IPA", "SPA", "RA", "DEC", "FOCUS",
    "M2PISTON", "M2XTILT", "M2YTILT", "M1XTILT", "M1YTILT",
    "COLLA", "COLLB", "COLLC", "EXPTIME", "DARKTIME", "CCDTEMP", "LN2TEMP", "mjd",
)


def split_labels(mjd) -> np.ndarray:
    """``train``/``val``/``test`` per frame from its night (the same rule as training)."""
    from arcray.model.split import split_of_mjd

    mjd = np.asarray(mjd).astype(np.int64)
    cache = {int(m): split_of_mjd(int(m)) for m in np.unique(mjd)}
    return np.array([cache[int(m)] for m in mjd], dtype=object)


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

    def features(self, meta: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in meta.columns]
        if missing:
            raise InputError(f"metadata columns missing for prediction: {', '.join(missing)}")
        X = meta[self.columns].to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isnan(X), self.medians[None, :], X)

    def predict(self, meta: pd.DataFrame, Z_ref: np.ndarray | None = None) -> np.ndarray:
        """Predict latents. ``refarc`` needs ``Z_ref``: the actual latents of all rows of ``meta``."""
        X = self.features(meta)
        if self.kind != "refarc":
            return _as_2d(self.model.predict(X))
        if Z_ref is None:
            raise InputError("the reference-arc model needs the actual latents of the reference arcs")
        prev = previous_arc_index(meta)
        out = _as_2d(self.fallback.predict(X))
        has = prev >= 0
        if has.any():
            feats = _refarc_features(X, np.asarray(Z_ref), prev, has, self.info.get("interactions", False))
            out[has] = _as_2d(self.model.predict(feats))
        return out


def _as_2d(y) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y[:, None] if y.ndim == 1 else y


def _refarc_features(X: np.ndarray, Z: np.ndarray, prev: np.ndarray, rows: np.ndarray,
                     interactions: bool = False) -> np.ndarray:
    """``[z_prev, delta metadata]`` (+ ``z_prev x delta metadata``: a Jacobian that depends on where in
    latent space the reference sits). The absolute metadata are left out on purpose: the reference
    latent already encodes the state they explain, and with few training nights they only add
    variance (on the known world: test px 0.30 with them, 0.19 without; floor 0.17)."""
    p = prev[rows]
    dX = X[rows] - X[p]
    parts = [Z[p], dX]
    if interactions:
        parts.append((Z[p][:, :, None] * dX[:, None, :]).reshape(len(p), -1))
    return np.hstack(parts)


ALPHAS = tuple(np.logspace(-2, 3, 11))


def _ridge(alpha: float | None):
    """Standardised ridge (``alpha=None``: placeholder, chosen later by ``_choose_alpha``)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=1.0 if alpha is None else alpha))


def _choose_alpha(X: np.ndarray, Z: np.ndarray, nights: np.ndarray, folds: int = 5) -> float:
    """The ridge penalty with the lowest cross-validated MSE, folds made of whole nights (frames of
    one night are correlated, so leave-one-frame-out would favour too little shrinkage)."""
    from sklearn.model_selection import GroupKFold

    k = min(folds, len(np.unique(nights)))
    if k < 2:
        return 1.0
    cv = list(GroupKFold(n_splits=k).split(X, Z, nights))
    err = []
    for a in ALPHAS:
        e = 0.0
        for tr, te in cv:
            m = _ridge(a).fit(X[tr], Z[tr])
            e += float(((m.predict(X[te]) - Z[te]) ** 2).sum())
        err.append(e)
    return float(ALPHAS[int(np.argmin(err))])


def _fit_ridge(X: np.ndarray, Z: np.ndarray, nights: np.ndarray, alpha: float | None):
    a = _choose_alpha(X, Z, nights) if alpha is None else alpha
    return _ridge(a).fit(X, Z), a


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
                  alpha: float | None = None, seed: int = 0, interactions: bool | None = None) -> LatentRegressor:
    """Fit one regressor of ``kind`` on (training) rows ``meta`` -> ``Z``.

    ``alpha``: ridge penalty of ``ridge``/``refarc`` (None = chosen by leave-one-out CV).
    """
    if kind not in REGRESSORS:
        raise ConfigError(f"unknown regressor {kind!r}; choose from {', '.join(REGRESSORS)}")
    Z = _as_2d(Z)
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
    reg = LatentRegressor(kind=kind, columns=columns, medians=med, model=_make(kind, alpha=alpha, seed=seed))
    Xf = reg.features(meta)
    nights = meta["mjd"].to_numpy() if "mjd" in meta.columns else np.arange(len(meta))
    if kind == "ridge":
        reg.model, reg.info["alpha"] = _fit_ridge(Xf, Z, nights, alpha)
        return reg
    if kind != "refarc":
        reg.model.fit(Xf, Z)
        return reg
    reg.fallback, reg.info["fallback_alpha"] = _fit_ridge(Xf, Z, nights, alpha)
    prev = previous_arc_index(meta)
    has = prev >= 0
    reg.info["n_with_reference"] = int(has.sum())
    reg.info["interactions"] = INTERACT if interactions is None else bool(interactions)
    if has.sum() < 3:
        raise InputError("reference-arc model needs nights with at least two frames in training")
    F = _refarc_features(Xf, Z, prev, has, reg.info["interactions"])
    reg.model, reg.info["alpha"] = _fit_ridge(F, Z[has], nights[has], alpha)
    return reg


def fit_all(meta: pd.DataFrame, Z: np.ndarray, kinds=REGRESSORS, **kw) -> dict[str, LatentRegressor]:
    """Fit every regressor kind on the same rows (one camera)."""
    return {k: fit_regressor(k, meta, Z, **kw) for k in kinds}
