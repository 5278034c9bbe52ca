"""Facts about the BOSS spectrographs, from ``shared/spec/boss-formats.md``. Pure data + helpers.

Index convention: every region here is **0-based numpy ``[row, col]``, end-exclusive**
(``slice(start, stop)``). FITS section strings (``[x1:x2,y1:y2]``, 1-based, inclusive, x first)
are converted once, by ``fits_section_to_slices``; nothing else in arcray parses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

CAMERAS = ("b1", "r1", "b2", "r2")
OBSERVATORY = {"b1": "apo", "r1": "apo", "b2": "lco", "r2": "lco"}  # the camera -> site map
CAMERAS_AT = {obs: tuple(c for c in CAMERAS if OBSERVATORY[c] == obs) for obs in ("apo", "lco")}
CARTID = {"apo": "FPS-N", "lco": "FPS-S"}
STUDY_FLAVORS = ("arc", "flat")  # the calibration frames arcray models (train .. report)
RAW_SHAPE = (4224, 4352)  # (NAXIS2 rows, NAXIS1 cols)
SATURATION_ADU = 65535  # the ADC's full scale: a raw value at or above it is saturated
SPLIT_ROW, SPLIT_COL = 2112, 2176
N_FIBERS, FIBERS_PER_BUNDLE = 500, 20


@dataclass(frozen=True)
class AmpGeometry:
    """One amplifier: its data region and the overscan/prescan columns used for its bias."""

    amp: int
    rows: slice  # raw rows of the data region
    cols: slice  # raw cols of the data region
    overscan_cols: slice  # raw cols (same rows as ``rows``) holding bias + read noise only
    trim_rows: slice  # where the data region lands in the trimmed image
    trim_cols: slice


@dataclass(frozen=True)
class CameraGeometry:
    camera: str
    amps: tuple[AmpGeometry, AmpGeometry, AmpGeometry, AmpGeometry]
    trimmed_shape: tuple[int, int]  # (rows, cols)
    transient_cols: tuple[int, ...]  # raw columns with readout transients: never used for bias


def _geometry(camera: str) -> CameraGeometry:
    blue = camera.startswith("b")
    lo_rows, hi_rows = (slice(56, 2112), slice(2112, 4168)) if blue else (slice(48, 2112), slice(2112, 4176))
    lo_cols, hi_cols = (slice(128, 2176), slice(2176, 4224)) if blue else (slice(119, 2176), slice(2176, 4233))
    os_left, os_right = (slice(10, 68), slice(4284, 4341)) if blue else (slice(10, 101), slice(4250, 4341))
    nr0 = lo_rows.stop - lo_rows.start
    nc0 = lo_cols.stop - lo_cols.start
    nr1 = hi_rows.stop - hi_rows.start
    nc1 = hi_cols.stop - hi_cols.start
    amps = []
    for amp in range(4):
        upper, right = amp >= 2, amp % 2 == 1
        rows = hi_rows if upper else lo_rows
        cols = hi_cols if right else lo_cols
        tr = slice(nr0, nr0 + nr1) if upper else slice(0, nr0)
        tc = slice(nc0, nc0 + nc1) if right else slice(0, nc0)
        amps.append(AmpGeometry(amp, rows, cols, os_right if right else os_left, tr, tc))
    return CameraGeometry(
        camera=camera,
        amps=tuple(amps),  # type: ignore[arg-type]
        trimmed_shape=(nr0 + nr1, nc0 + nc1),
        transient_cols=(77, 4274) if blue else (111, 4240),
    )


GEOMETRY = {cam: _geometry(cam) for cam in CAMERAS}

# Gains (e-/ADU) for amps 0..3, by epoch start MJD.
GAINS: dict[str, list[tuple[int, tuple[float, float, float, float]]]] = {
    "b1": [(59224, (1.068, 1.022, 1.020, 1.022)), (59543, (1.070, 1.020, 1.022, 1.020)),
           (59768, (1.068, 1.024, 1.022, 1.020))],
    "r1": [(59224, (1.584, 1.562, 1.512, 1.562)), (59543, (1.546, 1.520, 1.472, 1.520)),
           (59768, (1.544, 1.506, 1.460, 1.514))],
    "b2": [(59790, (1.348, 1.374, 1.306, 1.360))],
    "r2": [(59790, (2.180, 2.234, 2.244, 2.160))],
}
READ_NOISE_E = {"b1": 2.0, "r1": 2.6, "b2": 2.4, "r2": 3.9}


def gains(camera: str, mjd: int) -> tuple[float, float, float, float]:
    """Per-amp gain (e-/ADU) in force at ``mjd`` (the earliest epoch before its start)."""
    epochs = GAINS[camera]
    chosen = epochs[0][1]
    for start, g in epochs:
        if mjd >= start:
            chosen = g
    return chosen


# Wavelength solution: log10(lambda/A) = sum c_k P_k(x), x = 2*row/(nrow-1) - 1 (trimmed rows).
# The coefficients are boss-formats.md's except c0, which is shifted (blue -0.0052417, red
# +0.0009077) so that the central pixel's wavelength sits at the centre of the SOS WAVEMID window
# (opLimits: b1 4903-4923 A, r1 7988-8008 A): with the spec's c0 a nominal b1 arc has WAVEMID
# 4972.7 A (red by the real limits) and r1 7981.3 A (yellow). Simulator and pipeline share this
# one solution, so they agree either way; only the QA against real limits needed the shift.
WAVE_COEFFS = {
    "b": (3.6794242, 0.19959101, -0.023845067, 0.0012433996),
    "r": (3.8936088, 0.16506676, -0.018754040, 0.0011861915, -1.1795306e-05, -2.4502617e-05),
}


def wavelength_of_row(camera: str, rows: np.ndarray | float) -> np.ndarray:
    """Air wavelength (A) at trimmed row(s) ``rows`` (float rows allowed)."""
    nrow = GEOMETRY[camera].trimmed_shape[0]
    x = 2.0 * np.asarray(rows, dtype=float) / (nrow - 1) - 1.0
    return 10.0 ** np.polynomial.legendre.legval(x, WAVE_COEFFS[camera[0]])


@lru_cache(maxsize=None)
def _row_wave_table(camera: str) -> tuple[np.ndarray, np.ndarray]:
    nrow = GEOMETRY[camera].trimmed_shape[0]
    rows = np.linspace(0, nrow - 1, 8 * nrow)
    return rows, wavelength_of_row(camera, rows)


def row_of_wavelength(camera: str, wave: np.ndarray | float) -> np.ndarray:
    """Inverse of ``wavelength_of_row`` (monotonic); NaN outside the camera's range."""
    rows, waves = _row_wave_table(camera)
    w = np.asarray(wave, dtype=float)
    return np.interp(w, waves, rows, left=np.nan, right=np.nan)


