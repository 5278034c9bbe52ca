"""Issue 18, ingest half: nothing lost, nothing trusted blindly.

Every test drives the real CLI (``arcray.cli.main.main``) against the real simulated archive server
and real files: one ``download`` per root at a time, reruns that check what they skip, no
credentials in URLs (and none recorded anywhere), base URLs checked in seconds before Ray starts,
and one-line errors instead of tracebacks.
"""

from __future__ import annotations

import gzip
import os
import socket
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arcray.locks import stage_lock
from arcray.paths import Layout
from arcray.urls import check_base_url, redact

EXPS = [(60285, 380100 + i) for i in range(2)]  # x (b1, r1) = 4 frames of the mini world


def write_manifest(path: str, exposures=EXPS) -> None:
    rows = [{"mjd": m, "expnum": e, "observatory": "apo", "flavor": "arc", "hartmann": "Out",
             "is_hartmann": False, "exptime": 4.0, "cameras": ["b1", "r1"], "layout": "sloan_log"}
            for m, e in exposures]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.fixture
def sas_env(monkeypatch):
    """Only the handle's credential variables; no ~/.netrc."""
    def _set(h):
        for k in [k for k in os.environ if k.startswith("ARCRAY_")]:
            monkeypatch.delenv(k)
        monkeypatch.setenv("NETRC", os.devnull)
        for k, v in h.env.items():
            monkeypatch.setenv(k, v)
    return _set


def run_cli(capsys, args) -> tuple[int, str, list[str]]:
    """``(exit code, stdout, stderr lines other than Ray's one 'ray: ...' announcement)``."""
    from arcray.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, [line for line in err.splitlines() if not line.startswith("ray: ")]


def one_error(err: list[str]) -> str:
    assert len(err) == 1 and err[0].startswith("arcray: error: "), err
    return err[0]


def no_ray(monkeypatch):
    """Fail the test if the command gets as far as starting Ray."""
    import arcray.raycluster

    def boom(*a, **k):
        raise AssertionError("ensure_ray was called")

    monkeypatch.setattr(arcray.raycluster, "ensure_ray", boom)


def files_containing(root: str, secret: str) -> list[str]:
    hits = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                data = f.read()
            if n.endswith(".gz"):
                data += gzip.decompress(data)
            if secret.encode() in data:
                hits.append(p)
    return hits


# -- 1. one download per root ---------------------------------------------------------------
@pytest.mark.ray
def test_download_refuses_while_another_run_holds_the_root(ray_local, archive_server, sas_env, tmp_path, capsys):
    h = archive_server()
    sas_env(h)
    layout = Layout(str(tmp_path / "data"))
    write_manifest(layout.manifest)
    args = ["download", "--base-url", h.base_url, "--root", layout.root, "--workers", "2", "--no-progress"]
    with stage_lock(layout, "download"):
        t0 = time.monotonic()
        code, out, err = run_cli(capsys, args)
        assert code == 2 and out == "" and time.monotonic() - t0 < 5
        line = one_error(err)
        assert "download is already running" in line and str(os.getpid()) in line and "--wait" in line
        assert sum(h.stats.requests.values()) == 0 and not os.path.exists(layout.downloads)
        code, out, err = run_cli(capsys, args + ["--wait", "0.6"])  # waits, then refuses
        assert code == 2 and "already running" in one_error(err)
    code, out, err = run_cli(capsys, args)  # released: it runs
    assert code == 0 and err == [] and out.startswith("download: 4 ok, 0 failed files (")
    assert pq.read_table(layout.downloads).num_rows == 4


