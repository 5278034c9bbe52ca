"""Flags with reasons: each measured arc and flat judged from its QA quantities, and the cause named.

    judge_frames(frames, reference, limits=None, flag_limits=FlagLimits()) -> DataFrame

``frames``: rows of ``FRAME_SCHEMA`` (``arcray measure``'s table) of the nights to judge;
``reference``: rows of the same table from OTHER nights (the judged nights' MJDs are dropped from
it, so a night never sets its own thresholds); ``limits``: the versioned BOSS QA limits
(``qa.load_limits``) whose traffic lights back the reasons. Optional columns of ``frames`` (and
``reference``) from ``arcray.analysis.ood.flag_frames``: ``recon_z``, ``latent_d``, ``latent_d_max``.

Output: ``frames``' keys (``camera, mjd, expnum, flavor``) plus ``flag`` (one of ``FLAGS``; null for
frames not judged: other flavors, Hartmann frames, which measurement skips on purpose),
``flag_detail`` (the numbers behind it) and ``flag_action`` (one line for the observer), in the
order of ``frames``.

Reference statistics, per camera and flavor over the reference rows (medians and robust sigmas,
1.4826 MAD; a fault rate of a few per cent does not move them): the per-quadrant gap noise, the gap
background, the lamp line counts, the used points, the saturated points, the flux per second, the
width term ``s0`` and its scatter WITHIN a night (each reference frame against its neighbours').

Rules, first match wins (thresholds: ``FlagLimits``, multiples of the reference's numbers):

1. ``overexposed``: saturated points above the reference's by ``sat_min`` (and ``sat_k`` sigma),
   or flux per second ``overexposed_ratio`` x the reference's.
2. ``no_light``: used points (lines or trace samples) below ``no_light_fraction`` of the reference's.
3. ``scattered_light``: the largest gap background above the reference's by ``bkg_k`` sigma and at
   least ``bkg_min_e`` e-/px (before 4: a glow's photon noise raises its quadrant's noise; a noisy
   amplifier moves the background by a few e- only).
4. ``amp_noisy``: a quadrant whose gap noise, less the photon noise of its background, is
   ``amp_noise_ratio`` x its reference AND x the median of the frame's other quadrants.
5. ``lamp_out`` (arcs): one lamp's line count below ``lamp_out_fraction`` of its reference while
   another lamp keeps ``lamp_ok_fraction`` of its own.
6. ``focus``: ``s0`` above the median of its night neighbours (``NEIGHBOURS`` frames each side of
   the camera and flavor; the reference's median when fewer than ``focus_min_neighbours``) by
   ``focus_k`` x the reference nights' scatter of the same difference and at least ``focus_min_px``
   (the night gives the baseline, the reference nights the threshold).
7. ``unknown``: anything else out of bounds: not measured (a failed measurement), a red QA light the
   reference's frames do not share (its quantity beyond ``unknown_k`` sigma of the reference), or
   reconstruction / latent distance out of distribution (``recon_z > unknown_recon_z``, ``latent_d >
   unknown_latent_factor x latent_d_max``; ``latent_scores`` computes them against other nights).
8. ``clean``.

Pure pandas/numpy (no I/O, no Ray). ``_judge_one`` is one function of ~95 lines on purpose: the
rules above are an ordered chain (first match wins), read best in one place in the docstring's order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from arcray.measure import qa
from arcray.measure.frame import not_measured_by_design

FLAGS = ("clean", "no_light", "lamp_out", "amp_noisy", "scattered_light", "focus", "overexposed", "unknown")
FLAG_VERSION = "flags-v1"
MAD_SCALE = 1.4826
LAMP_COLUMNS = {"Ne": "nlamps_ne", "HgCd": "nlamps_hgcd", "HeAr": "nlamps_hear"}
_KEYS = ["camera", "mjd", "expnum", "flavor"]


@dataclass(frozen=True)
class FlagLimits:
    """Thresholds of the rules (module docstring), each a multiple of a reference night number."""

    version: str = FLAG_VERSION
    sat_min: int = 200  # saturated (fiber, line / row) points above the reference's median
    sat_k: float = 10.0  # ... and this many reference sigmas
    overexposed_ratio: float = 2.0  # flux per second / the reference's
    no_light_fraction: float = 0.1  # used points / the reference's
    amp_noise_ratio: float = 1.8  # quadrant gap noise (photon noise removed) / its reference and / other quadrants
    bkg_k: float = 10.0  # gap background above the reference's median, reference sigmas
    bkg_min_e: float = 40.0  # ... and at least this, e-/px
    lamp_out_fraction: float = 0.3  # a lamp's lines / its reference count: out below this
    lamp_ok_fraction: float = 0.6  # ... while another lamp keeps this much of its own
    focus_k: float = 5.0  # s0 jump over the within-night scatter of the reference nights
    focus_min_px: float = 0.15  # ... and at least this, px (BOSS focus tolerance 0.20 px, spec §1)
    focus_min_neighbours: int = 2  # other frames of the night needed for a night baseline
    unknown_k: float = 8.0  # a red QA quantity this many reference sigmas out is unexplained
    unknown_recon_z: float = 8.0  # robust z of the reconstruction error
    unknown_latent_factor: float = 2.0  # latent distance over this x latent_d_max (the chi-square 99.9 %
    # quantile alone flags 3 % of the demo world's clean arcs: a latent space is not Gaussian)


def _robust(x) -> tuple[float, float]:
    x = np.asarray(pd.to_numeric(pd.Series(x), errors="coerce"), float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    med = float(np.median(x))
    return med, float(MAD_SCALE * np.median(np.abs(x - med)))


def _num(row, col) -> float:
    v = row.get(col) if hasattr(row, "get") else None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


def _flux_rate(df: pd.DataFrame) -> pd.Series:
    mf = pd.to_numeric(df.get("median_flux"), errors="coerce")
    et = pd.to_numeric(df.get("exptime"), errors="coerce")
    return mf / et.where(et > 0)


NEIGHBOURS = 2  # frames each side (by exposure number) whose median s0 is a frame's night baseline


def _neighbour_medians(s0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (in exposure order): median s0 of up to NEIGHBOURS frames each side, and their count."""
    n = len(s0)
    med, cnt = np.full(n, np.nan), np.zeros(n, int)
    for i in range(n):
        idx = [j for j in range(max(0, i - NEIGHBOURS), min(n, i + NEIGHBOURS + 1)) if j != i]
        vals = s0[idx] if idx else np.array([])
        vals = vals[np.isfinite(vals)]
        cnt[i] = vals.size
        if vals.size:
            med[i] = float(np.median(vals))
    return med, cnt


