"""The analyse and regress stages: read latents, call the pure analysis, write artefacts.

Artefacts (all under ``Layout``):

- ``analysis/pearson-<cam>.parquet``, ``analysis/flagged.parquet`` and the figures
  ``analysis/*.png`` (``run_analyze``);
- ``regress/predictions/camera=<cam>/latents.parquet`` (predicted latents and per-frame scores),
  ``regress/predictions/camera=<cam>/frames.parquet`` (decoded test frames, a few per camera),
  ``regress/scores.parquet`` (``Layout.scores``), ``regress/floors.parquet`` and
  ``regress/state_errors.parquet`` when a truth table is given (``run_regress``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray.analysis import figures
from arcray.analysis.correlate import pearson_matrix
from arcray.analysis.ood import flag_frames
from arcray.analysis.regress import REGRESSORS, metadata_columns
from arcray.io import atomic_write_parquet, exists, provenance
from arcray.paths import Layout, join

log = logging.getLogger(__name__)

COLOUR_BY = ("MC1TEMDN", "HUMIDITY", "ALT", "COLLA")


def _write(path: str, df: pd.DataFrame, step: str, **extra) -> str:
    atomic_write_parquet(path, pa.Table.from_pandas(df, preserve_index=False), provenance(None, [step], **extra))
    return path


def run_analyze(root: str, *, flavor: str = "arc", latent: int = 2) -> dict[str, str]:
    """Pearson matrices, OOD flags and figures from the latents; returns name -> path written."""
    from arcray.analysis.study import z_columns
    from arcray.pipeline.embed import read_latents

    layout = Layout(root)
    lat = read_latents(root, flavor=flavor, latent=latent)
    zc = z_columns(lat)
    Z = lat[zc].to_numpy(float)
    out, adir = {}, layout.analysis
    out["scatter_camera"] = figures.latent_scatter(Z, lat["camera"].to_numpy(dtype=object),
                                                   join(adir, "latent_scatter_camera.png"), label="camera")
    for key in COLOUR_BY:
        if key in lat.columns and lat[key].notna().any():
            out[f"scatter_{key}"] = figures.latent_scatter(Z, lat[key].to_numpy(float),
                                                           join(adir, f"latent_scatter_{key}.png"), label=key)
    flags = flag_frames(lat, Z)
    flagged = lat[["camera", "mjd", "expnum", "recon_mse", *zc]].join(flags)
    out["flagged"] = _write(join(adir, "flagged.parquet"), flagged[flagged["flagged"]], "analyze")
    for cam, g in lat.groupby("camera"):
        m = pearson_matrix(g, g[zc].to_numpy(float), columns=metadata_columns(g))
        out[f"pearson_{cam}"] = _write(join(adir, f"pearson-{cam}.parquet"), m.reset_index(names="metadata"),
                                       "analyze")
        figures.pearson_heatmap(m, join(adir, f"pearson-{cam}.png"), title=f"{cam}: Pearson r")
        t = g["mjd"].to_numpy(float) + (g["expnum"] - g["expnum"].min()).to_numpy(float) * 1e-4
        if "date_obs" in g.columns and g["date_obs"].notna().all():
            t = pd.to_datetime(g["date_obs"]).map(pd.Timestamp.to_julian_date).to_numpy(float) - 2400000.5
        figures.latent_drift(t, g[zc].to_numpy(float), join(adir, f"drift-{cam}.png"),
                             flagged=flags.loc[g.index, "flagged"].to_numpy(bool), title=f"{cam}: latent vs time")
    log.info("analysis of %d frames written to %s", len(lat), adir)
    return out


def run_regress(root: str, *, flavor: str = "arc", latent: int = 2, kinds=REGRESSORS,
                truth: str | None = None, n_actors: int = 2, n_images: int = 4) -> dict[str, pd.DataFrame]:
    """Fit, predict, decode and score; write predictions, scores (+ truth floors); return tables."""
    from arcray.analysis.scores import score_table, state_errors, truth_floors
    from arcray.analysis.study import predict_latents, state_estimates, z_columns
    from arcray.pipeline.decode import decode_and_score
    from arcray.pipeline.embed import model_dirs, read_latents

    layout = Layout(root)
    lat = read_latents(root, flavor=flavor, latent=latent)
    long, _ = predict_latents(lat, kinds)
    dirs = model_dirs(layout, flavor, latent, sorted(set(long["camera"])))
    dec = decode_and_score(root, long, dirs, flavor=flavor, n_actors=n_actors)
    zc = z_columns(long)
    per_frame = long.merge(dec.drop(columns=["image"]), on=["camera", "mjd", "expnum", "split", "model"])
    scores = score_table(per_frame)
    for cam, g in per_frame.groupby("camera"):
        _write(join(layout.predictions, f"camera={cam}", "latents.parquet"), g, "regress")
        d = dec[(dec["camera"] == cam) & (dec["split"] == "test")]
        keep = d["expnum"].drop_duplicates().head(n_images)
        d = d[d["expnum"].isin(keep)]
        if len(d):
            from arcray.pipeline.decode import tensor_array

            t = pa.Table.from_pandas(d.drop(columns=["image"]), preserve_index=False)
            t = t.append_column("image", tensor_array(np.stack(d["image"].to_list())))
            atomic_write_parquet(join(layout.predictions, f"camera={cam}", "frames.parquet"), t,
                                 provenance(None, ["regress", "decode"]))
    _write(layout.scores, scores, "regress", regressors=list(kinds), latent=latent, flavor=flavor)
    result = {"scores": scores, "per_frame": per_frame}
    if truth and exists(truth):
        tt = pd.read_parquet(truth)
        result["floors"] = truth_floors(tt, per_frame)
        result["state_errors"] = state_errors(state_estimates(long, tt), tt)
        _write(join(layout.regress, "floors.parquet"), result["floors"], "regress")
        _write(join(layout.regress, "state_errors.parquet"), result["state_errors"], "regress")
    log.info("regression scores (%d rows, latent dims %s) written to %s", len(scores), zc, layout.scores)
    return result
