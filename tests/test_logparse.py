"""The observing-log parser on hand-written samples of the three real layouts (boss-formats.md §3)."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from arcray.ingest.logparse import detect_layout, parse_archive
from arcray.ingest.mbox import archive_text, month_of_filename, split_messages, split_sections
from arcray.ingest.manifest import MANIFEST_SCHEMA, rows_to_table, study_json

# sloan_log.py output: sections as '=' banners only (no dash headers), an APOGEE table whose rows
# look like BOSS rows, a Hartmann pair, an 'xx-b1' (red SOS missing) row.
SLOAN_MSG = """\
From observer at apo.nmsu.edu  Sat Dec  2 14:02:11 2023
From: observer at apo.nmsu.edu (APO Observer)
Date: Sat, 02 Dec 2023 07:02:11 -0700
Subject: [Sloan-25mlog] 60280 APO 2.5m log
Message-ID: <a1@apo.nmsu.edu>

================================================================================
                              APOGEE Data Summary
================================================================================

MJD   UTC      Field-Design-Config  Exposure Type    Dither ETime Arch
--------------------------------------------------------------------------------
60280 01:02:03   -999-  -999--999   48123456 Dark    A       457 Open
================================================================================
                               BOSS Data Summary
================================================================================

MJD   UTC      Field-Design-Config  Exposure Type    SOS   ETime Hart
--------------------------------------------------------------------------------
60280 00:51:10   -999-  -999--999   00379101 Arc     r1-b1     4 Open
60280 00:53:40   -999-  -999--999   00379102 Flat    r1-b1    25 Open
60280 01:10:02   -999-  -999--999   00379103 Hart    r1-b1     4 Left
60280 01:10:40   -999-  -999--999   00379104 Hart    r1-b1     4 Right
60280 03:15:00 101234- 23456-7890   00379105 Science xx-b1   900 Open

================================================================================
                         BOSS Spectrographs Collimation
================================================================================
r1: 1.2 um  b1: -0.4 um   00379103 00379104 move collimator +35 steps

"""

# legacy list layout under a dash header, one row per camera file, trailing HART
LIST_MSG = """\
From jdoe at example.org  Sun Dec  3 13:40:00 2023
From: jdoe at example.org (J Doe)
Date: Sun, 03 Dec 2023 06:40:00 -0700
Subject: [Sloan-25mlog] night log MJD 60281
Message-ID: <b1@example.org>

---- Observing Summary ----
Clear. 00379230 was a test.

---- BOSS Data Summary ----
Reading FITS from /data/spectro/60281
------------------------------------------------------------------------------
  n  time filename     cart   plt    flav hrt    exp  colA  colB  colC Hrt
------------------------------------------------------------------------------
  1 00:40 b1-00379201 FPS-N    -999  arc Out     4.1  1200  1190  1185
  2 00:40 r1-00379201 FPS-N    -999  arc Out     4.1  1200  1190  1185
  3 00:44 b1-00379202 FPS-N    -999  fla Out    25.0  1200  1190  1185
  4 00:44 r1-00379202 FPS-N    -999  fla Out    25.0  1200  1190  1185
  5 00:50 b1-00379203 FPS-N    -999  arc Lef     4.1  1200  1190  1185 HART
  6 00:50 r1-00379203 FPS-N    -999  arc Lef     4.1  1200  1190  1185 HART

---- SOS ERRORS/WARNINGS ----
WARNING: b1-00379201: arc line width 1.27 px above 1.25

---- Log Support ----
https://data.sdss5.org/sas/sdsswork/data/boss/sos/apo/60281/logfile-60281.html
"""

# idlspec2d BOSS_log.py (2025), its default (short) log as print_summary prints it after
# built_short_log: one row per exposure, CCD merged (b1,-  -,r1), blue,red QA pairs, Hartmann
# frames flavoured 'hart' (a dark with closed doors too), the header's first character 'n'
SOS_MSG = """\
From nightlead at example.org  Tue May  6 14:19:54 2025
From: nightlead at example.org (Night Lead)
Date: Tue, 06 May 2025 07:19:54 -0700
Subject: [Sloan-25mlog] APO 2.5m night log MJD 60801
Message-ID: <c1@example.org>

