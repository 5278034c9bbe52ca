"""Client of a Mailman 2.1 private archive (sloan-25mlog at mailman.sdss.org, or ``arcray sim serve``).

- ``login()``: GET the archive page, find the login form with BeautifulSoup (the form holding a
  password input; its action, method, hidden fields and submit button are read, not hard-coded),
  POST the member's e-mail and password. Success is decided from the response: an archive page
  without a password form and without "Authorization failed."; anything else is an ``AuthError``.
- ``month_index()``: the month archives linked from the index (``2023-December.txt.gz``).
- ``fetch_month("2023-12")``: the month's mbox bytes. Mailman serves the ``.txt.gz`` URL already
  decompressed; the caller (``mbox.archive_text``) accepts gzip and plain text alike.
- A response that is the login page again (the session cookie expired) triggers one re-login.
- 5xx, dropped connections, short bodies and timeouts are retried with exponential backoff and
  jitter; after the last attempt a ``RemoteError``. Passwords never appear in messages: every URL
  in one passes ``arcray.urls.redact`` (``host`` is the host name alone, no user-info).
"""

from __future__ import annotations

import gzip
import logging
import random
import re
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from bs4 import BeautifulSoup

from arcray.credentials import Credentials
from arcray.errors import AuthError, InputError, RemoteError
from arcray.urls import redact

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://mailman.sdss.org"
LIST_NAME = "sloan-25mlog"
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")
_MONTH_LINK = re.compile(r"(?:^|/)(\d{4})-([A-Z][a-z]+)\.txt(\.gz)?$")
_RETRY_EXC = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
              requests.exceptions.ContentDecodingError)


def archive_url(base_url: str, list_name: str = LIST_NAME) -> str:
    """``https://host`` -> ``https://host/mailman/private/<list>/``; a full archive URL is kept."""
    base = base_url.rstrip("/")
    if "/mailman/private/" in base:
        return base + "/"
    return f"{base}/mailman/private/{list_name}/"


def month_key(month: str) -> str:
    """``2023-12`` -> ``2023-December`` (the archive's name for a month)."""
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", month.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InputError(f"bad month {month!r}: expected YYYY-MM")
    return f"{m.group(1)}-{MONTH_NAMES[int(m.group(2)) - 1]}"


@dataclass(frozen=True)
class LoginForm:
    action: str
    method: str
    user_field: str
    password_field: str
    extra: dict  # hidden fields and the submit button


def find_login_form(html: str, page_url: str) -> LoginForm | None:
    """The form holding a password input, or None when the page has none."""
    soup = BeautifulSoup(html, "html.parser")
    for form in soup.find_all("form"):
        pw = form.find("input", attrs={"type": lambda t: t and t.lower() == "password"})
        if pw is None or not pw.get("name"):
            continue
        user_field, extra = None, {}
        for inp in form.find_all("input"):
            kind, name = (inp.get("type") or "text").lower(), inp.get("name")
            if not name or inp is pw:
                continue
            if kind in ("text", "email") and user_field is None:
                user_field = name
            elif kind in ("hidden", "submit"):
                extra[name] = inp.get("value", "")
        if user_field is None:
            continue
        return LoginForm(urljoin(page_url, form.get("action") or page_url),
                         (form.get("method") or "post").lower(), user_field, pw["name"], extra)
    return None


def _login_refused(resp: requests.Response) -> bool:
    text = resp.text if "html" in resp.headers.get("Content-Type", "html") else ""
    return (resp.status_code in (401, 403) or "Authorization failed" in text
            or find_login_form(text, resp.url) is not None)


