"""Does the latent study have the original study's shape, and go beyond it? Prints three checks.

1. decoded predictions are worse than autoencoder reconstructions on test nights (MSE);
2. the reference-arc model beats metadata alone (test px error and MSE);
3. the best predictor's px error is within 1.5x of the floor set by the hidden random walk
   (``floor_ref_px`` for the reference-arc model, ``floor_meta_px`` for metadata-only ones).

Usage:
    python benchmarks/science_predict.py --root ROOT     # after `arcray regress --truth ...` ran on ROOT
    python benchmarks/science_predict.py                  # builds a small known world (no Ray)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd


def _from_root(root: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    from arcray.paths import Layout

    layout = Layout(root)
    floors = layout.floors
    return pd.read_parquet(layout.scores), (pd.read_parquet(floors) if os.path.exists(floors) else None)


def _built_world(latent: int, epochs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic world -> tiny AE -> encode -> regress -> decode + score, in-process (no Ray)."""
    import pyarrow.parquet as pq

    from arcray.analysis.scores import score_table, truth_floors
    from arcray.analysis.study import predict_latents
    from arcray.model.split import split_labels
    from arcray.model.store import load_model
    from arcray.paths import Layout
    from arcray.pipeline.decode import DecodeActor
    from arcray.pipeline.embed import EncodeActor, scalar_columns
    from arcray.testing.world import train_tiny_model, write_world

    root = tempfile.mkdtemp(prefix="arcray-science-")
    t0 = time.time()
    truth = write_world(root, n_nights=24, per_night=10, seed=0)
    d = train_tiny_model(root, "b1", latent=latent, epochs=epochs, arch="small3")
    print(f"world + model: {time.time() - t0:.0f} s", file=sys.stderr)
    tab = pq.read_table(Layout(root).calibrated_partition("b1", "arc"), partitioning=None).sort_by("expnum")
    lat = EncodeActor({"b1": d}, scalar_columns(tab.schema))(tab)
    lat["split"] = split_labels(lat["mjd"])
    long, _ = predict_latents(lat)
    dec = DecodeActor({"b1": d}, long)(tab)
    per = long.merge(pd.DataFrame({k: v for k, v in dec.items() if k != "image"}),
                     on=["camera", "mjd", "expnum", "split", "model"])
    _ = load_model(d)
    return score_table(per), truth_floors(truth, per)


def _pooled(scores: pd.DataFrame, floors: pd.DataFrame, cam: str, model: str) -> str:
    """Information only (one test night is a small sample): px and floor over val + test together,
    RMS pooled over frames."""
    sc = scores[(scores.camera == cam) & (scores.model == model) & scores.split.isin(["val", "test"])]
    fl = floors[(floors.camera == cam) & floors.split.isin(["val", "test"])]
    if len(sc) < 2 or len(fl) < 2:
        return ""
    px = float(np.sqrt((sc["n_px"] * sc["px"] ** 2).sum() / sc["n_px"].sum()))
    col = "floor_ref_px" if model == "refarc" else "floor_meta_px"
    floor = float(np.sqrt((fl["n"] * fl[col] ** 2).sum() / fl["n"].sum()))
    return f"; val+test pooled (information): px {px:.3f} = {px / floor:.2f} x floor {floor:.3f}"


def check(scores: pd.DataFrame, floors: pd.DataFrame | None) -> bool:
    te = scores[scores["split"] == "test"].set_index(["camera", "model"])
    pd.set_option("display.width", 160)
    print(te[["n", "mse", "px_dy", "px_dx", "px"]].round(4).to_string())
    ok = True
    for cam in sorted(te.index.get_level_values(0).unique()):
        t = te.loc[cam]
        preds = t.drop(index="autoencoder", errors="ignore")
        meta = preds.drop(index="refarc", errors="ignore")
        c1 = bool((preds["mse"] > t.loc["autoencoder", "mse"]).all())
        print(f"[{cam}] 1. decoded predictions worse than reconstructions (test MSE): "
              f"AE {t.loc['autoencoder', 'mse']:.4g} < min prediction {preds['mse'].min():.4g}: {'PASS' if c1 else 'FAIL'}")
        c2 = "refarc" in t.index and t.loc["refarc", "px"] < meta["px"].min()
        print(f"[{cam}] 2. reference arc better than metadata alone (test px): refarc "
              f"{t.loc['refarc', 'px'] if 'refarc' in t.index else float('nan'):.3f} vs best metadata "
              f"{meta['px'].min():.3f} ({meta['px'].idxmin()}): {'PASS' if c2 else 'FAIL'}")
        c3 = True
        if floors is not None and len(floors[(floors.camera == cam) & (floors.split == "test")]):
            f = floors[(floors.camera == cam) & (floors.split == "test")].iloc[0]
            best = preds["px"].idxmin()
            floor = f["floor_ref_px"] if best == "refarc" else f["floor_meta_px"]
            ratio = preds.loc[best, "px"] / floor
            c3 = bool(ratio <= 1.5)
            print(f"[{cam}] 3. best predictor {best}: px {preds.loc[best, 'px']:.3f} = {ratio:.2f} x its floor "
                  f"{floor:.3f} (metadata floor {f['floor_meta_px']:.3f}, reference-arc floor "
                  f"{f['floor_ref_px']:.3f}; AE reconstruction px {t.loc['autoencoder', 'px']:.3f}): "
                  f"{'PASS' if c3 else 'FAIL'}{_pooled(scores, floors, cam, best)}")
        ok &= c1 and c2 and c3
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="pipeline root where `arcray regress --truth` has run")
    ap.add_argument("--latent", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=40)
    a = ap.parse_args()
    scores, floors = _from_root(a.root) if a.root else _built_world(a.latent, a.epochs)
    return 0 if check(scores, floors) else 1


if __name__ == "__main__":
    sys.exit(main())
