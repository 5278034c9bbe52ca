"""Representations of the calibration state scored against the simulator's truth (issue 14).

    nice -n 19 .venv/bin/python benchmarks/bench_represent.py \\
        --world demo-out/world --root demo-out/pipeline --out /tmp/B/represent [--images]

For each camera and latent size it fits, on the training nights (``arcray.model.split``):

- ``line_pca``: PCA of the normalised line vectors (``arcray.model.linevec``; Excalibur's
  representation);
- ``line_ae``: ``LineAutoencoder`` (arch ``line_mlp``), started at that PCA and trained in-process
  (full batch, Adam, early stopping on the validation nights);
- with ``--images`` and a calibrated root that carries the detector-grid windows: the grid image
  autoencoder (``train_camera`` with ``view="grid"``) and image PCA on the same view.

and prints, on the test nights:

1. loss vs latent per representation (masked MSE, normalised units) with the noise floor: the loss
   of the truth against the data. For line vectors the truth is the noiseless measurement (true
   centre and width of every slot from the true state, ``analysis.truthscores``); for images it
   is the noiseless rendered light of the frame (``sim.frames.render_light``) cut into the same
   view. The excess of a representation is its loss minus that floor.
2. the knee of each loss curve (kneedle on log loss) against the world's effective degrees of
   freedom: the smallest latent at which PCA of the noiseless line vectors (the true state's own
   variety) reaches the noise floor, next to the number of true state terms;
3. the image AE's excess over the floor against image PCA's at the knee (goal ratio <= 0.7);
4. R^2 per state term from the latent at the knee (ridge fitted on training nights, scored on test
   nights and on val + test pooled; goal >= 0.9 for each term whose edge effect > 0.1 px);
5. reconstruction line-position RMS (px) per representation: line vectors against the true
   centres, next to the measured vectors' own RMS (``measured``, the floor); images: the centroid
   of each line inside the grid crops of the decoded windows against the same centroid on the
   noiseless light (so box truncation and blending cancel), next to the data's own (``image_data``).

Result tables go to ``Layout(--out).represent_table(...)`` for the report's figures. Line vectors
are read in-process (the same ``read_line_vector`` the Ray Data reader maps over files).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
import torch

from arcray.analysis.truthscores import (join_truth, line_rms, pooled_rms, r2_per_term, state_terms,
                                         true_line_vectors)
from arcray.io import atomic_write_parquet
from arcray.model.ae import AEConfig
from arcray.model.line_ae import LineAutoencoder
from arcray.model.linevec import LineIndex
from arcray.model.loss import masked_mse_np
from arcray.model.pca import PCAModel, fit_pca
from arcray.model.split import split_codes
from arcray.paths import Layout
from arcray.training.lines_data import fit_line_normaliser, frame_key, line_files, read_line_vector

EDGE_MIN_PX = 0.1
R2_GOAL, EXCESS_GOAL = 0.9, 0.7


def knee(latents, losses) -> int:
    """Kneedle: the latent whose log-loss lies furthest below the chord from first to last."""
    x, y = np.asarray(latents, float), np.log(np.maximum(np.asarray(losses, float), 1e-30))
    if len(x) < 3:
        return int(x[-1])
    chord = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
    return int(x[np.argmax(chord - y)])


def truncate(pca: PCAModel, latent: int) -> PCAModel:
    """PCA at a smaller latent size from a fitted one (components are in variance order)."""
    return PCAModel(mean=pca.mean, components=pca.components[:latent], shape=pca.shape)


# -- line vectors ------------------------------------------------------------------------------
def load_lines(root: str, camera: str, truth: pd.DataFrame) -> dict:
    """Every measured arc of ``camera`` that the truth knows: vectors, masks, truth rows, splits."""
    index = LineIndex.for_camera(camera)
    files = line_files(root, camera)
    keys = np.array([frame_key(p) for p in files], np.int64)
    t = truth[truth["camera"] == camera].set_index("expnum")
    keep = np.isin(keys[:, 1], t.index.to_numpy())
    files, keys = [f for f, k in zip(files, keep) if k], keys[keep]
    xs, ms = zip(*(read_line_vector(index, f) for f in files))
    rows = t.loc[keys[:, 1]].reset_index()
    return {"index": index, "x": np.stack(xs), "m": np.stack(ms), "mjd": keys[:, 0], "expnum": keys[:, 1],
            "truth": rows, "split": split_codes(keys[:, 0])}


def fit_line_ae(ytr, mtr, yva, mva, latent: int, *, epochs: int, lr: float, width: int, depth: int,
                seed: int = 0) -> tuple[LineAutoencoder, int]:
    """Full-batch training from the PCA start; the best validation state is kept."""
    torch.manual_seed(seed)
    cfg = AEConfig(arch="line_mlp", latent=latent, depth=depth, width=width, height=1,
                   width_px=ytr.shape[1], kind="line_mlp")
    model = LineAutoencoder(cfg).init_from_data(ytr, mtr)
    # the linear (PCA) path moves 100x slower than the MLP corrections: an Adam step of lr on each
    # of D x latent PCA weights would throw the start away in one step
    lin = [model.enc_lin.weight, model.dec_lin.weight]
    rest = [p for n, p in model.named_parameters() if n not in ("enc_lin.weight", "dec_lin.weight")]
    opt = torch.optim.Adam([{"params": lin, "lr": lr * 1e-2}, {"params": rest, "lr": lr}])
    T = {k: torch.as_tensor(v) for k, v in dict(ytr=ytr, mtr=mtr, yva=yva, mva=mva).items()}

    def loss(y, m):
        good = (m == 0).float()
        return (((model(y, m) - y) ** 2) * good).sum() / good.sum().clamp_min(1)

    with torch.no_grad():
        best = float(loss(T["yva"], T["mva"]))
    best_state, best_epoch, bad = {k: v.clone() for k, v in model.state_dict().items()}, 0, 0
    for epoch in range(1, epochs + 1):
        opt.zero_grad()
        loss(T["ytr"], T["mtr"]).backward()
        opt.step()
        with torch.no_grad():
            v = float(loss(T["yva"], T["mva"]))
        if v < best:
            best, best_epoch, bad = v, epoch, 0
            best_state = {k: t.clone() for k, t in model.state_dict().items()}
        else:
            bad += 1
            if bad >= max(10, epochs // 10):
                break
    model.load_state_dict(best_state)
    return model.eval(), best_epoch


def line_representations(d: dict, latents: list[int], args) -> dict:
    """Loss, latents and decoded vectors of line PCA and the line AE at each latent size."""
    index, x, m, split = d["index"], d["x"], d["m"], d["split"]
    tr, va, te = split == 0, split == 1, split == 2
    norm = fit_line_normaliser(x[tr], m[tr])
    y = norm.forward(x)
    truth_v = true_line_vectors(index, d["truth"])
    ty = norm.forward(truth_v)
    floor = masked_mse_np(ty[te], y[te], m[te])
    # effective degrees of freedom: PCA of the noiseless vectors (train) reaching the noise floor
    dof_curve = {}
    p_all = fit_pca(ty[tr][:, None], min(32, int(tr.sum())))
    for lat in range(1, p_all.latent + 1):
        p = truncate(p_all, lat)
        dof_curve[lat] = masked_mse_np(p.decode(p.encode(ty[te][:, None]))[:, 0], ty[te], None)
    dof = next((k for k, v in dof_curve.items() if v <= floor), max(dof_curve))
    out = {"norm": norm, "floor": floor, "dof": dof, "dof_curve": dof_curve, "truth_v": truth_v, "reps": {}}
    p_all = fit_pca(y[tr][:, None], max(latents), m[tr][:, None])
    for lat in latents:
        p = truncate(p_all, lat)
        z = p.encode(y[:, None], m[:, None])
        dec = p.decode(z)[:, 0]
        out["reps"][("line_pca", lat)] = {"z": z, "dec": norm.inverse(dec),
                                          "loss": masked_mse_np(dec[te], y[te], m[te]), "epochs": 0}
        t0 = time.perf_counter()
        model, ep = fit_line_ae(y[tr], m[tr], y[va], m[va], lat, epochs=args.epochs, lr=args.lr,
                                width=args.width, depth=args.depth)
        with torch.no_grad():
            yt, mt = torch.as_tensor(y), torch.as_tensor(m)
            z = model.encode(yt, mt).numpy()
            dec = model.decode(torch.as_tensor(z)).numpy()
        out["reps"][("line_ae", lat)] = {"z": z, "dec": norm.inverse(dec),
                                         "loss": masked_mse_np(dec[te], y[te], m[te]), "epochs": ep,
                                         "seconds": time.perf_counter() - t0}
        print(f"  latent {lat:2d}: line PCA {out['reps'][('line_pca', lat)]['loss']:.5f}  line AE "
              f"{out['reps'][('line_ae', lat)]['loss']:.5f} (best epoch {ep})", flush=True)
    return out


def score_lines(camera: str, d: dict, res: dict) -> tuple[list, list, list]:
    index, te = d["index"], d["split"] == 2
    loss_rows, r2_rows, line_rows = [], [], []
    meas = pooled_rms(line_rms(index, d["x"][te], res["truth_v"][te], d["m"][te]))
    line_rows.append({"rep": "measured", "camera": camera, "latent": 0, **meas})
    for (rep, lat), r in res["reps"].items():
        loss_rows.append({"rep": rep, "camera": camera, "latent": lat, "test_loss": r["loss"],
                          "floor": res["floor"], "epochs": r["epochs"]})
        rms = pooled_rms(line_rms(index, r["dec"][te], res["truth_v"][te]))
        line_rows.append({"rep": rep, "camera": camera, "latent": lat, **rms})
        lat_df = pd.DataFrame(r["z"], columns=[f"z{i}" for i in range(r["z"].shape[1])])
        lat_df["expnum"], lat_df["mjd"] = d["expnum"], d["mjd"].astype(np.int32)
        joined = join_truth(lat_df, d["truth_all"], camera)
        for ev, name in (((2,), "test"), ((1, 2), "val+test")):
            t = r2_per_term(joined, eval_splits=ev)
            t["rep"], t["camera"], t["latent"], t["eval"] = rep, camera, lat, name
            r2_rows += t.to_dict("records")
    return loss_rows, r2_rows, line_rows


# -- images (the detector grid view) ------------------------------------------------------------
CORNERS = ("grid_r0_b01", "grid_r0_b25", "grid_r3_b01", "grid_r3_b25")  # the grid's corner windows


def load_images(root: str, camera: str, truth: pd.DataFrame, size: int) -> dict:
    """Grid views of every calibrated arc of ``camera`` the truth knows (read in-process with the
    same ``View.extract`` training and embed use), with window origins for the noiseless cut."""
    import pyarrow.parquet as pq

    from arcray.tensors import to_ndarray
    from arcray.training.data import calibrated_files, resolve_view, window_layout, window_positions

    files = calibrated_files(root, camera, "arc")
    meta = window_layout(root, files[0])
    view = resolve_view("grid", meta, size=size)
    known = set(truth.loc[truth["camera"] == camera, "expnum"])
    xs, ms, keys = [], [], []
    for f in files:
        t = pq.read_table(f, columns=["mjd", "expnum", "windows", "windows_mask"])
        if int(t["expnum"][0].as_py()) not in known:
            continue
        x, m = view.extract(to_ndarray(t.column("windows")), to_ndarray(t.column("windows_mask")))
        xs.append(x[0])
        ms.append(m[0])
        keys.append((int(t["mjd"][0].as_py()), int(t["expnum"][0].as_py())))
    keys = np.array(keys, np.int64)
    names = [meta["window_names"][i] for i in view.windows] if meta.get("window_names") else []
    return {"view": view, "meta": meta, "positions": window_positions(view, meta), "names": names,
            "x": np.stack(xs), "m": np.stack(ms), "mjd": keys[:, 0], "expnum": keys[:, 1],
            "split": split_codes(keys[:, 0])}


def noiseless_views(world_dir: str, camera: str, d: dict, rows: np.ndarray) -> np.ndarray:
    """The grid view of the noiseless rendered light of frames ``rows`` (electrons)."""
    from arcray.calib.views import cut_windows
    from arcray.sim.frames import render_light
    from arcray.sim.world import SimWorld

    world = SimWorld.load(world_dir)
    origins, wsize = d["meta"]["window_origins"], int(d["meta"]["window_size"])
    out = []
    for i in rows:
        exp = world.exposure(int(d["expnum"][i]))
        light = render_light(camera, exp, world.states[(exp.expnum, camera)], world.spec.seed)
        wins = cut_windows(light, [tuple(o) for o in origins], wsize)
        out.append(d["view"].extract(wins[None])[0][0])
    return np.stack(out)


def crop_origins(d: dict) -> list[tuple[int, int]]:
    """``(row0, col0)`` in the trimmed frame of each crop of the view: the view applied to windows
    that hold their own row and column numbers, so the answer is the view's own crop rule."""
    origins, wsize = d["meta"]["window_origins"], int(d["meta"]["window_size"])
    ar = np.arange(wsize, dtype=np.float32)
    rows = np.stack([np.broadcast_to(o[0] + ar[:, None], (wsize, wsize)) for o in origins])
    cols = np.stack([np.broadcast_to(o[1] + ar[None, :], (wsize, wsize)) for o in origins])
    r = d["view"].extract(rows[None])[0][0]
    c = d["view"].extract(cols[None])[0][0]
    return [(int(r[k, 0, 0]), int(c[k, 0, 0])) for k in range(len(r))]


