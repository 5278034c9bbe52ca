"""The simulated archive server behaves like mailman.sdss.org (Mailman 2.1) and data.sdss5.org (SAS)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
import zlib

import pytest
import requests
from bs4 import BeautifulSoup

from arcray.errors import ConfigError
from arcray.sim.faults import FaultSpec
from tests.plugins.server_fixtures import MINI_PASSWORD, MINI_USER

COOKIE = "sloan-25mlog+user+observer--at--example.org"


def _login(handle, session=None, password=MINI_PASSWORD, submit=True):
    s = session or requests.Session()
    data = {"username": handle.user, "password": password}
    if submit:
        data["submit"] = "Let me in..."
    return s, s.post(handle.mailman_url.rstrip("/"), data=data, timeout=5)


def test_login_page_has_the_real_form(archive_server):
    h = archive_server()
    r = requests.get(h.mailman_url, timeout=5)
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    form = BeautifulSoup(r.text, "html.parser").find("form")
    assert form["method"].upper() == "POST"
    names = {i.get("name"): (i.get("type") or "").lower() for i in form.find_all("input")}
    assert names == {"username": "text", "password": "password", "submit": "submit"}
    assert form.find("input", attrs={"name": "submit"})["value"] == "Let me in..."
    assert "Authorization failed." not in r.text


def test_wrong_password_is_refused(archive_server):
    h = archive_server()
    s, r = _login(h, password="wrong")
    assert r.status_code == 401 and "Authorization failed." in r.text
    assert not s.cookies and 'NAME="username"' in r.text
    s, r = _login(h, password="wrong", submit=False)
    assert r.status_code == 200 and "Authorization failed." in r.text and not s.cookies


def test_login_cookie_index_and_months(archive_server, mini_world):
    h = archive_server()
    s, r = _login(h)
    assert r.status_code == 200
    cookie = next(c for c in s.cookies)
    assert cookie.name == COOKIE and cookie.path == "/mailman"
    assert "Set-Cookie" in r.headers and "Path=/mailman" in r.headers["Set-Cookie"]
    # the index (also at the trailing-slash URL, now by cookie alone)
    idx = s.get(h.mailman_url, timeout=5)
    soup = BeautifulSoup(idx.text, "html.parser")
    links = [a["href"] for a in soup.find_all("a")]
    assert "2023-December/thread.html" in links and "2023-December.txt.gz" in links
    assert links.index("2023-December.txt.gz") < links.index("2023-November.txt.gz")  # newest first
    assert "Gzip'd Text" in idx.text and len(soup.find("table").find_all("tr")) == 3
    raw = gzip.open(mini_world.month_archive(2023, "December")).read()
    for suffix in (".txt", ".txt.gz"):  # both served decompressed, as Mailman does
        m = s.get(h.mailman_url + "2023-December" + suffix, timeout=5)
        assert m.status_code == 200 and m.content == raw and m.headers["Content-Type"] == "text/plain"
    assert "Subject: [sloan-25mlog] 60285" in s.get(h.mailman_url + "2023-December.txt").text
    assert s.get(h.mailman_url + "2023-December/date.html").text.count("<LI>") == 2
    assert s.get(h.mailman_url + "2024-January.txt.gz", timeout=5).status_code == 404
    # without the cookie the month is the login page again
    assert 'NAME="password"' in requests.get(h.mailman_url + "2023-December.txt", timeout=5).text


def test_sas_basic_auth_validators_and_ranges(archive_server, mini_world):
    h = archive_server()
    url = h.frame_url("b1", 60285, 380101)
    data = open(mini_world.raw_frame("b1", 60285, 380101), "rb").read()
    r = requests.get(url, timeout=5)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert requests.get(url, auth=(h.user, "nope"), timeout=5).status_code == 401
    s = requests.Session()
    s.auth = (h.user, h.password)
    r = s.get(url, timeout=5)
    assert r.status_code == 200 and r.content == data
    assert int(r.headers["Content-Length"]) == len(data) and r.headers["Accept-Ranges"] == "bytes"
    etag, lm = r.headers["ETag"], r.headers["Last-Modified"]
    assert etag.startswith('"') and lm.endswith("GMT")
    hd = s.head(url, timeout=5)
    assert hd.status_code == 200 and hd.content == b"" and hd.headers["Content-Length"] == str(len(data))
    r = s.get(url, headers={"Range": "bytes=100-"}, timeout=5)
    assert r.status_code == 206 and r.content == data[100:]
    assert r.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert s.get(url, headers={"Range": "bytes=10-19"}).content == data[10:20]
    assert s.get(url, headers={"Range": "bytes=-5"}).content == data[-5:]
    r = s.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=5)
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
    assert s.get(url, headers={"Range": "bytes=100-", "If-Range": etag}).status_code == 206
    r = s.get(url, headers={"Range": "bytes=100-", "If-Range": '"stale"'}, timeout=5)
    assert r.status_code == 200 and r.content == data
    assert s.get(h.frame_url("b1", 60285, 399999), timeout=5).status_code == 404
    assert s.get(h.sas_url + "sdsswork/../../etc/passwd", timeout=5).status_code in (400, 404)
    listing = s.get(h.sas_url + "sdsswork/data/boss/spectro/apo/60285/", timeout=5)
    assert "sdR-b1-00380101.fit.gz" in listing.text
    assert h.stats.requests["/sas/sdsswork/data/boss/spectro/apo/60285/sdR-b1-00380101.fit.gz"] >= 8
    assert any(rng == "bytes=100-" for _, rng in h.stats.ranges)
    assert s.get(h.base_url + "/_sim/stats").json()["status"]["416"] == 1


def test_fault_spec_parse():
    f = FaultSpec.parse("error_rate=0.2,drop_rate=0.1,cookie_expiry=5,missing=sdR-b1-00012345;"
                        "sdR-r1-00012345.fit.gz,latency_ms=50,bandwidth_mbps=20,seed=1")
    assert f.error_rate == 0.2 and f.cookie_expiry == 5 and f.bandwidth_mbps == 20 and f.seed == 1
    assert f.is_missing("/sas/x/sdR-r1-00012345.fit.gz") and not f.is_missing("sdR-b1-00012346")
    assert not FaultSpec.parse("").active and FaultSpec.parse("slow_rate=0.5").active
    for bad in ("nope=1", "error_rate=2", "error_rate=x", "seed"):
        with pytest.raises(ConfigError):
            FaultSpec.parse(bad)
    # deterministic: the n-th request of a path decides the same way for the same seed
    a = [FaultSpec.parse("error_rate=0.5,seed=3").decide("/p", n, body=True).kind for n in range(40)]
    b = [FaultSpec.parse("error_rate=0.5,seed=3").decide("/p", n, body=True).kind for n in range(40)]
    c = [FaultSpec.parse("error_rate=0.5,seed=4").decide("/p", n, body=True).kind for n in range(40)]
    assert a == b and a != c and 10 < sum(k is not None for k in a) < 30


def test_every_fault_kind(archive_server, mini_world):
    url_args = ("b1", 60285, 380102)
    data = open(mini_world.raw_frame(*url_args), "rb").read()
    auth = (MINI_USER, MINI_PASSWORD)

    h = archive_server(faults="error_rate=1")
    codes = {requests.get(h.frame_url(*url_args), auth=auth, timeout=5).status_code for _ in range(12)}
    assert codes == {500, 503} and h.stats.faults["error503"] >= 1

    h = archive_server(faults="drop_rate=1")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.get(h.frame_url(*url_args), auth=auth, timeout=5)
    assert h.stats.faults["drop"] == 1

    h = archive_server(faults="truncate_rate=1")
    r = requests.get(h.frame_url(*url_args), auth=auth, timeout=5)
    assert r.status_code == 200 and len(r.content) == int(r.headers["Content-Length"]) < len(data)
    assert r.content == data[: len(r.content)]
    with pytest.raises(EOFError):
        gzip.decompress(r.content)

    h = archive_server(faults="corrupt_rate=1")
    r = requests.get(h.frame_url(*url_args), auth=auth, timeout=5)
    assert len(r.content) == len(data) and r.content != data
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress(r.content)

    h = archive_server(faults="slow_rate=1,slow_s=0.6")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(h.frame_url(*url_args), auth=auth, timeout=(2, 0.2))

    h = archive_server(faults="missing=sdR-b1-00380102")
    assert requests.get(h.frame_url(*url_args), auth=auth, timeout=5).status_code == 404
    assert requests.get(h.frame_url("r1", 60285, 380102), auth=auth, timeout=5).status_code == 200

    h = archive_server(faults="cookie_expiry=2")
    s, r = _login(h)
    assert "2023-December.txt.gz" in s.get(h.mailman_url).text  # cookie use 1
    assert s.get(h.mailman_url + "2023-December.txt").text.startswith("From ")  # use 2
    assert 'NAME="password"' in s.get(h.mailman_url + "2023-December.txt").text  # 3rd use: expired
    s, _ = _login(h, requests.Session())
    assert s.get(h.mailman_url + "2023-December.txt").text.startswith("From ")  # re-login works

    h = archive_server(faults="latency_ms=150")
    t0 = time.monotonic()
    requests.get(h.frame_url(*url_args), auth=auth, timeout=5)
    assert time.monotonic() - t0 >= 0.15

    big = len(data)
    h = archive_server(faults=f"bandwidth_mbps={big / 0.4 / 1e6:.6f}")  # the frame takes 0.4 s
    t0 = time.monotonic()
    assert requests.get(h.frame_url(*url_args), auth=auth, timeout=5).content == data
    assert 0.35 <= time.monotonic() - t0 < 2.0


def test_cli_serve_prints_urls_and_stops_on_sigterm(mini_world, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(MINI_PASSWORD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "arcray", "sim", "serve", "--root", mini_world.root, "--port", "0",
         "--user", MINI_USER, "--password-file", str(pw)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith("mailman: http://127.0.0.1:")
        url = line.split()[1]
        assert requests.get(url, timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "stopped" in out and MINI_PASSWORD not in out + err
    finally:
        if proc.poll() is None:
            proc.kill()
