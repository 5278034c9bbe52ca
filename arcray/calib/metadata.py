"""Header metadata -> typed columns, driven by a per-observatory keyword table. Pure.

Columns are named exactly as the FITS keywords (``MC1TEMDN``, ``TAI-BEG``, ...) plus the
identity columns ``camera, expnum, mjd, flavor, hartmann, is_hartmann, is_subframe, observatory,
date_obs``. The dataset schema is the UNION over observatories, so APO and LCO frames share one
schema; a keyword that an observatory does not write is null there.

Value rules: numeric keywords become float64 (IDs int64); the string ``'NaN'``, a value of -999,
a non-numeric value or a missing keyword become null. Lamp keywords (``NE``, ``HGCD``, ``HEAR``,
``FF``: four ``0/1`` flags; ``FFS``: eight) become int8 = the number of flags set (lamps on /
screen petals closed); null when absent or unparseable. Unknown keywords are ignored.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import pyarrow as pa

from arcray.errors import InputError
from arcray.instrument import CAMERAS, OBSERVATORY

COMMON_FLOAT = ("EXPTIME", "REQTIME", "DARKTIME", "TAI-BEG", "RA", "DEC", "RADEG", "DECDEG", "SPA",
                "ALT", "AZ", "ROTPOS", "IPA", "FOCUS", "COLLA", "COLLB", "COLLC", "CCDTEMP",
                "LN2TEMP", "IONPUMP", "SEEING")
APO_FLOAT = ("MC1TEMDN", "MC1THT", "MC1TRCB", "MC1TRCT", "MC1TBCB", "MC1TBCT", "MC1HUMHT",
             "MC1HUMCO", "PRESSURE", "WINDD", "WINDS", "GUSTD", "GUSTS", "AIRTEMP", "DEWPOINT",
             "TRUSTEMP", "HUMIDITY", "DUSTA", "DUSTB", "M2PISTON", "M2XTILT", "M2YTILT")
LCO_FLOAT = ("B2CAMT", "B2CAMH", "R2CAMT", "R2CAMH", "COLLT", "COLLH", "SPECMT", "MECHORIX",
             "MECHORIY", "MECHORIZ", "T_OUT", "T_IN", "T_PRIM", "T_CELL", "T_FLOOR", "T_TRUSS",
             "AIRMASS", "HA")
ID_INT = ("CONFID", "DESIGNID", "FIELDID")
LAMPS = {"apo": ("NE", "HGCD", "FF", "FFS"), "lco": ("NE", "HEAR", "FF", "FFS")}

# The keyword table: which keywords each observatory's headers carry (static GAIN/RDNOISE at LCO
# are not measurements and are left out on purpose).
KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "apo": {"float": COMMON_FLOAT + APO_FLOAT, "int": ID_INT, "lamp": LAMPS["apo"]},
    "lco": {"float": COMMON_FLOAT + LCO_FLOAT, "int": ID_INT, "lamp": LAMPS["lco"]},
}
FLAVORS = {"arc", "flat", "science", "bias", "dark"}
LEGACY_FLAVOR = {"target": "science", "calibration": "arc"}
HARTMANN = {"out": "Out", "left": "Left", "right": "Right", "closed": "Closed"}
MISSING = -999


def _union(kind: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for table in KEYWORDS.values():
        seen.update(dict.fromkeys(table[kind]))
    return tuple(seen)


FLOAT_COLUMNS, INT_COLUMNS, LAMP_COLUMNS = _union("float"), _union("int"), _union("lamp")


def metadata_schema() -> pa.Schema:
    """Identity + keyword columns (the order in which they are written)."""
    fields = [pa.field("camera", pa.string()), pa.field("flavor", pa.string()), pa.field("mjd", pa.int32()),
              pa.field("expnum", pa.int64()), pa.field("observatory", pa.string()),
              pa.field("hartmann", pa.string()), pa.field("is_hartmann", pa.bool_()),
              pa.field("is_subframe", pa.bool_()), pa.field("date_obs", pa.timestamp("us"))]
    fields += [pa.field(k, pa.float64()) for k in FLOAT_COLUMNS]
    fields += [pa.field(k, pa.int64()) for k in INT_COLUMNS]
    fields += [pa.field(k, pa.int8()) for k in LAMP_COLUMNS]
    return pa.schema(fields)


def as_float(v: Any) -> float | None:
    """Header value -> float, or None for 'NaN', -999, non-numeric, missing, non-finite."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f) or f == MISSING:
        return None
    return f


