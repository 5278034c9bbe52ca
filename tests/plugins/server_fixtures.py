"""Fixtures for the simulated archive server (``arcray.sim.server``), run in-process in a thread.

- ``mini_world``: a small world directory (SimLayout) with a few small but valid sdR-like gzipped
  FITS frames (CAMERAS/EXPOSURE/MJD headers) and two monthly Mailman archives; for tests that need
  the server's behaviour, not full-size physics (use ``sim_world`` for those).
- ``archive_server``: a factory ``archive_server(root=None, faults=None) -> ServerHandle`` that
  starts a server on a free port over ``root`` (default ``mini_world``) and stops it afterwards.
  The handle gives ``base_url``, ``mailman_url``, ``sas_url``, ``user``, ``password``,
  ``password_file``, ``stats`` (live ``ServerStats``), ``server`` (the ``ArchiveServer``),
  ``frame_url(camera, mjd, expnum)`` and ``env`` (credential environment variables for a client).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field

import numpy as np
import pytest

from arcray.paths import SimLayout, sas_relpath

MINI_USER = "observer@example.org"
MINI_PASSWORD = "s3cret-arc-pass"
MINI_FRAMES = [("b1", 60285, 380100 + i) for i in range(4)] + [("r1", 60285, 380100 + i) for i in range(4)] \
    + [("b1", 60286, 380200), ("r1", 60286, 380200)]


def write_mini_frame(path: str, camera: str, mjd: int, expnum: int, *, shape=(96, 128), seed: int = 0,
                     flavor: str = "arc") -> None:
    """A small valid sdR-like frame: uint16 via BZERO 32768, gzip, real key names for what a client checks."""
    from astropy.io import fits

    rng = np.random.default_rng(seed + expnum * 7 + (camera == "r1"))
    data = (1000 + rng.normal(0, 20, size=shape)).clip(0, 65535).astype(np.uint16)
    hdu = fits.PrimaryHDU(data)
    hdr = hdu.header
    hdr["CAMERAS"] = (camera, "BOSS CAMERA")
    hdr["EXPOSURE"] = (int(expnum), "Exposure number")
    hdr["MJD"] = (int(mjd), "APO fMJD day at start of exposure")
    hdr["FLAVOR"] = (flavor, "exposure type, SDSS spectro style")
    hdr["HARTMANN"] = ("Out", "Hartmanns: Left,Right,Out")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    import io

    buf = io.BytesIO()
    hdu.writeto(buf)
    with open(path, "wb") as f:
        f.write(gzip.compress(buf.getvalue(), compresslevel=1, mtime=0))


def write_mini_month(path: str, year: int, month_name: str, nights: list[int]) -> None:
    msgs = []
    for i, mjd in enumerate(nights):
        msgs.append(
            f"From observer at example.org  Mon Dec  {i + 1:2d} 12:00:00 {year}\n"
            f"From: observer at example.org (Observer)\nDate: Mon, {i + 1} Dec {year} 12:00:00 +0000\n"
            f"Subject: [sloan-25mlog] {mjd} APO 2.5m log\n\n"
            f"---- BOSS Data Summary ----\nMJD {mjd} night log body\n\n")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(gzip.compress("".join(msgs).encode(), mtime=0))


def build_mini_world(root: str, frames=MINI_FRAMES) -> SimLayout:
    layout = SimLayout(str(root))
    for cam, mjd, exp in frames:
        write_mini_frame(layout.raw_frame(cam, mjd, exp), cam, mjd, exp)
    write_mini_month(layout.month_archive(2023, "December"), 2023, "December", [60285, 60286])
    write_mini_month(layout.month_archive(2023, "November"), 2023, "November", [60270])
    return layout


@pytest.fixture(scope="session")
def mini_world(tmp_path_factory) -> SimLayout:
    return build_mini_world(str(tmp_path_factory.mktemp("mini_world")))


@dataclass
class ServerHandle:
    server: object
    user: str
    password: str = field(repr=False)
    password_file: str = ""

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def mailman_url(self) -> str:
        return self.server.mailman_url

    @property
    def sas_url(self) -> str:
        return self.server.sas_url

    @property
    def stats(self):
        return self.server.stats

    def frame_url(self, camera: str, mjd: int, expnum: int) -> str:
        return self.sas_url + sas_relpath(camera, mjd, expnum)

    @property
    def env(self) -> dict:
        return {"ARCRAY_SAS_USER": self.user, "ARCRAY_SAS_PASSWORD_FILE": self.password_file,
                "ARCRAY_MAILMAN_USER": self.user, "ARCRAY_MAILMAN_PASSWORD_FILE": self.password_file}


@pytest.fixture
def archive_server(mini_world, tmp_path):
    """Factory: ``archive_server(root=None, faults=None, user=..., password=...) -> ServerHandle``."""
    from arcray.sim.server import ArchiveServer

    started = []

    def _start(root: str | None = None, faults=None, user: str = MINI_USER,
               password: str = MINI_PASSWORD) -> ServerHandle:
        pw_file = tmp_path / f"server-password-{len(started)}"
        pw_file.write_text(password + "\n")
        srv = ArchiveServer(str(root or mini_world.root), user=user, password=password, faults=faults).start()
        started.append(srv)
        return ServerHandle(srv, user, password, str(pw_file))

    yield _start
    for srv in started:
        srv.stop()
