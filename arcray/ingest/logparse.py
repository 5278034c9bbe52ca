"""Parse the sloan-25mlog text archive: mbox -> messages -> sections -> BOSS exposure rows.

Pure: text in, records out (no I/O, no Ray). Written against the real formats of
``shared/spec/boss-formats.md`` section 3; messages and sections come from ``arcray.ingest.mbox``
(which also drops quoted ``>`` text, so tables quoted in replies are ignored):

- only the ``BOSS Data Summary`` section is read;
- the BOSS table comes in four layouts (``sloan_log``, ``list``, and the two of idlspec2d
  ``BOSS_log.py``: ``sos``, its default, and ``sos_long``, its ``--long`` form), each recognised by
  its header line; rows are matched against that layout only;
- the SOS layouts are pandas ``to_string`` tables: every column (header and values) is
  right-aligned, so a column's values lie between the end of the previous header name and the end of
  its own (values may hold spaces: ``Sat Dec  2 13:04:55 2023``, ``1 1 1 1``); the first character
  of the header (the index column's) is replaced by ``n``; columns are found by name, so an added
  column (``SN2_15`` in later versions) changes nothing;
- ``sos``: one row per exposure, ``Filename`` the 8-digit exposure, ``CCD`` the blue and red cameras
  joined by a comma with ``-`` for a missing file (``b1,r1``, ``-,r1``); ``sos_long``: one row per
  camera file, ``Filename`` = ``sdR-<cam>-<expnum>.fit.gz`` (rows of one exposure are merged);
- SOS flavours are lower case (``sci``, and ``hart`` for any frame whose Hartmann doors were not
  ``Out``): ``hart`` with ``Hrt`` ``L``/``R`` is a Hartmann arc; ``hart`` with closed doors and no
  arc lamp lit (``lamps`` ``FF,NE,HGCD`` counts, or the ``NE``/``HGCD``/``HEAR`` flags of the long
  form) is a dark (exposure time > 0) or a bias;
- a BOSS section without a recognisable table, and a row-like line that does not parse, become a
  warning naming the message; never a silent skip;
- reposts of a night: the latest message (by ``Date:``, then archive order) wins;
- Hartmann frames are kept with ``is_hartmann=True``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from arcray.ingest.mbox import Message, Section, archive_text, split_messages, split_sections
from arcray.instrument import OBSERVATORY

log = logging.getLogger(__name__)

BOSS_TITLE = "boss data summary"
LAYOUTS = ("sloan_log", "list", "sos", "sos_long")
DEFAULT_CAMERAS = {"apo": ("b1", "r1"), "lco": ("b2", "r2")}

_MJD_PATH = re.compile(r"/data/spectro/(?:[a-z]+/)?(\d{5})\b")

_SLOAN_ROW = re.compile(
    r"^\s*(?P<mjd>\d{5})\s+(?P<utc>\d{1,2}:\d\d:\d\d)\s+(?P<fdc>-?\d+\s*-\s*-?\d+\s*-\s*-?\d+)\s+"
    r"(?P<exp>\d{8})\s+(?P<type>[A-Za-z]+)\s+(?P<sos>[\w-]+)\s+(?P<etime>\d+(?:\.\d*)?)"
    r"(?:\s+(?P<hart>[A-Za-z]+))?\s*$")
_LIST_ROW = re.compile(
    r"^\s*(?P<n>\d+)\s+(?P<time>\d{1,2}:\d\d(?::\d\d)?)\s+(?P<cam>[br][12])-(?P<exp>\d{8})\s+"
    r"(?P<cart>\S+)\s+(?P<plt>\S+)\s+(?P<flav>[a-z]{3})\s+(?P<hrt>[A-Za-z]{3})\s+"
    r"(?P<etime>\d+(?:\.\d*)?)\s+(?P<ca>-?\d+)\s+(?P<cb>-?\d+)\s+(?P<cc>-?\d+)(?:\s+(?P<hart>HART))?\s*$")
_SOS_FILE = re.compile(r"^sdR-(?P<cam>[br][12])-(?P<exp>\d{8})\.fits?(?:\.gz)?$")
_SOS_CCD = re.compile(r"^(?P<blue>-|[br][12]),(?P<red>-|[br][12])$")
_ROW_LIKE = re.compile(r"^\s*\d.*(?:(?<![\d.])\d{8}(?![\d.])|-\d{8}\.fit)")

_FLAVOR = {
    "arc": "arc", "flat": "flat", "fla": "flat", "science": "science", "sci": "science",
    "target": "science", "bias": "bias", "bia": "bias", "dark": "dark", "dar": "dark",
    "hart": "arc",
}
_HARTMANN = {"out": "Out", "open": "Out", "left": "Left", "lef": "Left", "l": "Left",
             "right": "Right", "rig": "Right", "r": "Right", "closed": "Closed", "clo": "Closed",
             "both": "Closed"}


@dataclass(frozen=True)
class BossRow:
    """One exposure listed in a BOSS table (camera rows of the list/SOS layouts merged)."""

    mjd: int
    expnum: int
    observatory: str
    flavor: str
    hartmann: str | None
    is_hartmann: bool
    exptime: float | None
    cameras: tuple[str, ...]
    layout: str
    msg_date: datetime | None
    subject: str
    message_id: str = ""
    msg_index: int = 0
    month: str = ""


@dataclass
class ParseResult:
    rows: list[BossRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_messages: int = 0


# -- BOSS tables ---------------------------------------------------------------------------

def detect_layout(line: str) -> str | None:
    """The layout whose table header ``line`` is, else None."""
    low = line.lower()
    if "field-design-config" in low and "exposure" in low:
        return "sloan_log"
    tokens = line.split()
    if "Filename" in tokens and "CCD" in tokens:
        if "Flav" in tokens:
            return "sos"
        if "flavor" in tokens:
            return "sos_long"
    if re.match(r"^\s*n\s+time\s+filename\s", line) and "flav" in tokens:
        return "list"
    return None


def _flavor_hartmann(flav: str, hrt: str | None, hart_marker: bool) -> tuple[str | None, str | None, bool]:
    flavor = _FLAVOR.get(flav.lower())
    hartmann = _HARTMANN.get(hrt.lower()) if hrt else None
    is_h = hart_marker or flav.lower() == "hart" or hartmann in ("Left", "Right")
    return flavor, hartmann, is_h


def _float(s: str | None) -> float | None:
    try:
        return float(s) if s is not None else None
    except ValueError:
        return None


def _row_sloan(line: str, mjd_hint: int | None, header: str) -> dict | None:
    m = _SLOAN_ROW.match(line)
    if not m:
        return None
    flavor, hartmann, is_h = _flavor_hartmann(m["type"], m["hart"], m["type"].lower() == "hart")
    cams = tuple(sorted(c for c in re.split(r"[-,]", m["sos"]) if re.fullmatch(r"[br][12]", c)))
    return dict(mjd=int(m["mjd"]), expnum=int(m["exp"]), flav_raw=m["type"], flavor=flavor,
                hartmann=hartmann, is_hartmann=is_h, exptime=_float(m["etime"]), cameras=cams)


def _row_list(line: str, mjd_hint: int | None, header: str) -> dict | None:
    m = _LIST_ROW.match(line)
    if not m:
        return None
    flavor, hartmann, is_h = _flavor_hartmann(m["flav"], m["hrt"], bool(m["hart"]))
    return dict(mjd=mjd_hint, expnum=int(m["exp"]), flav_raw=m["flav"], flavor=flavor,
                hartmann=hartmann, is_hartmann=is_h, exptime=_float(m["etime"]), cameras=(m["cam"],))


def _spans(header: str) -> list[tuple[str, int, int]]:
    """``(name, start, end)`` of each column of a right-aligned pandas header line: a column's
    values end where its name ends and start after the previous name (the index marker ``n`` or
    the header's leading blanks excluded)."""
    toks = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", header)]
    if toks and toks[0][0] == "n" and header[:toks[0][1]].strip() == "":
        toks = toks[1:]
    out, prev = [], 0
    for name, _, end in toks:
        out.append((name, prev, end))
        prev = end
    return out


def _sos_cells(line: str, header: str) -> dict[str, str] | None:
    """Column name -> stripped cell text of one row of a SOS table (None when not a row)."""
    m = re.match(r"^\s*\d+(?=\s)", line)
    if not m or len(line.rstrip()) < len(header.rstrip()) - 2:
        return None
    return {name: line[max(a, m.end()):b].strip() for name, a, b in _spans(header)}


def _sos_flavor(flav: str, hrt: str, exptime: float | None, arc_lamps: bool) -> tuple[str | None, str | None, bool]:
    hartmann = _HARTMANN.get(hrt.lower())
    if flav.lower() != "hart":
        return _FLAVOR.get(flav.lower()), hartmann, hartmann in ("Left", "Right")
    if hartmann in ("Left", "Right"):
        return "arc", hartmann, True
    if arc_lamps:
        return "arc", hartmann, False
    return ("dark" if exptime else "bias"), hartmann, False


def _lit(value: str) -> bool:
    """A lamp count (``4``) or flag string (``1 1 1 1``) with any lamp on."""
    return any(tok.isdigit() and int(tok) > 0 for tok in re.split(r"[\s,]+", value))


def _row_sos(line: str, mjd_hint: int | None, header: str) -> dict | None:
    c = _sos_cells(line, header)
    if c is None or not re.fullmatch(r"\d{8}", c.get("Filename", "")):
        return None
    ccd = _SOS_CCD.match(c.get("CCD", ""))
    if not ccd or "Flav" not in c or "Hrt" not in c:
        return None
    cams = tuple(sorted(x for x in (ccd["blue"], ccd["red"]) if x != "-"))
    exptime = _float(c.get("EXP"))
    lamps = c.get("lamps", "-").split(",")
    flavor, hartmann, is_h = _sos_flavor(c["Flav"], c["Hrt"], exptime, any(_lit(v) for v in lamps[1:]))
    return dict(mjd=mjd_hint, expnum=int(c["Filename"]), flav_raw=c["Flav"], flavor=flavor,
                hartmann=hartmann, is_hartmann=is_h, exptime=exptime, cameras=cams)


def _row_sos_long(line: str, mjd_hint: int | None, header: str) -> dict | None:
    c = _sos_cells(line, header)
    f = _SOS_FILE.match(c.get("Filename", "")) if c else None
    if f is None or "flavor" not in c or "Hrt" not in c:
        return None
    exptime = _float(c.get("EXPTIME"))
    arc_lamps = any(_lit(c.get(k, "")) for k in ("NE", "HGCD", "HEAR"))
    flavor, hartmann, is_h = _sos_flavor(c["flavor"], c["Hrt"], exptime, arc_lamps)
    return dict(mjd=mjd_hint, expnum=int(f["exp"]), flav_raw=c["flavor"], flavor=flavor,
                hartmann=hartmann, is_hartmann=is_h, exptime=exptime, cameras=(f["cam"],))


_ROW_PARSERS = {"sloan_log": _row_sloan, "list": _row_list, "sos": _row_sos, "sos_long": _row_sos_long}


def _table_segments(lines: tuple[str, ...]) -> list[tuple[str, int | None, str, list[str]]]:
    """``(layout, mjd from a 'Reading FITS from' line, header line, row lines)`` per table header."""
    segments: list[tuple[str, int | None, str, list[str]]] = []
    mjd_hint = None
    for line in lines:
        if "Reading FITS from" in line:
            m = _MJD_PATH.search(line)
            mjd_hint = int(m.group(1)) if m else None
            continue
        layout = detect_layout(line)
        if layout:
            segments.append((layout, mjd_hint, line, []))
        elif segments:
            segments[-1][3].append(line)
    return segments


def parse_boss_section(section: Section, msg: Message, month: str = "") -> tuple[list[BossRow], list[str]]:
    """Rows of one ``BOSS Data Summary`` section; warnings name the message."""
    warnings: list[str] = []
    segments = _table_segments(section.lines)
    if not segments:
        if any(s.strip() for s in section.lines):
            warnings.append(f"BOSS Data Summary in an unknown table layout, skipped: {msg.describe()}")
        return [], warnings
    merged: dict[tuple[int, int], dict] = {}
    for layout, mjd_hint, header, row_lines in segments:
        n_before = len(merged)
        for line in row_lines:
            rec = _ROW_PARSERS[layout](line, mjd_hint, header)
            if rec is None or rec["flavor"] is None or rec["mjd"] is None:
                if _ROW_LIKE.match(line):  # row-like, not legend
                    why = "unknown flavour" if rec and rec["flavor"] is None else (
                        "no MJD ('Reading FITS from' line missing)" if rec else "unparsable row")
                    warnings.append(f"{layout} BOSS row skipped ({why}) in {msg.describe()}: {line.strip()!r}")
                continue
            _merge_row(merged, rec, layout)
        if len(merged) == n_before:
            warnings.append(f"{layout} BOSS table without rows in {msg.describe()}")
    rows = [_to_row(rec, msg, month) for rec in merged.values()]
    return rows, warnings


def _merge_row(merged: dict, rec: dict, layout: str) -> None:
    key = (rec["mjd"], rec["expnum"])
    rec = dict(rec, layout=layout)
    if key in merged:
        old = merged[key]
        old["cameras"] = tuple(sorted(set(old["cameras"]) | set(rec["cameras"])))
        old["is_hartmann"] = old["is_hartmann"] or rec["is_hartmann"]
    else:
        merged[key] = rec


def _to_row(rec: dict, msg: Message, month: str) -> BossRow:
    cams = rec["cameras"]
    obs = OBSERVATORY.get(cams[0], "apo") if cams else "apo"
    return BossRow(mjd=rec["mjd"], expnum=rec["expnum"], observatory=obs, flavor=rec["flavor"],
                   hartmann=rec["hartmann"], is_hartmann=rec["is_hartmann"], exptime=rec["exptime"],
                   cameras=cams or DEFAULT_CAMERAS[obs], layout=rec["layout"], msg_date=msg.date,
                   subject=msg.subject, message_id=msg.message_id, msg_index=msg.index, month=month)


def parse_message(msg: Message, month: str = "") -> tuple[list[BossRow], list[str]]:
    rows: list[BossRow] = []
    warnings: list[str] = []
    for section in split_sections(msg.body):
        if section.title.lower() == BOSS_TITLE:
            r, w = parse_boss_section(section, msg, month)
            rows += r
            warnings += w
    return rows, warnings


def _post_key(row: BossRow) -> tuple:
    stamp = row.msg_date.timestamp() if row.msg_date else float("-inf")
    return (stamp, row.month, row.msg_index)


def dedupe_reposts(rows: list[BossRow]) -> list[BossRow]:
    """Per night (mjd), keep only the rows of the latest post; one row per exposure, sorted."""
    latest: dict[int, tuple] = {}
    for r in rows:
        k = _post_key(r)
        if r.mjd not in latest or k > latest[r.mjd]:
            latest[r.mjd] = k
    kept: dict[int, BossRow] = {}
    for r in rows:
        if _post_key(r) == latest[r.mjd]:
            kept[r.expnum] = r
    return sorted(kept.values(), key=lambda r: (r.mjd, r.expnum))


def parse_archive(data: bytes | str, month: str = "", *, dedupe: bool = True) -> ParseResult:
    """Parse one monthly archive (``.txt`` text or ``.txt.gz`` bytes) into BOSS rows."""
    messages = split_messages(archive_text(data))
    result = ParseResult(n_messages=len(messages))
    for msg in messages:
        rows, warnings = parse_message(msg, month)
        result.rows += rows
        result.warnings += warnings
    if dedupe:
        result.rows = dedupe_reposts(result.rows)
    for w in result.warnings:
        log.warning("%s", w)
    return result
