"""Typed configuration of the calibration stage (``arcray calibrate``).

Every field states its unit. Per-camera settings live in ``cameras`` (one place); look them up
with ``CalibConfig.for_camera(camera)``, which merges the camera's override over the defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from arcray.config import StageConfig
from arcray.instrument import SATURATION_ADU

OverscanMethod = Literal["median", "row"]
FullFrame = Literal["none", "float32", "float16"]

# Default window wavelengths (A, air): bright lamp lines of each camera's lamps.
DEFAULT_WINDOW_WAVES: dict[str, tuple[float, ...]] = {
    "b1": (4358.34, 4799.91, 5085.82, 5460.75),  # Hg, Cd, Cd, Hg (APO HgCd + Ne)
    "r1": (6402.25, 7032.41, 7438.90, 8377.61),  # Ne
    "b2": (3888.65, 4471.48, 5015.68, 5852.49),  # He, He, He, Ne (LCO HeAr + Ne)
    "r2": (6678.28, 7032.41, 7245.17, 8377.61),  # Ne
}
DEFAULT_WINDOW_BUNDLES: tuple[int, ...] = (5, 19)  # 1-based bundles (of 25), one each side of centre
# The detector grid (issue 14): rows on lamp lines from the bluest to the reddest of each camera
# (``grid_waves``) x bundles from edge to edge. A latent learned over it sees magnification,
# rotation and focus tilt.
GRID_PREFIX = "grid_"  # names of the grid's windows start with this (``arcray.model.view``)
DEFAULT_GRID_ROWS = 4
DEFAULT_GRID_BUNDLES: tuple[int, ...] = (1, 9, 17, 25)
END_BAND = 0.15  # fraction of a camera's line-covered rows searched for its bluest/reddest grid row


class WindowSpec(BaseModel):
    """One cut-out: centred on ``wave`` (A) x ``bundle`` (1-based), or on ``row``/``col`` (trimmed px).

    Pixel positions win when given. The window is shifted inwards to stay on the trimmed frame.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Label stored in the schema metadata, e.g. 'Hg4358_b05'.")
    wave: float | None = Field(None, description="Air wavelength of the centre row, A.")
    bundle: int | None = Field(None, ge=1, le=25, description="Fiber bundle of the centre column.")
    row: int | None = Field(None, ge=0, description="Centre row in the trimmed frame, px.")
    col: int | None = Field(None, ge=0, description="Centre column in the trimmed frame, px.")


class CameraOverride(BaseModel):
    """Per-camera settings; ``None`` means 'use the stage default / the instrument table'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    overscan: OverscanMethod | None = Field(None, description="Overscan method for this camera.")
    gains: tuple[float, float, float, float] | None = Field(
        None, description="e-/ADU for amps 0..3; None = arcray.instrument.gains(camera, mjd).")
    saturation_adu: int | None = Field(None, description="Raw ADU at/above which a pixel is saturated.")
    bad_columns: tuple[int, ...] = Field(
        (), description="Known bad RAW columns (0-based) of this camera; masked on every row.")
    windows: tuple[WindowSpec, ...] | None = Field(
        None, description="Cut-outs for this camera; None = the bright-line windows, then the "
                          "detector grid (``grid_windows``).")


class CalibConfig(StageConfig):
    """Calibration of raw sdR frames to electrons, views and masks."""

    overscan: OverscanMethod = Field(
        "median", description="'median': one robust bias level per amp (ADU); 'row': a median per row.")
    saturation_adu: int = Field(SATURATION_ADU, description="Raw ADU at/above which a pixel is saturated.")
    window_size: int = Field(
        128, ge=16, description="Side of the square cut-outs, px (native resolution). 128: the 8 "
                                "bright-line windows + the 16 grid windows hold fewer pixels than "
                                "the earlier 8 windows of 256 px.")
    grid_rows: int = Field(DEFAULT_GRID_ROWS, ge=0, description="Rows of the detector grid of "
                           "windows, on lamp lines from the bluest to the reddest; 0 = no grid.")
    grid_bundles: tuple[int, ...] = Field(
        DEFAULT_GRID_BUNDLES, description="1-based fiber bundles (columns) of the detector grid.")
    bin_factor: int = Field(8, ge=1, description="Block size of the binned full-frame view, px.")
    binned_size: int = Field(
        4096, description="Side of the central trimmed square that is binned, px (same for all cameras).")
    binned_bad_fraction: float = Field(
        0.5, description="A binned pixel is masked when more than this fraction of its pixels is bad.")
    full_frame: FullFrame = Field(
        "none", description="Store the full trimmed frame: none, float32 (67 MB/frame), or float16 "
                            "of electrons/frame_float16_scale (relative error <= 2**-11).")
    frame_float16_scale: float = Field(
        4.0, gt=0, description="e- per float16 unit; 4 keeps 65535 ADU x 2.3 e-/ADU below float16 max.")
    compression: str = Field(
        "lz4", description="Parquet compression codec. lz4: ~1.4 MB/frame, write ~20 ms; zstd level 1: "
                           "~0.85 MB/frame, write ~27 ms (benchmarks/bench_calibrate.py, one core).")
    compression_level: int | None = Field(None, description="Parquet compression level (None: codec default).")
    cameras: dict[str, CameraOverride] = Field(
        default_factory=dict, description="Per-camera overrides keyed by camera (b1, r1, b2, r2).")

    def for_camera(self, camera: str) -> "CameraSettings":
        """The settings in force for ``camera`` (override merged over the stage defaults)."""
        o = self.cameras.get(camera, CameraOverride())
        windows = (o.windows if o.windows is not None
                   else default_windows(camera) + grid_windows(camera, self.grid_rows, self.grid_bundles))
        return CameraSettings(
            overscan=o.overscan or self.overscan,
            gains=o.gains,
            saturation_adu=o.saturation_adu if o.saturation_adu is not None else self.saturation_adu,
            bad_columns=tuple(o.bad_columns),
            windows=tuple(windows),
        )


class CameraSettings(BaseModel):
    """Resolved per-camera settings (what the calibration verbs are called with)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    overscan: OverscanMethod
    gains: tuple[float, float, float, float] | None
    saturation_adu: int
    bad_columns: tuple[int, ...]
    windows: tuple[WindowSpec, ...]


