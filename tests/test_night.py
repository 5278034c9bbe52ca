"""`arcray night`: one night of the simulated world end to end from downloaded frames, its page in a
real headless browser (Debian's chromium through Playwright), reruns, the exit code, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime, timezone

import pandas as pd
import pytest

from arcray.paths import Layout
from arcray.pipeline.night import yesterday_mjd
from arcray.report.night import night_verdict

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.environ.get("ARCRAY_TEST_ARTIFACTS", os.path.join(os.path.dirname(__file__), os.pardir,
                                                                  "test-artifacts"))


def test_yesterday_is_the_last_night_that_has_ended_at_apo():
    # 2024-01-18 15:00 UTC: the night of MJD 60327 (evening of Jan 17 local) is over (14:24 UTC)
    assert yesterday_mjd(datetime(2024, 1, 18, 15, 0, tzinfo=timezone.utc)) == 60327
    # 2024-01-18 06:00 UTC: that night is still going on; the last ended night is 60326
    assert yesterday_mjd(datetime(2024, 1, 18, 6, 0, tzinfo=timezone.utc)) == 60326
    assert yesterday_mjd(datetime(2024, 1, 18, 23, 30, tzinfo=timezone.utc)) == 60327


def test_verdict_is_the_worst_light_per_camera_with_an_action_per_red_frame():
    night = pd.DataFrame({"camera": ["b1", "b1", "r1", "r1"], "expnum": [1, 2, 1, 2], "flavor": "arc",
                          "measured": [True, True, True, False], "status": ["green", "red", "yellow", None],
                          "status_reasons": ["", "NLAMPS=9 red", "WSIGMA=1.27 yellow", None]})
    v = night_verdict(night)
    assert v["cameras"] == {"b1": "red", "r1": "yellow"}
    assert v["actions"] == ["b1 00000002: NLAMPS=9 red — retake the arc"]
    flags = pd.DataFrame({"camera": ["b1", "r1"], "expnum": [2, 1], "flavor": "arc", "flag": ["lamp_out", "focus"],
                          "flag_detail": ["", ""],
                          "flag_action": ["b1 00000002 arc: HgCd lines missing — retake the arc",
                                          "r1 00000001 arc: focus off — retake the arc"]})
    v = night_verdict(night, flags)
    assert v["actions"] == ["r1 00000001 arc: focus off — retake the arc",  # in exposure order
                            "b1 00000002 arc: HgCd lines missing — retake the arc"]
    assert v["cameras"] == {"b1": "red", "r1": "red"} and v["flags"] == {"focus": 1, "lamp_out": 1}
    preds = pd.DataFrame({"camera": "b1", "expnum": [1, 2, 3], "flavor": "science", "primary": True,
                          "predictor": "refarc", "date_obs": pd.to_datetime(["2024-01-18 01:00", "2024-01-18 02:10",
                                                                            "2024-01-18 03:00"]),
                          "hours_since_arc": [0.2, 1.4, 2.2], "ref_expnum": 7, "expected_error": [0.05, 0.12, 0.2],
                          "upper90": [0.1, 0.25, 0.4], "tolerance": 0.2, "arc_needed": [False, True, True]})
    assert night_verdict(night, None, preds)["actions"][-1] == (
        "b1: predicted line error passes 0.2 px (90 % bound 0.25 px) at 02:10 UT, 1.4 h after arc 00000007 "
        "— take an arc")


@pytest.fixture(scope="module")
def night_root(ray_local, sim_world, tmp_path_factory):
    """A pipeline root whose raw/ holds the simulated night's frames (as `arcray download` leaves them)."""
    root = tmp_path_factory.mktemp("night")
    shutil.copytree(sim_world.sas_root, root / "raw")
    mjd = int(pd.read_parquet(sim_world.truth)["mjd"].iloc[0])
    return Layout(str(root)), mjd


def _run(argv, capsys):
    from arcray.cli.main import main

    with pytest.raises(SystemExit) as ei:
        main(argv)
    out = capsys.readouterr()
    return ei.value.code, out.out, out.err




