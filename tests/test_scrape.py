"""Scraping the simulated Mailman archive over real HTTP (arcray.sim.server), with a real local Ray."""

from __future__ import annotations

import gzip
import json
import os

import pyarrow.parquet as pq
import pytest

from arcray.credentials import Credentials
from arcray.errors import AuthError, InputError
from arcray.ingest.logparse import parse_archive
from arcray.ingest.mailman_client import MailmanClient, find_login_form
from arcray.ingest.manifest import MANIFEST_SCHEMA, parse_months
from arcray.io import read_provenance
from arcray.paths import Layout, SimLayout
from arcray.pipeline.scrape import scrape
from arcray.sim.mailman import write_month_archives
from tests.test_mailman_sim import make_exposures

SEED = 11


@pytest.fixture(scope="module")
def log_world(tmp_path_factory):
    """A world with three monthly archives: 2023-November, 2023-December (sloan_log + list), 2025-May (SOS)."""
    root = tmp_path_factory.mktemp("log_world")
    exps = make_exposures(60274, 12, 379000) + make_exposures(60800, 5, 392000, seed=3)
    paths = write_month_archives(exps, SimLayout(str(root)).mailman, seed=SEED)
    assert [os.path.basename(p) for p in paths] == ["2023-November.txt.gz", "2023-December.txt.gz",
                                                    "2025-May.txt.gz"]
    return str(root), exps


def _total(handle) -> int:
    return handle.stats.snapshot()["total"]


def _creds(h, password=None):
    return Credentials(h.user, password or h.password, "test")


def test_login_right_and_wrong_password(archive_server, log_world):
    h = archive_server(root=log_world[0])
    client = MailmanClient(h.base_url, _creds(h))
    client.login()
    assert client.logged_in and any(c.name.startswith("sloan-25mlog+user+") for c in client.session.cookies)
    assert list(client.month_index()) == ["2023-11", "2023-12", "2025-05"]
    bad = MailmanClient(h.base_url, _creds(h, "wrong-password-xyz"))
    with pytest.raises(AuthError) as err:
        bad.login()
    assert "wrong-password-xyz" not in str(err.value) and h.password not in str(err.value)
    assert "refused" in str(err.value) and not bad.logged_in


def test_login_form_found_not_hardcoded():
    html = ('<html><form method="post" action="/x/login"><input type="hidden" name="csrf" value="t1">'
            '<input type="email" name="user_email"><INPUT TYPE="PASSWORD" NAME="pw">'
            '<input type="submit" name="go" value="Enter"></form></html>')
    form = find_login_form(html, "http://h/a/")
    assert (form.action, form.user_field, form.password_field) == ("http://h/x/login", "user_email", "pw")
    assert form.extra == {"csrf": "t1", "go": "Enter"}
    assert find_login_form("<html><a href='2023-December.txt.gz'>x</a></html>", "http://h/") is None


def test_fetch_month_decompressed_cookie_expiry_and_5xx(archive_server, log_world):
    root, _ = log_world
    h = archive_server(root=root, faults="cookie_expiry=2,error_rate=0.3,drop_rate=0.3,truncate_rate=0.2,seed=5")
    client = MailmanClient(h.base_url, _creds(h), backoff=0.01, retries=8)
    for month, name in [("2023-11", "2023-November"), ("2023-12", "2023-December"), ("2025-05", "2025-May")]:
        data = client.fetch_month(month)
        assert data[:2] != b"\x1f\x8b" and data.startswith(b"From ")  # served decompressed
        with open(os.path.join(root, "mailman", name + ".txt.gz"), "rb") as f:
            assert data == gzip.decompress(f.read())
    assert client.n_logins >= 2  # the cookie expired and the client logged in again
    snap = h.stats.snapshot()
    assert snap["faults"].get("cookie_expired", 0) >= 1, snap
    assert sum(v for k, v in snap["faults"].items() if k != "cookie_expired") >= 2, snap  # 5xx, drops
    assert client.fetch_month("2024-02") is None  # not in the archive: 404


