"""Benchmark: measurement of arcs and flats with a known field, against the truth, from raw ADU.

On frames painted by ``arcray.measure.synthetic`` (every line of every fiber at
``optics.line_positions`` under a random field of the size calibration-state.md describes, Poisson
+ read noise, the camera's dead fibers, fiber throughputs +-4 %), turned into raw ADU and measured
through ``RawSource`` exactly as calibration would, prints per camera:

- the RMS centroid error (x, y) of the used lines with S/N > 50 (goal <= 0.03 px) and of all
  used lines;
- the RMS over the detector (every alive fiber x listed line, ``optics.rms_line_error``) of the
  fitted minus the true field (goal <= 0.02 px) and of the width field;
- the per-quadrant width error (WSIGMA_Q* minus the median true width of the same lines;
  goal <= 0.02 px), for flats XSIGMA_Q*;
- misidentified lines on clean frames (used lines > 0.5 px from their truth; goal 0);
- the measurement time per frame (arc and flat), CPU and wall, best of ``--repeat`` (goal: <= 40
  ms on one core, ~30 % of calibrating a frame);
- with ``--faults``: how the QA quantities move under each kind of fault the world will inject.

    .venv/bin/python benchmarks/bench_measure.py [--cameras b1,r1] [--frames 3] [--repeat 5] [--faults]
"""

from __future__ import annotations

import argparse
import os
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

GOAL_CENTROID, GOAL_FIELD, GOAL_WIDTH, GOAL_MS = 0.03, 0.02, 0.02, 40.0
# s.d. of each term over a month (header-driven + hidden parts together), px at the detector's edge
TERM_SD = dict(a0=0.6, a1=0.15, a2=0.15, a3=0.08, b0=0.8, b1=0.15, b2=0.15, b3=0.08, su=0.04, sv=0.04, sr=0.04)


def random_field(rng):
    from arcray.optics import Field

    terms = {k: float(rng.normal(0, s)) for k, s in TERM_SD.items()}
    return Field(s0=float(rng.uniform(0.95, 1.2)), **terms)


def timed(fn, repeat: int):
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls) * 1e3, min(cpus) * 1e3, out


def arc_metrics(camera, field, m):
    from arcray import optics
    from arcray.measure.field import quadrant

    ln = m.lines
    ids = np.asarray(ln["line"]).reshape(500, -1)[0]
    x, y, s = (a.ravel() for a in optics.line_positions(camera, field, line_ids=ids))
    used = ln["used"]
    ex, ey = ln["x"][used] - x[used], ln["y"][used] - y[used]
    hi = ln["snr"][used] > 50
    fit = optics.Field.from_mapping({k: v for k, v in m.frame.items() if v is not None})
    rms = optics.rms_line_error(camera, fit, field)
    q = quadrant(camera, ln["x_nom"], ln["y_nom"])
    werr = [m.frame[f"WSIGMA_Q{i}"] - np.median(s[used & (q == i)]) for i in range(4)]
    return dict(hi_x=ex[hi], hi_y=ey[hi], all_x=ex, all_y=ey, field_x=rms["x"], field_y=rms["y"],
                field_s=rms["sigma"], width=np.array(werr), misid=int(((np.abs(ex) > 0.5) | (np.abs(ey) > 0.5)).sum()),
                n_used=int(used.sum()), frac_hi=float(hi.mean()))


def flat_metrics(camera, field, m):
    from arcray import optics
    from arcray.measure.field import quadrant

    t = m.traces
    used = t["used"]
    truth = optics.trace_x(camera, t["fiber"].astype(int) - 1, t["row"], field)
    ex = t["x"][used] - truth[used]
    hi = t["snr"][used] > 50
    fit = optics.Field.from_mapping({k: m.frame[k] for k in ("a0", "a1", "a2", "a3", "s0", "su", "sv", "sr")})
    rms = optics.rms_line_error(camera, fit, optics.Field(**{**field.as_dict(), "b0": 0, "b1": 0, "b2": 0, "b3": 0}))
    u, v = optics.normalised(camera, t["x_nom"], t["row"])
    s = field.sigma(u, v)
    q = quadrant(camera, t["x_nom"], t["row"])
    werr = [m.frame[f"XSIGMA_Q{i}"] - np.median(s[used & (q == i)]) for i in range(4)]
    return dict(hi_x=ex[hi], all_x=ex, field_x=rms["x"], field_s=rms["sigma"], width=np.array(werr),
                misid=int((np.abs(ex) > 0.5).sum()), ngood=m.frame["NGOODFIBER"])