# Fibers: 25 bundles of 20; spacing within a bundle and position of fiber 1 / fiber 500.
FIBER_PITCH = {"b": 6.55, "r": 6.73}
FIBER1_X = {"b": 290.0, "r": 232.0}
FIBER500_X = {"b": 3796.0, "r": 3821.0}
DEAD_FIBERS = {"apo": (79, 103, 349), "lco": (17, 262)}  # 1-based; LCO list is a simulator choice


def fiber_x(camera: str) -> np.ndarray:
    """Trimmed-column position of fibers 1..500 at the centre row (float, length 500)."""
    arm = camera[0]
    pitch = FIBER_PITCH[arm]
    n_intra = (FIBERS_PER_BUNDLE - 1) * (N_FIBERS // FIBERS_PER_BUNDLE)
    n_gaps = N_FIBERS // FIBERS_PER_BUNDLE - 1
    gap = (FIBER500_X[arm] - FIBER1_X[arm] - n_intra * pitch) / n_gaps
    i = np.arange(N_FIBERS)
    bundle, within = i // FIBERS_PER_BUNDLE, i % FIBERS_PER_BUNDLE
    return FIBER1_X[arm] + bundle * ((FIBERS_PER_BUNDLE - 1) * pitch + gap) + within * pitch


@dataclass(frozen=True)
class ArcLine:
    wave: float  # air wavelength, A
    intensity: float  # relative
    quality: str  # GOOD / BLEND / FAINT / UNKNOWN
    species: str


LAMP_FILES = {"apo": "lamphgcdne.dat", "lco": "lampHeNe.dat"}


@lru_cache(maxsize=None)
def arc_lines(observatory: str) -> tuple[ArcLine, ...]:
    """The lamp line list of ``observatory`` (APO: Ne + HgCd, LCO: Ne + HeAr)."""
    text = resources.files("arcray.data").joinpath(LAMP_FILES[observatory]).read_text()
    out = []
    for line in text.splitlines():
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        parts = body.split()
        try:
            wave, inten = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            continue
        quality = parts[2] if len(parts) > 2 else "UNKNOWN"
        species = " ".join(parts[3:]) if len(parts) > 3 else ""
        out.append(ArcLine(wave, inten, quality, species))
    return tuple(out)


def example_header_text() -> str:
    """The real APO arc header ``sdR-b1-00380717`` (one 80-column card per line)."""
    return resources.files("arcray.data").joinpath("sdR-b1-00380717.header.txt").read_text()


def fits_section_to_slices(section: str) -> tuple[slice, slice]:
    """``'[x1:x2,y1:y2]'`` (FITS: 1-based, inclusive, x=column first) -> ``(row_slice, col_slice)``
    (numpy: 0-based, end-exclusive)."""
    s = section.strip().lstrip("[").rstrip("]")
    xs, ys = s.split(",")
    x1, x2 = (int(v) for v in xs.split(":"))
    y1, y2 = (int(v) for v in ys.split(":"))
    return slice(min(y1, y2) - 1, max(y1, y2)), slice(min(x1, x2) - 1, max(x1, x2))
