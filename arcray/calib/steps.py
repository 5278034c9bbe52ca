"""Calibration verbs: overscan, trim, gain, masks. Pure numpy; inputs are never mutated.

Regions come from ``arcray.instrument.GEOMETRY`` (0-based numpy ``[row, col]``, end-exclusive).
Mask values are bit flags (``0`` = good, any non-zero = bad): ``SATURATED``, ``NOT_READ``,
``BAD_COLUMN``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arcray.instrument import AmpGeometry, CameraGeometry

SATURATED = np.uint8(1)  # raw value >= saturation (65535 ADU): value kept, pixel masked
NOT_READ = np.uint8(2)  # row not read out (sub-frame readout): value set to 0 e-, masked
BAD_COLUMN = np.uint8(4)  # known bad column of this camera


def _overscan_cols(amp: AmpGeometry, transient_cols: tuple[int, ...]) -> np.ndarray | slice:
    cols = amp.overscan_cols
    bad = [c for c in transient_cols if cols.start <= c < cols.stop]
    if not bad:
        return cols
    return np.setdiff1d(np.arange(cols.start, cols.stop), bad)


def robust_level(values: np.ndarray, *, axis: int | None = None, nsigma: float = 5.0) -> np.ndarray:
    """Clipped mean: mean of values within ``nsigma`` robust sigmas (1.4826 MAD, >= 1 ADU) of the
    median. Sub-ADU precise (a plain median of integer ADU is quantised) and immune to cosmics."""
    v = values.astype(np.float32)
    med = np.median(v, axis=axis, keepdims=True)
    dev = np.abs(v - med)
    sigma = max(1.4826 * float(np.median(dev)), 1.0)
    keep = dev <= nsigma * sigma
    total = np.where(keep, v, 0).sum(axis=axis, keepdims=True, dtype=np.float64)
    n = keep.sum(axis=axis, keepdims=True)
    return np.where(n > 0, total / np.maximum(n, 1), med).astype(np.float32)


def robust_level_uint16(values: np.ndarray, *, nsigma: float = 5.0) -> float:
    """``robust_level`` of a block of uint16 ADU via its histogram (exact, ~50x faster)."""
    hist = np.bincount(values.ravel(), minlength=1)
    cum = np.cumsum(hist)
    half = cum[-1] / 2.0
    med_lo = int(np.searchsorted(cum, half, side="left"))
    med_hi = int(np.searchsorted(cum, half, side="right"))
    med = 0.5 * (med_lo + med_hi) if cum[-1] % 2 == 0 and cum[med_lo] == half else float(med_lo)
    vals = np.arange(hist.size, dtype=np.float64)
    nz = hist > 0
    dev, w = np.abs(vals[nz] - med), hist[nz]
    order = np.argsort(dev)
    cdev = np.cumsum(w[order])
    mad = dev[order][int(np.searchsorted(cdev, cdev[-1] / 2.0))]
    sigma = max(1.4826 * float(mad), 1.0)
    keep = dev <= nsigma * sigma
    return float((vals[nz][keep] * w[keep]).sum() / w[keep].sum())


def bias_level(raw: np.ndarray, amp: AmpGeometry, *, method: str = "median",
               read_rows: np.ndarray | None = None, transient_cols: tuple[int, ...] = ()) -> np.ndarray:
    """Bias (ADU) of ``amp`` from its overscan columns, over rows that were read.

    ``median``: one robust level (``robust_level``: clipped mean around the median) per amp,
    shape ``(1, 1)``; ``row``: one robust level per row, shape ``(nrows, 1)`` (0 for rows not
    read). ``read_rows``: bool per raw row (None = all read).
    """
    os_block = raw[amp.rows, _overscan_cols(amp, transient_cols)]
    ok = np.ones(os_block.shape[0], bool) if read_rows is None else read_rows[amp.rows]
    if method == "median":
        if not ok.any():
            level = 0.0
        elif os_block.dtype == np.uint16:
            level = robust_level_uint16(os_block[ok])
        else:
            level = float(robust_level(os_block[ok]).item())
        return np.full((1, 1), level, np.float32)
    if method == "row":
        per_row = np.zeros(os_block.shape[0], np.float32)
        if ok.any():
            per_row[ok] = robust_level(os_block[ok], axis=1)[:, 0]
        return per_row[:, None]
    raise ValueError(f"unknown overscan method {method!r} (median|row)")


def subtract_overscan(data: np.ndarray, amp_geometry: AmpGeometry, *, method: str = "median",
                      read_rows: np.ndarray | None = None, transient_cols: tuple[int, ...] = (),
                      out: np.ndarray | None = None) -> np.ndarray:
    """The data region of ``amp_geometry`` minus its overscan bias, float32 ADU (a new array,
    or ``out``)."""
    bias = bias_level(data, amp_geometry, method=method, read_rows=read_rows,
                      transient_cols=transient_cols)
    region = data[amp_geometry.rows, amp_geometry.cols]
    return np.subtract(region, bias, out=out, dtype=np.float32, casting="unsafe")


def apply_gain(adu: np.ndarray, gain: float, *, out: np.ndarray | None = None) -> np.ndarray:
    """ADU -> electrons (``gain`` in e-/ADU), float32."""
    return np.multiply(adu, np.float32(gain), out=out, dtype=np.float32, casting="unsafe")


def trim(data: np.ndarray, geometry: CameraGeometry) -> np.ndarray:
    """The four amps' data regions assembled into the trimmed image (same dtype, a new array)."""
    out = np.empty(geometry.trimmed_shape, data.dtype)
    for amp in geometry.amps:
        out[amp.trim_rows, amp.trim_cols] = data[amp.rows, amp.cols]
    return out


