"""The sloan-25mlog monthly text archive as messages and sections. Pure: text in, records out.

Rules (``shared/spec/boss-formats.md`` section 3):

- an archive is ``.txt`` or ``.txt.gz`` bytes (the gzip magic decides), mbox text;
- messages start at an mbox ``From_`` line (``From user at example.org  Sat Dec  2 13:04:55 2023``)
  after a blank line (or at the top); headers end at the first blank line; encoded words are decoded;
  the date is the ``Date:`` header, else the ``From_`` line's, always aware UTC;
- quoted text (``>``) is dropped before sections are found, so tables quoted in replies are ignored;
- sections are headed ``---- <Title> ----`` or, as ``sloan_log.py`` prints them, by a title between
  two ``=`` banners.

``arcray.ingest.logparse`` reads the BOSS tables inside the sections.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime

_FROM_LINE = re.compile(r"^From \S+(?: at \S+)?\s+\w{3} \w{3}\s+\d{1,2} \d{1,2}:\d\d:\d\d \d{4}\s*$")
_DASH_TITLE = re.compile(r"^\s*-{2,}\s+(?P<t>[^\s-](?:.*[^\s-])?)\s+-{2,}\s*$")
_BANNER = re.compile(r"^\s*={20,}\s*$")


@dataclass(frozen=True)
class Message:
    """One e-mail of the archive; ``index`` is its position in the file (0-based)."""

    index: int
    sender: str
    date: datetime | None  # aware, UTC
    subject: str
    message_id: str
    in_reply_to: str
    body: str

    def describe(self) -> str:
        when = self.date.isoformat() if self.date else "no date"
        return f"message #{self.index} {self.message_id or ''} ({when}) {self.subject!r}".replace("  ", " ")


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[str, ...]


# -- archive text and messages -------------------------------------------------------------

def archive_text(data: bytes | str) -> str:
    """Text of a monthly archive given as ``.txt`` or ``.txt.gz`` bytes (gzip magic decides).

    Line ends are normalised (CRLF and CR become LF). Mailman serves ``.txt.gz`` URLs already
    decompressed, so both forms reach this function.
    """
    if isinstance(data, bytes):
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            data = data.decode("latin-1")
    return data.replace("\r\n", "\n").replace("\r", "\n")


def _header_value(raw: str) -> str:
    try:
        return str(make_header(decode_header(raw))).strip()
    except Exception:  # malformed encoded words: keep the raw text
        return raw.strip()


def _parse_headers(lines: list[str]) -> tuple[dict[str, str], int]:
    headers: dict[str, str] = {}
    last = None
    for i, line in enumerate(lines):
        if not line.strip():
            return headers, i + 1
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or " " in name.strip():
            return headers, i  # no blank line before the body
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers, len(lines)


def _message_date(headers: dict[str, str], from_line: str) -> datetime | None:
    for raw in (headers.get("date", ""), from_line.split("  ", 1)[-1] if "  " in from_line else ""):
        if not raw:
            continue
        try:
            dt = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            try:
                dt = datetime.strptime(" ".join(raw.split()), "%a %b %d %H:%M:%S %Y")
            except ValueError:
                continue
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    return None


def split_messages(text: str) -> list[Message]:
    """Split mbox text at ``From_`` lines (at the start or after a blank line)."""
    lines = archive_text(text).split("\n")
    starts = [i for i, line in enumerate(lines)
              if _FROM_LINE.match(line) and (i == 0 or not lines[i - 1].strip())]
    messages = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        chunk = lines[start + 1:end]
        headers, body_at = _parse_headers(chunk)
        messages.append(Message(
            index=k, sender=headers.get("from", lines[start][5:].split("  ")[0]),
            date=_message_date(headers, lines[start]), subject=_header_value(headers.get("subject", "")),
            message_id=headers.get("message-id", ""), in_reply_to=headers.get("in-reply-to", ""),
            body="\n".join(chunk[body_at:])))
    return messages


# -- sections ------------------------------------------------------------------------------

def unquoted_lines(body: str) -> list[str]:
    """Body lines with quoted text (``>`` at the start, any depth) removed."""
    return [line for line in body.split("\n") if not line.lstrip().startswith(">")]


def split_sections(body: str) -> list[Section]:
    """Sections of a night log (quoted text dropped). Text before the first header: title ``""``."""
    lines = unquoted_lines(body)
    sections: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _DASH_TITLE.match(line)
        if m and re.search(r"[A-Za-z]", m.group("t")):
            sections.append((m.group("t").strip(), []))
            i += 1
            continue
        if (_BANNER.match(line) and i + 2 < len(lines) and _BANNER.match(lines[i + 2])
                and lines[i + 1].strip()):
            title = lines[i + 1].strip()
            cur_title, cur_lines = sections[-1]
            if not (title.lower() == cur_title.lower() and not any(s.strip() for s in cur_lines)):
                sections.append((title, []))
            i += 3
            continue
        sections[-1][1].append(line)
        i += 1
    return [Section(t, tuple(ls)) for t, ls in sections if t or any(s.strip() for s in ls)]


# -- archive file names -------------------------------------------------------------------

_MONTH_FILE = re.compile(r"(\d{4})-([A-Za-z]+)\.txt(?:\.gz)?$")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")


def month_of_filename(name: str) -> str:
    """``2023-December.txt.gz`` -> ``2023-12``; ``""`` when the name does not say."""
    m = _MONTH_FILE.search(name)
    if not m or m.group(2).lower() not in _MONTHS:
        return ""
    return f"{m.group(1)}-{_MONTHS.index(m.group(2).lower()) + 1:02d}"