def as_int(v: Any) -> int | None:
    f = as_float(v)
    return int(f) if f is not None and f == int(f) else None


def lamp_count(v: Any) -> int | None:
    """``'1 0 1 1'`` -> 3; None when not a string of 0/1 flags."""
    if not isinstance(v, str):
        return None
    flags = v.split()
    if not flags or any(f not in ("0", "1") for f in flags):
        return None
    return sum(f == "1" for f in flags)


def parse_date_obs(v: Any) -> datetime | None:
    if not isinstance(v, str) or not v.strip():
        return None
    try:
        return datetime.fromisoformat(v.strip().replace("Z", ""))
    except ValueError:
        return None


def camera_of(header: dict[str, Any], camera: str | None = None) -> str:
    cam = camera or str(header.get("CAMERAS") or "").strip()
    if cam not in CAMERAS:
        raise InputError(f"missing keywords: no known camera (CAMERAS={header.get('CAMERAS')!r})")
    return cam


def _flavor(header: dict[str, Any]) -> str:
    raw = str(header.get("FLAVOR") or "").strip().lower()
    flavor = LEGACY_FLAVOR.get(raw, raw)
    if flavor not in FLAVORS:
        raise InputError(f"missing keywords: FLAVOR={header.get('FLAVOR')!r} is not a known flavor")
    return flavor


def extract_metadata(header: dict[str, Any], *, camera: str | None = None,
                     expnum: int | None = None) -> dict[str, Any]:
    """One row of metadata (keys = ``metadata_schema().names``).

    ``camera``/``expnum`` from the file name win over the header (the file name is authoritative).
    Raises ``InputError`` when a required keyword (camera, FLAVOR, MJD, exposure number) is missing.
    """
    cam = camera_of(header, camera)
    obs = OBSERVATORY[cam]
    mjd = as_int(header.get("MJD"))
    exp = expnum if expnum is not None else as_int(header.get("EXPOSURE"))
    if mjd is None or exp is None:
        missing = [k for k, v in (("MJD", mjd), ("EXPOSURE", exp)) if v is None]
        raise InputError(f"missing keywords: {', '.join(missing)}")
    hart = HARTMANN.get(str(header.get("HARTMANN") or "").strip().lower())
    row: dict[str, Any] = {
        "camera": cam, "flavor": _flavor(header), "mjd": mjd, "expnum": int(exp), "observatory": obs,
        "hartmann": hart, "is_hartmann": hart in ("Left", "Right"),
        "is_subframe": bool(str(header.get("SUBFRAME") or "").strip()),
        "date_obs": parse_date_obs(header.get("DATE-OBS")),
    }
    table = KEYWORDS[obs]
    row.update({k: as_float(header.get(k)) if k in table["float"] else None for k in FLOAT_COLUMNS})
    row.update({k: as_int(header.get(k)) if k in table["int"] else None for k in INT_COLUMNS})
    row.update({k: lamp_count(header.get(k)) if k in table["lamp"] else None for k in LAMP_COLUMNS})
    return row


_NAME = re.compile(r"sdR-([br][12])-(\d{8})\.fit(?:\.gz)?$")


def parse_frame_name(path: str) -> tuple[str, int] | None:
    """``.../sdR-b1-00380717.fit.gz`` -> ``("b1", 380717)``; None if the name does not match."""
    m = _NAME.search(str(path))
    return (m.group(1), int(m.group(2))) if m else None
