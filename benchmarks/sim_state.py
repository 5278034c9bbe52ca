"""Benchmark: what the simulated world's whole-detector state holds (truth only, no frames).

On a 14-night world (the demo's size), prints:

1. the share of the line-position variance over every (alive fiber, lamp line) of the calibration
   arcs (Hartmann arcs and faulty frames excluded) that the old four global numbers explain, per
   camera: (a) about each line's mean position over the world and (b) from one arc to the next
   within a night (what a predictor from the previous arc faces); "global shift" is the best one
   shift per axis and frame (an upper bound for any 4-number state), "a0/b0" the world's own
   first-version numbers; and what is left after the best global shift (RMS over every line, 95th
   percentile over the lines near the detector's edges), in px;
2. the edge displacement range of each field term (px at the detector's edge, ``sr`` at its
   corner) over every arc and flat: total, header-driven part, hidden part;
3. the fault counts by kind and flavour.

    .venv/bin/python benchmarks/sim_state.py [--nights 14] [--seed 0] [--observatory apo]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import pandas as pd


def variance_shares(truth: pd.DataFrame, camera: str) -> dict[str, float]:
    from arcray import optics
    from arcray.sim.truth import coeffs_of, usable_arcs

    arcs = truth[(truth["camera"] == camera) & usable_arcs(truth)].sort_values("expnum")
    x0, y0 = optics.nominal_line_positions(camera, np.flatnonzero(optics.traces(camera).alive))
    dx, dy, _ = optics.displacements(camera, coeffs_of(arcs), x0, y0)
    a0, b0 = arcs["a0"].to_numpy(), arcs["b0"].to_numpy()
    out = {"n_arcs": len(arcs), "n_lines": dx.shape[1]}
    both = np.concatenate([dx - dx.mean(0), dy - dy.mean(0)], axis=1)
    own = np.concatenate([np.repeat((a0 - a0.mean())[:, None], dx.shape[1], 1),
                          np.repeat((b0 - b0.mean())[:, None], dy.shape[1], 1)], axis=1)
    tot = float(np.sum(both ** 2))
    gx, gy = (dx - dx.mean(0)).mean(1), (dy - dy.mean(0)).mean(1)
    out["world_global"] = float(dx.shape[1] * np.sum(gx ** 2) + dy.shape[1] * np.sum(gy ** 2)) / tot
    out["world_a0b0"] = 1.0 - float(np.sum((both - own) ** 2)) / tot
    resid = np.concatenate([dx - dx.mean(0) - gx[:, None], dy - dy.mean(0) - gy[:, None]], axis=1)
    u, v = optics.normalised(camera, x0.ravel(), y0.ravel())
    edge = np.tile((np.abs(u) > 0.75) | (np.abs(v) > 0.75), 2)
    out["resid_rms_px"] = float(np.sqrt(np.mean(resid ** 2)))
    out["resid_edge_p95_px"] = float(np.percentile(np.abs(resid[:, edge]), 95))
    same = (arcs["mjd"].to_numpy()[1:] == arcs["mjd"].to_numpy()[:-1])
    ddx, ddy = np.diff(dx, axis=0)[same], np.diff(dy, axis=0)[same]
    da0, db0 = np.diff(a0)[same], np.diff(b0)[same]
    tot = float(np.sum(ddx ** 2) + np.sum(ddy ** 2))
    out["step_global"] = float(ddx.shape[1] * np.sum(ddx.mean(1) ** 2) + ddy.shape[1] * np.sum(ddy.mean(1) ** 2)) / tot
    out["step_a0b0"] = 1.0 - float(np.sum((ddx - da0[:, None]) ** 2) + np.sum((ddy - db0[:, None]) ** 2)) / tot
    out["step_rms_px"] = float(np.sqrt(tot / ddx.size / 2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", default="2023-12-01")
    ap.add_argument("--observatory", default="apo")
    ap.add_argument("--fault-rate", type=float, default=None, help="default: the world's default")
    args = ap.parse_args()

    from arcray.optics import FIELD_TERMS
    from arcray.sim.world import SimWorld, WorldSpec

    kw = {} if args.fault_rate is None else {"fault_rate": args.fault_rate}
    spec = WorldSpec(start=args.start, nights=args.nights, seed=args.seed, observatory=args.observatory, **kw)
    world = SimWorld(spec)
    truth = world.truth_table().to_pandas()
    cams = sorted(truth["camera"].unique())
    print(f"world: {args.nights} nights from {args.start} at {args.observatory}, seed {args.seed}, "
          f"fault rate {spec.fault_rate}: {len(world.exposures)} exposures, {len(truth)} camera frames")

    print("\n1. share of line-position variance (every alive fiber x lamp line, x and y pooled) explained by")
    print("   one global shift per frame / by the world's a0, b0 (first-version dx, dy):")
    for cam in cams:
        s = variance_shares(truth, cam)
        print(f"   {cam}: {s['n_arcs']} arcs x {s['n_lines']} fiber-lines | about each line's mean: global "
              f"{100 * s['world_global']:.1f} %, a0/b0 {100 * s['world_a0b0']:.1f} % | arc to next arc "
              f"(same night, RMS change {s['step_rms_px']:.3f} px): global {100 * s['step_global']:.1f} %, "
              f"a0/b0 {100 * s['step_a0b0']:.1f} %")
        print(f"       left after the best global shift per frame: RMS {s['resid_rms_px']:.3f} px over every line, "
              f"95th percentile {s['resid_edge_p95_px']:.3f} px over the edge lines (|u| or |v| > 0.75)")

    cal = truth[truth["flavor"].isin(["arc", "flat"])]
    print("\n2. edge displacement range of each term over every arc and flat (px; min .. max, s.d.):")
    print(f"   {'term':4s} {'total':>24s} {'header part':>24s} {'hidden part':>24s}")
    for t in FIELD_TERMS:
        cols = [cal[t], cal[t + "_header"], cal[t + "_hidden"]]
        txt = [f"{c.min():+7.3f} .. {c.max():+7.3f} ({c.std():.3f})" for c in cols]
        print(f"   {t:4s} {txt[0]:>24s} {txt[1]:>24s} {txt[2]:>24s}")

    print("\n3. faults (camera frames):")
    faults = Counter((r.fault, r.flavor) for r in truth.itertuples() if isinstance(r.fault, str))
    n_cal = Counter(truth["flavor"])
    for kind in sorted({k for k, _ in faults}):
        print(f"   {kind:16s} arcs {faults[(kind, 'arc')]:3d}  flats {faults[(kind, 'flat')]:3d}")
    n_f = sum(faults.values())
    print(f"   total {n_f} of {n_cal['arc'] + n_cal['flat']} arc+flat camera frames "
          f"({100 * n_f / max(1, n_cal['arc'] + n_cal['flat']):.1f} %)")


if __name__ == "__main__":
    main()
