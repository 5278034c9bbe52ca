"""HTML of the Mailman 2.1 private archive pages (login form, archive index, month listings).

Shapes follow Mailman 2.1's ``private.html`` and ``archtoc.html`` templates; only what a client
reads is reproduced (form fields, table rows, link targets).
"""

from __future__ import annotations

import calendar
import gzip
import html
import os
import re

LIST_NAME = "sloan-25mlog"
MONTH_FILE_RE = re.compile(r"^(\d{4})-([A-Z][a-z]+)\.txt\.gz$")
MONTH_NAMES = list(calendar.month_name)[1:]

LOGIN_PAGE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html>
<head>
  <title>{realname} Private Archives Authentication</title>
  <script type="text/javascript">
    function sf(){{document.f.username.focus();}}
  </script>
</head>
<body bgcolor="#ffffff" onLoad="sf()">
<FORM METHOD=POST ACTION="{action}" name="f">
  <TABLE WIDTH="100%" BORDER="0" CELLSPACING="4" CELLPADDING="5">
    <TR>
      <TD COLSPAN="2" WIDTH="100%" BGCOLOR="#99CCFF" ALIGN="CENTER">
        <B><FONT COLOR="#000000" SIZE="+1">{realname} Private Archives Authentication</FONT></B>
      </TD>
    </TR>
    <tr>
      <td colspan="2">{message}</td>
    </tr>
    <tr>
      <TD><div ALIGN="Right">Email address:</div></TD>
      <TD><INPUT TYPE="text" NAME="username" SIZE="30"></TD>
    </tr>
    <tr>
      <TD><div ALIGN="Right">Password:</div></TD>
      <TD><INPUT TYPE="password" NAME="password" SIZE="30"></TD>
    </tr>
    <tr>
      <td colspan=2 align="middle"><INPUT type="SUBMIT" name="submit" value="Let me in...">
      </td>
    </tr>
  </TABLE>
  <p><strong>Important:</strong> From this point on, you must have cookies enabled in your
  browser, otherwise you will not be able to read the private archives.
  <p>Session cookies are used in Mailman's private archive interface so that you don't need to
  re-authenticate with every operation.
</FORM>
</body>
</html>
"""

INDEX_HEAD = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2//EN">
<HTML>
  <HEAD>
     <title>The {name} Archives</title>
     <META NAME="robots" CONTENT="noindex,follow">
     <META http-equiv="Content-Type" content="text/html; charset=us-ascii">
  </HEAD>
  <BODY BGCOLOR="#ffffff">
     <h1>The {name} Archives </h1>
     <p>
      You can get <a href="/mailman/listinfo/{name}">more information about this list</a>.
     </p>
     \n\t<table border=3>
\t  <tr><td>Archive</td>
\t  <td>View by:</td>
\t  <td>Downloadable version</td></tr>
"""

INDEX_ROW = """
\t    <tr>
            <td>{month_name} {year}:</td>
            <td>
              <A href="{key}/thread.html">[ Thread ]</a>
              <A href="{key}/subject.html">[ Subject ]</a>
              <A href="{key}/author.html">[ Author ]</a>
              <A href="{key}/date.html">[ Date ]</a>
            </td>
                        <td><A href="{key}.txt.gz">[ Gzip'd Text {size_kb} KB ]</a></td>
            </tr>
"""

INDEX_TAIL = """\t</table>
     </BODY>
     </HTML>
"""


def login_page(action: str, message: str = "") -> str:
    msg = f'<b><font size="+1">{html.escape(message)}</font></b>' if message else ""
    return LOGIN_PAGE.format(realname=LIST_NAME, action=html.escape(action), message=msg)


def month_files(mailman_dir: str) -> list[tuple[int, int, str, str]]:
    """``[(year, month_index, "2023-December", path), ...]`` newest first."""
    out = []
    if os.path.isdir(mailman_dir):
        for name in os.listdir(mailman_dir):
            m = MONTH_FILE_RE.match(name)
            if m and m.group(2) in MONTH_NAMES:
                year, mon = int(m.group(1)), MONTH_NAMES.index(m.group(2)) + 1
                out.append((year, mon, name[: -len(".txt.gz")], os.path.join(mailman_dir, name)))
    return sorted(out, reverse=True)


def index_page(mailman_dir: str) -> str:
    parts = [INDEX_HEAD.format(name=LIST_NAME)]
    for year, mon, key, path in month_files(mailman_dir):
        parts.append(INDEX_ROW.format(month_name=MONTH_NAMES[mon - 1], year=year, key=key,
                                      size_kb=max(1, os.path.getsize(path) // 1024)))
    parts.append(INDEX_TAIL)
    return "".join(parts)


def listing_page(key: str, path: str, view: str) -> str:
    """A minimal thread/subject/author/date page: one line per message of the month."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    rows, n = [], 0
    for block in re.split(r"^From \S+ at \S+ ", text, flags=re.M)[1:]:
        head = block.split("\n\n", 1)[0]
        subj = re.search(r"^Subject: (.*)$", head, re.M)
        auth = re.search(r"^From: (.*)$", head, re.M)
        subject = html.escape(subj.group(1) if subj else "(no subject)")
        author = html.escape(auth.group(1) if auth else "")
        rows.append(f'<LI><A HREF="{n:06d}.html">{subject}</A>&nbsp;<I>{author}</I></LI>')
        n += 1
    return (f"<html><head><title>The {LIST_NAME} {key} Archive by {view}</title></head><body>"
            f"<h1>{key} Archives by {view}</h1><ul>\n" + "\n".join(rows) + "\n</ul></body></html>\n")