def _within_night_s0(ref: pd.DataFrame) -> np.ndarray:
    """Each reference frame's s0 minus its night neighbours' median (same camera, flavor)."""
    out = []
    for _, g in ref.groupby("mjd"):
        s = pd.to_numeric(g.sort_values("expnum")["s0"], errors="coerce").to_numpy(float)
        med, cnt = _neighbour_medians(s)
        ok = (cnt >= 2) & np.isfinite(s)
        out.append(s[ok] - med[ok])
    return np.concatenate(out) if out else np.array([])


def reference_stats(reference: pd.DataFrame) -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
    """Per ``(camera, flavor)``: ``{quantity: (median, robust sigma)}`` over the measured rows."""
    stats: dict = {}
    if reference is None or len(reference) == 0:
        return stats
    ref = reference[reference["measured"].fillna(False).astype(bool)] if "measured" in reference else reference
    for (cam, flv), g in ref.groupby(["camera", "flavor"]):
        s = {c: _robust(g[c]) for c in ("n_points_used", "n_saturated", "gap_bkg_max", "s0", "NLAMPS",
                                        "BESTCORR", "WAVEMID", "WSIGMA", "XSIGMA", "NGOODFIBER",
                                        *LAMP_COLUMNS.values(), *(f"gap_noise_Q{q}" for q in range(4)),
                                        "recon_z") if c in g}
        s["flux_rate"] = _robust(_flux_rate(g))
        w = _within_night_s0(g) if "s0" in g else np.array([])
        s["s0_night"] = _robust(w) if w.size >= 5 else (math.nan, math.nan)
        stats[(str(cam), str(flv))] = s
    return stats


