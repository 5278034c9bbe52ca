"""The measurement's artefacts: each frame's (``write_measurement``, called by the calibrate stage's
workers while the frame is in memory) and the night pass over them (``run_measure``).

Calibration measures each frame alone (``Layout.measured_row`` / ``measured_lines`` /
``measured_traces``). ``run_measure`` then, one (camera, night) at a time:

1. chooses the night's reference arc (``measure.reference.choose_reference``: the first good arc,
   ``is_good_reference``, or one given in ``references``);
2. fits every arc of the night against it from their per-line tables, as arc2trace does
   (``measure.reference.reference_fit``: the ``ref_*`` columns);
3. adds the housekeeping a reader of the table wants beside the QA (``CONTEXT_COLUMNS``: time,
   spectrograph temperatures, telescope position, collimator), read from the calibrated dataset's
   metadata columns only;

and writes one table of every frame (``Layout.measured_frames``, sorted by camera, MJD,
exposure: a rerun writes the same rows; a run restricted to some cameras or nights replaces their
rows and keeps the others) and, on request, the same as a FITS binary table with
units for IDL/Python BOSS tools (``Layout.measured_frames_fits``). Only one night's line tables
are in memory at a time. Frames whose measurement failed in calibration are rows with their
reason; the summary counts them as failed items.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from arcray.errors import InputError
from arcray.io import atomic_write_bytes, atomic_write_parquet, exists, list_files, provenance, read_bytes
from arcray.measure.calibrated import FAILED_PREFIX
from arcray.measure.config import MeasureConfig
from arcray.measure.reference import ReferenceArc, choose_reference, reference_fit
from arcray.measure.schema import FRAME_SCHEMA
from arcray.paths import Layout
from arcray.stages import StageSummary

log = logging.getLogger(__name__)

# Housekeeping joined from the calibrated metadata (names as the FITS keywords; null where an
# observatory does not write one).
CONTEXT_COLUMNS = ("date_obs", "TAI-BEG", "MC1TEMDN", "MC1THT", "B2CAMT", "R2CAMT", "ALT", "ROTPOS",
                   "COLLA", "COLLB", "COLLC", "HUMIDITY")
_LINE_COLUMNS = ["camera", "mjd", "expnum", "fiber", "line", "x_nom", "y_nom", "x", "y", "x_err", "y_err", "used"]


@dataclass(frozen=True)
class MeasureSummary(StageSummary):
    """``n_ok`` frames measured, ``n_failed`` frames whose measurement failed; ``status``: counts of
    green / yellow / red over the measured frames; ``references``: (camera, mjd) -> expnum."""

    status: dict[str, int] = field(default_factory=dict)
    references: dict[tuple[str, int], int | None] = field(default_factory=dict)


# -- one frame's measurement, written by the calibrate stage's workers ------------------------
def write_measurement(layout: Layout, m, config) -> str:
    """Write one frame's measurement (``FrameMeasurement``) atomically; the per-frame row last, so it
    marks a complete measurement. A lines/traces table left from an earlier run of the same frame
    that this run did not produce is removed. Returns the row's ``qa`` status word."""
    from arcray.io import remove
    from arcray.measure.schema import LINE_SCHEMA, TRACE_SCHEMA

    r = m.frame
    key = (r["camera"], r["mjd"], r["expnum"])
    prov = provenance(config.config_hash(), ["measure"], limits_version=r.get("limits_version"),
                      config=config.to_json_dict())
    for table, path, schema in ((m.lines, layout.measured_lines(*key), LINE_SCHEMA),
                                (m.traces, layout.measured_traces(*key), TRACE_SCHEMA)):
        if table is None:
            remove(path)
        else:  # lz4 without dictionaries: 4 ms against snappy's 15 ms for an arc's ~17,000 rows
            atomic_write_parquet(path, pa.table(table, schema=schema), prov, compression="lz4", use_dictionary=False)
    atomic_write_parquet(layout.measured_row(r["camera"], r["flavor"], r["mjd"], r["expnum"]),
                         pa.Table.from_pylist([r], schema=FRAME_SCHEMA), prov)
    return qa_word(r)


def qa_word(r: dict) -> str:
    """A frame row's status word for the calibrate summary: its light, or why it has none."""
    if r["measured"]:
        return str(r["status"])
    return "measurement failed" if str(r["reason"] or "").startswith(FAILED_PREFIX) else "not measured"


