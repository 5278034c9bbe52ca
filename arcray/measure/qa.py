"""The BOSS quick-look QA quantities of a frame and their traffic lights. Pure (reads one TOML file).

Definitions, each as the BOSS code computes it, from this frame's measurements:

- ``WSIGMA`` (arcs): per amplifier quadrant, the median line width along rows of the used lines
  there (px); WSIGMA is the largest of the four (quickwave: ``max(medwidth)`` of fitdispersion's
  per-quadrant medians). ``XSIGMA`` (flats): the same for trace widths across fibers.
- ``NLAMPS`` (arcs): the number of lamp lines in the wavelength solution (quickwave: the columns of
  ``xpeak``); here a candidate line counts when it is used on at least ``nlamps_fiber_fraction``
  of the alive fibers (fitarcimage drops a line rejected on more than 3 fibers of a bundle).
- ``BESTCORR`` (arcs): ``offsets.bestcorr``.
- ``WAVEMID`` (arcs): the wavelength at the central pixel, quickwave's mean over the central 2
  fibers (0-based 249, 250) and their central 2 rows (``nrow/2 - 1``, ``nrow/2``): the wavelength
  whose line lands there under the fitted displacement field against the nominal model
  (``wavelength_of_row(row - curvature - dy)``), A.
- ``w_shift`` = WAVEMID - the reference's WAVEMID (A): the dated reference of the config
  (BOSS_log's ``type_ref_point``), else the nominal model's WAVEMID.
- ``fratio`` = (median flux / EXPTIME) / (reference median flux / reference EXPTIME). BOSS takes
  the median of the extracted frame; a simulated arc has no continuum between its lines (that
  median is ~0), so arcray's arc fratio takes the median measured LINE flux of the used lines;
  flats the median trace flux per row. Null without a reference holding a median flux.
- ``NGOODFIBER`` (flats): fibers used at ``good_fiber_rows_fraction`` of their sample rows.

Status: see ``arcray/data/boss-qa-limits-v1.toml`` (format in its header).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from arcray import optics
from arcray.errors import ConfigError
from arcray.instrument import N_FIBERS, wavelength_of_row

DEFAULT_LIMITS = "boss-qa-limits-v1.toml"
STATUS_ORDER = ("green", "yellow", "red")
QUANTITIES = {"arc": ("WSIGMA", "NLAMPS", "BESTCORR", "WAVEMID"), "flat": ("XSIGMA", "NGOODFIBER")}


@dataclass(frozen=True)
class Rule:
    green: tuple[float, float]
    yellow: tuple[float, float]

    def judge(self, value) -> str:
        if value is None or not math.isfinite(float(value)):
            return "red"
        v = float(value)
        if self.green[0] <= v <= self.green[1]:
            return "green"
        if self.yellow[0] <= v <= self.yellow[1]:
            return "yellow"
        return "red"


@dataclass(frozen=True)
class Limits:
    version: str  # e.g. "boss-qa-limits-v1"
    rules: dict  # (camera, flavor) -> {quantity: Rule}

    def for_frame(self, camera: str, flavor: str) -> dict[str, Rule]:
        return self.rules.get((camera, flavor), {})


def _pair(value, where: str) -> tuple[float, float]:
    if not (isinstance(value, list) and len(value) == 2):
        raise ConfigError(f"QA limits {where}: expected [lo, hi], got {value!r}")
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ConfigError(f"QA limits {where}: lo {lo} > hi {hi}")
    return lo, hi


@lru_cache(maxsize=8)
def load_limits(path: str | None = None) -> Limits:
    """The QA limits from ``path`` (None: the packaged ``boss-qa-limits-v1.toml``)."""
    try:
        if path is None:
            text = resources.files("arcray.data").joinpath(DEFAULT_LIMITS).read_text()
            name = Path(DEFAULT_LIMITS).stem
        else:
            text = Path(path).read_text()
            name = Path(path).stem
        doc = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read QA limits {path or DEFAULT_LIMITS}: {exc}") from None
    if "version" not in doc:
        raise ConfigError(f"QA limits {name}: no 'version'")
    rules = {}
    for camera, flavors in doc.items():
        if camera == "version":
            continue
        if not isinstance(flavors, dict):
            raise ConfigError(f"QA limits {name}: [{camera}] must hold flavor tables")
        for flavor, quantities in flavors.items():
            table = {}
            for q, rule in quantities.items():
                where = f"{name} {camera}.{flavor}.{q}"
                if not isinstance(rule, dict) or set(rule) != {"green", "yellow"}:
                    raise ConfigError(f"QA limits {where}: needs exactly green and yellow ranges")
                table[q] = Rule(green=_pair(rule["green"], where), yellow=_pair(rule["yellow"], where))
            rules[(camera, flavor)] = table
    return Limits(version=name, rules=rules)


def judge(values: dict, rules: dict[str, Rule]) -> tuple[str, dict[str, str | None], str]:
    """``(overall status, per-quantity status, reasons)`` for a frame's QA ``values``; overall is
    the worst judged quantity (green when none is judged); reasons list the non-green ones."""
    per: dict[str, str | None] = {}
    reasons = []
    worst = 0
    for q, rule in rules.items():
        s = rule.judge(values.get(q))
        per[q] = s
        worst = max(worst, STATUS_ORDER.index(s))
        if s != "green":
            v = values.get(q)
            shown = "nan" if v is None or not math.isfinite(float(v)) else f"{float(v):.4g}"
            reasons.append(f"{q}={shown} {s}")
    return STATUS_ORDER[worst], per, "; ".join(reasons)


def wavemid(camera: str, dy_coef: np.ndarray | None) -> float:
    """quickwave's WAVEMID (A) under the displacement ``dy = B_y(u, v) @ dy_coef`` (None: nominal)."""
    h = optics.detector_size(camera)[0]
    fibers = np.array([N_FIBERS // 2 - 1, N_FIBERS // 2])
    rows = np.array([h // 2 - 1, h // 2], float)
    s = optics.traces(camera).s[fibers]
    ff, yy = np.meshgrid(fibers, rows, indexing="ij")
    curv = optics.LINE_CURVATURE_PX * s[:, None] ** 2
    dy = 0.0
    if dy_coef is not None:
        x = optics.trace_x(camera, ff, yy)
        u, v = optics.normalised(camera, x, yy)
        dy = (optics.basis("y", u, v) @ np.asarray(dy_coef, float)).reshape(ff.shape)
    return float(np.mean(wavelength_of_row(camera, yy - curv - dy)))


def fratio(median_flux: float, exptime: float | None, reference) -> float | None:
    """(median flux / exptime) / (reference median flux / reference exptime); None if undefined."""
    if reference is None or reference.median_flux is None or not exptime or not math.isfinite(median_flux):
        return None
    return float((median_flux / exptime) / (reference.median_flux / reference.exptime))