---- BOSS Data Summary ----
Reading FITS from: /data/spectro/60801,  /data/boss/sos/60801
Using /data/boss/sos/60801/logfile-60801.fits from IDLSPEC2D version v6_2_1  (RUN2D v6_2_1)
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
n      Time  Filename    CCD  Q DESIGN   Field configID     cols(A,B,C)  T[°C]  EXP  Flav     Hrt FFS  lamps  98%   fratio    W(X)SIG   w_shift    sky/s       SN2    SN2_V2
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
0  02:01:02  00392001  b1,r1  1      -       -        -  1200,1190,1185    5.1    4   arc     Out   8  -,4,4    -  1.0,1.0  1.19,1.03  -0.4,0.1        -         -         -
1  02:04:23  00392002   b1,-  1      -       -        -  1200,1190,1185    5.1   25  flat     Out   8  4,-,-    -    1.0,-     0.99,-         -        -         -         -
2  02:06:20  00392003   -,r1  -      -       -        -  1200,1190,1185    5.1    4  hart       R   8  -,4,4    -        -          -         -        -         -         -
3  02:24:58  00392004  b1,r1  1  23456  101234     7890  1200,1190,1185    5.1  900   sci     Out   -    -      -        -          -         -  .54,.47  24.9,4.8  23.5,3.8
4  02:27:58  00392005  b1,r1  1      -       -        -  1200,1190,1185    5.0  900  hart  Closed   8  -,0,0    4        -          -         -        -         -         -
5  02:15:58  00392006  b1,r1  1      -       -        -  1200,1190,1185    5.0    0  bias     Out   8    -    4,6  1.0,1.0          -         -        -         -         -
6  02:18:20  00392007  b1,r1  -      -       -        -  1200,1190,1185    5.0    4  hart       L   8  -,4,4    -        -          -         -        -         -         -
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
      Q = Quality {'excellent': 1, 'marginal': 0.5, 'bad': 0, 'test': -1};    T[°C] = MC1TEMDN: sp1 mech Median temp
      FFS = Flat Screens {'open': 0, 'closed': 1, 'Failure - X(?)': 10};    lamps = 4,4,4 (FF, NE, HGCD) {'on': 1,'off': 0,'Failure - X(?)': 10}
      fratio & w_shift(Anstrom of central pixel) are comparison to reference data: flat-60000 arc-60000 bias-60000 dark-60000

    ---- SOS ERRORS/WARNGINGS ----
      b1-00392001 WARNING: arc line width 1.19 px
"""

# the same night with --long: one row per camera file, lamp flags, full ctime
SOS_LONG_MSG = """\
From nightlead at example.org  Tue May  6 14:29:54 2025
From: nightlead at example.org (Night Lead)
Date: Tue, 06 May 2025 07:29:54 -0700
Subject: [Sloan-25mlog] APO 2.5m night log MJD 60801
Message-ID: <c2@example.org>