def _int(header: dict[str, Any], key: str) -> int | None:
    v = header.get(key)
    if isinstance(v, bool) or v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def unread_rows(raw: np.ndarray, header: dict[str, Any], geometry: CameraGeometry) -> np.ndarray:
    """Bool per raw row: True where the row was not read (sub-frame readout).

    Union of (a) rows outside ``SUBFROW1..SUBFROWN`` (1-based, inclusive raw rows) when the header
    declares a sub-frame, and (b) rows that are exactly zero (bias is never 0 on a read row).
    """
    nrow = raw.shape[0]
    unread = np.zeros(nrow, bool)
    first, last = _int(header, "SUBFROW1"), _int(header, "SUBFROWN")
    if str(header.get("SUBFRAME") or "").strip() and first and last and 1 <= first <= last:
        unread[: first - 1] = True
        unread[last:] = True
    os_left, os_right = geometry.amps[0].overscan_cols, geometry.amps[1].overscan_cols
    candidates = ~(raw[:, os_left].any(axis=1) | raw[:, os_right].any(axis=1))
    idx = np.flatnonzero(candidates)
    if idx.size:
        zero = ~raw[idx].any(axis=1)
        unread[idx[zero]] = True
    return unread


def frame_mask(raw: np.ndarray, geometry: CameraGeometry, *, saturation_adu: int,
               unread: np.ndarray, bad_columns: tuple[int, ...] = ()) -> np.ndarray:
    """uint8 bit-flag mask on the trimmed frame (see module docstring)."""
    mask = np.empty(geometry.trimmed_shape, np.uint8)
    for amp in geometry.amps:
        region = raw[amp.rows, amp.cols]
        m = mask[amp.trim_rows, amp.trim_cols]
        np.greater_equal(region, min(saturation_adu, 65535), out=m.view(bool))
        rows = unread[amp.rows]
        if rows.any():
            m[rows] |= NOT_READ
        for c in bad_columns:
            if amp.cols.start <= c < amp.cols.stop:
                m[:, c - amp.cols.start] |= BAD_COLUMN
    return mask
