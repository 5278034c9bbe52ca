"""The night's reference arc, and arc2trace's fit of an arc against it. Pure numpy.

arc2trace (idlspec2d ``boss_arcs_to_traces``) fits each arc of a night against one reference arc:
the displacement of every matched (fiber, line) centre, ``measured - reference``, through the same
robust affine + quadratic fit as against the nominal model (``field.fit_displacement``: residuals
over ``reject_px`` on either axis dropped, then refit).

Calibration measures frames one at a time, in any order and on any worker, so the fit against the
reference comes after, from the stored per-line tables (``arcray measure``); ``measure_frame``
runs the same function when it is given a reference directly.

- ``ReferenceArc``: the used line centres of one arc as ``[500, L]`` arrays;
- ``reference_fit(lines, reference, config)``: the ``ref_*`` values of ``FRAME_SCHEMA``;
- ``choose_reference(frames)``: the night's first good arc (``is_good_reference``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arcray import optics
from arcray.instrument import N_FIBERS
from arcray.measure.config import MeasureConfig
from arcray.measure.field import ComponentFit, fit_displacement
from arcray.optics import TERMS_X, TERMS_Y


@dataclass(frozen=True)
class ReferenceArc:
    """Measured line centres of a reference arc, ``[500, L]`` over ``line_ids`` (NaN: not used)."""

    camera: str
    mjd: int
    expnum: int
    line_ids: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @classmethod
    def from_lines(cls, lines: Mapping[str, Any]) -> "ReferenceArc":
        """From per-line columns of ``LINE_SCHEMA`` (one arc: a ``measure_frame`` result's
        ``lines`` or a table read back), keeping the used lines."""
        fiber = np.asarray(lines["fiber"], np.intp) - 1
        line = np.asarray(lines["line"], np.intp)
        if fiber.size == 0:
            raise ValueError("a reference arc needs measured lines")
        ids = np.unique(line)
        col = np.searchsorted(ids, line)
        x = np.full((N_FIBERS, ids.size), np.nan)
        y = np.full((N_FIBERS, ids.size), np.nan)
        used = np.asarray(lines["used"], bool)
        x[fiber[used], col[used]] = np.asarray(lines["x"], float)[used]
        y[fiber[used], col[used]] = np.asarray(lines["y"], float)[used]
        return cls(camera=str(np.asarray(lines["camera"])[0]), mjd=int(np.asarray(lines["mjd"])[0]),
                   expnum=int(np.asarray(lines["expnum"])[0]), line_ids=ids, x=x, y=y)

    def at(self, fiber: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference ``(x, y)`` of 1-based ``fiber`` and ``line`` ids (NaN where it has none)."""
        fiber = np.asarray(fiber, np.intp) - 1
        line = np.asarray(line, np.intp)
        col = np.clip(np.searchsorted(self.line_ids, line), 0, max(self.line_ids.size - 1, 0))
        known = (self.line_ids.size > 0) & (self.line_ids[col] == line) & (fiber >= 0) & (fiber < N_FIBERS)
        rx = np.full(line.shape, np.nan)
        ry = np.full(line.shape, np.nan)
        rx[known] = self.x[fiber[known], col[known]]
        ry[known] = self.y[fiber[known], col[known]]
        return rx, ry


def fit_kwargs(config: MeasureConfig) -> dict[str, Any]:
    """Keyword arguments of ``field.fit_displacement`` from the config (one place)."""
    return dict(reject_px=config.reject_px, clip_sigma=config.clip_sigma, rounds=config.fit_rounds,
                floor_px=config.position_floor_px, min_points=config.min_field_points)


def _value(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def _terms(prefix: str, terms: Sequence[str], fit: ComponentFit) -> dict[str, float | None]:
    return {prefix + t: _value(c) for t, c in zip(terms, fit.coef)}


def reference_fit(lines: Mapping[str, Any], reference: ReferenceArc, config: MeasureConfig) -> dict[str, Any]:
    """The ``ref_*`` fields of ``FRAME_SCHEMA`` for one arc's per-line columns (``LINE_SCHEMA``:
    ``camera, fiber, line, x_nom, y_nom, x, y, x_err, y_err, used``) against ``reference``.

    Points used by the arc's own nominal fit and present in the reference enter; the field is
    evaluated at each point's nominal ``(u, v)`` as every arcray field is."""
    cams = np.asarray(lines["camera"])
    camera = str(cams[0]) if cams.size else reference.camera
    if reference.camera != camera:
        raise ValueError(f"reference arc of camera {reference.camera} given for camera {camera}")
    rx, ry = reference.at(lines["fiber"], lines["line"])
    x, y = np.asarray(lines["x"], float), np.asarray(lines["y"], float)
    ok = np.asarray(lines["used"], bool) & np.isfinite(rx) & np.isfinite(ry) & np.isfinite(x) & np.isfinite(y)
    u, v = optics.normalised(camera, np.asarray(lines["x_nom"], float), np.asarray(lines["y_nom"], float))
    fx, fy = fit_displacement(u[ok], v[ok], (x - rx)[ok], (y - ry)[ok], np.asarray(lines["x_err"], float)[ok],
                              np.asarray(lines["y_err"], float)[ok], **fit_kwargs(config))
    row: dict[str, Any] = {**_terms("ref_", TERMS_X, fx), **_terms("ref_", TERMS_Y, fy)}
    row.update(ref_mjd=int(reference.mjd), ref_expnum=int(reference.expnum), ref_rms_x=_value(fx.rms),
               ref_rms_y=_value(fy.rms), ref_n_used=int(fx.n_used), ref_n_rejected=int(fx.n_rejected))
    return row


def is_good_reference(row: Mapping[str, Any]) -> bool:
    """An arc whose line positions can anchor a night: measured, with a fitted field, and neither
    NLAMPS nor BESTCORR red (a lamp out or the wrong light). A red WSIGMA (focus) does not disqualify
    it: wide lines still have good centres, and arc2trace takes the night's arc whatever its focus."""
    def present(key: str) -> bool:
        v = row.get(key)
        return v is not None and not (isinstance(v, float) and np.isnan(v))

    return (row.get("flavor") == "arc" and bool(row.get("measured")) and present("a0") and present("b0")
            and row.get("NLAMPS_status") != "red" and row.get("BESTCORR_status") != "red")


def choose_reference(frames: Sequence[Mapping[str, Any]], expnum: int | None = None) -> Mapping[str, Any] | None:
    """The reference arc among one camera's frames of one night: the configured ``expnum`` (which
    must be a good arc: ``ValueError`` otherwise), else the first good arc by exposure number."""
    arcs = sorted((f for f in frames if f.get("flavor") == "arc"), key=lambda f: int(f["expnum"]))
    if expnum is not None:
        for f in arcs:
            if int(f["expnum"]) == int(expnum):
                if not is_good_reference(f):
                    raise ValueError(f"configured reference arc {expnum} is not a good arc "
                                     f"({f.get('status') or f.get('reason')})")
                return f
        raise ValueError(f"configured reference arc {expnum} is not among the night's measured arcs")
    return next((f for f in arcs if is_good_reference(f)), None)
