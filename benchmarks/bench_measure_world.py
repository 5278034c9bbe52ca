"""Benchmark: what calibration measured on a simulated (v2) world, against the world's truth.

Reads a pipeline root that was calibrated with measurement and passed through ``arcray measure``
(``make demo`` leaves one in ``demo-out/pipeline``) and the world's ``truth.parquet``, and prints
per camera, on the clean arcs (no injected fault):

- the RMS centroid error (x, y) of used lines with S/N > 50 (goal <= 0.03 px) and of all used lines,
  against ``arcray.sim.truth.true_lines``;
- the RMS over the detector (every alive fiber x listed line) of the fitted minus the true field
  (goal <= 0.02 px), x, y and width;
- the per-quadrant width error: WSIGMA_Q* minus the median true width of the lines used there
  (goal <= 0.02 px);
- misidentified lines: used lines more than 0.5 px from their true centre (goal 0);

then, per fault kind the world injected, how the QA quantities and the traffic light move against
the clean arcs and flats.

    .venv/bin/python benchmarks/bench_measure_world.py --root demo-out/pipeline --truth demo-out/world/truth.parquet
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

GOAL_CENTROID, GOAL_FIELD, GOAL_WIDTH = 0.03, 0.02, 0.02
QA = ("NLAMPS", "WSIGMA", "BESTCORR", "fratio", "median_flux", "XSIGMA", "NGOODFIBER", "field_rms_y")


def rms(a) -> float:
    a = np.asarray(a, float)
    return float(np.sqrt(np.mean(a ** 2))) if a.size else float("nan")


def arc_errors(layout, frame: pd.Series, truth_row: pd.Series) -> dict:
    import pyarrow.parquet as pq

    from arcray import optics
    from arcray.measure.field import quadrant
    from arcray.sim.truth import field_of, true_lines

    cam = str(frame["camera"])
    ln = pq.read_table(layout.measured_lines(cam, int(frame["mjd"]), int(frame["expnum"]))).to_pydict()
    ln = {k: np.asarray(v) for k, v in ln.items()}
    tx, ty, ts = true_lines(truth_row)
    f, li = ln["fiber"].astype(int) - 1, ln["line"].astype(int)
    tx, ty, ts = tx[f, li], ty[f, li], ts[f, li]
    used = ln["used"]
    ex, ey = (ln["x"] - tx)[used], (ln["y"] - ty)[used]
    hi = ln["snr"][used] > 50
    fit = optics.Field.from_mapping({k: frame[k] for k in optics.FIELD_TERMS if pd.notna(frame[k])})
    field = optics.rms_line_error(cam, fit, field_of(truth_row))
    q = quadrant(cam, ln["x_nom"], ln["y_nom"])
    werr = [frame[f"WSIGMA_Q{i}"] - np.median(ts[used & (q == i)]) for i in range(4) if (used & (q == i)).any()]
    return dict(hi_x=ex[hi], hi_y=ey[hi], all_x=ex, all_y=ey, field=field, width=np.array(werr, float),
                misid=int(((np.abs(ex) > 0.5) | (np.abs(ey) > 0.5)).sum()), n_used=int(used.sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="demo-out/pipeline")
    ap.add_argument("--truth", default="demo-out/world/truth.parquet")
    ap.add_argument("--max-arcs", type=int, default=0, help="per camera (0: all)")
    args = ap.parse_args()

    from arcray.paths import Layout

    layout = Layout(args.root)
    frames = pd.read_parquet(layout.measured_frames)
    truth = pd.read_parquet(args.truth)
    both = frames.merge(truth[["camera", "mjd", "expnum", "fault"]], on=["camera", "mjd", "expnum"], how="left")
    true = truth.set_index(["camera", "mjd", "expnum"], drop=False)
    print(f"{len(frames)} measured frames, {both['fault'].notna().sum()} with an injected fault")
    for cam, d in both[both["measured"] & (both["flavor"] == "arc") & both["fault"].isna()].groupby("camera"):
        d = d.head(args.max_arcs) if args.max_arcs else d
        acc: dict[str, list] = {k: [] for k in ("hi_x", "hi_y", "all_x", "all_y", "width")}
        fx, fy, fs, misid, n = [], [], [], 0, 0
        for _, r in d.iterrows():
            e = arc_errors(layout, r, true.loc[(cam, r["mjd"], r["expnum"])])
            for k in acc:
                acc[k].append(e[k])
            fx.append(e["field"]["x"]), fy.append(e["field"]["y"]), fs.append(e["field"]["sigma"])
            misid += e["misid"]
            n += e["n_used"]
        cat = {k: np.concatenate(v) if v else np.array([]) for k, v in acc.items()}
        print(f"\n{cam}: {len(d)} clean arcs, {n} used (fiber, line) points")
        print(f"  centroid RMS, S/N > 50: x {rms(cat['hi_x']):.4f}  y {rms(cat['hi_y']):.4f} px "
              f"(goal <= {GOAL_CENTROID}; {cat['hi_x'].size} lines)")
        print(f"  centroid RMS, all used: x {rms(cat['all_x']):.4f}  y {rms(cat['all_y']):.4f} px")
        print(f"  fitted - true field over the detector: x {rms(fx):.4f}  y {rms(fy):.4f}  width {rms(fs):.4f} px "
              f"(goal <= {GOAL_FIELD}; worst frame x {max(fx):.4f} y {max(fy):.4f})")
        print(f"  per-quadrant width error: RMS {rms(cat['width']):.4f} px, worst {np.abs(cat['width']).max():.4f} "
              f"(goal <= {GOAL_WIDTH})")
        print(f"  misidentified lines (> 0.5 px from the truth): {misid} (goal 0)")
    faulty = both[both["fault"].notna()]
    if len(faulty):
        print("\nQA per fault kind (median over frames; clean = the clean frames of the same flavor):")
        cols = [c for c in QA if c in both]
        for flv, d in both[both["measured"] | both["fault"].notna()].groupby("flavor"):
            clean = d[d["fault"].isna()]
            base = clean[cols].median(numeric_only=True)
            print(f"  {flv} clean ({len(clean)}): " + ", ".join(f"{c}={base[c]:.4g}" for c in cols if pd.notna(base[c]))
                  + f"; status {clean['status'].value_counts().to_dict()}")
            for kind, k in d[d["fault"].notna()].groupby("fault"):
                med = k[cols].median(numeric_only=True)
                print(f"  {flv} {kind} ({len(k)}): " + ", ".join(f"{c}={med[c]:.4g}" for c in cols if pd.notna(med[c]))
                      + f"; status {k['status'].value_counts(dropna=False).to_dict()}")


if __name__ == "__main__":
    main()