def test_parse_months():
    assert parse_months("2023-11..2024-01") == ["2023-11", "2023-12", "2024-01"]
    assert parse_months("2025-05,2023-12") == ["2023-12", "2025-05"]
    for bad, why in (("2023-13", "use YYYY-MM"), ("2023-12..2023-11", "ends before it starts"),
                     ("Dec", "use YYYY-MM"), (" , ", "no months")):
        with pytest.raises(InputError, match=why):
            parse_months(bad)


@pytest.mark.ray
def test_scrape_months_in_ray_tasks_incremental(archive_server, log_world, tmp_path, ray_local):
    root, exps = log_world
    h = archive_server(root=root)
    out = str(tmp_path / "out")
    months = ["2023-11", "2023-12", "2025-05", "2024-01"]
    s1 = scrape(h.base_url, out, months, _creds(h), use_ray=True)
    assert s1.fetched == ["2023-11", "2023-12", "2025-05"] and s1.missing == ["2024-01"]
    assert s1.failed == {} and s1.warnings == [] and (s1.n_ok, s1.n_skipped, s1.n_failed) == (3, 0, 0)
    lay = Layout(out)
    merged = pq.read_table(lay.manifest)
    assert merged.schema.remove_metadata().equals(MANIFEST_SCHEMA)
    assert sorted(merged.column("expnum").to_pylist()) == sorted(e.expnum for e in exps)
    assert set(merged.column("layout").to_pylist()) == {"sloan_log", "list", "sos", "sos_long"}
    assert read_provenance(lay.manifest_month("2023-12"))["n_messages"] >= 9
    # second run: nothing fetched, not even a login
    n = _total(h)
    mtime = os.path.getmtime(lay.manifest_month("2023-12"))
    s2 = scrape(h.base_url, out, months[:3], None, use_ray=True)
    assert _total(h) == n and s2.fetched == [] and s2.cached == months[:3]
    assert os.path.getmtime(lay.manifest_month("2023-12")) == mtime and s2.n_exposures == len(exps)
    s3 = scrape(h.base_url, out, ["2023-12"], _creds(h), refresh=True, use_ray=True)
    assert s3.fetched == ["2023-12"] and _total(h) > n


def test_cli_scrape_wrong_password_exit_2_and_right_password(archive_server, log_world, tmp_path,
                                                            monkeypatch, capsys):
    from arcray.cli.main import main

    h = archive_server(root=log_world[0])
    bad_pw = tmp_path / "bad-pw"
    bad_pw.write_text("not-the-password-42\n")
    for k in [k for k in os.environ if k.startswith("ARCRAY_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("ARCRAY_MAILMAN_USER", h.user)
    monkeypatch.setenv("NETRC", os.devnull)
    out = str(tmp_path / "o")
    args = ["scrape", "--base-url", h.base_url, "--root", out, "--months", "2023-12", "--no-ray"]
    with pytest.raises(SystemExit) as exc:
        main(args + ["--password-file", str(bad_pw)])
    bad = capsys.readouterr()
    assert exc.value.code == 2, bad.err
    assert bad.out == "" and len(bad.err.strip().splitlines()) == 1
    assert bad.err.startswith("arcray: error: ") and "refused" in bad.err
    assert "not-the-password-42" not in bad.err + bad.out
    assert not os.path.exists(Layout(out).manifest)
    with pytest.raises(SystemExit) as exc:
        main(args + ["--password-file", h.password_file, "--json"])
    ok = capsys.readouterr()
    assert exc.value.code == 0, ok.err
    data = json.loads(ok.out)
    with open(os.path.join(log_world[0], "mailman", "2023-December.txt.gz"), "rb") as f:
        rows = parse_archive(f.read()).rows
    arcs = {r.expnum for r in rows if r.flavor == "arc" and not r.is_hartmann}
    assert {int(x) for v in data["arcs"].values() for x in v} == arcs and len(arcs) >= 10
    assert h.password not in ok.out + ok.err
    assert ok.err.startswith("scrape: 1 ok, 0 failed months (") and Layout(out).manifest in ok.err