def _night_s0(frames: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Median s0 of each frame's night neighbours (same camera, flavor, night), and their count."""
    med = pd.Series(np.nan, index=frames.index)
    cnt = pd.Series(0, index=frames.index)
    if "s0" not in frames:
        return med, cnt
    for _, g in frames.groupby(["camera", "flavor", "mjd"]):
        g = g.sort_values("expnum")
        m, c = _neighbour_medians(pd.to_numeric(g["s0"], errors="coerce").to_numpy(float))
        med.loc[g.index], cnt.loc[g.index] = m, c
    return med, cnt


def _fmt(v: float, digits: int = 3) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.{digits}g}"


ACTIONS = {
    "no_light": "no light on the detector (lamps, flat-field screen or shutter) — check them and retake the {flavor}",
    "lamp_out": "{lamp} lines missing — check the {lamp} lamp and retake the arc",
    "amp_noisy": "amplifier {amp} noisy — check the CCD electronics, retake the {flavor}",
    "scattered_light": "scattered light under the spectra — check for light leaks and the screen, retake the {flavor}",
    "focus": "lines/traces {jump:.2f} px wider than the night's — check the focus (Hartmann test) before science",
    "overexposed": "overexposed: saturated lines/traces — check the lamps and exposure time, retake the {flavor}",
    "unknown": "out of the ordinary ({what}) — inspect the frame before using it",
}


