"""Instrument faults of the simulated world (``shared/spec/calibration-state.md`` §3).

A few per cent of arcs and flats (``fault_rate``, a world option; ``DEFAULT_FAULT_RATE``) carry one
labelled fault. The header stays as the instrument wrote it: a fault is visible only in the pixels.

| kind | frames | cameras | what the pixels show |
|---|---|---|---|
| ``lamp_out`` | arcs | both | one arc lamp's lines missing (its brightness is 0) |
| ``no_light`` | arcs, flats | both | screen or shutter failure: bias, dark current and noise only |
| ``amp_noisy`` | arcs, flats | one | one amplifier with 3-7x its read noise, or 6-15 ADU pattern noise |
| ``scattered_light`` | arcs, flats | both | a smooth glow (300-1500 e-/px peak, 1000-2500 px wide) |
| ``focus_jump`` | arcs, flats | one | the focus term ``s0`` 0.2-0.4 px wider, no header change |
| ``overexposed`` | arcs, flats | both | every lamp 3-6x its nominal light: saturated lines and traces |

Faults that change the state (``lamp_out``, ``no_light``, ``focus_jump``, ``overexposed``) do it
through the hidden part of the term they touch (no header value sees them), so the truth's field and
brightness are what the pixels show. ``amp_noisy`` and ``scattered_light`` leave the state alone:
``frames`` reads their parameters from ``CalibState.fault_params``.

Draws: six uniforms per exposure of the full schedule from one stream of the world seed, whatever the
flavour or the rate, so a higher rate adds faults without moving the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arcray.sim.types import SimExposure

FAULT_KINDS = ("lamp_out", "no_light", "amp_noisy", "scattered_light", "focus_jump", "overexposed")
DEFAULT_FAULT_RATE = 0.04  # fraction of arc and flat exposures with a fault
_KINDS_OF = {"arc": FAULT_KINDS, "flat": tuple(k for k in FAULT_KINDS if k != "lamp_out")}
_ONE_CAMERA = ("amp_noisy", "focus_jump")


@dataclass(frozen=True)
class Fault:
    """One exposure's fault: its kind, the cameras it hits and its parameters."""

    kind: str
    cameras: tuple[str, ...]
    params: tuple[tuple[str, object], ...] = ()

    def param(self, key: str, default=None):
        return dict(self.params).get(key, default)


def _params(kind: str, p1: float, p2: float, p3: float) -> tuple[tuple[str, object], ...]:
    if kind == "lamp_out":
        return (("lamp_index", int(p1 < 0.5)),)
    if kind == "amp_noisy":
        amp = min(int(p1 * 4), 3)
        if p2 < 0.5:
            return (("amp", amp), ("mode", "read"), ("factor", round(3.0 + 4.0 * p3, 3)))
        return (("amp", amp), ("mode", "pattern"), ("pattern_adu", round(6.0 + 9.0 * p3, 3)),
                ("period_px", round(8.0 + 60.0 * p2, 3)))
    if kind == "scattered_light":
        return (("glow_e", round(300.0 + 1200.0 * p1, 1)), ("u", round(2 * p2 - 1, 3)),
                ("v", round(2 * p3 - 1, 3)), ("scale_px", round(1000.0 + 1500.0 * p1 * p3, 1)))
    if kind == "focus_jump":
        return (("jump_px", round(0.2 + 0.2 * p1, 4)),)
    if kind == "overexposed":
        return (("factor", round(3.0 + 3.0 * p1, 3)),)
    return ()


def draw_faults(exposures: list[SimExposure], seed: int, rate: float) -> dict[int, Fault]:
    """The fault of every faulty exposure (``expnum -> Fault``) of ``exposures`` (time-ordered)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault rate must be within 0..1, got {rate}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
    draws = rng.random((len(exposures), 6))
    out: dict[int, Fault] = {}
    for e, (u, uk, uc, p1, p2, p3) in zip(exposures, draws):
        kinds = _KINDS_OF.get(e.flavor)
        if not kinds or u >= rate:
            continue
        kind = kinds[min(int(uk * len(kinds)), len(kinds) - 1)]
        cams = tuple(sorted(e.cameras))
        if kind in _ONE_CAMERA:
            cams = (cams[min(int(uc * len(cams)), len(cams) - 1)],)
        out[e.expnum] = Fault(kind, cams, _params(kind, p1, p2, p3))
    return out


def describe(params: tuple[tuple[str, object], ...]) -> str:
    """``key=value;key=value`` (the truth table's ``fault_detail``)."""
    return ";".join(f"{k}={v}" for k, v in params)


def glow(params: dict, shape: tuple[int, int]) -> np.ndarray:
    """The scattered-light image (electrons, float32 ``shape`` = trimmed rows x cols): a separable
    Gaussian glow of peak ``glow_e`` at normalised ``(u, v)``, width ``scale_px``."""
    nrow, ncol = shape
    xc, yc = (1 + float(params["u"])) * ncol / 2, (1 + float(params["v"])) * nrow / 2
    s = float(params["scale_px"])
    gx = np.exp(-0.5 * ((np.arange(ncol) - xc) / s) ** 2).astype(np.float32)
    gy = (float(params["glow_e"]) * np.exp(-0.5 * ((np.arange(nrow) - yc) / s) ** 2)).astype(np.float32)
    return gy[:, None] * gx[None, :]


def pattern(params: dict, rows: int, cols: int) -> np.ndarray:
    """Pickup pattern (ADU, float32 ``rows x cols``) of an ``amp_noisy`` fault in ``pattern`` mode:
    a sinusoid along the serial register whose phase drifts from row to row."""
    period = float(params["period_px"])
    c = np.arange(cols, dtype=np.float32)
    r = np.arange(rows, dtype=np.float32)
    phase = 2 * np.pi * (c[None, :] / period + 0.37 * r[:, None])
    return (float(params["pattern_adu"]) * np.sin(phase)).astype(np.float32)
