"""Where every (fiber, lamp line) lands on a camera's trimmed detector: the nominal optical model and
the calibration field that displaces and widens it (``shared/spec/calibration-state.md`` §2). Pure numpy.

One model, four users: the simulator renders it, ``measure`` fits it to a frame, ``predict`` outputs
it, and scoring compares a predicted field with the true one line by line (``line_positions``), so no
part of arcray keeps a second idea of where the lines are.

Coordinates (trimmed frame, 0-based pixel centres): ``x`` = column (across fibers), ``y`` = row (along
wavelength, increasing upward). Normalised ``u = (x - W/2)/(W/2)``, ``v = (y - H/2)/(H/2)``, both in
[-1, 1] over the detector (``normalised``).

Nominal model (fixed per camera, the same in every world; what a night's trace flat and the
wavelength solution of ``arcray.instrument`` give the real pipeline):

- trace centre of fiber ``f`` at row ``y``: ``x0_f + bow_f v^2 + tilt_f v`` with ``x0_f`` from
  ``instrument.fiber_x``, ``s_f = (x0_f - W/2)/(W/2)``, ``bow_f = 8 + 4 s_f^2`` px, ``tilt_f = 8 s_f`` px;
- row of a line of wavelength ``w`` on fiber ``f``: ``instrument.row_of_wavelength(w) + 2.5 s_f^2``
  (the line curvature: lines bend 2.5 px towards the edge fibers);
- the line's column is its fiber's trace centre at that row.

Field (``Field``; every coefficient in px, equal to the displacement it causes at the detector's
edge ``|u| = 1`` or ``|v| = 1``), evaluated at the nominal position of each line or trace point:

- ``dx(u, v) = a0 + a1 u + a2 v + a3 v^2``  (x shift, magnification, rotation/shear, trace bow change)
- ``dy(u, v) = b0 + b1 u + b2 v + b3 u^2``  (y shift, rotation/shear, dispersion scale, curvature change)
- ``sigma(u, v) = s0 + su u + sv v + sr (u^2 + v^2)/2`` (focus, focus tilt, field curvature), clipped
  into ``SIGMA_CLIP`` px.

The first-version four-number state is ``a0``, ``b0``, ``s0`` and one lamp brightness.

The field is a displacement map of the nominal image: the nominal point ``(x0, y0)`` lands at
``(x0 + dx, y0 + dy)`` with the width ``sigma`` evaluated there (``displace``). A displaced trace at
an output row is therefore the image of the nominal trace point that lands on that row (``trace``,
``trace_x``), and every line of ``line_positions`` lies exactly on its displaced trace; the
simulator renders these positions and widths, and ``displacements`` / ``rms_line_errors`` evaluate
many fields at once for scoring.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np

from arcray.instrument import (DEAD_FIBERS, GEOMETRY, N_FIBERS, OBSERVATORY, arc_lines, fiber_x,
                               row_of_wavelength)

TERMS_X = ("a0", "a1", "a2", "a3")
TERMS_Y = ("b0", "b1", "b2", "b3")
TERMS_S = ("s0", "su", "sv", "sr")
FIELD_TERMS = TERMS_X + TERMS_Y + TERMS_S
SIGMA_CLIP = (0.85, 1.45)  # px, the range a width can take anywhere on the detector
LINE_CURVATURE_PX = 2.5  # px, how far the lines bend towards the edge fibers
# Lamps per observatory and the species of the line lists each one emits.
LAMPS = {"apo": ("Ne", "HgCd"), "lco": ("Ne", "HeAr")}
_LAMP_OF_SPECIES = {"Ne": "Ne", "Hg": "HgCd", "Cd": "HgCd", "He": "HeAr", "Ar": "HeAr"}


@dataclass(frozen=True)
class Field:
    """The displacement and width field of one camera at one exposure (px at the detector's edge)."""

    a0: float = 0.0
    a1: float = 0.0
    a2: float = 0.0
    a3: float = 0.0
    b0: float = 0.0
    b1: float = 0.0
    b2: float = 0.0
    b3: float = 0.0
    s0: float = 1.0
    su: float = 0.0
    sv: float = 0.0
    sr: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def as_array(self) -> np.ndarray:
        """The 12 terms in ``FIELD_TERMS`` order (float64)."""
        return np.array([getattr(self, t) for t in FIELD_TERMS], dtype=float)

    @classmethod
    def from_array(cls, values) -> "Field":
        vals = np.asarray(values, dtype=float).reshape(-1)
        if vals.size != len(FIELD_TERMS):
            raise ValueError(f"a field has {len(FIELD_TERMS)} terms, got {vals.size}")
        return cls(**{t: float(v) for t, v in zip(FIELD_TERMS, vals)})

    @classmethod
    def from_mapping(cls, row, prefix: str = "") -> "Field":
        """From any mapping holding ``<prefix><term>`` keys (a truth or prediction row); missing
        terms take their nominal value."""
        names = {f.name for f in fields(cls)}
        return cls(**{t: float(row[prefix + t]) for t in names if (prefix + t) in row})

    def dx(self, u, v) -> np.ndarray:
        u, v = np.asarray(u, float), np.asarray(v, float)
        return self.a0 + self.a1 * u + self.a2 * v + self.a3 * v * v

    def dy(self, u, v) -> np.ndarray:
        u, v = np.asarray(u, float), np.asarray(v, float)
        return self.b0 + self.b1 * u + self.b2 * v + self.b3 * u * u

    def sigma(self, u, v) -> np.ndarray:
        u, v = np.asarray(u, float), np.asarray(v, float)
        s = self.s0 + self.su * u + self.sv * v + self.sr * (u * u + v * v) / 2.0
        return np.clip(s, *SIGMA_CLIP)


def basis(kind: str, u, v) -> np.ndarray:
    """Design matrix ``[N, 4]`` of one field component at ``(u, v)``: ``kind`` is ``x``, ``y`` or
    ``s``; ``basis(kind, u, v) @ coefficients`` is that component (before the width clip)."""
    u, v = np.asarray(u, float).reshape(-1), np.asarray(v, float).reshape(-1)
    one = np.ones_like(u)
    if kind == "x":
        return np.stack([one, u, v, v * v], axis=1)
    if kind == "y":
        return np.stack([one, u, v, u * u], axis=1)
    if kind == "s":
        return np.stack([one, u, v, (u * u + v * v) / 2.0], axis=1)
    raise ValueError(f"unknown field component {kind!r} (x, y or s)")


def detector_size(camera: str) -> tuple[int, int]:
    """``(H, W)``: trimmed rows and columns."""
    return GEOMETRY[camera].trimmed_shape


def normalised(camera: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    """``(u, v)`` of trimmed ``(x, y)``."""
    h, w = detector_size(camera)
    return (np.asarray(x, float) - w / 2.0) / (w / 2.0), (np.asarray(y, float) - h / 2.0) / (h / 2.0)


def denormalised(camera: str, u, v) -> tuple[np.ndarray, np.ndarray]:
    """Trimmed ``(x, y)`` of normalised ``(u, v)``."""
    h, w = detector_size(camera)
    return np.asarray(u, float) * (w / 2.0) + w / 2.0, np.asarray(v, float) * (h / 2.0) + h / 2.0


@dataclass(frozen=True)
class Traces:
    """Nominal trace shape of the 500 fibers of one camera (index = fiber - 1)."""

    x0: np.ndarray  # px, trace centre at the centre row
    s: np.ndarray  # normalised x0
    bow: np.ndarray  # px, v^2 coefficient
    tilt: np.ndarray  # px, v coefficient
    alive: np.ndarray  # bool: False for the observatory's dead fibers


@lru_cache(maxsize=None)
def traces(camera: str) -> Traces:
    x0 = fiber_x(camera)
    w = detector_size(camera)[1]
    s = (x0 - w / 2.0) / (w / 2.0)
    alive = np.ones(N_FIBERS, bool)
    alive[np.array(DEAD_FIBERS[OBSERVATORY[camera]]) - 1] = False
    for a in (x0, s, alive):
        a.setflags(write=False)
    bow, tilt = 8.0 + 4.0 * s ** 2, 8.0 * s
    bow.setflags(write=False)
    tilt.setflags(write=False)
    return Traces(x0=x0, s=s, bow=bow, tilt=tilt, alive=alive)


def _nominal_trace(camera: str, f: np.ndarray, y: np.ndarray) -> np.ndarray:
    t = traces(camera)
    h = detector_size(camera)[0]
    v = (y - h / 2.0) / (h / 2.0)
    return t.x0[f] + t.bow[f] * v * v + t.tilt[f] * v


def trace_x(camera: str, fibers, rows, field: Field | None = None) -> np.ndarray:
    """Trace centre columns of 0-based ``fibers`` at ``rows`` (broadcast against each other), under
    ``field`` (``None``: nominal).

    The field maps every nominal point ``(x0, y0)`` to ``(x0 + dx, y0 + dy)`` (``displace``), so the
    displaced trace at output row ``y`` is the image of the nominal trace point at the row ``y0``
    with ``y0 + dy(u0, v0) = y`` (one fixed-point step: the error is below 1e-4 px). A pure ``dy``
    therefore moves a tilted trace across columns by its slope (<= 0.016 px per px of ``dy``), as on
    the detector, and a line of ``line_positions`` lies exactly on its displaced trace."""
    f = np.asarray(fibers, dtype=np.intp)
    y = np.asarray(rows, float)
    if field is None:
        return _nominal_trace(camera, f, y)
    return trace(camera, f, y, field)[0]


def trace(camera: str, fibers, rows, field: Field) -> tuple[np.ndarray, np.ndarray]:
    """``(x, sigma)`` of the displaced traces of 0-based ``fibers`` at output ``rows`` (broadcast):
    the centre column (as ``trace_x``) and the local width there (the width field at the nominal
    point that lands on that row)."""
    f = np.asarray(fibers, dtype=np.intp)
    y = np.asarray(rows, float)
    u, v = normalised(camera, _nominal_trace(camera, f, y), y)
    y0 = y - field.dy(u, v)
    x0 = _nominal_trace(camera, f, y0)
    u0, v0 = normalised(camera, x0, y0)
    return x0 + field.dx(u0, v0), field.sigma(u0, v0)


@dataclass(frozen=True)
class LineList:
    """The lamp lines that fall on a camera (index = line id within the camera)."""

    wave: np.ndarray  # A, air
    intensity: np.ndarray  # relative, from the line list
    quality: tuple[str, ...]  # GOOD / BLEND / FAINT / UNKNOWN
    species: tuple[str, ...]  # e.g. "Ne I"
    lamp: tuple[str, ...]  # "Ne", "HgCd" (APO) or "HeAr" (LCO); "" when no lamp of the site emits it
    row: np.ndarray  # px, nominal row at the centre fiber (before the curvature)

    def __len__(self) -> int:
        return int(self.wave.size)


def lamp_of_species(observatory: str, species: str) -> str:
    """The lamp of ``observatory`` that emits ``species`` (``"Hg I"`` -> ``"HgCd"``), else ``""``."""
    element = species.split()[0] if species.strip() else ""
    lamp = _LAMP_OF_SPECIES.get(element, "")
    return lamp if lamp in LAMPS[observatory] else ""


@lru_cache(maxsize=None)
def lines(camera: str, margin_px: float = 0.0) -> LineList:
    """Every listed line with a positive intensity whose nominal row lies on ``camera`` at least
    ``margin_px`` from the bottom and top edges, ordered by wavelength."""
    obs = OBSERVATORY[camera]
    h = detector_size(camera)[0]
    catalogue = [ln for ln in arc_lines(obs) if ln.intensity > 0]
    wave = np.array([ln.wave for ln in catalogue], float)
    row = row_of_wavelength(camera, wave)
    keep = np.isfinite(row) & (row >= margin_px) & (row <= h - 1 - margin_px)
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(wave[idx], kind="stable")]
    sel = [catalogue[i] for i in idx]
    out = LineList(wave=wave[idx], intensity=np.array([ln.intensity for ln in sel], float),
                   quality=tuple(ln.quality for ln in sel), species=tuple(ln.species for ln in sel),
                   lamp=tuple(lamp_of_species(obs, ln.species) for ln in sel), row=row[idx])
    for a in (out.wave, out.intensity, out.row):
        a.setflags(write=False)
    return out


def nominal_line_positions(camera: str, fibers=None, line_ids=None, *, margin_px: float = 0.0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Nominal ``(x, y)`` of every (fiber, line), each shaped ``[n_fibers, n_lines]``.

    ``fibers``: 0-based fiber indices (default all 500); ``line_ids``: indices into
    ``lines(camera, margin_px)`` (default all)."""
    t = traces(camera)
    ll = lines(camera, margin_px)
    f = np.arange(N_FIBERS) if fibers is None else np.asarray(fibers, np.intp)
    li = np.arange(len(ll)) if line_ids is None else np.asarray(line_ids, np.intp)
    y = ll.row[li][None, :] + LINE_CURVATURE_PX * (t.s[f] ** 2)[:, None]
    x = trace_x(camera, f[:, None], y)
    return x, y


def line_positions(camera: str, field: Field, fibers=None, line_ids=None, *, margin_px: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True ``(x, y, sigma)`` of every (fiber, line) under ``field``, each ``[n_fibers, n_lines]``
    (px): the nominal position displaced by the field evaluated there, and the local width."""
    x0, y0 = nominal_line_positions(camera, fibers, line_ids, margin_px=margin_px)
    u, v = normalised(camera, x0, y0)
    return x0 + field.dx(u, v), y0 + field.dy(u, v), field.sigma(u, v)


def rms_line_error(camera: str, predicted: Field, true: Field, fibers=None, line_ids=None
                   ) -> dict[str, float]:
    """RMS over every (alive fiber, line) of predicted minus true line centre (px): ``x``, ``y``,
    ``xy`` (both axes together, sqrt of the mean squared 2-D distance) and ``sigma`` (width).

    The field is smooth, so evaluating the difference at the nominal positions is exact for the
    displacement terms (they are linear in the coefficients) and for the width up to the clip."""
    t = traces(camera)
    f = np.flatnonzero(t.alive) if fibers is None else np.asarray(fibers, np.intp)
    x0, y0 = nominal_line_positions(camera, f, line_ids)
    u, v = normalised(camera, x0, y0)
    ex = predicted.dx(u, v) - true.dx(u, v)
    ey = predicted.dy(u, v) - true.dy(u, v)
    es = predicted.sigma(u, v) - true.sigma(u, v)
    return {"x": float(np.sqrt(np.mean(ex * ex))), "y": float(np.sqrt(np.mean(ey * ey))),
            "xy": float(np.sqrt(np.mean(ex * ex + ey * ey))), "sigma": float(np.sqrt(np.mean(es * es)))}


def displace(camera: str, field: Field, x0, y0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, sigma)`` of nominal trimmed points ``(x0, y0)`` under ``field``: each point moves by
    the field evaluated at its nominal position and takes the local width there."""
    x0, y0 = np.asarray(x0, float), np.asarray(y0, float)
    u, v = normalised(camera, x0, y0)
    return x0 + field.dx(u, v), y0 + field.dy(u, v), field.sigma(u, v)


def nominal_wavelength_positions(camera: str, wave, fibers=None) -> tuple[np.ndarray, np.ndarray]:
    """Nominal ``(x, y)`` of light of wavelengths ``wave`` (A, air) on ``fibers`` (0-based, default
    all 500), each ``[n_fibers, n_waves]``: the same rule as the lamp lines (wavelength solution +
    ``LINE_CURVATURE_PX`` towards the edge fibers, on the fiber's trace). NaN off the detector."""
    t = traces(camera)
    f = np.arange(N_FIBERS) if fibers is None else np.asarray(fibers, np.intp)
    rows = np.atleast_1d(row_of_wavelength(camera, np.asarray(wave, float)))
    y = rows[None, :] + LINE_CURVATURE_PX * (t.s[f] ** 2)[:, None]
    return trace_x(camera, f[:, None], y), y


def field_matrix(fields) -> np.ndarray:
    """``[N, 12]`` coefficients (``FIELD_TERMS`` order) of a sequence of ``Field`` or of rows already
    given as arrays."""
    rows = [f.as_array() if isinstance(f, Field) else np.asarray(f, float) for f in fields]
    return np.stack(rows) if rows else np.zeros((0, len(FIELD_TERMS)))


def displacements(camera: str, coeffs, x0, y0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dy, sigma)`` of N fields (``coeffs`` ``[N, 12]``) at M nominal points (``x0``, ``y0``
    flattened), each ``[N, M]``: the vectorised form of ``Field.dx/dy/sigma`` for scoring many
    exposures at once."""
    c = np.atleast_2d(np.asarray(coeffs, float))
    u, v = normalised(camera, np.ravel(x0), np.ravel(y0))
    dx = c[:, 0:4] @ basis("x", u, v).T
    dy = c[:, 4:8] @ basis("y", u, v).T
    sig = np.clip(c[:, 8:12] @ basis("s", u, v).T, *SIGMA_CLIP)
    return dx, dy, sig


def rms_line_errors(camera: str, predicted, true, fibers=None, line_ids=None) -> dict[str, np.ndarray]:
    """``rms_line_error`` for N exposures at once: ``predicted`` and ``true`` are ``[N, 12]``
    coefficient arrays (``field_matrix``); returns arrays ``x``, ``y``, ``xy``, ``sigma`` of length N
    (px, RMS over every alive fiber and line)."""
    t = traces(camera)
    f = np.flatnonzero(t.alive) if fibers is None else np.asarray(fibers, np.intp)
    x0, y0 = nominal_line_positions(camera, f, line_ids)
    px, py, ps = displacements(camera, predicted, x0, y0)
    tx, ty, ts = displacements(camera, true, x0, y0)
    ex, ey, es = np.mean((px - tx) ** 2, 1), np.mean((py - ty) ** 2, 1), np.mean((ps - ts) ** 2, 1)
    return {"x": np.sqrt(ex), "y": np.sqrt(ey), "xy": np.sqrt(ex + ey), "sigma": np.sqrt(es)}
