"""The analyse and regress stages: read latents, call the pure analysis, write artefacts.

Artefacts, every one named by ``Layout``:

- ``run_analyze``: ``pearson_table(cam)``, ``flagged`` and the figures
  ``latent_scatter_figure(colour)``, ``pearson_figure(cam)``, ``drift_figure(cam)``;
- ``run_regress``: ``predicted_latents(cam)`` (predicted latents and per-frame scores),
  ``decoded_frames(cam)`` (decoded test frames, a few per camera), ``scores``, and ``floors`` and
  ``state_errors`` when a truth table is given.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray.analysis import figures
from arcray.analysis.correlate import pearson_matrix
from arcray.analysis.latents import z_columns
from arcray.analysis.ood import flag_frames
from arcray.analysis.regress import REGRESSORS, metadata_columns
from arcray.io import atomic_write_parquet, exists, provenance
from arcray.paths import Layout
from arcray.stages import StageSummary
from arcray.tensors import tensor_array

log = logging.getLogger(__name__)


def _write(path: str, df: pd.DataFrame, step: str, **extra) -> str:
    atomic_write_parquet(path, pa.Table.from_pandas(df, preserve_index=False), provenance(None, [step], **extra))
    return path


@dataclass(frozen=True)
class RegressSummary(StageSummary):
    """``n_ok`` (frame, model) predictions decoded and scored; ``tables``: ``scores``,
    ``per_frame`` (and ``floors``, ``state_errors`` with a truth table)."""

    tables: dict = field(default_factory=dict)


def run_analyze(root: str, *, flavor: str = "arc", latent: int = 2) -> StageSummary:
    """Pearson matrices, OOD flags and figures from the latents (``outputs``: name -> path)."""
    from arcray.pipeline.embed import read_latents

    t0 = time.perf_counter()
    layout = Layout(root)
    lat = read_latents(root, flavor=flavor, latent=latent)
    zc = z_columns(lat)
    Z = lat[zc].to_numpy(float)
    out = {}
    for key in figures.SCATTER_COLOURS:
        if key == "camera":
            colour = lat["camera"].to_numpy(dtype=object)
        elif key in lat.columns and lat[key].notna().any():
            colour = lat[key].to_numpy(float)
        else:
            continue
        out[f"scatter_{key}"] = figures.latent_scatter(Z, colour, layout.latent_scatter_figure(key), label=key)
    flags = flag_frames(lat, Z)
    flagged = lat[["camera", "mjd", "expnum", "recon_mse", *zc]].join(flags)
    out["flagged"] = _write(layout.flagged, flagged[flagged["flagged"]], "analyze")
    for cam, g in lat.groupby("camera"):
        m = pearson_matrix(g, g[zc].to_numpy(float), columns=metadata_columns(g))
        out[f"pearson_{cam}"] = _write(layout.pearson_table(cam), m.reset_index(names="metadata"), "analyze")
        out[f"pearson_figure_{cam}"] = figures.pearson_heatmap(m, layout.pearson_figure(cam),
                                                               title=f"{cam}: Pearson r")
        out[f"drift_{cam}"] = figures.latent_drift(
            _frame_times(g), g[zc].to_numpy(float), layout.drift_figure(cam),
            flagged=flags.loc[g.index, "flagged"].to_numpy(bool), title=f"{cam}: latent vs time")
    log.info("analysis of %d frames written to %s", len(lat), layout.analysis)
    return StageSummary(stage="analyze", n_ok=len(out), seconds=time.perf_counter() - t0, unit="artefacts",
                        notes=(f"{len(lat)} frames -> {layout.analysis}",), outputs=out)


def _frame_times(g: pd.DataFrame) -> np.ndarray:
    """MJD (with fraction) of each frame: from DATE-OBS when every frame has one, else the night's
    MJD plus a small offset per exposure (keeps the within-night order)."""
    if "date_obs" in g.columns and g["date_obs"].notna().all():
        return pd.to_datetime(g["date_obs"]).map(pd.Timestamp.to_julian_date).to_numpy(float) - 2400000.5
    return g["mjd"].to_numpy(float) + (g["expnum"] - g["expnum"].min()).to_numpy(float) * 1e-4


def _shown_frames(per_frame: pd.DataFrame, n_images: int) -> pd.DataFrame:
    """(camera, expnum) of the first ``n_images`` test exposures of each camera (decoded with images)."""
    test = per_frame[per_frame["split"] == "test"].sort_values(["camera", "mjd", "expnum"])
    keys = test[["camera", "expnum"]].drop_duplicates()
    return keys.groupby("camera", sort=False).head(n_images).reset_index(drop=True)


def run_regress(root: str, *, flavor: str = "arc", latent: int = 2, kinds=REGRESSORS,
                truth: str | None = None, n_actors: int = 2, n_images: int = 4) -> RegressSummary:
    """Fit, predict, decode and score; write predictions, scores (+ truth floors)."""
    from arcray.analysis.scores import score_table, state_errors, truth_floors
    from arcray.analysis.study import predict_latents, state_estimates
    from arcray.pipeline.decode import decode_and_score
    from arcray.pipeline.embed import model_dirs, read_latents

    t0 = time.perf_counter()
    layout = Layout(root)
    lat = read_latents(root, flavor=flavor, latent=latent)
    long, _ = predict_latents(lat, kinds)
    dirs = model_dirs(layout, flavor, latent, sorted(set(long["camera"])))
    # Scores of every (frame, model) without images; then the images of the few test frames the
    # report shows (the first n_images test exposures of each camera), decoded in a second, small pass.
    dec = decode_and_score(root, long, dirs, flavor=flavor, n_actors=n_actors, images=False)
    zc = z_columns(long)
    per_frame = long.merge(dec, on=["camera", "mjd", "expnum", "split", "model"])
    scores = score_table(per_frame)
    shown = _shown_frames(per_frame, n_images)
    images = (decode_and_score(root, long.merge(shown, on=["camera", "expnum"]), dirs, flavor=flavor,
                               n_actors=1, images=True) if len(shown) else None)
    for cam, g in per_frame.groupby("camera"):
        _write(layout.predicted_latents(cam), g, "regress")
        d = images[images["camera"] == cam] if images is not None else ()
        if len(d):
            t = pa.Table.from_pandas(d.drop(columns=["image"]), preserve_index=False)
            t = t.append_column("image", tensor_array(np.stack(d["image"].to_list())))
            atomic_write_parquet(layout.decoded_frames(cam), t, provenance(None, ["regress", "decode"]))
    _write(layout.scores, scores, "regress", regressors=list(kinds), latent=latent, flavor=flavor)
    result, outputs = {"scores": scores, "per_frame": per_frame}, {"scores": layout.scores}
    if truth and exists(truth):
        tt = pd.read_parquet(truth)
        result["floors"] = truth_floors(tt, per_frame)
        result["state_errors"] = state_errors(state_estimates(long, tt), tt)
        outputs["floors"] = _write(layout.floors, result["floors"], "regress")
        outputs["state_errors"] = _write(layout.state_errors, result["state_errors"], "regress")
    log.info("regression scores (%d rows, latent dims %s) written to %s", len(scores), zc, layout.scores)
    return RegressSummary(stage="regress", n_ok=len(per_frame), seconds=time.perf_counter() - t0,
                          unit="predictions", notes=(f"{', '.join(kinds)} -> {layout.scores}",),
                          outputs=outputs, tables=result)
