"""Does the autoencoder find the simulator's calibration state? Prints the study's three numbers.

    .venv/bin/python benchmarks/science_latent.py --root DATA_ROOT --truth WORLD/truth.parquet
    .venv/bin/python benchmarks/science_latent.py --synthetic      # self-made data, known state

1. loss vs latent size (test nights) and its knee: should sit near the true degrees of freedom (~4);
2. AE vs PCA at the same latent size, same masked metric: the AE should win at every l in 2..6;
3. a regressor fitted on training-set latents (l = 4) predicts the true (dx, dy, sigma) of the
   test frames: R^2 >= 0.9 (also printed on val + test nights pooled, with each set's spread:
   one test night can hold a narrow range of a state variable).
The default architecture is ``pca_res`` (starts at the training PCA, learns a sub-pixel shift and
a conv correction on top; ``--arch small3`` gives the plain conv AE).
Data go through the product path (Ray Data view extraction + night split); the models are trained
in-process with the same code as the Ray Train loop (``arcray.training.local``), to keep it fast.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import pandas as pd
import torch


def knee(latents: list[int], losses: list[float]) -> int:
    """Kneedle: the latent whose log-loss lies furthest below the chord from first to last."""
    x, y = np.asarray(latents, float), np.log(np.asarray(losses, float))
    chord = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
    return int(x[np.argmax(chord - y)])


def load_split_arrays(root: str, truth_path: str, camera: str, flavor: str, view):
    from arcray.training.data import prepare_data

    prepared = prepare_data(root, camera, flavor, view)
    truth = pd.read_parquet(truth_path)
    truth = truth[truth["camera"] == camera].set_index("expnum")
    out = {}
    for split in ("train", "val", "test"):
        a = prepared.arrays(split)
        t = truth.reindex(a["expnum"])
        keep = t["dx"].notna().to_numpy().copy()
        if "hartmann" in t:
            keep &= (t["hartmann"].fillna("Out") == "Out").to_numpy()
        out[split] = {"x": a["x"][keep], "m": a["m"][keep], "state": t[keep]}
    return out, prepared.normaliser


def regress_r2(z_train, s_train, z_test, s_test) -> dict:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, WhiteKernel
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for col in ("dx", "dy", "sigma"):
        gp = make_pipeline(StandardScaler(), GaussianProcessRegressor(
            RBF(np.ones(z_train.shape[1])) + WhiteKernel(1e-2), normalize_y=True, random_state=0))
        gp.fit(z_train, s_train[col].to_numpy())
        out[col] = r2_score(s_test[col].to_numpy(), gp.predict(z_test))
    return out


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", help="data root holding calibrated/")
    ap.add_argument("--truth", help="truth.parquet of the simulated world")
    ap.add_argument("--synthetic", action="store_true", help="make a synthetic dataset instead")
    ap.add_argument("--camera", default="b1")
    ap.add_argument("--flavor", default="arc")
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--crop", default="96,96,64,64")
    ap.add_argument("--latents", default="1,2,3,4,5,6,8")
    ap.add_argument("--arch", default="pca_res")
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8)
    return ap.parse_args()


def main() -> None:
    args = _args()
    from arcray.model.ae import arch_config
    from arcray.model.loss import masked_mse_np
    from arcray.model.pca import fit_pca
    from arcray.model.view import View
    from arcray.raycluster import ensure_ray
    from arcray.training.local import fit_local

    torch.set_num_threads(2)
    crop = tuple(int(v) for v in args.crop.split(","))
    if args.synthetic:
        from arcray.testing.calibrated import write_synthetic_dataset

        args.root = tempfile.mkdtemp(prefix="arcray-science-")
        mjds = tuple(range(60000, 60030))
        write_synthetic_dataset(args.root, mjds=mjds, frames_per_night=8, cameras=(args.camera,),
                                window_size=128, n_windows=1)
        from arcray.testing.calibrated import TRUTH_FILE

        args.truth, crop = os.path.join(args.root, TRUTH_FILE), (32, 32, 64, 64)
    ensure_ray(num_cpus=8)
    data, norm = load_split_arrays(args.root, args.truth, args.camera, args.flavor,
                                   View(window=args.window, crop=crop))
    print("frames per split:", {k: len(v["x"]) for k, v in data.items()})
    tr, va, te = data["train"], data["val"], data["test"]
    ytr, yte = norm.forward(tr["x"]), norm.forward(te["x"])
    h, w = tr["x"].shape[1:]
    rows, models = [], {}
    for lat in [int(v) for v in args.latents.split(",")]:
        model, hist = fit_local(tr, va, arch_config(args.arch, lat, h, w), norm,
                                epochs=args.epochs, patience=max(10, args.epochs // 4), seed=args.seed,
                                batch_size=args.batch_size, lr=args.lr,
                                weight_decay=args.weight_decay)
        with torch.no_grad():
            ae = masked_mse_np(model(torch.from_numpy(yte)).numpy(), yte, te["m"])
        p = fit_pca(ytr, lat, tr["m"])
        pca = masked_mse_np(p.decode(p.encode(yte)), yte, te["m"])
        rows.append({"latent": lat, "ae_test_loss": ae, "pca_test_loss": pca,
                     "epochs": len(hist), "ae_beats_pca": ae < pca})
        models[lat] = model
        print(f"latent {lat}: AE {ae:.5f}  PCA {pca:.5f}  ({len(hist)} epochs)", flush=True)
    res = pd.DataFrame(rows)
    print(res.to_string(index=False))
    k = knee(list(res["latent"]), list(res["ae_test_loss"]))
    print(f"knee of AE loss vs latent: {k} (simulator's true degrees of freedom ~4)")
    mid = res[(res["latent"] >= 2) & (res["latent"] <= 6)]
    print(f"AE beats PCA at every latent 2..6: {bool(mid['ae_beats_pca'].all())}")
    if 4 in models:
        report_r2(models[4], ytr, tr["state"], {"test": (yte, te["state"]),
                                                "val+test": (np.concatenate([norm.forward(va["x"]), yte]),
                                                             pd.concat([va["state"], te["state"]]))})


def report_r2(model, ytr, s_train, evals: dict) -> None:
    """GP regressor on training-set latents -> true state, R^2 on each evaluation set."""
    with torch.no_grad():
        ztr = model.encode(torch.from_numpy(ytr)).numpy()
    for name, (y, state) in evals.items():
        with torch.no_grad():
            z = model.encode(torch.from_numpy(y)).numpy()
        r2 = regress_r2(ztr, s_train, z, state)
        spread = ", ".join(f"{c} {state[c].min():.2f}..{state[c].max():.2f}"
                           for c in ("dx", "dy", "sigma"))
        print(f"R^2 of (dx, dy, sigma) on {name} frames ({len(z)}; {spread}) from latent-4 codes "
              "(GP regressor): " + ", ".join(f"{k}={v:.3f}" for k, v in r2.items())
              + f"  -> all >= 0.9: {all(v >= 0.9 for v in r2.values())}")


if __name__ == "__main__":
    main()
