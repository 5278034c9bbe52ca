"""One local HTTP server that behaves like mailman.sdss.org and data.sdss5.org for a rendered world.

- ``/mailman/private/sloan-25mlog/``: Mailman 2.1 private archive (login form, ``POST`` of
  ``username``/``password``, session cookie ``sloan-25mlog+user+<obscured email>`` with
  ``path=/mailman``, "Authorization failed." + 401 when ``submit`` was posted, month index,
  ``<YYYY>-<Month>.txt`` and ``.txt.gz`` both served decompressed from ``mailman/*.txt.gz``).
- ``/sas/...``: the SAS tree under ``<root>/sas`` with HTTP Basic auth, ``Content-Length``,
  ``ETag``/``Last-Modified``, ``Accept-Ranges``, single ``Range`` -> 206 (416 when unsatisfiable),
  ``If-Range``, ``HEAD``, Apache-like directory listings.
- ``/_sim/stats``: JSON request counters (no auth; for tests and benchmarks).

Faults (``arcray.sim.faults.FaultSpec``) are off unless given.
"""

from __future__ import annotations

import base64
import email.utils
import errno
import gzip
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from arcray.errors import ConfigError
from arcray.paths import SimLayout
from arcray.sim import mailman_pages as mp
from arcray.sim.faults import Decision, FaultSpec, corrupt
from arcray.sim.http_parts import ServerStats, dir_listing, parse_range

PRIVATE = f"/mailman/private/{mp.LIST_NAME}"
SAS_PREFIX = "/sas/"
CHUNK = 64 * 1024


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    archive: "ArchiveServer"

    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away (timeouts, dropped connections) is not a server error
        super().handle_error(request, client_address)


def obscure_email(addr: str) -> str:
    """Mailman 2.1 ``Utils.ObscureEmail`` + ``urllib.quote(..., safe='')`` as used in cookie names."""
    return quote(addr.lower().replace("@", "--at--"), safe="")