def _read_rows(layout: Layout, cameras: Iterable[str] | None, mjds: Iterable[int] | None) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    files = list_files(layout.measured_rows, ".parquet")
    cams = set(cameras) if cameras else None
    nights = {int(m) for m in mjds} if mjds else None
    rows = []
    for f in files:
        parts = dict(p.split("=", 1) for p in f.replace("\\", "/").split("/") if "=" in p)
        if cams is not None and parts.get("camera") not in cams:
            continue
        if nights is not None and int(parts.get("mjd", -1)) not in nights:
            continue
        rows += pq.read_table(pa.BufferReader(read_bytes(f)), schema=FRAME_SCHEMA).to_pylist()
    return rows


def _read(path: str, columns: list[str]) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    t = pq.read_table(pa.BufferReader(read_bytes(path)), columns=columns)
    return {c: t.column(c).to_numpy(zero_copy_only=False) for c in columns}


def _night_references(layout: Layout, night: list[dict[str, Any]], config: MeasureConfig,
                      expnum: int | None) -> int | None:
    """Fit every arc of one (camera, night) against its reference arc, in place; the reference's expnum."""
    ref_row = choose_reference(night, expnum)
    if ref_row is None:
        return None
    cam, mjd = ref_row["camera"], int(ref_row["mjd"])
    path = layout.measured_lines(cam, mjd, int(ref_row["expnum"]))
    if not exists(path):
        raise InputError(f"reference arc {cam} {mjd}/{ref_row['expnum']}: its line table {path} is missing")
    reference = ReferenceArc.from_lines(_read(path, _LINE_COLUMNS))
    for row in night:
        if row["flavor"] != "arc" or not row["measured"]:
            continue
        lines_path = layout.measured_lines(cam, mjd, int(row["expnum"]))
        if not exists(lines_path):
            continue
        row.update(reference_fit(_read(lines_path, _LINE_COLUMNS), reference, config))
    return int(reference.expnum)


def _context(layout: Layout, keys: set[tuple[str, int, int]]) -> dict[tuple[str, int, int], dict[str, Any]]:
    """``CONTEXT_COLUMNS`` of the calibrated frames (metadata columns only: no tensors are read)."""
    from arcray.calib.table import open_calibrated, read_calibrated_columns

    if not keys or not exists(layout.calibrated):
        return {}
    names = set(open_calibrated(layout.calibrated).schema.names)
    cols = ["camera", "mjd", "expnum"] + [c for c in CONTEXT_COLUMNS if c in names]
    out = {}
    for r in read_calibrated_columns(layout.calibrated, cols).to_pylist():
        k = (str(r["camera"]), int(r["mjd"]), int(r["expnum"]))
        if k in keys:
            out[k] = r
    return out


def frames_table(rows: list[dict[str, Any]], context: Mapping[tuple[str, int, int], Mapping[str, Any]]) -> pa.Table:
    """``FRAME_SCHEMA`` rows + ``CONTEXT_COLUMNS``, sorted by camera, MJD, exposure."""
    rows = sorted(rows, key=lambda r: (r["camera"], int(r["mjd"]), int(r["expnum"])))
    table = pa.Table.from_pylist(rows, schema=FRAME_SCHEMA)
    for c in CONTEXT_COLUMNS:
        typ = pa.timestamp("us") if c == "date_obs" else pa.float64()
        vals = [context.get((r["camera"], int(r["mjd"]), int(r["expnum"])), {}).get(c) for r in rows]
        table = table.append_column(pa.field(c, typ, metadata={"unit": "" if c == "date_obs" else "header",
                                                                 "doc": f"header {c} (calibrated metadata)"}),
                                    pa.array(vals, type=typ))
    return table


def _same_schema(layout: Layout) -> bool:
    """True when the existing night table (if any) has this version's columns (a partial pass can
    then keep its other rows; otherwise every night is redone, so no row is lost or half-filled)."""
    import pyarrow.parquet as pq

    if not exists(layout.measured_frames):
        return True
    names = pq.read_schema(pa.BufferReader(read_bytes(layout.measured_frames))).names
    return names == [f.name for f in FRAME_SCHEMA] + list(CONTEXT_COLUMNS)