def _judge_one(r, st: dict, fl: FlagLimits, night_s0: float, n_night: int, rules) -> tuple[str, str, dict]:
    flavor = str(r.get("flavor") or "")
    if not bool(r.get("measured")):
        return "unknown", f"not measured: {r.get('reason') or 'no reason'}", {"what": "measurement failed"}
    get = lambda c: _num(r, c)  # noqa: E731
    ref = lambda c: st.get(c, (math.nan, math.nan))  # noqa: E731

    # 1. overexposed
    nsat, (sat_m, sat_s) = get("n_saturated"), ref("n_saturated")
    sat_lim = (0.0 if not math.isfinite(sat_m) else sat_m) + max(fl.sat_min, fl.sat_k * (sat_s if math.isfinite(sat_s) else 0))
    rate = get("_flux_rate")
    rate_m = ref("flux_rate")[0]
    ratio = rate / rate_m if math.isfinite(rate) and rate_m and math.isfinite(rate_m) else math.nan
    n_used, used_m = get("n_points_used"), ref("n_points_used")[0]
    lit = math.isfinite(used_m) and used_m > 0 and n_used >= fl.no_light_fraction * used_m
    if math.isfinite(nsat) and nsat > sat_lim:
        return "overexposed", (f"n_saturated={int(nsat)} (reference {_fmt(sat_m)}, limit {_fmt(sat_lim)}); "
                               f"flux/s {_fmt(ratio, 2)}x reference"), {}
    if lit and math.isfinite(ratio) and ratio > fl.overexposed_ratio:
        return "overexposed", f"flux/s {_fmt(ratio, 2)}x reference (limit {fl.overexposed_ratio}); n_saturated={_fmt(nsat)}", {}

    # 2. no light
    if math.isfinite(used_m) and used_m > 0 and not n_used >= fl.no_light_fraction * used_m:
        extra = f"; NLAMPS={_fmt(get('NLAMPS'))}" if flavor == "arc" else f"; NGOODFIBER={_fmt(get('NGOODFIBER'))}"
        return "no_light", (f"n_points_used={_fmt(n_used)} < {fl.no_light_fraction} x reference {_fmt(used_m)}"
                            f"{extra}; gap background {_fmt(get('gap_bkg_max'))} e-/px"), {}

    noise = np.array([get(f"gap_noise_Q{q}") for q in range(4)])
    bkg = np.array([get(f"gap_bkg_Q{q}") for q in range(4)])

    # 3. scattered light (before amp_noisy: a glow's photon noise raises a quadrant's noise too)
    bmax, (b_m, b_s) = get("gap_bkg_max"), ref("gap_bkg_max")
    b_lim = (b_m if math.isfinite(b_m) else 0.0) + max(fl.bkg_min_e, fl.bkg_k * (b_s if math.isfinite(b_s) else 0.0))
    if math.isfinite(bmax) and bmax > b_lim:
        quads = ", ".join(f"Q{q} {_fmt(b, 3)}" for q, b in enumerate(bkg))
        return "scattered_light", (f"gap_bkg_max={_fmt(bmax)} e-/px (reference {_fmt(b_m)}, limit {_fmt(b_lim)}); "
                                   f"quadrant backgrounds {quads}"), {}

    # 4. amp noisy: excess noise beyond the photon noise of the background
    excess = np.sqrt(np.maximum(noise ** 2 - np.maximum(np.nan_to_num(bkg), 0.0), 0.0))
    excess[~np.isfinite(noise)] = np.nan
    ref_noise = np.array([ref(f"gap_noise_Q{q}")[0] for q in range(4)])
    for q in np.argsort(-np.nan_to_num(excess, nan=-1.0)):
        others = np.delete(excess, q)
        others = others[np.isfinite(others)]
        if not (math.isfinite(excess[q]) and math.isfinite(ref_noise[q]) and others.size):
            continue
        base = max(float(np.median(others)), 0.5 * ref_noise[q])  # others' excess can be ~0 under a glow
        to_ref, to_others = excess[q] / ref_noise[q], excess[q] / base
        if to_ref >= fl.amp_noise_ratio and to_others >= fl.amp_noise_ratio:
            return "amp_noisy", (f"gap_noise_Q{q}={_fmt(noise[q])} e- = {to_ref:.1f}x its reference "
                                 f"{_fmt(ref_noise[q])} e- and {to_others:.1f}x the other quadrants' "
                                 f"({_fmt(float(np.median(others)))} e-)"), {"amp": int(q)}
        break

    # 5. lamp out
    if flavor == "arc":
        counts = {lamp: (get(c), ref(c)[0]) for lamp, c in LAMP_COLUMNS.items()
                  if math.isfinite(get(c)) and math.isfinite(ref(c)[0]) and ref(c)[0] > 0}
        for lamp, (n, m) in counts.items():
            ok = [(o, no) for o, (no, mo) in counts.items() if o != lamp and no >= fl.lamp_ok_fraction * mo]
            if n < fl.lamp_out_fraction * m and ok:
                o, no = ok[0]
                return "lamp_out", (f"{LAMP_COLUMNS[lamp]}={int(n)} (reference {_fmt(m)}) while {o} has "
                                    f"{int(no)} lines"), {"lamp": lamp}

    # 6. focus
    s0 = get("s0")
    base, base_what = (night_s0, f"its {n_night} night neighbours") if n_night >= fl.focus_min_neighbours \
        else (ref("s0")[0], f"reference nights' {flavor}s")
    scatter = ref("s0_night")[1] if n_night >= fl.focus_min_neighbours else ref("s0")[1]
    f_lim = max(fl.focus_min_px, fl.focus_k * (scatter if math.isfinite(scatter) else 0.0))
    if math.isfinite(s0) and math.isfinite(base) and s0 - base > f_lim:
        w = "WSIGMA" if flavor == "arc" else "XSIGMA"
        return "focus", (f"s0={s0:.3f} px, +{s0 - base:.3f} over {base_what} ({base:.3f}); limit +{f_lim:.3f} "
                         f"from reference nights; {w}={_fmt(get(w))} {r.get(w + '_status') or ''}".rstrip()), \
            {"jump": s0 - base}

    # 7. unknown
    odd = []
    for q, rule in rules.items():
        v = get(q)
        if rule.judge(v) != "red":
            continue
        m, s = ref(q)
        if not math.isfinite(v) or not math.isfinite(m) or not (s > 0) or abs(v - m) > fl.unknown_k * s:
            odd.append(f"{q}={_fmt(v, 4)} red (reference {_fmt(m, 4)} +- {_fmt(s, 2)})")
    rz = get("recon_z")
    if math.isfinite(rz) and rz > fl.unknown_recon_z:
        odd.append(f"reconstruction error z={rz:.1f}")
    ld, ldm = get("latent_d"), get("latent_d_max")
    if math.isfinite(ld) and math.isfinite(ldm) and ld > fl.unknown_latent_factor * ldm:
        odd.append(f"latent distance {ld:.2f} > {fl.unknown_latent_factor:g} x {ldm:.2f}")
    if odd:
        return "unknown", "; ".join(odd), {"what": odd[0].split("=")[0].split(" ")[0]}
    return "clean", "", {}


