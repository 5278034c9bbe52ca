"""``measure_frame``: one calibrated arc or flat -> its per-line (or per-trace) table and per-frame row.

    measure_frame(source, meta, config=None, reference=None) -> FrameMeasurement

- ``source``: a ``PixelSource`` (``FrameSource`` over a kept electron frame, or ``RawSource`` over
  the raw ADU with calibration's biases, gains, unread rows, saturation and bad columns);
- ``meta``: the calibrated metadata row (``camera, mjd, expnum, flavor, EXPTIME``, optionally
  ``is_hartmann``), as ``arcray.calib.metadata.extract_metadata`` returns it;
- ``reference``: the night's reference arc (``ReferenceArc``, e.g. ``first.reference()`` of the
  night's first good arc, or ``ReferenceArc.from_lines`` of a stored per-line table): the arc's
  displacement against it is fitted as arc2trace does.

Steps: global shift (``offsets``) -> lines (``lines``) or traces (``traces``) -> field fits against
the nominal model, with arc2trace's rejection (``field``), and against the reference arc ->
BOSS QA quantities and traffic lights (``qa``). Frames of other flavors and Hartmann arcs are not
measured: their row says why (``measured=False``, ``reason``). The result is deterministic: the
same pixels and config give the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from arcray import optics
from arcray.instrument import N_FIBERS, OBSERVATORY, READ_NOISE_E
from arcray.measure import flags as F
from arcray.measure import offsets, qa
from arcray.measure.config import MeasureConfig
from arcray.measure.field import ComponentFit, fit_component, fit_displacement, quadrant_medians
from arcray.measure.gaps import measure_gaps
from arcray.measure.lines import LineMeasurement, lines_for, measure_lines
from arcray.measure.reference import ReferenceArc, fit_kwargs, reference_fit
from arcray.measure.schema import FRAME_SCHEMA
from arcray.measure.source import PixelSource
from arcray.measure.traces import TraceMeasurement, measure_traces
from arcray.optics import TERMS_S, TERMS_X, TERMS_Y

LAMP_COLUMNS = {"Ne": "nlamps_ne", "HgCd": "nlamps_hgcd", "HeAr": "nlamps_hear"}
HARTMANN_REASON = "Hartmann frame (focus test): not measured"


def not_measured_by_design(reason: str | None) -> bool:
    """True for the ``reason`` of a frame measurement skips on purpose (Hartmann frames, flavors
    other than arc and flat), False for a failed measurement."""
    return bool(reason) and (reason == HARTMANN_REASON or str(reason).endswith(" is not measured"))


@dataclass(frozen=True)
class FrameMeasurement:
    """``frame``: one row of ``FRAME_SCHEMA``; ``lines`` (arcs) / ``traces`` (flats): columns of
    ``LINE_SCHEMA`` / ``TRACE_SCHEMA`` (numpy arrays), None for the other flavor."""

    frame: dict[str, Any]
    lines: dict[str, np.ndarray] | None = None
    traces: dict[str, np.ndarray] | None = None

    def reference(self) -> ReferenceArc:
        if self.lines is None:
            raise ValueError("only an arc's measurement can be a reference arc")
        return ReferenceArc.from_lines(self.lines)


def empty_frame_row(meta: Mapping[str, Any], config: MeasureConfig, *, reason: str | None,
                    measured: bool = False) -> dict[str, Any]:
    """A ``FRAME_SCHEMA`` row with only the keys filled: for frames not measured (or failed)."""
    row = {f.name: None for f in FRAME_SCHEMA}
    exptime = meta.get("EXPTIME")
    row.update(camera=str(meta["camera"]), mjd=int(meta["mjd"]), expnum=int(meta["expnum"]),
               flavor=str(meta.get("flavor") or ""), measured=measured, reason=reason,
               exptime=None if exptime is None or not math.isfinite(float(exptime)) else float(exptime),
               config_hash=config.config_hash())
    return row


def measure_frame(source: PixelSource, meta: Mapping[str, Any], config: MeasureConfig | None = None,
                  reference: ReferenceArc | None = None) -> FrameMeasurement:
    """Measure one calibrated frame (see the module docstring)."""
    config = config or MeasureConfig()
    camera, flavor = str(meta["camera"]), str(meta.get("flavor") or "")
    if tuple(source.shape) != optics.detector_size(camera):
        raise ValueError(f"pixel source {source.shape} is not camera {camera}'s trimmed frame")
    if flavor not in ("arc", "flat"):
        return FrameMeasurement(empty_frame_row(meta, config, reason=f"flavor {flavor!r} is not measured"))
    if meta.get("is_hartmann"):
        return FrameMeasurement(empty_frame_row(meta, config, reason=HARTMANN_REASON))
    row = empty_frame_row(meta, config, reason=None, measured=True)
    rn = READ_NOISE_E[camera] if config.read_noise_e is None else config.read_noise_e
    if flavor == "arc":
        return _measure_arc(source, camera, row, config, reference, rn)
    return _measure_flat(source, camera, row, config, rn)


def _put_field(row: dict, prefix: str, terms: tuple[str, ...], fit: ComponentFit, errors: bool = True) -> None:
    for t, c, e in zip(terms, fit.coef, fit.err):
        row[prefix + t] = float(c) if np.isfinite(c) else None
        if errors:
            row[f"{prefix}{t}_err"] = float(e) if np.isfinite(e) else None


def _none(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def _arc_shift(source: PixelSource, camera: str, config: MeasureConfig) -> tuple[float, float, np.ndarray]:
    lines = lines_for(camera, config)
    bands = []
    for lamp in sorted(set(lines.lamp)):  # the brightest line of each lamp: one lamp may be out
        sel = np.flatnonzero(np.array(lines.lamp) == lamp)
        bands.append(lines.y0[N_FIBERS // 2, sel[np.argmax(lines.intensity[sel])]])
    dx, _ = offsets.x_offset(source, camera, bands, config.max_shift_px, config.max_shift_px + 4)
    spec = offsets.central_spectrum(source, camera, dx)
    dy, _ = offsets.y_offset(spec, camera, config.max_shift_px)
    return dx, dy, spec


def _measure_arc(source, camera, row, config, reference, rn) -> FrameMeasurement:
    dx, dy, spec = _arc_shift(source, camera, config)
    row.update(shift_x=dx, shift_y=dy)
    row.update(measure_gaps(source, camera, dx))
    row["BESTCORR"] = _none(offsets.bestcorr(spec, camera, config.max_shift_px, config.bestcorr_fwhm_px,
                                             config.bestcorr_cap_e))
    lm = measure_lines(source, camera, config, (dx, dy), rn)
    ok = lm.flags == 0
    x0, y0 = lm.lines.x0, lm.lines.y0
    u, v = optics.normalised(camera, x0, y0)
    fdx, fdy = fit_displacement(u[ok], v[ok], (lm.x - x0)[ok], (lm.y - y0)[ok], lm.x_err[ok], lm.y_err[ok],
                                **fit_kwargs(config))
    flags = lm.flags.copy()
    used = np.zeros_like(ok)
    used[ok] = fdx.used
    flags[ok & ~used] |= F.REJECTED
    fs = fit_component("s", u[used], v[used], lm.sigma_y[used], lm.sigma_y_err[used], clip_sigma=config.clip_sigma,
                       rounds=config.fit_rounds, floor=config.position_floor_px, min_points=config.min_field_points)
    _put_field(row, "", TERMS_X, fdx)
    _put_field(row, "", TERMS_Y, fdy)
    _put_field(row, "", TERMS_S, fs)
    row.update(field_rms_x=_none(fdx.rms), field_rms_y=_none(fdy.rms), field_n_used=fdx.n_used,
               field_n_rejected=fdx.n_rejected)
    x_res = lm.x - x0 - (fdx.predict("x", u, v) if fdx.n_used else np.nan)
    y_res = lm.y - y0 - (fdy.predict("y", u, v) if fdy.n_used else np.nan)
    _arc_qa(row, camera, lm, used, fdy, config)
    lines = _line_columns(camera, row, lm, flags, used, x_res, y_res)
    if reference is not None:
        row.update(reference_fit(lines, reference, config))
    return FrameMeasurement(frame=_judge(row, camera, "arc", config), lines=lines)


def _arc_qa(row, camera, lm: LineMeasurement, used, fdy: ComponentFit, config: MeasureConfig) -> None:
    q = quadrant_medians(camera, lm.lines.x0, lm.lines.y0, lm.sigma_y, used)
    for i in range(4):
        row[f"WSIGMA_Q{i}"] = _none(q[i])
    row["WSIGMA"] = _none(np.nanmax(q)) if np.isfinite(q).any() else None
    n_alive = int(optics.traces(camera).alive.sum())
    counted = used.sum(axis=0) >= config.nlamps_fiber_fraction * n_alive
    row["NLAMPS"] = int(counted.sum())
    lamps = np.array(lm.lines.lamp)
    site = {lamp for lamp in optics.LAMPS[OBSERVATORY[camera]]}
    for lamp, column in LAMP_COLUMNS.items():
        row[column] = int((counted & (lamps == lamp)).sum()) if lamp in site else None
    wm = qa.wavemid(camera, fdy.coef) if fdy.n_used else float("nan")
    row["WAVEMID"] = _none(wm)
    ref = config.reference_for(camera, "arc", row["mjd"])
    if ref is not None and ref.wavemid is not None:
        row["w_shift"], row["w_shift_ref"] = _none(wm - ref.wavemid), f"{ref.mjd}/{ref.expnum}"
    else:
        row["w_shift"], row["w_shift_ref"] = _none(wm - qa.wavemid(camera, None)), "nominal"
    _flux_qa(row, lm.flux[used], ref)
    fiber_used = used.any(axis=1)
    row.update(n_fibers_used=int(fiber_used.sum()), n_points_used=int(used.sum()),
               n_saturated=int(((lm.flags & F.SATURATED) != 0).sum()),
               trace_shift=_none(np.median((lm.x - lm.lines.x0)[used])) if used.any() else None)


def _flux_qa(row, fluxes: np.ndarray, ref) -> None:
    med = float(np.median(fluxes)) if fluxes.size else float("nan")
    row["median_flux"] = _none(med)
    row["fratio"] = qa.fratio(med, row["exptime"], ref)
    row["fratio_ref"] = f"{ref.mjd}/{ref.expnum}" if row["fratio"] is not None else None


def _line_columns(camera, row, lm: LineMeasurement, flags, used, x_res, y_res) -> dict[str, np.ndarray]:
    n_l = len(lm.lines.ids)
    n = N_FIBERS * n_l
    ll = optics.lines(camera)
    f32 = lambda a: np.asarray(a, np.float32).ravel()  # noqa: E731
    return {
        "camera": np.full(n, camera, object), "mjd": np.full(n, row["mjd"], np.int32),
        "expnum": np.full(n, row["expnum"], np.int64),
        "fiber": np.repeat(np.arange(1, N_FIBERS + 1, dtype=np.int16), n_l),
        "line": np.tile(lm.lines.ids.astype(np.int16), N_FIBERS),
        "wave": np.tile(ll.wave[lm.lines.ids], N_FIBERS), "lamp": np.tile(np.array(lm.lines.lamp, object), N_FIBERS),
        "x_nom": lm.lines.x0.ravel().astype(np.float64), "y_nom": lm.lines.y0.ravel().astype(np.float64),
        "x": lm.x.ravel(), "y": lm.y.ravel(), "x_err": f32(lm.x_err), "y_err": f32(lm.y_err),
        "sigma_x": f32(lm.sigma_x), "sigma_y": f32(lm.sigma_y), "sigma_y_err": f32(lm.sigma_y_err),
        "flux": f32(lm.flux), "flux_err": f32(lm.flux_err), "snr": f32(lm.flux / lm.flux_err),
        "background": f32(lm.background), "flags": flags.ravel().astype(np.uint16), "used": used.ravel(),
        "x_res": f32(x_res), "y_res": f32(y_res),
    }


def _measure_flat(source, camera, row, config: MeasureConfig, rn) -> FrameMeasurement:
    h = optics.detector_size(camera)[0]
    dx, _ = offsets.x_offset(source, camera, [h / 4, h / 2, 3 * h / 4], config.max_shift_px, 8)
    row["shift_x"] = dx
    row.update(measure_gaps(source, camera, dx))
    tm = measure_traces(source, camera, config, dx, rn)
    ok = tm.flags == 0
    yy = np.broadcast_to(tm.rows[None, :].astype(float), tm.x_nom.shape)
    u, v = optics.normalised(camera, tm.x_nom, yy)
    kw = dict(clip_sigma=config.clip_sigma, rounds=config.fit_rounds, floor=config.position_floor_px,
              min_points=config.min_field_points)
    fdx = fit_component("x", u[ok], v[ok], (tm.x - tm.x_nom)[ok], tm.x_err[ok], reject=config.reject_px, **kw)
    used = np.zeros_like(ok)
    used[ok] = fdx.used
    flags = tm.flags.copy()
    flags[ok & ~used] |= F.REJECTED
    fs = fit_component("s", u[used], v[used], tm.sigma[used], tm.sigma_err[used], **kw)
    _put_field(row, "", TERMS_X, fdx)
    _put_field(row, "", TERMS_S, fs)
    row.update(field_rms_x=_none(fdx.rms), field_n_used=fdx.n_used, field_n_rejected=fdx.n_rejected)
    q = quadrant_medians(camera, tm.x_nom, yy, tm.sigma, used)
    for i in range(4):
        row[f"XSIGMA_Q{i}"] = _none(q[i])
    row["XSIGMA"] = _none(np.nanmax(q)) if np.isfinite(q).any() else None
    good = used.sum(axis=1) >= config.good_fiber_rows_fraction * tm.rows.size
    row.update(NGOODFIBER=int(good.sum()), n_fibers_used=int(used.any(axis=1).sum()), n_points_used=int(used.sum()),
               n_saturated=int(((tm.flags & F.SATURATED) != 0).sum()),
               trace_shift=_none(np.median((tm.x - tm.x_nom)[used])) if used.any() else None)
    _flux_qa(row, tm.flux[used], config.reference_for(camera, "flat", row["mjd"]))
    x_res = tm.x - tm.x_nom - (fdx.predict("x", u, v) if fdx.n_used else np.nan)
    traces = _trace_columns(camera, row, tm, flags, used, x_res)
    return FrameMeasurement(frame=_judge(row, camera, "flat", config), traces=traces)


def _trace_columns(camera, row, tm: TraceMeasurement, flags, used, x_res) -> dict[str, np.ndarray]:
    n_r = tm.rows.size
    n = N_FIBERS * n_r
    f32 = lambda a: np.asarray(a, np.float32).ravel()  # noqa: E731
    return {
        "camera": np.full(n, camera, object), "mjd": np.full(n, row["mjd"], np.int32),
        "expnum": np.full(n, row["expnum"], np.int64),
        "fiber": np.repeat(np.arange(1, N_FIBERS + 1, dtype=np.int16), n_r),
        "row": np.tile(tm.rows.astype(np.int32), N_FIBERS), "x_nom": tm.x_nom.ravel().astype(np.float64),
        "x": tm.x.ravel(), "x_err": f32(tm.x_err), "sigma": f32(tm.sigma), "sigma_err": f32(tm.sigma_err),
        "flux": f32(tm.flux), "flux_err": f32(tm.flux_err), "snr": f32(tm.flux / tm.flux_err),
        "flags": flags.ravel().astype(np.uint16), "used": used.ravel(), "x_res": f32(x_res),
    }


def _judge(row: dict, camera: str, flavor: str, config: MeasureConfig) -> dict:
    limits = qa.load_limits(config.limits_file)
    status, per, reasons = qa.judge(row, limits.for_frame(camera, flavor))
    row.update(status=status, status_reasons=reasons, limits_version=limits.version)
    for q, s in per.items():
        row[f"{q}_status"] = s
    return row