# -- 2. reruns verify what they skip ------------------------------------------------------------
@pytest.mark.ray
def test_rerun_refetches_truncated_missing_and_damaged_files(ray_local, archive_server, sas_env, mini_world,
                                                              tmp_path, capsys):
    h = archive_server()
    sas_env(h)
    layout = Layout(str(tmp_path / "data"))
    write_manifest(layout.manifest)
    args = ["download", "--base-url", h.base_url, "--root", layout.root, "--workers", "2", "--no-progress"]
    assert run_cli(capsys, args)[0] == 0
    truncated, missing, damaged, fine = (layout.raw_frame(c, 60285, e) for c, e in
                                         (("b1", 380100), ("r1", 380100), ("b1", 380101), ("r1", 380101)))
    src = {p: open(mini_world.raw_frame(*k), "rb").read() for p, k in (
        (truncated, ("b1", 60285, 380100)), (missing, ("r1", 60285, 380100)), (damaged, ("b1", 60285, 380101)))}
    data = open(truncated, "rb").read()
    open(truncated, "wb").write(data[: len(data) // 2])
    os.unlink(missing)
    raw = bytearray(open(damaged, "rb").read())  # same size, one byte flipped inside the deflate stream
    raw[len(raw) // 2] ^= 0xFF
    open(damaged, "wb").write(bytes(raw))
    fine_mtime = os.path.getmtime(fine)
    gets = lambda p: h.stats.methods[("GET", h.frame_url(*_key(p)).split(h.base_url)[1])]  # noqa: E731
    before = {p: gets(p) for p in (truncated, missing, damaged, fine)}

    code, out, err = run_cli(capsys, args)  # cheap check: presence and size
    assert code == 0 and err == []
    assert out.startswith("download: 4 ok, 0 failed files (2 already present, 2 fetched again"), out
    for p in (truncated, missing):
        assert open(p, "rb").read() == src[p] and gets(p) == before[p] + 1
    assert gets(damaged) == before[damaged] and gets(fine) == before[fine]  # same size: trusted

    code, out, err = run_cli(capsys, args + ["--verify"])  # CRC of every ok file
    assert code == 0 and err == []
    assert out.startswith("download: 4 ok, 0 failed files (3 already present, verified, 1 fetched again"), out
    assert open(damaged, "rb").read() == src[damaged] and gets(damaged) == before[damaged] + 1
    assert gets(fine) == before[fine] and os.path.getmtime(fine) == fine_mtime
    rows = {(r["camera"], r["expnum"]): r for r in pq.read_table(layout.downloads).to_pylist()}
    assert len(rows) == 4 and all(r["status"] == "ok" and r["bytes"] == os.path.getsize(r["path"])
                                  for r in rows.values())
    assert files_containing(str(tmp_path / "data"), h.password) == []


def _key(path: str):
    name = os.path.basename(path)[len("sdR-"):].split(".")[0]
    cam, exp = name.split("-")
    return cam, int(os.path.basename(os.path.dirname(path))), int(exp)


# -- 3. no credentials in URLs, none recorded -----------------------------------------------------
def test_redact_strips_user_info_and_query_secrets():
    assert redact("https://me:PW@data.sdss5.org/sas/?x=1&token=PW&X-Amz-Signature=PW") == \
        "https://data.sdss5.org/sas/?x=1&token=***&X-Amz-Signature=***"
    assert redact("http://me@h:8/sas/") == "http://h:8/sas/"
    assert redact("s3://bucket/arcray") == "s3://bucket/arcray" and redact(None) == ""
    assert check_base_url("https://data.sdss5.org/sas/") == "https://data.sdss5.org/sas/"


def test_credentials_in_base_url_refused_before_anything_is_written(archive_server, sas_env, tmp_path, capsys,
                                                                     monkeypatch):
    h = archive_server()
    sas_env(h)
    no_ray(monkeypatch)
    secret = h.password
    netloc = h.base_url.split("//")[1]
    root = str(tmp_path / "data")
    for args, var in (
            (["download", "--base-url", f"http://{h.user}:{secret}@{netloc}/sas/", "--root", root], "SAS"),
            (["download", "--base-url", f"{h.base_url}/sas/?password={secret}", "--root", root], "SAS"),
            (["scrape", "--base-url", f"http://u:{secret}@{netloc}", "--root", root, "--months", "2023-12"],
             "MAILMAN")):
        code, out, err = run_cli(capsys, args)
        line = one_error(err)
        assert code == 2 and out == "" and "must not contain credentials" in line
        assert f"ARCRAY_{var}_PASSWORD" in line and "--password-file" in line and ".netrc" in line
        assert secret not in line and not os.path.exists(root)
    assert sum(h.stats.requests.values()) == 0
    # the same scrape with the password where it belongs: nothing under the root holds it
    code, out, err = run_cli(capsys, ["scrape", "--base-url", h.base_url, "--root", root, "--months", "2023-12",
                                      "--no-ray"])
    assert code == 0 and secret not in out + "".join(err)
    assert files_containing(root, secret) == []
    prov = pq.read_schema(Layout(root).manifest_month("2023-12")).metadata[b"arcray"].decode()
    assert h.base_url in prov and "@" not in prov


# -- 4. base URLs checked in seconds, before Ray ------------------------------------------------------
def test_not_a_url_fails_in_seconds_with_one_line(tmp_path, capsys, monkeypatch):
    no_ray(monkeypatch)
    t0 = time.monotonic()
    code, out, err = run_cli(capsys, ["download", "--base-url", "not-a-url", "--root", str(tmp_path / "d")])
    assert time.monotonic() - t0 < 5 and code == 2 and out == ""
    assert one_error(err) == ("arcray: error: --base-url 'not-a-url' is not an http(s) URL with a host, "
                              "e.g. https://data.sdss5.org/sas/")
    code, _, err = run_cli(capsys, ["scrape", "--base-url", "ftp://h/x", "--root", str(tmp_path / "d"),
                                    "--months", "2023-12"])
    assert code == 2 and "not an http(s) URL" in one_error(err)


def test_unreachable_host_fails_in_seconds(archive_server, sas_env, tmp_path, capsys, monkeypatch):
    sas_env(archive_server())
    no_ray(monkeypatch)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    layout = Layout(str(tmp_path / "data"))
    write_manifest(layout.manifest)
    for args in (["download", "--base-url", f"http://127.0.0.1:{port}/sas/", "--root", layout.root],
                 ["scrape", "--base-url", f"http://127.0.0.1:{port}", "--root", layout.root, "--months",
                  "2023-11..2023-12"]):
        t0 = time.monotonic()
        code, out, err = run_cli(capsys, args)
        assert time.monotonic() - t0 < 5 and code == 3, err
        line = one_error(err)
        assert f"127.0.0.1:{port}" in line and "connection refused" in line
    assert not os.path.exists(layout.downloads)


def test_wrong_sas_path_is_one_check_not_a_failure_per_file(archive_server, sas_env, tmp_path, capsys,
                                                            monkeypatch):
    h = archive_server()
    sas_env(h)
    no_ray(monkeypatch)
    layout = Layout(str(tmp_path / "data"))
    write_manifest(layout.manifest)
    code, out, err = run_cli(capsys, ["download", "--base-url", h.base_url + "/data/sas/", "--root", layout.root])
    line = one_error(err)
    assert code == 2 and "HTTP 404" in line and "sdR-b1-00380100" in line and "--base-url" in line
    frame_requests = [p for p in h.stats.requests if p.endswith(".fit.gz")]
    assert frame_requests == ["/data/sas/sdsswork/data/boss/spectro/apo/60285/sdR-b1-00380100.fit.gz"]
    assert h.stats.requests["/data/sas/sdsswork/data/boss/spectro/apo/"] == 1  # the tree is missing too
    assert sum(h.stats.requests.values()) == 3  # the root check + the first frame's HEAD + its tree
    assert not os.path.exists(layout.downloads) and not os.path.exists(layout.raw_root)
    # a refused login is the root check's answer: one request, exit 2
    bad = tmp_path / "bad-pw"
    bad.write_text("not-it\n")
    monkeypatch.setenv("ARCRAY_SAS_PASSWORD_FILE", str(bad))
    n = sum(h.stats.requests.values())
    code, out, err = run_cli(capsys, ["download", "--base-url", h.base_url, "--root", layout.root])
    assert code == 2 and "refused the credentials" in one_error(err) and "not-it" not in err[0]
    assert sum(h.stats.requests.values()) == n + 1


def test_scrape_refused_login_fails_before_ray(archive_server, sas_env, tmp_path, capsys, monkeypatch):
    h = archive_server()
    sas_env(h)
    no_ray(monkeypatch)
    bad = tmp_path / "bad-pw"
    bad.write_text("not-it\n")
    monkeypatch.setenv("ARCRAY_MAILMAN_PASSWORD_FILE", str(bad))
    code, out, err = run_cli(capsys, ["scrape", "--base-url", h.base_url, "--root", str(tmp_path / "d"),
                                      "--months", "2023-11..2023-12"])
    assert code == 2 and out == "" and "refused" in one_error(err) and "not-it" not in err[0]


# -- 5. one-line errors instead of tracebacks ---------------------------------------------------------
def test_download_manifest_missing_not_parquet_or_directory(archive_server, sas_env, tmp_path, capsys,
                                                            monkeypatch):
    h = archive_server()
    sas_env(h)
    no_ray(monkeypatch)
    text = tmp_path / "manifest.parquet"
    text.write_text("mjd,expnum\n60285,380100\n")
    for manifest, word in ((tmp_path / "nope.parquet", "not found"), (text, "not a readable Parquet file"),
                           (tmp_path, "is a directory")):
        code, out, err = run_cli(capsys, ["download", "--base-url", h.base_url, "--root", str(tmp_path / "d"),
                                          "--manifest", str(manifest)])
        assert code == 2 and out == "" and word in one_error(err) and str(manifest) in err[0]
    good = tmp_path / "good.parquet"
    write_manifest(str(good))
    code, out, err = run_cli(capsys, ["download", "--base-url", h.base_url, "--root", "/dev/null/x",
                                      "--manifest", str(good)])
    assert code == 2 and one_error(err) == "arcray: error: cannot create the root /dev/null/x: Not a directory"
    assert sum(h.stats.requests.values()) == 0


def test_scrape_root_that_cannot_be_created(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ARCRAY_MAILMAN_USER", "u")
    monkeypatch.setenv("ARCRAY_MAILMAN_PASSWORD", "p")
    code, out, err = run_cli(capsys, ["scrape", "--base-url", "http://127.0.0.1:9", "--root", "/dev/null/x",
                                      "--months", "2023-12", "--no-ray"])
    assert code == 2 and out == ""
    assert one_error(err) == "arcray: error: cannot create the root /dev/null/x: Not a directory"


def test_scrape_from_file_without_boss_tables_exits_2(tmp_path, capsys):
    f = tmp_path / "2023-December.txt"
    f.write_text("From a@b Mon Dec  1 12:00:00 2023\nSubject: lunch\n\nno tables here\n")
    code, out, err = run_cli(capsys, ["scrape", "--from-file", str(f), "--json"])
    assert code == 2 and out == ""
    line = one_error(err)
    assert "no '---- BOSS Data Summary ----' table" in line and str(f) in line


def test_sim_serve_on_a_port_in_use(mini_world, tmp_path, capsys):
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, out, err = run_cli(capsys, ["sim", "serve", "--root", mini_world.root, "--user", "u@x",
                                          "--password-file", str(pw), "--port", str(port)])
    assert code == 2 and out == ""
    assert one_error(err) == (f"arcray: error: cannot listen on 127.0.0.1:{port}: Address already in use; "
                              "pick another --port (0 = any free port)")
