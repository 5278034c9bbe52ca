"""Raw frames with a KNOWN answer, for tests and benchmarks (independent of ``arcray.sim``).

``make_raw_frame`` draws a full-size sdR frame (real geometry, real header keywords, uint16 ADU)
from a known electron image (Gaussian arc-line spots on chosen fibers and wavelengths), known
per-amp bias (ADU), gain (e-/ADU) and read noise (e-), seeded. ``fits_bytes``/``gzip_bytes``
write it in the real on-disk format. Nothing here is used by the pipeline itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from arcray.calib.reader import header_from_text
from arcray.instrument import (GEOMETRY, OBSERVATORY, RAW_SHAPE, SATURATION_ADU, SPLIT_COL,
                               example_header_text, fiber_x, row_of_wavelength)

DEFAULT_BIAS = (1012.0, 987.5, 1040.25, 1003.0)  # ADU, amps 0..3
LCO_ONLY = {"B2CAMT": 11.2, "B2CAMH": 7.5, "R2CAMT": 11.0, "R2CAMH": 8.1, "COLLT": 12.1, "COLLH": 6.0,
            "SPECMT": 11.6, "MECHORIX": 0.12, "MECHORIY": -0.3, "MECHORIZ": 0.05, "T_OUT": 14.2,
            "T_IN": 13.1, "T_PRIM": 12.9, "T_CELL": 13.0, "T_FLOOR": 12.5, "T_TRUSS": 12.8,
            "AIRMASS": 1.23, "HA": -0.4, "GAIN": 1.0, "RDNOISE": 2.7, "HEAR": "1 1 1 1"}
APO_ONLY_PREFIXES = ("MC1", "HGCD", "PRESSURE", "WIND", "GUST", "AIRTEMP", "DEWPOINT", "TRUSTEMP",
                     "HUMIDITY", "DUST")


@dataclass(frozen=True)
class KnownFrame:
    raw: np.ndarray  # uint16 [4224, 4352]
    header: dict[str, Any]
    truth_e: np.ndarray  # float32 electrons on the trimmed frame (before noise)
    bias_adu: tuple[float, float, float, float]
    gains: tuple[float, float, float, float]
    read_noise_e: float
    line_rows: tuple[float, ...]  # trimmed rows of the drawn lines


def make_header(camera: str, *, expnum: int, mjd: int = 60708, flavor: str = "arc",
                hartmann: str = "Out", **overrides: Any) -> dict[str, Any]:
    """A header with every real keyword of the observatory of ``camera`` (APO example as base)."""
    base = header_from_text(example_header_text())
    if OBSERVATORY[camera] == "lco":
        base = {k: v for k, v in base.items() if not k.startswith(APO_ONLY_PREFIXES)}
        base.update(LCO_ONLY)
        base["CARTID"] = "FPS-S"
        base["TELESCOP"] = "DUPONT"
    base.update(CAMERAS=camera, FILENAME=f"sdR-{camera}-{expnum:08d}.fit", EXPOSURE=expnum, MJD=mjd,
                FLAVOR=flavor, HARTMANN=hartmann)
    base.update(overrides)
    return base


def _spots(shape: tuple[int, int], rows, cols, amp_e: float, sigma: float) -> np.ndarray:
    img = np.zeros(shape, np.float32)
    h = int(np.ceil(4 * sigma))
    off = np.arange(-h, h + 1)
    for r in rows:
        for c in cols:
            r0, c0 = int(round(r)), int(round(c))
            gr = np.exp(-0.5 * ((r0 + off - r) / sigma) ** 2)
            gc = np.exp(-0.5 * ((c0 + off - c) / sigma) ** 2)
            rr = slice(max(r0 - h, 0), min(r0 + h + 1, shape[0]))
            cc = slice(max(c0 - h, 0), min(c0 + h + 1, shape[1]))
            stamp = amp_e * np.outer(gr, gc).astype(np.float32)
            img[rr, cc] += stamp[rr.start - (r0 - h):rr.stop - (r0 - h), cc.start - (c0 - h):cc.stop - (c0 - h)]
    return img


def make_raw_frame(camera: str = "b1", *, seed: int = 0, expnum: int = 380717, mjd: int = 60708,
                   waves: tuple[float, ...] | None = None, fibers: slice = slice(None, None, 7),
                   line_e: float = 20000.0, sigma: float = 1.0,
                   bias_adu: tuple[float, float, float, float] = DEFAULT_BIAS,
                   gains: tuple[float, float, float, float] | None = None, read_noise_e: float | None = None,
                   saturate_wave: float | None = None, subframe_rows: tuple[int, int] | None = None,
                   poisson: bool = False, header: dict[str, Any] | None = None) -> KnownFrame:
    """A full-size raw frame with known bias, gain, read noise and line positions.

    ``saturate_wave``: one extra line there, bright enough (1e6 e-) to hit ``SATURATION_ADU``.
    ``subframe_rows``: ``(first, last)`` 1-based inclusive raw rows read (APO Hartmann: 850, 1400);
    every other raw row is exactly zero and the SUBFRAME keywords are set.
    """
    from arcray.instrument import READ_NOISE_E, gains as gains_of

    rng = np.random.default_rng(seed)
    geo = GEOMETRY[camera]
    gains = tuple(gains or gains_of(camera, mjd))
    rn = READ_NOISE_E[camera] if read_noise_e is None else read_noise_e
    from arcray.calib.config import DEFAULT_WINDOW_WAVES

    waves = DEFAULT_WINDOW_WAVES[camera] if waves is None else waves
    rows = [float(r) for r in row_of_wavelength(camera, np.asarray(waves)) if np.isfinite(r)]
    truth = _spots(geo.trimmed_shape, rows, fiber_x(camera)[fibers], line_e, sigma)
    if saturate_wave is not None:
        r = float(row_of_wavelength(camera, saturate_wave))
        truth += _spots(geo.trimmed_shape, [r], fiber_x(camera)[100:101], 1e6, sigma)
    raw = np.empty(RAW_SHAPE, np.float32)
    for amp, g in zip(geo.amps, gains):
        half = slice(SPLIT_COL, None) if amp.amp % 2 else slice(0, SPLIT_COL)
        block = raw[amp.rows, half]
        block[...] = bias_adu[amp.amp] + rng.standard_normal(block.shape, dtype=np.float32) * (rn / g)
    for amp, g in zip(geo.amps, gains):
        sig = truth[amp.trim_rows, amp.trim_cols]
        if poisson:
            sig = sig + rng.standard_normal(sig.shape, dtype=np.float32) * np.sqrt(sig)
        raw[amp.rows, amp.cols] += sig / g
    # rows outside every amp's data rows (pre-rows) keep the left/right bias of the nearest amp
    raw[: geo.amps[0].rows.start] = bias_adu[0]
    raw[geo.amps[2].rows.stop:] = bias_adu[2]  # rows beyond the amps' data rows: plain bias
    adu = np.clip(np.rint(raw), 0, SATURATION_ADU).astype(np.uint16)
    hdr = make_header(camera, expnum=expnum, mjd=mjd, **(header or {}))
    if subframe_rows is not None:
        first, last = subframe_rows
        adu[: first - 1] = 0
        adu[last:] = 0
        hdr.update(SUBFRAME=f"{first} {last}", SUBFROW1=first, SUBFROWN=last)
    return KnownFrame(adu, hdr, truth, tuple(bias_adu), gains, rn, tuple(rows))


def _card(key: str, value: Any) -> str:
    if isinstance(value, bool):
        v = f"{'T' if value else 'F':>20}"
    elif isinstance(value, (int, np.integer)):
        v = f"{int(value):>20}"
    elif isinstance(value, float):
        v = f"{value!r:>20}"
    else:
        s = str(value).replace("'", "''")
        v = f"'{s:<8}'"
    return f"{key:<8}= {v}"[:80].ljust(80)


def fits_bytes(raw: np.ndarray, header: dict[str, Any]) -> bytes:
    """Uncompressed FITS bytes (BITPIX 16, BZERO 32768) of a uint16 frame and its header."""
    fixed = {"SIMPLE": True, "BITPIX": 16, "NAXIS": 2, "NAXIS1": raw.shape[1], "NAXIS2": raw.shape[0],
             "EXTEND": True, "BSCALE": 1, "BZERO": 32768}
    cards = [_card(k, v) for k, v in fixed.items()]
    cards += [_card(k, v) for k, v in header.items() if k not in fixed]
    cards.append("END".ljust(80))
    text = "".join(cards)
    text += " " * (-len(text) % 2880)
    data = (raw.astype(np.uint16) ^ np.uint16(0x8000)).astype(">u2").tobytes()
    return text.encode("ascii") + data + b"\0" * (-len(data) % 2880)


def gzip_bytes(data: bytes, level: int = 1) -> bytes:
    from isal import igzip

    return igzip.compress(data, compresslevel=level)