def image_line_rms(camera: str, d: dict, truth: pd.DataFrame, images: np.ndarray, clean: np.ndarray) -> dict:
    """RMS (px) over the test frames' lines inside the grid crops of the centroid of ``images``
    (electrons, the test frames) minus the noiseless light's (``truthscores.window_line_shift``);
    every listed line counts (the grid crops hold few of the measured candidate lines)."""
    from arcray.analysis.truthscores import window_line_points, window_line_shift
    from arcray.sim.truth import field_of

    t = truth[truth["camera"] == camera].set_index("expnum")
    origins, size = crop_origins(d), images.shape[-1]
    dx, dy = [], []
    for j, i in enumerate(np.flatnonzero(d["split"] == 2)):
        pts = window_line_points(camera, field_of(t.loc[int(d["expnum"][i])]), origins, size)
        a, b = window_line_shift(images[j], clean[j], pts)
        dx.append(a)
        dy.append(b)
    dx, dy = np.concatenate(dx), np.concatenate(dy)
    ex, ey = float(np.mean(dx ** 2)), float(np.mean(dy ** 2))
    return {"x": np.sqrt(ex), "y": np.sqrt(ey), "xy": np.sqrt(ex + ey), "sigma": np.nan, "n_lines": len(dx)}


def image_representations(world_dir: str, camera: str, d: dict, latents: list[int], args,
                          truth: pd.DataFrame) -> dict:
    """Image PCA and the grid AE (in-process, ``training.local.fit_local``) at each latent size,
    with the noise floor of the test frames."""
    from arcray.model.ae import arch_config
    from arcray.model.normalise import AsinhNormaliser
    from arcray.training.local import fit_local

    x, m, split = d["x"], d["m"], d["split"]
    tr, va, te = split == 0, split == 1, split == 2
    norm = AsinhNormaliser.fit(x[tr], m[tr])
    y = norm.forward(x)
    flat = lambda a: a.reshape(len(a), -1, a.shape[-1])  # noqa: E731  windows stacked: PCA's image
    t0 = time.perf_counter()
    clean = noiseless_views(world_dir, camera, d, np.flatnonzero(te))
    floor = masked_mse_np(norm.forward(clean), y[te], m[te])
    print(f"  image noise floor {floor:.6f} ({te.sum()} test frames rendered noiseless in "
          f"{time.perf_counter() - t0:.0f} s)", flush=True)
    out = {"norm": norm, "floor": floor, "clean": clean, "reps": {},
           "lines": {("image_data", 0): image_line_rms(camera, d, truth, x[te], clean)}}
    p_all = fit_pca(flat(y[tr]), max(latents), flat(m[tr]))
    n_win, h, w = x.shape[1:]
    for lat in latents:
        p = truncate(p_all, lat)
        z = p.encode(flat(y), flat(m))
        dec = p.decode(z).reshape(y.shape)
        out["reps"][("image_pca", lat)] = {"z": z, "dec": dec, "epochs": 0,
                                           "loss": masked_mse_np(dec[te], y[te], m[te])}
        t0 = time.perf_counter()
        cfg = arch_config(args.image_arch, lat, h, w, n_windows=n_win, positions=tuple(map(tuple, d["positions"])))
        model, hist = fit_local({"x": x[tr], "m": m[tr]}, {"x": x[va], "m": m[va]}, cfg, norm,
                                epochs=args.image_epochs, patience=max(3, args.image_epochs // 3),
                                batch_size=8, lr=args.image_lr)
        with torch.no_grad():
            zs, decs = [], []
            for i in range(0, len(y), 8):
                yt = torch.as_tensor(y[i:i + 8])
                zs.append(model.encode(yt).numpy())
                decs.append(model.decode(torch.as_tensor(zs[-1])).numpy())
        z, dec = np.concatenate(zs), np.concatenate(decs).reshape(y.shape)
        out["reps"][("image_ae", lat)] = {"z": z, "dec": dec, "epochs": len(hist),
                                          "loss": masked_mse_np(dec[te], y[te], m[te])}
        for rep in ("image_pca", "image_ae"):
            out["lines"][(rep, lat)] = image_line_rms(camera, d, truth,
                                                      norm.inverse(out["reps"][(rep, lat)]["dec"][te]), clean)
        print(f"  latent {lat:2d}: image PCA {out['reps'][('image_pca', lat)]['loss']:.6f}  image AE "
              f"{out['reps'][('image_ae', lat)]['loss']:.6f} ({len(hist)} epochs, "
              f"{time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def score_images(camera: str, d: dict, res: dict, truth: pd.DataFrame, corner_latent: int) -> tuple[list, ...]:
    te = np.flatnonzero(d["split"] == 2)
    loss_rows, r2_rows, corner_rows = [], [], []
    line_rows = [{"rep": rep, "camera": camera, "latent": lat, **v} for (rep, lat), v in res["lines"].items()]
    for (rep, lat), r in res["reps"].items():
        loss_rows.append({"rep": rep, "camera": camera, "latent": lat, "test_loss": r["loss"],
                          "floor": res["floor"], "epochs": r["epochs"]})
        lat_df = pd.DataFrame(r["z"], columns=[f"z{i}" for i in range(r["z"].shape[1])])
        lat_df["expnum"], lat_df["mjd"] = d["expnum"], d["mjd"].astype(np.int32)
        joined = join_truth(lat_df, truth, camera)
        for ev, name in (((2,), "test"), ((1, 2), "val+test")):
            t = r2_per_term(joined, eval_splits=ev)
            t["rep"], t["camera"], t["latent"], t["eval"] = rep, camera, lat, name
            r2_rows += t.to_dict("records")
    if len(te) and d["names"]:
        i = te[0]
        y = res["norm"].forward(d["x"][i:i + 1])[0]
        panels = {"data": y, "noiseless": res["norm"].forward(res["clean"][:1])[0]}
        for rep in ("image_pca", "image_ae"):
            if (rep, corner_latent) in res["reps"]:
                panels[f"{rep} l={corner_latent}"] = res["reps"][(rep, corner_latent)]["dec"][i]
        for k, name in enumerate(d["names"]):
            if name not in CORNERS:
                continue
            for kind, img in panels.items():
                corner_rows.append({"camera": camera, "expnum": int(d["expnum"][i]), "window": name, "kind": kind,
                                    "h": img.shape[-2], "w": img.shape[-1],
                                    "pixels": np.asarray(img[k], np.float32).ravel().tolist()})
    return loss_rows, r2_rows, corner_rows, line_rows


# -- report ------------------------------------------------------------------------------------
def print_summary(losses: pd.DataFrame, r2: pd.DataFrame, lines: pd.DataFrame, dofs: dict, n_terms: int) -> None:
    print("\n== 1. test loss vs latent (masked MSE, normalised units; floor = truth against data) ==")
    piv = losses.pivot_table(index=["camera", "latent"], columns="rep", values="test_loss")
    piv["floor"] = losses.groupby(["camera", "latent"])["floor"].first()
    print(piv.to_string(float_format=lambda v: f"{v:.5f}"))
    print("\n== 2. knee of loss vs latent against the effective degrees of freedom ==")
    knees = {}
    for (cam, rep), g in losses.groupby(["camera", "rep"]):
        g = g.sort_values("latent")
        knees[(cam, rep)] = k = knee(g["latent"], g["test_loss"])
        print(f"  {cam} {rep:10s}: knee {k:2d}   effective dof {dofs.get(cam, '?')} "
              f"(true state terms: {n_terms})")
    print("\n== 3. excess over the noise floor at the knee: AE / PCA (goal <= "
          f"{EXCESS_GOAL}) ==")
    for kind in ("line", "image"):
        for cam in sorted(losses["camera"].unique()):
            ae, pca = losses[(losses["rep"] == f"{kind}_ae") & (losses["camera"] == cam)], \
                losses[(losses["rep"] == f"{kind}_pca") & (losses["camera"] == cam)]
            if ae.empty or pca.empty:
                print(f"  {cam} {kind}: not run")
                continue
            k = knees[(cam, f"{kind}_ae")]
            a = ae[ae["latent"] == k].iloc[0]
            p = pca[pca["latent"] == k].iloc[0]
            ratio = (a["test_loss"] - a["floor"]) / max(p["test_loss"] - p["floor"], 1e-30)
            every = ", ".join(f"l={int(r.latent)}: {(r.test_loss - r.floor) / max(q.test_loss - q.floor, 1e-30):.3f}"
                              for r, q in zip(ae.sort_values("latent").itertuples(),
                                              pca.sort_values("latent").itertuples()))
            print(f"  {cam} {kind}: at knee l={k}: AE excess {a['test_loss'] - a['floor']:.5f}  PCA excess "
                  f"{p['test_loss'] - p['floor']:.5f}  ratio {ratio:.3f} "
                  f"{'MET' if ratio <= EXCESS_GOAL else 'MISSED'}   [{every}]")
    print(f"\n== 4. R^2 per state term from the latent at the knee (goal >= {R2_GOAL} where edge > "
          f"{EDGE_MIN_PX} px) ==")
    for (cam, rep), k in sorted(knees.items()):
        sel = r2[(r2["camera"] == cam) & (r2["rep"] == rep) & (r2["latent"] == k)]
        for ev, g in sel.groupby("eval", sort=False):
            need = g[g["edge_px"] > EDGE_MIN_PX]
            ok = bool((need["r2"] >= R2_GOAL).all()) if len(need) else False
            terms = "  ".join(f"{t.term}={t.r2:.2f}" + ("*" if t.edge_px > EDGE_MIN_PX else "")
                              for t in g.itertuples())
            print(f"  {cam} {rep:10s} l={k:2d} {ev:8s} n={int(g['n_eval'].max())}: {terms}  -> "
                  f"{'MET' if ok else 'MISSED'} (* = edge > {EDGE_MIN_PX} px)")
    print("\n== 5. reconstruction line-position RMS on the test nights (px, against the true centres) ==")
    if lines.empty:
        print("  not run")
        return
    print(lines.pivot_table(index=["camera", "latent"], columns="rep", values="xy").to_string(
        float_format=lambda v: f"{v:.4f}"))


def merge_table(path: str, new: pd.DataFrame) -> pd.DataFrame:
    """``new`` plus the rows of the table at ``path`` whose (rep, camera) ``new`` does not hold, so
    a run of one representation keeps the others' results."""
    if not os.path.exists(path):
        return new
    old = pd.read_parquet(path)
    if new.empty:
        return old
    have = set(zip(new["rep"], new["camera"])) if "rep" in new else set(zip(new["kind"], new["camera"]))
    key = "rep" if "rep" in old else "kind"
    keep = ~pd.Series(list(zip(old[key], old["camera"]))).isin(have).to_numpy()
    return pd.concat([old[keep], new], ignore_index=True)


def _args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", default="demo-out/world", help="simulated world (world.json, truth.parquet)")
    ap.add_argument("--root", default="demo-out/pipeline", help="pipeline root (calibrated/, measure/)")
    ap.add_argument("--out", default="represent-out", help="root where the result tables are written")
    ap.add_argument("--cameras", default="", help="comma-separated (default: every measured camera)")
    ap.add_argument("--latents", default="1,2,4,8,16")
    ap.add_argument("--epochs", type=int, default=300, help="line AE epochs (full batch)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=64, help="line AE hidden width")
    ap.add_argument("--depth", type=int, default=1, help="line AE hidden layers")
    ap.add_argument("--images", action="store_true", help="also the grid image AE and image PCA")
    ap.add_argument("--no-lines", action="store_true", help="skip the line representations (tables "
                    "already under --out keep their line rows)")
    ap.add_argument("--image-root", default="", help="calibrated root with the detector-grid windows "
                    "(default: --root)")
    ap.add_argument("--image-latents", default="", help="default: --latents")
    ap.add_argument("--image-arch", default="grid_res")
    ap.add_argument("--image-epochs", type=int, default=10)
    ap.add_argument("--image-lr", type=float, default=1e-3)
    ap.add_argument("--crop", type=int, default=64, help="side of the central square of each grid window")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = _args(argv)
    torch.set_num_threads(2)
    truth_path = os.path.join(args.world, "truth.parquet")
    if not os.path.exists(truth_path):
        print(f"error: no truth.parquet in {args.world}", file=sys.stderr)
        return 2
    truth = pd.read_parquet(truth_path)
    latents = sorted({int(v) for v in args.latents.split(",") if v})
    part = Layout(args.root).measured_lines_partition("b1")
    cams = [c for c in args.cameras.split(",") if c] or sorted(
        c for c in truth["camera"].unique() if os.path.isdir(part.replace("camera=b1", f"camera={c}")))
    if not cams:
        print(f"error: no measured line tables under {args.root}", file=sys.stderr)
        return 2
    loss_rows, r2_rows, line_rows, dofs = [], [], [], {}
    for cam in ([] if args.no_lines else cams):
        t0 = time.perf_counter()
        d = load_lines(args.root, cam, truth)
        d["truth_all"] = truth
        n = {s: int((d["split"] == i).sum()) for i, s in enumerate(("train", "val", "test"))}
        print(f"{cam}: {len(d['x'])} measured arcs {n}, D = {d['index'].size} "
              f"({d['index'].n_lines} lines x 500 fibers x 3)", flush=True)
        res = line_representations(d, latents, args)
        dofs[cam] = res["dof"]
        print(f"  line noise floor {res['floor']:.5f}; noiseless PCA loss "
              + " ".join(f"l={k}:{v:.4f}" for k, v in res["dof_curve"].items() if k in (1, 2, 4, 8, 12, 16, 24))
              + f" -> effective dof {res['dof']}  ({time.perf_counter() - t0:.0f} s)", flush=True)
        lr_, rr_, lnr_ = score_lines(cam, d, res)
        loss_rows += lr_
        r2_rows += rr_
        line_rows += lnr_
    corner_rows = []
    if args.images:
        img_lat = sorted({int(v) for v in (args.image_latents or args.latents).split(",") if v})
        for cam in cams:
            t0 = time.perf_counter()
            try:
                d = load_images(args.image_root or args.root, cam, truth, args.crop)
            except Exception as exc:  # noqa: BLE001 - one line, the line results still print
                print(f"{cam} images: not run ({type(exc).__name__}: {exc})", flush=True)
                continue
            n = {s: int((d["split"] == i).sum()) for i, s in enumerate(("train", "val", "test"))}
            print(f"{cam} images: {len(d['x'])} arcs {n}, view {d['x'].shape[1:]} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
            res = image_representations(args.world, cam, d, img_lat, args, truth)
            ae = pd.DataFrame([{"latent": k[1], "loss": v["loss"]} for k, v in res["reps"].items()
                               if k[0] == "image_ae"])
            a, b, c, e = score_images(cam, d, res, truth, knee(ae["latent"], ae["loss"]))
            line_rows += e
            loss_rows += a
            r2_rows += b
            corner_rows += c
    losses, r2, lines = pd.DataFrame(loss_rows), pd.DataFrame(r2_rows), pd.DataFrame(line_rows)
    layout = Layout(args.out)
    import pyarrow as pa

    tables = [("losses", losses), ("r2", r2), ("lines", lines)]
    if corner_rows:
        tables.append(("corners", pd.DataFrame(corner_rows)))
    if losses.empty and not os.path.exists(layout.represent_table("losses")):
        print("error: no representation could be scored", file=sys.stderr)
        return 1
    merged = {}
    for name, df in tables:
        merged[name] = df = merge_table(layout.represent_table(name), df)
        atomic_write_parquet(layout.represent_table(name), pa.Table.from_pandas(df, preserve_index=False))
    losses, r2, lines = merged["losses"], merged["r2"], merged["lines"]
    print_summary(losses, r2, lines, dofs, len(state_terms(truth)))
    print(f"\nresult tables: {layout.represent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