def rms(a) -> float:
    a = np.concatenate([np.ravel(x) for x in a]) if isinstance(a, list) else np.asarray(a)
    return float(np.sqrt(np.mean(a ** 2))) if a.size else float("nan")


def bench_camera(camera: str, n: int, repeat: int, seed: int) -> tuple[float, float]:
    from arcray.measure import measure_frame
    from arcray.measure.synthetic import arc_electrons, flat_electrons, raw_source, to_raw

    rng = np.random.default_rng(seed)
    arcs, flats, t_arc, t_flat = [], [], [], []
    for i in range(n):
        field = random_field(rng)
        meta = dict(camera=camera, mjd=60708, expnum=1000 + i, flavor="arc", EXPTIME=4.09)
        src = raw_source(to_raw(arc_electrons(camera, field, seed=seed + i).electrons, camera, seed=seed + i), camera)
        wall, cpu, m = timed(lambda: measure_frame(src, meta), repeat)
        arcs.append(arc_metrics(camera, field, m))
        t_arc.append((wall, cpu))
        src = raw_source(to_raw(flat_electrons(camera, field, seed=seed + i).electrons, camera, seed=seed + i), camera)
        wall, cpu, m = timed(lambda: measure_frame(src, {**meta, "flavor": "flat", "EXPTIME": 25.1}), repeat)
        flats.append(flat_metrics(camera, field, m))
        t_flat.append((wall, cpu))
    hx, hy = rms([a["hi_x"] for a in arcs]), rms([a["hi_y"] for a in arcs])
    ax, ay = rms([a["all_x"] for a in arcs]), rms([a["all_y"] for a in arcs])
    fx, fy = max(a["field_x"] for a in arcs), max(a["field_y"] for a in arcs)
    fs = max(a["field_s"] for a in arcs)
    w = max(float(np.abs(a["width"]).max()) for a in arcs)
    print(f"\n{camera}: {n} arcs + {n} flats, random fields (term s.d. {TERM_SD['a0']}..{TERM_SD['a3']} px), "
          f"{np.mean([a['n_used'] for a in arcs]):.0f} used lines per arc, "
          f"{100 * np.mean([a['frac_hi'] for a in arcs]):.0f} % with S/N > 50")
    print(f"  arc centroids, S/N > 50   RMS x {hx:.4f}  y {hy:.4f} px   (goal <= {GOAL_CENTROID})  "
          f"{'ok' if max(hx, hy) <= GOAL_CENTROID else 'MISSED'}")
    print(f"  arc centroids, all used   RMS x {ax:.4f}  y {ay:.4f} px")
    print(f"  arc field - truth over the detector (worst frame)  x {fx:.4f}  y {fy:.4f} px  width {fs:.4f} px "
          f"(goal <= {GOAL_FIELD})  {'ok' if max(fx, fy) <= GOAL_FIELD else 'MISSED'}")
    print(f"  WSIGMA per quadrant - truth (worst)  {w:.4f} px  (goal <= {GOAL_WIDTH})  "
          f"{'ok' if w <= GOAL_WIDTH else 'MISSED'}")
    print(f"  misidentified lines (clean)  {sum(a['misid'] for a in arcs)}  (goal 0)")
    fhx, fax = rms([f["hi_x"] for f in flats]), rms([f["all_x"] for f in flats])
    ffx = max(f["field_x"] for f in flats)
    fw = max(float(np.abs(f["width"]).max()) for f in flats)
    print(f"  flat traces  RMS x S/N > 50 {fhx:.4f}, all {fax:.4f} px; x field - truth {ffx:.4f} px; "
          f"XSIGMA per quadrant - truth {fw:.4f} px; misidentified {sum(f['misid'] for f in flats)}; "
          f"NGOODFIBER {sorted({f['ngood'] for f in flats})}")
    wa, ca = np.min(t_arc, axis=0)
    wf, cf = np.min(t_flat, axis=0)
    print(f"  time per frame from raw ADU (best of {repeat}): arc cpu {ca:.1f} ms (wall {wa:.1f}), "
          f"flat cpu {cf:.1f} ms (wall {wf:.1f})  (goal <= {GOAL_MS:.0f} ms)")
    return ca, cf


