"""A frame's per-line table as one fixed-length vector: the line representation (Excalibur's). Pure numpy.

Slots. ``LineIndex`` fixes, per camera, the (fiber, line) pairs a vector holds: every fiber 1..500
(``instrument.N_FIBERS``) x the lines ``line_ids`` (indices into ``optics.lines(camera)``; default:
the candidate lines of ``arcray.measure`` under the default ``MeasureConfig``, the only lines a
measurement ever reports, so no slot is masked in every frame). Slot ``k = (fiber - 1) * L + j``
for the ``j``-th line of ``line_ids``; the index never depends on which lines a frame measured, so
nothing shifts between slots from one frame to the next.

Vector. ``D = 3 K`` values (``K = 500 L`` slots), three contiguous blocks in ``COMPONENTS`` order:

- ``dx = x - x_nom`` and ``dy = y - y_nom`` (px): the measured centre minus the nominal one of
  ``optics.nominal_line_positions`` (the same nominal model the measurement writes as ``x_nom``);
- ``sigma_y`` (px): the line width along rows.

Mask (uint8, 1 = bad, as the images' ``m``): a slot's dx and dy are masked when the table has no row
for it, its ``x`` or ``y`` is NaN, its ``flags`` are non-zero or it was not ``used`` by the field
fit; its sigma_y also when sigma_y is NaN. Masked values hold ``FILL`` (0 px displacement, a typical
width), finite so that no NaN reaches a loss; losses leave them out through the mask.

``from_vector`` inverts: per slot fiber, line, x, y, sigma_y (NaN where masked) and x_nom, y_nom.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from arcray.errors import InputError
from arcray.instrument import N_FIBERS

COMPONENTS = ("dx", "dy", "sigma_y")
FILL = {"dx": 0.0, "dy": 0.0, "sigma_y": 1.15}  # px: no displacement, mid of optics.SIGMA_CLIP
KEY_COLUMNS = ("fiber", "line", "x", "y", "sigma_y", "flags", "used")


@lru_cache(maxsize=None)
def default_line_ids(camera: str) -> tuple[int, ...]:
    """The lines ``arcray.measure`` measures on ``camera`` under the default ``MeasureConfig``."""
    from arcray.measure.config import MeasureConfig
    from arcray.measure.lines import lines_for

    return tuple(int(i) for i in lines_for(camera, MeasureConfig()).ids)


@dataclass(frozen=True)
class LineIndex:
    """The fixed (fiber, line) slots of one camera's line vectors."""

    camera: str
    line_ids: tuple[int, ...]
    n_fibers: int = N_FIBERS

    @classmethod
    def for_camera(cls, camera: str, line_ids=None) -> "LineIndex":
        ids = default_line_ids(camera) if line_ids is None else tuple(int(i) for i in line_ids)
        if not ids:
            raise InputError(f"camera {camera}: a line index needs at least one line")
        return cls(camera=camera, line_ids=ids)

    @property
    def n_lines(self) -> int:
        return len(self.line_ids)

    @property
    def n_slots(self) -> int:
        return self.n_fibers * self.n_lines

    @property
    def size(self) -> int:
        """``D``: the vector length."""
        return len(COMPONENTS) * self.n_slots

    def to_dict(self) -> dict:
        return {"camera": self.camera, "line_ids": list(self.line_ids), "n_fibers": self.n_fibers}

    @classmethod
    def from_dict(cls, d: dict) -> "LineIndex":
        return cls(camera=str(d["camera"]), line_ids=tuple(int(i) for i in d["line_ids"]),
                   n_fibers=int(d.get("n_fibers", N_FIBERS)))

    def nominal(self) -> tuple[np.ndarray, np.ndarray]:
        """Nominal ``(x, y)`` per slot, each ``[K]`` (px)."""
        return _nominal(self.camera, self.line_ids, self.n_fibers)

    def slot_fiber_line(self) -> tuple[np.ndarray, np.ndarray]:
        """``(fiber 1-based, line id)`` of every slot, each ``[K]``."""
        fib = np.repeat(np.arange(1, self.n_fibers + 1), self.n_lines)
        line = np.tile(np.asarray(self.line_ids, np.int64), self.n_fibers)
        return fib, line

    def slots(self, fiber, line) -> np.ndarray:
        """Slot of each (fiber 1-based, line id); -1 where the pair is not in the index."""
        fiber = np.asarray(fiber, np.int64)
        line = np.asarray(line, np.int64)
        lut = np.full(int(max(self.line_ids)) + 1, -1, np.int64)
        lut[list(self.line_ids)] = np.arange(self.n_lines)
        j = np.where((line >= 0) & (line < lut.size), lut[np.clip(line, 0, lut.size - 1)], -1)
        ok = (j >= 0) & (fiber >= 1) & (fiber <= self.n_fibers)
        return np.where(ok, (fiber - 1) * self.n_lines + j, -1)

    def to_vector(self, table) -> tuple[np.ndarray, np.ndarray]:
        """One frame's per-line table (``LINE_SCHEMA`` columns ``KEY_COLUMNS``: a pyarrow Table,
        DataFrame or dict of arrays) -> ``(x [D] float32, m [D] uint8)``. Rows of (fiber, line)
        pairs outside the index are ignored."""
        col = _columns(table)
        k = self.n_slots
        x = np.concatenate([np.full(k, FILL[c], np.float64) for c in COMPONENTS])
        m = np.ones(3 * k, np.uint8)
        slot = self.slots(col["fiber"], col["line"])
        keep = slot >= 0
        slot = slot[keep]
        px, py, sy = (np.asarray(col[c], np.float64)[keep] for c in ("x", "y", "sigma_y"))
        ok = (np.isfinite(px) & np.isfinite(py) & (np.asarray(col["flags"])[keep] == 0)
              & np.asarray(col["used"], bool)[keep])
        ok_s = ok & np.isfinite(sy)
        x0, y0 = self.nominal()
        s_ok, s_s = slot[ok], slot[ok_s]
        x[s_ok] = px[ok] - x0[s_ok]
        x[k + s_ok] = py[ok] - y0[s_ok]
        x[2 * k + s_s] = sy[ok_s]
        m[s_ok] = 0
        m[k + s_ok] = 0
        m[2 * k + s_s] = 0
        return x.astype(np.float32), m

    def to_vectors(self, table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A table of several frames -> ``(keys [N, 2] (mjd, expnum), x [N, D], m [N, D])``, frames
        in (mjd, expnum) order."""
        col = _columns(table, extra=("mjd", "expnum"))
        keys = np.stack([np.asarray(col["mjd"], np.int64), np.asarray(col["expnum"], np.int64)], 1)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        inv = inv.ravel()
        xs = np.empty((len(uniq), self.size), np.float32)
        ms = np.empty((len(uniq), self.size), np.uint8)
        for i in range(len(uniq)):
            sel = inv == i
            xs[i], ms[i] = self.to_vector({c: np.asarray(col[c])[sel] for c in KEY_COLUMNS})
        return uniq, xs, ms

    def from_vector(self, x, m=None) -> dict[str, np.ndarray]:
        """``x [D]`` (and mask) -> per slot ``fiber``, ``line``, ``x``, ``y``, ``sigma_y`` (px,
        NaN where masked), ``x_nom``, ``y_nom``."""
        x = np.asarray(x, np.float64).reshape(-1)
        if x.size != self.size:
            raise InputError(f"a {x.size}-value vector does not fit the {self.size}-value index of {self.camera}")
        m = np.zeros(self.size, bool) if m is None else np.asarray(m).reshape(-1) != 0
        k = self.n_slots
        x0, y0 = self.nominal()
        fib, line = self.slot_fiber_line()
        ok_xy = ~(m[:k] | m[k:2 * k])
        return {"fiber": fib, "line": line,
                "x": np.where(ok_xy, x0 + x[:k], np.nan), "y": np.where(ok_xy, y0 + x[k:2 * k], np.nan),
                "sigma_y": np.where(~m[2 * k:], x[2 * k:], np.nan), "x_nom": x0, "y_nom": y0}

    def blocks(self, x) -> dict[str, np.ndarray]:
        """``x [..., D]`` cut into its ``COMPONENTS`` blocks, each ``[..., K]``."""
        x = np.asarray(x)
        k = self.n_slots
        return {c: x[..., i * k:(i + 1) * k] for i, c in enumerate(COMPONENTS)}


@lru_cache(maxsize=16)
def _nominal(camera: str, line_ids: tuple[int, ...], n_fibers: int) -> tuple[np.ndarray, np.ndarray]:
    from arcray import optics

    x0, y0 = optics.nominal_line_positions(camera, np.arange(n_fibers), np.asarray(line_ids, np.intp))
    x0, y0 = x0.reshape(-1), y0.reshape(-1)
    for a in (x0, y0):
        a.setflags(write=False)
    return x0, y0


def _columns(table, extra: tuple[str, ...] = ()) -> dict:
    names = KEY_COLUMNS + tuple(extra)
    have = table.column_names if hasattr(table, "column_names") else list(table.keys())
    missing = [c for c in names if c not in have]
    if missing:
        raise InputError(f"line table lacks column(s) {missing}")
    return {c: np.asarray(table[c]) for c in names}
