"""Typed configuration of the measurement stage (lines of arcs, traces of flats, BOSS QA).

Every field states its unit. Defaults follow the BOSS pipeline where it has a number (arc2trace's
1 px rejection, fitarcimage's unblended lines, quickwave's central fibers and rows, lampfit's
10 px template smoothing and 3000-count cap); the rest are arcray choices, explained where set.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from arcray.config import StageConfig


class QAReference(BaseModel):
    """A dated reference exposure for ``w_shift`` and ``fratio`` (BOSS_log.py's ``type_ref_point``).

    It applies to frames of ``camera`` and ``flavor`` from ``mjd`` on, until a later reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    camera: str = Field(description="Camera (b1, r1, b2, r2).")
    flavor: str = Field(description="'arc' or 'flat'.")
    mjd: int = Field(description="First MJD this reference applies to (the reference night).")
    expnum: int = Field(description="Exposure number of the reference frame (provenance).")
    exptime: float = Field(gt=0, description="Exposure time of the reference frame, s.")
    median_flux: float | None = Field(
        None, gt=0, description="Reference median flux: arcs, median measured line flux (e-); flats, "
                                "median trace flux per row (e-). None: no fratio from this reference.")
    wavemid: float | None = Field(None, description="Reference WAVEMID (arcs), A. None: no w_shift from it.")


class MeasureConfig(StageConfig):
    """Measurement of the calibration state on every arc and flat (``arcray.measure``)."""

    max_shift_px: int = Field(
        8, ge=1, le=40, description="Largest global shift searched by cross-correlation, px (both axes).")
    qualities: tuple[str, ...] = Field(
        ("GOOD",), description="Line-list qualities measured (fitarcimage uses unblended lines only).")
    isolation_px: float = Field(
        6.0, ge=0, description="A line is measured only if no listed line brighter than "
                               "isolation_ratio times it lies closer than this along rows, px.")
    isolation_ratio: float = Field(0.01, ge=0, description="See isolation_px (ratio of line-list intensities).")
    neighbour_line_px: float = Field(
        11.0, ge=0, description="Listed lines closer than this (but beyond isolation_px) are modelled as "
                                "extra components of the line's row profile, px.")
    edge_margin_px: float = Field(
        14.0, ge=0, description="Lines nominally closer than this to the bottom or top row are skipped, px.")
    stamp_half_rows: int = Field(4, ge=2, le=12, description="Half height of a line stamp, px (9 rows).")
    stamp_half_cols: int = Field(4, ge=2, le=8, description="Half width of a line or trace stamp, px (9 columns).")
    xprofile_half_rows: int = Field(
        3, ge=0, description="Rows each side of a line summed into its cross-dispersion (x) profile, px.")
    yprofile_half_cols: int = Field(
        2, ge=0, description="Columns each side of a trace summed into a line's row (y) profile, px.")
    core_px: float = Field(
        2.0, ge=0, description="A masked pixel this close to a predicted centre (both axes) excludes the "
                               "line or trace point (flag SATURATED or MASKED), px.")
    sigma_guess_px: float = Field(1.1, gt=0, description="Starting width of the fits, px.")
    sigma_bounds_px: tuple[float, float] = Field(
        (0.5, 3.0), description="Widths a fit may take; a fit at a bound is not converged, px.")
    pilot_stride: int = Field(
        20, ge=1, description="Every pilot_stride-th fiber is fitted first from the nominal model; the "
                             "field fitted to those starts every other fit (1 Gauss-Newton step suffices).")
    iterations: int = Field(6, ge=1, description="Most Gauss-Newton steps per fit.")
    converge_px: float = Field(
        0.03, gt=0, description="A fit stops after a Gauss-Newton step whose centre and width changes are "
                                "both below this, px (the step's own error is ~its square: 0.001 px).")
    min_snr: float = Field(10.0, ge=0, description="Lines (or trace points) below this flux S/N are not used.")
    pilot_offset_px: float = Field(
        1.5, gt=0, description="A pilot centre farther than this from the nominal model + global shift is "
                               "left out of the pilot's fields, px (the field terms reach ~0.5 px beyond the shift).")
    max_offset_px: float = Field(
        0.5, gt=0, description="A centre farther than this from its prediction (nominal model + global "
                               "shift + pilot field) is flagged OFFSET and not used: another line or "
                               "fiber, not this one (misidentification), px.")
    max_width_dev_px: float = Field(
        0.3, gt=0, description="A width farther than this from the pilot's width field is flagged WIDTH "
                               "and not used (a fit to noise or to a neighbour), px.")
    min_field_points: int = Field(
        100, ge=8, description="Fewest used points for a field fit; fewer (no light, no lamp) leave the "
                               "field null.")
    read_noise_e: float | None = Field(
        None, ge=0, description="Read noise per pixel, e-; None = arcray.instrument.READ_NOISE_E[camera].")
    reject_px: float = Field(
        1.0, gt=0, description="Field fits drop points whose residual exceeds this on either axis "
                               "(arc2trace), then refit, px.")
    clip_sigma: float = Field(
        5.0, gt=0, description="...and points beyond this many robust standard deviations of the residuals.")
    fit_rounds: int = Field(3, ge=1, description="Rejection rounds of the field fits.")
    position_floor_px: float = Field(
        0.01, ge=0, description="Added in quadrature to centroid errors when weighting the field fits, px.")
    nlamps_fiber_fraction: float = Field(
        0.5, ge=0, le=1, description="A lamp line counts in NLAMPS when used on at least this fraction "
                                     "of the camera's alive fibers.")
    bestcorr_fwhm_px: float = Field(
        10.0, gt=0, description="FWHM of the smoothing of spectrum and template for BESTCORR, px (lampfit).")
    bestcorr_cap_e: float = Field(3000.0, gt=0, description="Spectrum capped here for BESTCORR, e- (lampfit).")
    flat_rows: int = Field(16, ge=2, description="Rows per fiber at which flat traces are measured.")
    flat_half_rows: int = Field(4, ge=0, description="Rows each side summed into a flat trace profile, px.")
    good_fiber_flux_fraction: float = Field(
        0.2, ge=0, le=1, description="A flat trace point fainter than this fraction of the median over "
                                     "fibers at its row is flagged FAINT (dead or vignetted fiber).")
    good_fiber_rows_fraction: float = Field(
        0.5, ge=0, le=1, description="A fiber counts in NGOODFIBER when used at this fraction of its rows.")
    references: tuple[QAReference, ...] = Field(
        (), description="Dated reference exposures for w_shift and fratio; without one, w_shift is "
                        "against the nominal instrument model and fratio is null.")
    limits_file: str | None = Field(
        None, description="TOML QA limits file; None = the packaged arcray/data/boss-qa-limits-v1.toml.")

    def reference_for(self, camera: str, flavor: str, mjd: int) -> QAReference | None:
        """The latest reference of ``camera``/``flavor`` whose MJD is <= ``mjd`` (None: none)."""
        best = None
        for ref in self.references:
            if ref.camera == camera and ref.flavor == flavor and ref.mjd <= mjd:
                if best is None or ref.mjd >= best.mjd:
                    best = ref
        return best