---- BOSS Data Summary ----
Reading FITS from: /data/spectro/60801,  /data/boss/sos/60801
Using /data/boss/sos/60801/logfile-60801.fits from IDLSPEC2D version v6_2_1  (RUN2D v6_2_1)
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
n                       Time                Filename CCD DESIGNID   Field configID  EXPTIME flavor     Hrt       FF              FFS       NE     HGCD  colA  colB  colC  T[°C] 98% fratio  W(X) w_shift sky/s   SN2 SN2_V2    QUALITY
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
0   Tue May  6 02:01:02 2025  sdR-b1-00392001.fit.gz  b1        -       -        -     4.09    arc     Out  0 0 0 0  1 1 1 1 1 1 1 1  1 1 1 1  1 1 1 1  1200  1190  1185    5.1   -    1.0  1.19    -0.4     -     -      -  excellent
1   Tue May  6 02:01:02 2025  sdR-r1-00392001.fit.gz  r1        -       -        -     4.09    arc     Out  0 0 0 0  1 1 1 1 1 1 1 1  1 1 1 1  1 1 1 1  1200  1190  1185    5.1   -    1.0  1.03     0.1     -     -      -  excellent
2   Tue May  6 02:04:23 2025  sdR-b1-00392002.fit.gz  b1        -       -        -    25.31   flat     Out  1 1 1 1  1 1 1 1 1 1 1 1  0 0 0 0  0 0 0 0  1200  1190  1185    5.1   -    1.0  0.99       -     -     -      -  excellent
3   Tue May  6 02:06:20 2025  sdR-r1-00392003.fit.gz  r1        -       -        -     4.09   hart       R  0 0 0 0  1 1 1 1 1 1 1 1  1 1 1 1  1 1 1 1  1200  1190  1185    5.1   -      -     -       -     -     -      -          -
4   Tue May  6 02:24:58 2025  sdR-b1-00392004.fit.gz  b1    23456  101234     7890   900.41    sci     Out  0 0 0 0  0 0 0 0 0 0 0 0  0 0 0 0  0 0 0 0  1200  1190  1185    5.1   -      -     -       -   .54  24.9   23.5  excellent
5   Tue May  6 02:24:58 2025  sdR-r1-00392004.fit.gz  r1    23456  101234     7890   900.41    sci     Out  0 0 0 0  0 0 0 0 0 0 0 0  0 0 0 0  0 0 0 0  1200  1190  1185    5.1   -      -     -       -   .47   4.8    3.8  excellent
6   Tue May  6 02:27:58 2025  sdR-b1-00392005.fit.gz  b1        -       -        -   900.00   hart  Closed  0 0 0 0  1 1 1 1 1 1 1 1  0 0 0 0  0 0 0 0  1200  1190  1185    5.0   4      -     -       -     -     -      -  excellent
7   Tue May  6 02:27:58 2025  sdR-r1-00392005.fit.gz  r1        -       -        -   900.00   hart  Closed  0 0 0 0  1 1 1 1 1 1 1 1  0 0 0 0  0 0 0 0  1200  1190  1185    5.0   5      -     -       -     -     -      -  excellent
8   Tue May  6 02:15:58 2025  sdR-b1-00392006.fit.gz  b1        -       -        -     0.00   bias     Out  0 0 0 0  1 1 1 1 1 1 1 1  0 0 0 0  0 0 0 0  1200  1190  1185    5.0   4    1.0     -       -     -     -      -  excellent
9   Tue May  6 02:15:58 2025  sdR-r1-00392006.fit.gz  r1        -       -        -     0.00   bias     Out  0 0 0 0  1 1 1 1 1 1 1 1  0 0 0 0  0 0 0 0  1200  1190  1185    5.0   6    1.0     -       -     -     -      -  excellent
10  Tue May  6 02:18:20 2025  sdR-b1-00392007.fit.gz  b1        -       -        -     4.09   hart       L  0 0 0 0  1 1 1 1 1 1 1 1  1 1 1 1  1 1 1 1  1200  1190  1185    5.0   -      -     -       -     -     -      -          -
11  Tue May  6 02:18:20 2025  sdR-r1-00392007.fit.gz  r1        -       -        -     4.09   hart       L  0 0 0 0  1 1 1 1 1 1 1 1  1 1 1 1  1 1 1 1  1200  1190  1185    5.0   -      -     -       -     -     -      -          -
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
      T[°C] = MC1TEMDN: sp1 mech Median temp
      fratio & w_shift(Anstrom of central pixel) are comparison to reference data: flat-60000 arc-60000 bias-60000 dark-60000

    ---- SOS ERRORS/WARNGINGS ----
      b1-00392001 WARNING: arc line width 1.19 px
