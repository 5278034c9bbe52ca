"""Download throughput: the Ray actor pool against a sequential ``requests`` loop.

Both fetch the same full-size sdR frames from the same simulated archive server, set to behave like
a remote archive (default 50 ms latency per request, 20 MB/s per connection), and both verify each
file the same way (length, gzip CRC by full decompression, FITS header, CAMERAS/EXPOSURE).

    .venv/bin/python benchmarks/bench_download.py [--frames 48] [--workers 8] [--world DIR]

Frames: a reduced one-night world is rendered once (cached in --world), and its frames are cloned
under new exposure numbers (EXPOSURE card patched, recompressed) up to --frames, so the test set
is large enough for a pool to matter without rendering dozens of frames on a small machine.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import requests  # noqa: E402

from arcray.credentials import Credentials  # noqa: E402
from arcray.pipeline.download import DownloadConfig, run_download  # noqa: E402
from arcray.ingest.sas_client import verify_frame_bytes  # noqa: E402
from arcray.paths import Layout, SimLayout, sas_relpath  # noqa: E402
from arcray.raycluster import ensure_ray  # noqa: E402

USER, PASSWORD = "bench@example.org", "bench-password"
CLONE_MJD = 60999


def base_frames(world_dir: str) -> list[tuple[str, int, int, str]]:
    """Render (once) a reduced APO night; return ``[(camera, mjd, expnum, path)]`` of its arcs/flats."""
    layout = SimLayout(world_dir)
    if not os.path.exists(layout.world_json):
        from arcray.sim.world import render_world

        print(f"rendering a reduced night into {world_dir} ...", flush=True)
        render_world(world_dir, date(2023, 12, 1), 1, 5, "apo", flavors=("arc",), reduced=True)
    out = []
    for p in sorted(glob.glob(os.path.join(layout.sas_root, "**", "sdR-*.fit.gz"), recursive=True)):
        if f"/{CLONE_MJD}/" in p:
            continue
        cam, exp = os.path.basename(p)[4:-7].split("-")
        out.append((cam, int(os.path.basename(os.path.dirname(p))), int(exp), p))
    return out


def clone_frame(src: str, dest: str, expnum: int) -> None:
    from isal import igzip

    raw = bytearray(igzip.decompress(open(src, "rb").read()))
    for i in range(0, 100 * 2880, 80):
        if raw[i:i + 8] == b"EXPOSURE":
            raw[i:i + 80] = f"EXPOSURE= {expnum:20d} / Exposure number".ljust(80).encode()
            break
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as f:
        f.write(igzip.compress(bytes(raw), compresslevel=1))


def build_set(world_dir: str, n: int) -> list[tuple[str, int, int]]:
    base = base_frames(world_dir)
    frames = [(c, m, e) for c, m, e, _ in base][:n]
    layout = SimLayout(world_dir)
    i = 0
    while len(frames) < n:
        cam, _, exp, path = base[i % len(base)]
        new_exp = 900000 + i
        dest = layout.raw_frame(cam, CLONE_MJD, new_exp)
        if not os.path.exists(dest):
            clone_frame(path, dest, new_exp)
        frames.append((cam, CLONE_MJD, new_exp))
        i += 1
    return frames


def write_manifest(path: str, frames) -> None:
    rows = [{"mjd": m, "expnum": e, "flavor": "arc", "is_hartmann": False, "cameras": [c]} for c, m, e in frames]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def sequential(sas_url: str, frames, out_root: str) -> int:
    """A plain loop: one Session, GET, verify, write + rename. Returns bytes."""
    s = requests.Session()
    s.auth = (USER, PASSWORD)
    layout, total = Layout(out_root), 0
    for cam, mjd, exp in frames:
        r = s.get(sas_url + sas_relpath(cam, mjd, exp), timeout=60)
        r.raise_for_status()
        verify_frame_bytes(r.content, cam, exp, expected_len=int(r.headers["Content-Length"]))
        dest = layout.raw_frame(cam, mjd, exp)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest + ".part", "wb") as f:
            f.write(r.content)
        os.replace(dest + ".part", dest)
        total += len(r.content)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--workers", type=int, default=8, help="download actors")
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--bandwidth-mbps", type=float, default=20, help="MB/s per connection")
    ap.add_argument("--world", default=os.path.join(tempfile.gettempdir(), "arcray-bench-world"))
    args = ap.parse_args()

    frames = build_set(args.world, args.frames)
    faults = f"latency_ms={args.latency_ms},bandwidth_mbps={args.bandwidth_mbps}"
    work = tempfile.mkdtemp(prefix="arcray-bench-dl-")
    server, base_url = start_server(args.world, faults, work)  # its own process, like a remote archive
    try:
        t0 = time.monotonic()
        nbytes = sequential(base_url + "/sas/", frames, os.path.join(work, "seq"))
        t_seq = time.monotonic() - t0
        ensure_ray()  # cluster start is not part of the measurement; actor start-up is
        layout = Layout(os.path.join(work, "pool"))
        write_manifest(layout.manifest, frames)
        cfg = DownloadConfig(base_url=base_url, actors=args.workers, actor_cpus=0.25)
        t0 = time.monotonic()
        summary = run_download(layout, cfg, Credentials(USER, PASSWORD, "bench"))
        t_pool = time.monotonic() - t0
        assert summary.n_failed == 0 and summary.n_ok == len(frames), summary
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    mb, t_xfer = nbytes / 1e6, t_pool - summary.startup_s
    print(f"frames: {len(frames)}, {mb:.0f} MB, server: {faults} (MB/s per connection), load {os.getloadavg()[0]:.1f}")
    print(f"sequential requests loop: {t_seq:6.1f} s  {mb / t_seq:6.1f} MB/s  {len(frames) / t_seq:5.2f} files/s")
    print(f"actor pool ({args.workers} actors):  {t_pool:6.1f} s  {mb / t_pool:6.1f} MB/s  "
          f"{len(frames) / t_pool:5.2f} files/s (incl. {summary.startup_s:.1f} s actor start-up)")
    print(f"actor pool, after start-up: {t_xfer:6.1f} s  {mb / t_xfer:6.1f} MB/s")
    print(f"speed-up: {t_seq / t_pool:.2f}x end to end, {t_seq / t_xfer:.2f}x after actor start-up "
          f"(goal >= 4x with 8 actors)")


def start_server(world: str, faults: str, work: str):
    pw = os.path.join(work, "password")
    with open(pw, "w") as f:
        f.write(PASSWORD)
    proc = subprocess.Popen([sys.executable, "-m", "arcray", "sim", "serve", "--root", world, "--port", "0",
                             "--user", USER, "--password-file", pw, "--faults", faults],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()  # "mailman: http://127.0.0.1:PORT/mailman/private/..."
    return proc, line.split()[1].split("/mailman/")[0]


if __name__ == "__main__":
    main()
