"""Base URLs of remote services: checked before any work starts, redacted wherever they are kept.

- ``redact(url)``: the one helper every URL passes before it is recorded (downloads table,
  per-month manifest metadata, provenance) or printed/logged. It drops the user-info
  (``user:password@``) and replaces the value of every query parameter whose name looks like a
  secret (``password``, ``token``, ``key``, ``signature``, ...) with ``***``. A string that is not
  a URL comes back unchanged apart from the same two rules.
- ``check_base_url(url, option=...)``: the shape of a ``--base-url``: scheme ``http``/``https``, a
  host, and no credentials in it (user-info or a secret-looking query parameter). Credentials in a
  URL would reach shell history, process lists, Ray task specs and every table that records the
  URL, so they are refused with a hint naming the supported ways (``ConfigError``, exit 2).
- ``check_reachable(url, ...)``: ONE request (``HEAD``, then ``GET`` if the server does not do
  ``HEAD``) with a short timeout: a host that does not resolve or refuses the connection fails in
  seconds (``RemoteError``, exit 3) instead of after a stage's retry budget; HTTP 401/403 with the
  given credentials is an ``AuthError`` (exit 2). Any other HTTP answer means "reachable".

No secret ever enters a message: messages carry ``redact(url)`` and exception class names only.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from arcray.errors import AuthError, ConfigError, RemoteError

# Query-parameter names treated as secrets (matched case-insensitively as a substring).
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|sig|auth|cred|session|cookie", re.I)
CREDENTIAL_HINT = ("put credentials in ARCRAY_{S}_USER/ARCRAY_{S}_PASSWORD, ARCRAY_{S}_PASSWORD_FILE, "
                   "--password-file or a ~/.netrc entry for the host, never in the URL")
CHECK_TIMEOUT_S = (3.05, 5.0)  # (connect, read), s: a check must fail in seconds, not a retry budget


def _secret_params(query: str) -> list[str]:
    return [k for k, _ in parse_qsl(query, keep_blank_values=True) if _SECRET_PARAM.search(k)]


def has_credentials(url: str) -> bool:
    """True when ``url`` carries a user-info part or a secret-looking query parameter."""
    parts = urlsplit(url)
    return "@" in parts.netloc or bool(_secret_params(parts.query))


def redact(url: str | None) -> str:
    """``url`` without its user-info and with secret-looking query values replaced by ``***``."""
    if not url:
        return url or ""
    try:
        parts = urlsplit(str(url))
    except ValueError:  # e.g. an invalid IPv6 netloc: keep nothing that could be a secret
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query and _secret_params(query):
        query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)], safe="*/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def check_base_url(url: str, *, option: str = "--base-url", service: str = "sas") -> str:
    """``url`` if it is an http(s) URL with a host and no credentials, else ``ConfigError``."""
    text = (url or "").strip()
    if has_credentials(text):
        raise ConfigError(f"{option} must not contain credentials ({redact(text)}); "
                          + CREDENTIAL_HINT.format(S=service.upper()))
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"{option} {redact(text)!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{option} {redact(text)!r} is not an http(s) URL with a host, "
                          "e.g. https://data.sdss5.org/sas/")
    return text


def check_reachable(url: str, *, auth: tuple[str, str] | None = None, session=None,
                    timeout: tuple[float, float] = CHECK_TIMEOUT_S, what: str = "the server") -> int:
    """One request to ``url``; the HTTP status, ``RemoteError`` when unreachable, ``AuthError`` on 401/403."""
    import requests

    s = session or requests.Session()
    try:
        try:
            r = s.head(url, auth=auth, timeout=timeout, allow_redirects=True)
            if r.status_code in (405, 501):  # no HEAD here: one GET instead, body not read
                r = s.get(url, auth=auth, timeout=timeout, allow_redirects=True, stream=True)
                r.close()
        except requests.RequestException as exc:
            raise RemoteError(f"{what} at {redact(url)} cannot be reached ({_why(exc)}); "
                              "check --base-url and the network") from None
    finally:
        if session is None:
            s.close()
    if auth is not None and r.status_code in (401, 403):
        raise AuthError(f"{what} at {redact(url)} refused the credentials (HTTP {r.status_code})")
    return r.status_code


def _why(exc: Exception) -> str:
    """A short, secret-free reason for a network error (no URL: requests puts the full URL in str())."""
    import requests

    if isinstance(exc, requests.Timeout):
        return f"no answer within {CHECK_TIMEOUT_S[0]:g} s"
    text = str(exc)
    for pattern, reason in ((r"Name or service not known|nodename nor servname|getaddrinfo failed|"
                             r"Temporary failure in name resolution|No address associated", "host name not found"),
                            (r"Connection refused", "connection refused"),
                            (r"No route to host", "no route to host"),
                            (r"Network is unreachable", "network unreachable")):
        if re.search(pattern, text):
            return reason
    return type(exc).__name__