def judge_frames(frames: pd.DataFrame, reference: pd.DataFrame | None, limits: qa.Limits | None = None,
                 flag_limits: FlagLimits | None = None) -> pd.DataFrame:
    """Flag every row of ``frames`` with its cause (module docstring)."""
    limits = limits or qa.load_limits()
    fl = flag_limits or FlagLimits()
    frames = frames.reset_index(drop=True)
    ref = reference if reference is not None else frames.iloc[0:0]
    ref = ref[~ref["mjd"].isin(set(frames["mjd"]))] if len(ref) else ref
    stats = reference_stats(ref)
    night_med, night_n = _night_s0(frames[frames.get("measured", True).fillna(False).astype(bool)]
                                   if "measured" in frames else frames)
    out = frames[[c for c in _KEYS if c in frames]].copy()
    frames = frames.assign(_flux_rate=_flux_rate(frames))
    flags, details, actions = [], [], []
    for i, r in frames.iterrows():
        cam, flv = str(r["camera"]), str(r.get("flavor") or "")
        if flv not in ("arc", "flat") or (not bool(r.get("measured")) and not_measured_by_design(r.get("reason"))):
            flags.append(None), details.append(None), actions.append(None)
            continue
        st = stats.get((cam, flv), {})
        flag, detail, info = _judge_one(r, st, fl, float(night_med.get(i, math.nan)), int(night_n.get(i, 0)),
                                        limits.for_frame(cam, flv))
        if not st and flag == "clean":
            detail = "no reference frames of this camera and flavor: judged by the QA limits only"
        flags.append(flag)
        details.append(detail)
        actions.append(None if flag == "clean" else
                       f"{cam} {int(r['expnum']):08d} {flv}: " +
                       ACTIONS[flag].format(flavor=flv, lamp=info.get("lamp", "?"), amp=info.get("amp", "?"),
                                            jump=info.get("jump", math.nan), what=info.get("what", "?")))
    out["flag"], out["flag_detail"], out["flag_action"] = flags, details, actions
    out["flag_version"] = fl.version
    out["limits_version"] = limits.version
    return out


def latent_scores(latents: pd.DataFrame, mjds, *, p: float = 0.999) -> pd.DataFrame:
    """``recon_z``, ``latent_d`` and ``latent_d_max`` of the ``latents`` rows (``arcray embed``'s table:
    ``camera, flavor, mjd, expnum, z0.., recon_mse``) of the nights ``mjds``, against the rows of the
    other nights (``arcray.analysis.ood``'s robust z and Mahalanobis distance, per camera and flavor);
    merge into the frames before ``judge_frames``. Groups with too few reference rows get NaN."""
    from scipy.stats import chi2

    from arcray.analysis.ood import mahalanobis, robust_z
    from arcray.errors import InputError

    zcols = sorted((c for c in latents.columns if c[:1] == "z" and c[1:].isdigit()), key=lambda c: int(c[1:]))
    mjds = set(int(m) for m in np.atleast_1d(mjds))
    parts = []
    for _, g in latents.groupby(["camera", "flavor"]):
        test, ref = g[g["mjd"].isin(mjds)], g[~g["mjd"].isin(mjds)]
        if test.empty:
            continue
        out = test[["camera", "flavor", "expnum"]].copy()
        out["recon_z"] = (robust_z(test["recon_mse"].to_numpy(float), ref["recon_mse"].to_numpy(float))
                          if "recon_mse" in g and len(ref) else np.nan)
        out["latent_d"], out["latent_d_max"] = np.nan, np.nan
        if zcols:
            try:
                out["latent_d"] = mahalanobis(test[zcols].to_numpy(float), ref[zcols].to_numpy(float))
                out["latent_d_max"] = float(np.sqrt(chi2.ppf(p, len(zcols))))
            except InputError:
                pass
        parts.append(out)
    cols = ["camera", "flavor", "expnum", "recon_z", "latent_d", "latent_d_max"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def judge_by_night(frames: pd.DataFrame, limits: qa.Limits | None = None,
                   flag_limits: FlagLimits | None = None) -> pd.DataFrame:
    """Every night of ``frames`` judged against all the OTHER nights of ``frames`` as reference."""
    parts = [judge_frames(g, frames[frames["mjd"] != mjd], limits, flag_limits)
             for mjd, g in frames.groupby("mjd", sort=True)]
    return pd.concat(parts, ignore_index=True) if parts else judge_frames(frames, None, limits, flag_limits)