def bench_faults(camera: str, seed: int) -> None:
    """QA quantities of one arc per fault kind (as the world will inject them), from raw ADU."""
    from arcray import optics
    from arcray.instrument import GEOMETRY, OBSERVATORY
    from arcray.measure import measure_frame
    from arcray.measure.synthetic import arc_electrons, raw_source, to_raw

    lamps = optics.LAMPS[OBSERVATORY[camera]]
    base = optics.Field(a0=0.2, b0=-0.3, s0=1.05)
    h, w = optics.detector_size(camera)
    cases = [("clean", {}, None), (f"lamp_out {lamps[0]}", {"lamp_scale": {lamps[0]: 0.0}}, None),
             (f"lamp_out {lamps[1]}", {"lamp_scale": {lamps[1]: 0.0}}, None),
             ("no_light", {"peak_e": 0.0}, None), ("overexposed x4", {"peak_e": 200000.0}, None),
             ("focus_jump +0.3", {"field": optics.Field(a0=0.2, b0=-0.3, s0=1.35)}, None),
             ("scattered_light", {}, "glow"), ("amp_noisy x5", {}, "noisy")]
    print(f"\nfaults on {camera} (one arc each): the QA quantities and the traffic light")
    print(f"  {'fault':18s} {'NLAMPS':>6s} {'per lamp':>9s} {'WSIGMA':>7s} {'BESTCORR':>8s} {'WAVEMID':>8s} "
          f"{'used':>6s}  status (reasons)")
    for name, kw, extra in cases:
        field = kw.pop("field", base)
        e = arc_electrons(camera, field, seed=seed, **kw).electrons
        if extra == "glow":
            yy, xx = np.mgrid[0:h, 0:w]
            glow = 300.0 * np.exp(-((xx - 0.6 * w) ** 2 + (yy - 0.4 * h) ** 2) / (2 * (0.3 * w) ** 2))
            e = e + glow.astype(np.float32)
        if extra == "noisy":
            amp = GEOMETRY[camera].amps[1]
            block = e[amp.trim_rows, amp.trim_cols]
            block += np.random.default_rng(seed).normal(0, 4 * 2.0 * 5, block.shape).astype(np.float32)
        fr = measure_frame(raw_source(to_raw(e, camera, seed=seed), camera),
                           dict(camera=camera, mjd=60708, expnum=2000, flavor="arc", EXPTIME=4.09)).frame
        per = ",".join(str(fr[c]) for c in ("nlamps_ne", "nlamps_hgcd", "nlamps_hear") if fr[c] is not None)
        ws = "-" if fr["WSIGMA"] is None else f"{fr['WSIGMA']:.3f}"
        wm = "-" if fr["WAVEMID"] is None else f"{fr['WAVEMID']:.1f}"
        bc = float("nan") if fr["BESTCORR"] is None else fr["BESTCORR"]
        print(f"  {name:18s} {fr['NLAMPS']:6d} {per:>9s} {ws:>7s} {bc:8.3f} {wm:>8s} "
              f"{fr['n_points_used']:6d}  {fr['status']} ({fr['status_reasons']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", default="b1,r1")
    ap.add_argument("--frames", type=int, default=3, help="arcs and flats per camera")
    ap.add_argument("--repeat", type=int, default=5, help="timing repeats per frame (best is kept)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--faults", action="store_true", help="also print the QA quantities per fault kind")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; one thread")
    times = [bench_camera(c, args.frames, args.repeat, args.seed) for c in args.cameras.split(",")]
    ca, cf = np.max(times, axis=0)
    print(f"\nworst camera: arc {ca:.1f} ms, flat {cf:.1f} ms CPU per frame "
          f"({ca / GOAL_MS:.2f}x / {cf / GOAL_MS:.2f}x the {GOAL_MS:.0f} ms goal)")
    if args.faults:
        bench_faults(args.cameras.split(",")[0], args.seed)


if __name__ == "__main__":
    main()