class MailmanClient:
    """One logged-in ``requests.Session`` against one private archive."""

    def __init__(self, base_url: str, credentials: Credentials, *, timeout: float = 30.0,
                 retries: int = 5, backoff: float = 0.5, session: requests.Session | None = None):
        self.url = archive_url(base_url)
        self.host = urlsplit(redact(self.url)).netloc
        self._creds = credentials
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "arcray-scrape")
        self.logged_in = False
        self.n_requests = 0
        self.n_logins = 0

    def __repr__(self) -> str:
        return f"MailmanClient(url={redact(self.url)!r}, user={self._creds.user!r})"

    # -- HTTP with retries -----------------------------------------------------------------
    def _request(self, method: str, url: str, **kw) -> requests.Response:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
            try:
                self.n_requests += 1
                resp = self.session.request(method, url, timeout=self.timeout, **kw)
                _ = resp.content  # read the whole body inside the retry loop
            except _RETRY_EXC as exc:
                last = type(exc).__name__
                continue
            expected = resp.headers.get("Content-Length")
            if expected and expected.isdigit() and "Content-Encoding" not in resp.headers \
                    and method != "HEAD" and len(resp.content) < int(expected):
                last = f"short body ({len(resp.content)} of {expected} bytes)"
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                continue
            return resp
        raise RemoteError(f"{method} {redact(url)} failed after {self.retries + 1} attempts: {last}")

    # -- login -----------------------------------------------------------------------------
    def login(self) -> None:
        """Log in (idempotent per session); ``AuthError`` when the archive refuses."""
        page = self._request("GET", self.url)
        if page.status_code == 404:
            raise InputError(f"no Mailman archive at {redact(self.url)} (HTTP 404)")
        form = find_login_form(page.text, page.url)
        if form is None:
            if page.status_code == 200 and "Archives" in page.text:
                self.logged_in = True  # a valid cookie already, or a public archive
                return
            raise RemoteError(f"{redact(self.url)}: no login form and no archive index (HTTP {page.status_code})")
        data = dict(form.extra)
        data[form.user_field] = self._creds.user
        data[form.password_field] = self._creds.password
        self.n_logins += 1
        if form.method == "get":
            resp = self._request("GET", form.action, params=data)
        else:
            resp = self._request("POST", form.action, data=data)
        if _login_refused(resp):
            raise AuthError(f"login to the Mailman archive at {self.host} refused for user "
                            f"{self._creds.user} (credentials from {self._creds.source or 'caller'})")
        if resp.status_code != 200:
            raise RemoteError(f"login to {self.host}: unexpected HTTP {resp.status_code}")
        self.logged_in = True

    def _get_authed(self, url: str) -> requests.Response:
        """GET a page behind the login; one re-login when the login page comes back instead."""
        if not self.logged_in:
            self.login()
        for relogin in (True, False):
            resp = self._request("GET", url)
            is_html = "html" in resp.headers.get("Content-Type", "")
            if resp.status_code == 401 or (is_html and find_login_form(resp.text, resp.url)):
                if relogin:
                    log.info("Mailman session expired; logging in again")
                    self.logged_in = False
                    self.login()
                    continue
                raise AuthError(f"the Mailman archive at {self.host} keeps asking for a login")
            return resp
        raise AssertionError("unreachable")

    # -- archive -----------------------------------------------------------------------------
    def month_index(self) -> dict[str, str]:
        """``{"2023-12": absolute URL of 2023-December.txt.gz, ...}`` from the archive index."""
        resp = self._get_authed(self.url)
        soup = BeautifulSoup(resp.text, "html.parser")
        months: dict[str, str] = {}
        for a in soup.find_all("a", href=True):
            m = _MONTH_LINK.search(a["href"])
            if m and m.group(2) in MONTH_NAMES:
                key = f"{m.group(1)}-{MONTH_NAMES.index(m.group(2)) + 1:02d}"
                if m.group(3) or key not in months:  # prefer the .txt.gz link
                    months[key] = urljoin(resp.url, a["href"])
        return dict(sorted(months.items()))

    def fetch_month(self, month: str, url: str | None = None) -> bytes | None:
        """Bytes of a month's archive (gzip or plain text); None when the archive has no such month.

        A body that is visibly incomplete (gzip that fails its CRC, text that stops mid-line; a
        complete mbox ends with a newline) is fetched again, like a 5xx.
        """
        url = url or urljoin(self.url, f"{month_key(month)}.txt.gz")
        why = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
            resp = self._get_authed(url)
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise RemoteError(f"GET {redact(url)}: HTTP {resp.status_code}")
            why = _incomplete(resp.content)
            if not why:
                return resp.content
            log.info("month %s: %s; fetching again", month, why)
        raise RemoteError(f"GET {redact(url)}: {why} after {self.retries + 1} attempts")


def _incomplete(body: bytes) -> str:
    """Why ``body`` is not a whole monthly archive, or ``""``."""
    if body[:2] == b"\x1f\x8b":
        try:
            gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            return f"damaged gzip ({type(exc).__name__})"
        return ""
    if body and not body.endswith(b"\n"):
        return "text ends mid-line (truncated)"
    return ""