def _merged(layout: Layout, table: pa.Table, cameras, mjds) -> pa.Table:
    """With a selection (``cameras`` / ``mjds``), the rows of the existing table outside it are kept,
    so a night's pass (``arcray night``) updates its own rows only; sorted as ``frames_table``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not (cameras or mjds) or not exists(layout.measured_frames):
        return table
    old = pq.read_table(pa.BufferReader(read_bytes(layout.measured_frames)))
    mask = pa.array([True] * old.num_rows)
    if cameras:
        mask = pc.and_(mask, pc.is_in(old.column("camera"), pa.array(list(cameras))))
    if mjds:
        mask = pc.and_(mask, pc.is_in(old.column("mjd"), pa.array([int(m) for m in mjds], pa.int32())))
    keep = old.filter(pc.invert(mask)).cast(table.schema)
    both = pa.concat_tables([keep, table])
    return both.sort_by([("camera", "ascending"), ("mjd", "ascending"), ("expnum", "ascending")])


def fits_bytes(table: pa.Table) -> bytes:
    """The table as a FITS file (primary HDU + one BINTABLE ``MEASURE`` with TUNITs; nulls are NaN
    for floats, -1 for integers, '' for strings; timestamps as ISO strings)."""
    import io

    from astropy.io import fits

    cols = []
    for f in table.schema:
        arr = table.column(f.name)
        unit = (f.metadata or {}).get(b"unit", b"").decode() or None
        unit = None if unit == "header" else unit
        if pa.types.is_string(f.type) or pa.types.is_timestamp(f.type):
            vals = ["" if v is None else (v.isoformat() if hasattr(v, "isoformat") else str(v)) for v in arr.to_pylist()]
            width = max([1] + [len(v) for v in vals])
            cols.append(fits.Column(name=f.name, format=f"{width}A", array=np.array(vals, dtype=f"U{width}")))
        elif pa.types.is_boolean(f.type):
            cols.append(fits.Column(name=f.name, format="L", array=np.array(arr.fill_null(False).to_pylist(), bool)))
        elif pa.types.is_integer(f.type):
            vals = np.array(arr.fill_null(-1).to_pylist(), np.int64)
            cols.append(fits.Column(name=f.name, format="K", array=vals, null=-1, unit=unit))
        else:
            vals = np.array([np.nan if v is None else v for v in arr.to_pylist()], np.float64)
            cols.append(fits.Column(name=f.name, format="D", array=vals, unit=unit))
    hdu = fits.BinTableHDU.from_columns(cols, name="MEASURE")
    hdu.header["ORIGIN"] = "arcray measure"
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()


def run_measure(root: str, *, cameras: Iterable[str] | None = None, mjds: Iterable[int] | None = None,
                config: MeasureConfig | None = None, references: Mapping[tuple[str, int], int] | None = None,
                export_fits: bool = False, progress: Callable[..., None] | None = None) -> MeasureSummary:
    """The night pass (module docstring) over every measured frame of ``cameras`` / ``mjds``."""
    t0 = time.perf_counter()
    config = config or MeasureConfig()
    layout = Layout(root)
    if (cameras or mjds) and not _same_schema(layout):
        log.info("%s was written with other columns: rebuilding it for every night", layout.measured_frames)
        cameras = mjds = None
    rows = _read_rows(layout, cameras, mjds)
    if not rows:
        raise InputError(f"no measured frames under {layout.measured_rows}: run `arcray calibrate` first "
                         "(it measures every frame)")
    nights: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        nights.setdefault((r["camera"], int(r["mjd"])), []).append(r)
    refs: dict[tuple[str, int], int | None] = {}
    for key in sorted(nights):
        try:
            refs[key] = _night_references(layout, nights[key], config, (references or {}).get(key))
        except ValueError as exc:
            raise InputError(f"{key[0]} night {key[1]}: {exc}") from None
        if progress is not None:
            progress(1)
    context = _context(layout, {(r["camera"], int(r["mjd"]), int(r["expnum"])) for r in rows})
    table = _merged(layout, frames_table(rows, context), cameras, mjds)
    prov = provenance(config.config_hash(), ["measure", "reference_fit"],
                      references={f"{c}/{m}": e for (c, m), e in refs.items()})
    atomic_write_parquet(layout.measured_frames, table, prov)
    outputs = {"frames": layout.measured_frames}
    if export_fits:
        atomic_write_bytes(layout.measured_frames_fits, fits_bytes(table))
        outputs["fits"] = layout.measured_frames_fits
    measured = [r for r in rows if r["measured"]]
    failed = [r for r in rows if not r["measured"] and str(r["reason"] or "").startswith(FAILED_PREFIX)]
    for r in failed:
        log.warning("measurement failed %s %s/%s: %s", r["camera"], r["mjd"], r["expnum"], r["reason"])
    status = {s: sum(r["status"] == s for r in measured) for s in ("green", "yellow", "red")}
    notes = (", ".join(f"{n} {s}" for s, n in status.items()),
             f"{sum(e is not None for e in refs.values())}/{len(refs)} nights with a reference arc")
    return MeasureSummary(stage="measure", n_ok=len(measured), n_failed=len(failed), seconds=time.perf_counter() - t0,
                          unit="frames", failures=layout.measured_frames if failed else None, outputs=outputs,
                          notes=notes, status=status, references=refs)