class ArchiveServer:
    """The simulated archive. ``start()`` serves in a background thread; ``stop()`` shuts it down."""

    def __init__(self, root: str, *, user: str, password: str, host: str = "127.0.0.1",
                 port: int = 0, faults: FaultSpec | str | None = None):
        self.layout = SimLayout(os.path.abspath(root))
        self.user = user
        self._password = password
        self.faults = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        self.stats = ServerStats()
        self._secret = secrets.token_bytes(16)
        self._cookie_uses: Counter = Counter()
        self._lock = threading.Lock()
        try:
            self.httpd = _HTTPServer((host, port), _Handler)
        except OSError as exc:  # port in use, address not on this machine: one line, exit 2
            hint = "; pick another --port (0 = any free port)" if exc.errno == errno.EADDRINUSE else ""
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
        self.httpd.archive = self
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ArchiveServer(root={self.layout.root!r}, url={self.base_url!r}, user={self.user!r})"

    # -- addresses ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{host}:{self.port}"

    @property
    def mailman_url(self) -> str:
        return f"{self.base_url}{PRIVATE}/"

    @property
    def sas_url(self) -> str:
        return f"{self.base_url}{SAS_PREFIX}"

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "ArchiveServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="arcray-archive-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def set_faults(self, faults: FaultSpec | str | None) -> None:
        self.faults = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)

    # -- authentication -----------------------------------------------------------------
    def check_password(self, user: str, password: str) -> bool:
        return hmac.compare_digest(user.strip().lower(), self.user.lower()) and \
            hmac.compare_digest(password.encode(), self._password.encode())

    def check_basic(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return self.check_password(user, pw)

    @property
    def cookie_name(self) -> str:
        return f"{mp.LIST_NAME}+user+{obscure_email(self.user)}"

    def make_cookie_value(self) -> str:
        issued = f"{time.time_ns():x}"
        mac = hmac.new(self._secret, f"{self.user}:{issued}".encode(), hashlib.sha256).hexdigest()
        return f"{issued}{mac}"

    def check_cookie(self, header: str | None) -> bool:
        """True when the request carries a valid (and, with ``cookie_expiry``, unexpired) cookie."""
        if not header:
            return False
        for item in header.split(";"):
            name, _, value = item.strip().partition("=")
            if name != self.cookie_name or len(value) < 64:
                continue
            issued, mac = value[:-64], value[-64:]
            want = hmac.new(self._secret, f"{self.user}:{issued}".encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac, want):
                continue
            with self._lock:
                self._cookie_uses[value] += 1
                uses = self._cookie_uses[value]
            if self.faults.cookie_expiry and uses > self.faults.cookie_expiry:
                self.stats.record(fault="cookie_expired")
                return False
            return True
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache/2.4.37 (arcray-sim)"
    sys_version = ""

    @property
    def archive(self) -> ArchiveServer:
        return self.server.archive  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    # -- dispatch ----------------------------------------------------------------------
    def do_GET(self):
        self._form = None
        self._dispatch(head=False)

    def do_HEAD(self):
        self._form = None
        self._dispatch(head=True)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self._form = parse_qs(self.rfile.read(n).decode("utf-8", "replace")) if n else {}
        self._dispatch(head=False)

    def _dispatch(self, *, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == "/_sim/stats":
            return self._send_bytes(200, json.dumps(self.archive.stats.snapshot()).encode(),
                                    "application/json", head=head)
        arc = self.archive
        faults = arc.faults
        n = arc.stats.count(path, self.command)
        is_file = path.startswith(SAS_PREFIX) or path.endswith((".txt", ".txt.gz"))
        decision = faults.decide(path, n, body=is_file and not head) if faults.active else Decision()
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000.0)
        if decision.slow:
            arc.stats.record(fault="slow")
            time.sleep(faults.slow_s)
        if ".." in path.split("/"):
            return self._error(400, "Bad request")
        if decision.error:
            arc.stats.record(fault=decision.kind)
            return self._error(decision.error, "Injected failure", retry_after=decision.error == 503)
        if path.startswith(SAS_PREFIX):
            return self._sas(path, head, decision)
        if path == PRIVATE or path.startswith(PRIVATE + "/"):
            return self._mailman(path, head, decision)
        if path == f"/mailman/listinfo/{mp.LIST_NAME}":
            return self._send_text(200, f"<html><body><h1>{mp.LIST_NAME}</h1></body></html>", head=head)
        return self._error(404, "Not Found")

    # -- responses ---------------------------------------------------------------------
    def _send_bytes(self, code: int, body: bytes, ctype: str, *, head: bool = False,
                    headers: dict | None = None) -> None:
        self.archive.stats.record(status=code)  # before the client can see the response
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self._write_throttled(body)

    def _send_text(self, code: int, text: str, *, head: bool = False, headers: dict | None = None,
                   ctype: str = "text/html; charset=us-ascii") -> None:
        self._send_bytes(code, text.encode("utf-8"), ctype, head=head, headers=headers)

    def _error(self, code: int, msg: str, *, retry_after: bool = False, headers: dict | None = None):
        headers = dict(headers or {})
        if retry_after:
            headers["Retry-After"] = "1"
        body = f"<html><head><title>{code} {msg}</title></head><body><h1>{msg}</h1></body></html>\n"
        self._send_text(code, body, head=self.command == "HEAD", headers=headers)

    def _write_throttled(self, body: bytes, *, limit: int | None = None) -> None:
        """Write ``body[:limit]`` at the per-connection bandwidth cap."""
        rate = self.archive.faults.bandwidth_mbps * 1e6
        end = len(body) if limit is None else limit
        t0, sent = time.monotonic(), 0
        view = memoryview(body)
        while sent < end:
            chunk = view[sent:min(end, sent + CHUNK)]
            if rate > 0:  # pace before writing, so the bytes arrive no earlier than the cap allows
                ahead = (sent + len(chunk)) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            self.wfile.write(chunk)
            sent += len(chunk)
        self.archive.stats.record(nbytes=sent)

    def _drop(self) -> None:
        """Close the connection mid-body (the client sees an incomplete read)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- Mailman -----------------------------------------------------------------------
    def _mailman(self, path: str, head: bool, decision: Decision) -> None:
        arc = self.archive
        form = getattr(self, "_form", None)
        authed = arc.check_cookie(self.headers.get("Cookie"))
        set_cookie = None
        if not authed and form is not None and "username" in form:
            user, pw = form.get("username", [""])[0], form.get("password", [""])[0]
            if arc.check_password(user, pw):
                authed = True
                set_cookie = f"{arc.cookie_name}={arc.make_cookie_value()}; Path=/mailman; Version=1"
        if not authed:
            failed = form is not None and ("username" in form or "submit" in form)
            code = 401 if (form is not None and "submit" in form) else 200
            page = mp.login_page(path, "Authorization failed." if failed else "")
            return self._send_text(code, page, head=head)
        headers = {"Set-Cookie": set_cookie} if set_cookie else {}
        rest = path[len(PRIVATE):].strip("/")
        if rest in ("", "index.html"):
            return self._send_text(200, mp.index_page(arc.layout.mailman), head=head, headers=headers)
        m = re.fullmatch(r"(\d{4}-[A-Z][a-z]+)(\.txt|\.txt\.gz|/(thread|subject|author|date)\.html)", rest)
        gz = os.path.join(arc.layout.mailman, f"{m.group(1)}.txt.gz") if m else ""
        if not m or not os.path.isfile(gz):
            return self._error(404, "Not Found", headers=headers)
        if m.group(3):
            return self._send_text(200, mp.listing_page(m.group(1), gz, m.group(3)), head=head,
                                   headers=headers)
        with gzip.open(gz, "rb") as f:  # Mailman serves both URLs decompressed
            body = f.read()
        self._send_file_body(path, body, "text/plain", head, decision, os.path.getmtime(gz), headers)

    # -- SAS ---------------------------------------------------------------------------
    def _sas(self, path: str, head: bool, decision: Decision) -> None:
        arc = self.archive
        if not arc.check_basic(self.headers.get("Authorization")):
            return self._error(401, "Unauthorized",
                               headers={"WWW-Authenticate": 'Basic realm="SDSS-V Science Archive Server"'})
        local = os.path.join(arc.layout.sas_root, *path[len(SAS_PREFIX):].split("/"))
        if arc.faults.is_missing(path):
            arc.stats.record(fault="missing")
            return self._error(404, "Not Found")
        if os.path.isdir(local):
            if not path.endswith("/"):
                return self._error(301, "Moved Permanently", headers={"Location": path + "/"})
            return self._send_text(200, dir_listing(path, local), head=head)
        if not os.path.isfile(local):
            return self._error(404, "Not Found")
        with open(local, "rb") as f:
            body = f.read()
        ctype = "application/x-gzip" if path.endswith(".gz") else "application/octet-stream"
        self._send_file_body(path, body, ctype, head, decision, os.path.getmtime(local), {})

    def _send_file_body(self, path: str, body: bytes, ctype: str, head: bool, decision: Decision,
                        mtime: float, headers: dict) -> None:
        """Serve a file with validators and Range support, applying body faults."""
        arc = self.archive
        if decision.truncate_fraction:
            arc.stats.record(fault="truncate")
            body = body[: int(len(body) * decision.truncate_fraction)]
        elif decision.corrupt_seed >= 0:
            arc.stats.record(fault="corrupt")
            body = corrupt(body, decision.corrupt_seed)
        size = len(body)
        etag = f'"{size:x}-{int(mtime * 1e6):x}"'
        headers = dict(headers, **{"ETag": etag, "Last-Modified": email.utils.formatdate(mtime, usegmt=True),
                                   "Accept-Ranges": "bytes"})
        start, end, code = 0, size, 200
        rng = self.headers.get("Range")
        if rng:
            arc.stats.record(rng=(path, rng))
            if_range = self.headers.get("If-Range")
            if not if_range or if_range == etag or if_range == headers["Last-Modified"]:
                parsed = parse_range(rng, size)
                if parsed is None:
                    return self._error(416, "Requested Range Not Satisfiable",
                                       headers={"Content-Range": f"bytes */{size}"})
                if parsed:
                    start, end, code = parsed[0], parsed[1], 206
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        part = body[start:end]
        arc.stats.record(status=code)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(part)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        if decision.drop_fraction:
            arc.stats.record(fault="drop")
            self._write_throttled(part, limit=int(len(part) * decision.drop_fraction))
            return self._drop()
        self._write_throttled(part)
