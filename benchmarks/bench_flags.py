"""Benchmark: flags with reasons (``arcray.measure.flags_reasons``) against a simulated world's truth.

Reads a pipeline root that was calibrated with measurement and passed through ``arcray measure``
(its ``Layout.measured_frames``) and the world's ``truth.parquet`` (column ``fault``), judges every
night against the OTHER nights of the root as reference (``judge_by_night``: a night never sets its
own thresholds; the thresholds themselves are ``FlagLimits``' defaults, not fitted here), and prints
per fault kind:

- recall: the share of its frames flagged (any reason but ``clean``; goal >= 0.9);
- right reason: the share given the reason that names the fault (goal >= 0.9);

and the share of clean frames flagged (goal <= 1 %), a confusion table and every miss.

    .venv/bin/arcray sim render --out /tmp/wflags --start 2024-01-04 --nights 10 --seed 21 \\
        --cameras b1,r1 --flavors arc,flat
    .venv/bin/arcray calibrate --root /tmp/rflags --raw /tmp/wflags/sas && .venv/bin/arcray measure --root /tmp/rflags
    .venv/bin/python benchmarks/bench_flags.py --root /tmp/rflags --truth /tmp/wflags/truth.parquet
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

GOAL_RECALL, GOAL_REASON, GOAL_CLEAN = 0.9, 0.9, 0.01
REASON_OF = {"lamp_out": "lamp_out", "no_light": "no_light", "amp_noisy": "amp_noisy",
             "scattered_light": "scattered_light", "focus_jump": "focus", "overexposed": "overexposed"}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    from arcray.measure.flags_reasons import judge_by_night
    from arcray.paths import Layout

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="pipeline root with measure/frames.parquet")
    ap.add_argument("--truth", required=True, help="the world's truth.parquet")
    args = ap.parse_args()

    frames = pd.read_parquet(Layout(args.root).measured_frames)
    frames = frames[frames["flavor"].isin(["arc", "flat"])]
    truth = pd.read_parquet(args.truth, columns=["camera", "expnum", "fault", "fault_detail"])
    t0 = time.perf_counter()
    judged = judge_by_night(frames)
    dt = time.perf_counter() - t0
    j = judged.merge(truth, on=["camera", "expnum"], how="left")
    j["fault"] = j["fault"].fillna("clean").replace("", "clean")
    skipped = j[j["flag"].isna()]
    j = j[j["flag"].notna()]
    print(f"{len(j)} frames ({(j.flavor == 'arc').sum()} arcs, {(j.flavor == 'flat').sum()} flats) over "
          f"{j.mjd.nunique()} nights, {int((j.fault != 'clean').sum())} with an injected fault; "
          f"judged in {dt:.2f} s, each night against the other {j.mjd.nunique() - 1}; "
          f"{len(skipped)} not judged (Hartmann frames, {int((skipped.fault != 'clean').sum())} with a fault)\n")
    pd.set_option("display.width", 200)
    print(pd.crosstab(j["fault"], j["flag"]).to_string(), "\n")

    ok_all = True
    print(f"{'fault':16s} {'n':>3s} {'recall':>7s} {'reason':>7s}")
    for fault, reason in REASON_OF.items():
        g = j[j.fault == fault]
        if g.empty:
            print(f"{fault:16s} {0:3d}   (none in this world)")
            continue
        recall = float((g.flag != "clean").mean())
        right = float((g.flag == reason).mean())
        ok = recall >= GOAL_RECALL and right >= GOAL_REASON
        ok_all &= ok
        print(f"{fault:16s} {len(g):3d} {recall:7.2f} {right:7.2f}   recall {_verdict(recall >= GOAL_RECALL)} "
              f"(goal >= {GOAL_RECALL}), reason {_verdict(right >= GOAL_REASON)} (goal >= {GOAL_REASON})")
    faulty = j[j.fault != "clean"]
    print(f"{'all faults':16s} {len(faulty):3d} {(faulty.flag != 'clean').mean():7.2f} "
          f"{(faulty.flag == faulty.fault.map(REASON_OF)).mean():7.2f}")
    clean = j[j.fault == "clean"]
    fp = float((clean.flag != "clean").mean())
    ok_all &= fp <= GOAL_CLEAN
    print(f"clean frames flagged: {int((clean.flag != 'clean').sum())}/{len(clean)} = {100 * fp:.2f} % "
          f"{_verdict(fp <= GOAL_CLEAN)} (goal <= {100 * GOAL_CLEAN:.0f} %)")
    print(f"\noverall: {_verdict(ok_all)}\n")

    wrong = j[(j.fault != "clean") & (j.flag != j.fault.map(REASON_OF))]
    flagged_clean = clean[clean.flag != "clean"]
    for title, rows in (("faults missed or given another reason", wrong), ("clean frames flagged", flagged_clean)):
        if len(rows):
            print(title + ":")
            for _, r in rows.iterrows():
                print(f"  {r.camera} {r.mjd} {r.expnum} {r.flavor} truth={r.fault} ({r.fault_detail}) "
                      f"flag={r.flag}: {r.flag_detail}")
    print("\nexample actions:")
    for _, r in j[j.flag != "clean"].drop_duplicates("flag").iterrows():
        print("  " + r.flag_action)


if __name__ == "__main__":
    main()