"""


def _sets(rows):
    return {(r.mjd, r.expnum, r.flavor, r.hartmann, r.is_hartmann, r.cameras, r.layout) for r in rows}


def test_sloan_log_layout_banner_sections_and_hartmann():
    res = parse_archive(SLOAN_MSG, "2023-12")
    assert res.warnings == []
    assert _sets(res.rows) == {
        (60280, 379101, "arc", "Out", False, ("b1", "r1"), "sloan_log"),
        (60280, 379102, "flat", "Out", False, ("b1", "r1"), "sloan_log"),
        (60280, 379103, "arc", "Left", True, ("b1", "r1"), "sloan_log"),
        (60280, 379104, "arc", "Right", True, ("b1", "r1"), "sloan_log"),
        (60280, 379105, "science", "Out", False, ("b1",), "sloan_log"),
    }  # the APOGEE row 48123456 and the collimation line's numbers are not BOSS rows
    r = res.rows[0]
    assert r.exptime == 4.0 and r.observatory == "apo" and r.month == "2023-12"
    assert r.subject == "[Sloan-25mlog] 60280 APO 2.5m log" and r.msg_date.isoformat() == "2023-12-02T14:02:11+00:00"


def test_list_layout_merges_camera_rows():
    res = parse_archive(LIST_MSG)
    assert res.warnings == []
    assert _sets(res.rows) == {
        (60281, 379201, "arc", "Out", False, ("b1", "r1"), "list"),
        (60281, 379202, "flat", "Out", False, ("b1", "r1"), "list"),
        (60281, 379203, "arc", "Left", True, ("b1", "r1"), "list"),
    }
    assert [r.exptime for r in res.rows] == pytest.approx([4.1, 25.0, 4.1])


SOS_WANT = {
    (60801, 392001, "arc", "Out", False, ("b1", "r1")),
    (60801, 392002, "flat", "Out", False, ("b1",)),
    (60801, 392003, "arc", "Right", True, ("r1",)),
    (60801, 392004, "science", "Out", False, ("b1", "r1")),
    (60801, 392005, "dark", "Closed", False, ("b1", "r1")),  # printed 'hart' (doors not Out)
    (60801, 392006, "bias", "Out", False, ("b1", "r1")),
    (60801, 392007, "arc", "Left", True, ("b1", "r1")),
}


@pytest.mark.parametrize("text,layout", [(SOS_MSG, "sos"), (SOS_LONG_MSG, "sos_long")])
def test_sos_short_and_long_layouts_give_the_same_exposures(text, layout):
    res = parse_archive(text)
    assert res.warnings == []
    assert _sets(res.rows) == {k + (layout,) for k in SOS_WANT}
    times = {r.expnum: r.exptime for r in res.rows}
    assert times[392004] == (900.0 if layout == "sos" else 900.41) and times[392006] == 0.0
    assert all(r.observatory == "apo" for r in res.rows)


def test_sos_columns_found_by_name_not_position():
    # a later BOSS_log adds SN2_15 after SN2_V2; an unparsable row-like line still warns
    lines = SOS_MSG.split("\n")
    head = next(i for i, ln in enumerate(lines) if ln.startswith("n ") and "Filename" in ln)
    widened = [ln + ("  SN2_15" if i == head else "       -") if head <= i <= head + 8 and i != head + 1 else ln
               for i, ln in enumerate(lines)]
    res = parse_archive("\n".join(widened))
    assert res.warnings == [] and _sets(res.rows) == {k + ("sos",) for k in SOS_WANT}
    broken = SOS_MSG.replace("00392006  b1,r1", "00392006  b1;r1")
    res = parse_archive(broken)
    assert 392006 not in {r.expnum for r in res.rows} and len(res.rows) == 6
    assert any("sos BOSS row skipped" in w and "00392006" in w for w in res.warnings)


def test_layout_detection_by_header_line():
    assert detect_layout("MJD   UTC      Field-Design-Config  Exposure Type    SOS   ETime Hart") == "sloan_log"
    assert detect_layout("  n  time filename cart plt flav hrt exp colA colB colC Hrt") == "list"
    assert detect_layout("Time Filename CCD Q DESIGN Field configID cols(A,B,C) EXP Flav Hrt") == "sos"
    assert detect_layout("n   Time   Filename CCD DESIGNID Field configID EXPTIME flavor Hrt FF") == "sos_long"
    assert detect_layout("MJD   UTC      Field-Design-Config  Exposure Type    Dither ETime Arch") == "sloan_log"
    assert detect_layout("---- BOSS Data Summary ----") is None


def _reply(date: str, quoted: str) -> str:
    q = "\n".join("> " + ln for ln in quoted.split("\n"))
    return (f"From asmith at example.org  {date}\nFrom: asmith at example.org (A Smith)\n"
            f"Subject: Re: [Sloan-25mlog] night log MJD 60281\nIn-Reply-To: <b1@example.org>\n"
            f"Message-ID: <r1@example.org>\n\nLooks good.\n\nOn Sun, jdoe at example.org wrote:\n{q}\n\n")


def test_quoted_tables_in_replies_are_ignored():
    body = LIST_MSG.split("\n\n", 1)[1]
    partial = "\n".join(body.split("\n")[:12])  # section header, listing header, first rows only
    text = LIST_MSG + "\n" + _reply("Mon Dec  4 10:00:00 2023", partial)
    res = parse_archive(text)
    assert res.warnings == [] and len(split_messages(text)) == 2
    assert {r.expnum for r in res.rows} == {379201, 379202, 379203}
    assert all(r.message_id == "<b1@example.org>" for r in res.rows)


def test_reposts_latest_post_of_a_night_wins():
    first = LIST_MSG.rsplit("  5 00:50", 1)[0] + "\n"  # a first post without the Hartmann rows
    corrected = (LIST_MSG.replace("Sun Dec  3 13:40:00", "Sun Dec  3 15:00:00")
                 .replace("06:40:00 -0700", "08:00:00 -0700").replace("<b1@", "<b2@"))
    # corrected post placed BEFORE the first one in the file: the Date decides, not the order
    res = parse_archive(corrected + "\n" + first)
    assert {r.expnum for r in res.rows} == {379201, 379202, 379203}
    assert {r.message_id for r in res.rows} == {"<b2@example.org>"}
    res2 = parse_archive(first + "\n" + corrected.replace("<b2@", "<b3@"))
    assert {r.expnum for r in res2.rows} == {379201, 379202, 379203}
    assert len(parse_archive(first).rows) == 2


def test_other_sections_never_read_as_boss_rows():
    secs = split_sections(SLOAN_MSG.split("\n\n", 1)[1])
    assert [s.title for s in secs] == ["APOGEE Data Summary", "BOSS Data Summary",
                                      "BOSS Spectrographs Collimation"]
    res = parse_archive(SLOAN_MSG + LIST_MSG)
    assert 48123456 not in {r.expnum for r in res.rows} and 379230 not in {r.expnum for r in res.rows}


def test_crlf_and_gzip_input():
    text = SLOAN_MSG + "\n" + LIST_MSG + "\n" + SOS_MSG
    want = _sets(parse_archive(text).rows)
    assert len(want) == 15
    crlf = text.replace("\n", "\r\n").encode("utf-8")
    assert _sets(parse_archive(crlf).rows) == want
    assert _sets(parse_archive(gzip.compress(crlf, mtime=0)).rows) == want
    assert "\r" not in archive_text(gzip.compress(crlf))


def test_unknown_layout_and_bad_rows_warn_naming_the_message(caplog):
    odd = SLOAN_MSG.replace("Exposure Type    SOS   ETime Hart", "Expo Kind SOS ETime Hart") \
        .replace("Field-Design-Config", "Fld-Dsn-Cfg").replace("<a1@", "<odd1@")
    res = parse_archive(odd)
    assert res.rows == []
    assert len(res.warnings) == 1 and "unknown table layout" in res.warnings[0]
    assert "<odd1@apo.nmsu.edu>" in res.warnings[0] and "60280 APO 2.5m log" in res.warnings[0]
    assert "unknown table layout" in caplog.text
    bad = LIST_MSG.replace("  3 00:44 b1-00379202 FPS-N    -999  fla", "  3 00:44 b1-00379202 FPS-N    -999  xyz")
    res = parse_archive(bad)
    assert any("unknown flavour" in w and "<b1@example.org>" in w for w in res.warnings)
    assert {r.expnum for r in res.rows} == {379201, 379202, 379203}  # r1 row of 379202 still parses


def test_manifest_schema_and_study_json():
    res = parse_archive(SLOAN_MSG + "\n" + LIST_MSG + "\n" + SOS_MSG, "2023-12")
    table = rows_to_table(res.rows)
    assert table.schema.equals(MANIFEST_SCHEMA)
    assert table.num_rows == 15 and table.column("is_hartmann").to_pylist().count(True) == 5
    assert study_json(table) == {
        "arcs": {"60280": ["00379101"], "60281": ["00379201"], "60801": ["00392001"]},
        "flats": {"60280": ["00379102"], "60281": ["00379202"], "60801": ["00392002"]},
    }
    assert month_of_filename("2023-December.txt.gz") == "2023-12" and month_of_filename("x.txt") == ""


def test_cli_from_file_json(tmp_path):
    from arcray.cli.main import _register
    from arcray.cli.apps import app

    _register()
    a = tmp_path / "2023-December.txt.gz"
    a.write_bytes(gzip.compress((SLOAN_MSG + "\n" + LIST_MSG).encode(), mtime=0))
    b = tmp_path / "2025-May.txt"
    b.write_bytes(SOS_MSG.replace("\n", "\r\n").encode())
    out = CliRunner().invoke(app, ["scrape", "--from-file", str(a), str(b), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["arcs"] == {"60280": ["00379101"], "60281": ["00379201"], "60801": ["00392001"]}
    assert data["flats"]["60801"] == ["00392002"]
    missing = CliRunner().invoke(app, ["scrape", "--from-file", str(tmp_path / "nope.txt"), "--json"])
    assert missing.exit_code != 0


def test_repost_in_the_next_month_wins_across_month_files():
    from arcray.ingest.manifest import merge_manifests

    first = LIST_MSG.rsplit("  5 00:50", 1)[0] + "\n"  # posted 2023-12-03, Hartmann rows missing
    late = (LIST_MSG.replace("Sun Dec  3 13:40:00 2023", "Mon Jan  1 10:00:00 2024")
            .replace("Sun, 03 Dec 2023 06:40:00", "Mon, 01 Jan 2024 03:00:00").replace("<b1@", "<j1@"))
    dec = rows_to_table(parse_archive(first + SLOAN_MSG, "2023-12").rows)
    jan = rows_to_table(parse_archive(late, "2024-01").rows)
    merged = merge_manifests([jan, dec])
    got = dict(zip(merged.column("expnum").to_pylist(), merged.column("month").to_pylist()))
    assert got == {379101: "2023-12", 379102: "2023-12", 379103: "2023-12", 379104: "2023-12",
                   379105: "2023-12", 379201: "2024-01", 379202: "2024-01", 379203: "2024-01"}
    assert merged.schema.equals(MANIFEST_SCHEMA)