def default_windows(camera: str) -> tuple[WindowSpec, ...]:
    """Bright-line x bundle grid: 4 wavelengths x 2 bundles = 8 windows for every camera."""
    out = []
    for wave in DEFAULT_WINDOW_WAVES[camera]:
        for bundle in DEFAULT_WINDOW_BUNDLES:
            out.append(WindowSpec(name=f"w{wave:.0f}_b{bundle:02d}", wave=wave, bundle=bundle))
    return tuple(out)


def grid_waves(camera: str, rows: int = DEFAULT_GRID_ROWS, *, margin: int = 64) -> tuple[float, ...]:
    """Wavelengths (A, air) of the grid's rows: one GOOD lamp line (``arcray.instrument.arc_lines``
    of the camera's site) in each of ``rows`` bands of the rows its lines cover, the first and
    last bands being the outer ``END_BAND`` of that range, the others splitting the rest evenly.
    In each band the line of the highest relative intensity x ``exp(-2 (distance / half band)^2)``
    from the band's centre (from the range's end for the two end bands): bright lines, spread
    from the bluest to the reddest. A window centred on a line holds light: an arc has none
    between its lines."""
    import numpy as np

    from arcray.instrument import GEOMETRY, OBSERVATORY, arc_lines, row_of_wavelength

    nrow = GEOMETRY[camera].trimmed_shape[0]
    lines = [(float(row_of_wavelength(camera, ln.wave)), ln.wave, ln.intensity)
             for ln in arc_lines(OBSERVATORY[camera]) if ln.quality == "GOOD"]
    lines = sorted(ln for ln in lines if np.isfinite(ln[0]) and margin <= ln[0] <= nrow - margin)
    if rows < 1 or len(lines) < rows:
        return ()
    lo, hi = lines[0][0], lines[-1][0]
    cuts = np.concatenate([[0.0], np.linspace(END_BAND, 1 - END_BAND, rows - 1), [1.0]]) if rows > 1 else [0, 1]
    edges = lo + (hi - lo) * np.asarray(cuts)
    out = []
    for i in range(rows):
        band = [ln for ln in lines if edges[i] <= ln[0] <= edges[i + 1]]
        # aim: the band's centre, or its outer edge for the two end bands
        aim = lo if i == 0 else hi if i == rows - 1 else (edges[i] + edges[i + 1]) / 2
        half = max((edges[i + 1] - edges[i]) / 2, 1.0)
        best = max(band, key=lambda ln: ln[2] * np.exp(-2 * ((ln[0] - aim) / half) ** 2)) if band else min(
            lines, key=lambda ln: abs(ln[0] - aim))
        out.append(best[1])
    return tuple(out)


def grid_windows(camera: str, rows: int = DEFAULT_GRID_ROWS,
                 bundles: tuple[int, ...] = DEFAULT_GRID_BUNDLES) -> tuple[WindowSpec, ...]:
    """``rows`` x ``bundles`` windows spanning the detector, row-major, named
    ``grid_w<wave>_b<bb>``: rows on lamp lines from the bluest to the reddest (``grid_waves``),
    bundles from edge to edge (1 and 25 reach the first and last fiber): every amplifier
    quadrant and the corners of the illuminated detector are covered."""
    return tuple(WindowSpec(name=f"{GRID_PREFIX}w{w:.0f}_b{b:02d}", wave=w, bundle=b)
                 for w in grid_waves(camera, rows) for b in bundles)