@pytest.mark.ray
@pytest.mark.slow
def test_night_from_downloaded_frames_page_exit_code_and_rerun(night_root, capsys):
    layout, mjd = night_root
    code, out, _ = _run(["night", "--root", layout.root, "--mjd", str(mjd), "--skip-ingest"], capsys)
    summary = json.load(open(layout.night_summary(mjd)))
    red = any(s == "red" for s in summary["cameras"].values())
    assert code == (1 if red else 0), out
    assert set(summary["cameras"]) == {"b1", "r1"} and summary["n_frames"] == 16
    flags = pd.read_parquet(layout.night_flags(mjd))
    assert set(flags["flag"].dropna()) <= {"clean", "no_light", "lamp_out", "amp_noisy", "scattered_light", "focus",
                                           "overexposed", "unknown"} and flags["flag"].notna().sum() == 8
    assert out.strip().splitlines()[-1].startswith(f"night {mjd}: b1 ")
    page = open(layout.night_page(mjd)).read()
    for section in ("actions", "flags", "predictions", "exposures", "trends", "quadrants"):
        assert f"id='{section}'" in page
    for action in summary["actions"]:
        assert action.split(":")[0] in page
    index = open(layout.nights_index).read()
    assert f'href="{mjd}/index.html"' in index
    digest = {f: hashlib.sha256(open(os.path.join(os.path.dirname(layout.night_page(mjd)), f), "rb").read()).hexdigest()
              for f in ("index.html", "night.json")}
    frames = pd.read_parquet(layout.measured_frames)
    code2, out2, _ = _run(["night", "--root", layout.root, "--mjd", str(mjd), "--skip-ingest"], capsys)
    assert code2 == code and "16 up to date, reused" in out2
    again = {f: hashlib.sha256(open(os.path.join(os.path.dirname(layout.night_page(mjd)), f), "rb").read()).hexdigest()
             for f in digest}
    assert again == digest  # rerunning changes nothing
    pd.testing.assert_frame_equal(pd.read_parquet(layout.measured_frames), frames)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_night_page_and_calendar_in_a_real_browser(night_root, capsys):
    playwright = pytest.importorskip("playwright.sync_api")
    layout, mjd = night_root
    if not os.path.exists(layout.night_page(mjd)):
        _run(["night", "--root", layout.root, "--mjd", str(mjd), "--skip-ingest"], capsys)
    os.makedirs(ARTIFACTS, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            for path, shot in ((layout.night_page(mjd), "night-page.png"), (layout.nights_index, "nights-index.png")):
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                messages, failed = [], []
                page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
                page.on("requestfailed", lambda r: failed.append(r.url))
                page.goto(f"file://{os.path.abspath(path)}")
                page.wait_for_load_state("load")
                images = page.evaluate("Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0])")
                assert [src for src, ok in images if not ok] == [] and failed == []
                assert [m for m in messages if m.startswith(("error", "pageerror"))] == []
                assert page.title().startswith("arcray")
                page.screenshot(path=os.path.join(ARTIFACTS, shot), full_page=True)
                if shot == "night-page.png":
                    assert len(images) >= 3  # trends + a field figure per camera
                    assert page.locator("h1").inner_text().startswith(f"Night {mjd}")
                else:
                    page.click(f'a[href="{mjd}/index.html"]')  # the calendar links to the night
                    assert page.url.endswith(f"/night/{mjd}/index.html")
        finally:
            browser.close()
    assert os.path.getsize(os.path.join(ARTIFACTS, "night-page.png")) > 10_000


def test_bad_night_options_are_one_line(tmp_path, capsys):
    for argv, words in ((["night", "--root", str(tmp_path), "--skip-ingest"], "exactly one of --mjd N and --yesterday"),
                        (["night", "--root", str(tmp_path), "--mjd", "60000"], "--base-url is needed"),
                        (["night", "--root", str(tmp_path), "--mjd", "60000", "--skip-ingest"], "no downloaded frames")):
        code, _, err = _run(argv, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and words in lines[0], lines


def test_night_latents_come_from_the_smallest_embedded_latent_size(tmp_path):
    from arcray.report.night import night_latents

    layout = Layout(str(tmp_path))
    assert night_latents(layout, [60300]) is None
    for latent in (4, 2):
        path = layout.latents_file("b1", "arc", latent)
        os.makedirs(os.path.dirname(path))
        df = pd.DataFrame({"camera": "b1", "mjd": [60299, 60300, 60300], "expnum": [1, 2, 3]})
        for i in range(latent):
            df[f"z{i}"] = [0.1 * i, 0.2, 0.3]
        df.to_parquet(path)
    lat = night_latents(layout, [60300], ["b1", "r1"])
    assert list(lat["expnum"]) == [2, 3] and [c for c in lat.columns if c.startswith("z")] == ["z0", "z1"]
