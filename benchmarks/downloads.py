"""Download throughput against the disk's own read speed, in the same run.

    python benchmarks/downloads.py [--size-mb 64] [--repeat 3]

Writes an uncompressed TIFF of about ``--size-mb`` MB and a Direct Electron MRC movie of about the same size with
its ``_info.txt`` (a pair of partner files) into a data root, loads them into a fresh catalog, serves it with
``datasette serve`` on a free local port, and fetches with curl (a C client, so the client is not what is
measured):

- baselines: the disk's read speed, ``dd iflag=direct`` (O_DIRECT: the page cache bypassed) of the same file; and a
  plain read of it once it is in the page cache, a megabyte at a time (what a server's reads cost at best).  The
  downloads below read from the page cache, as a server's repeated downloads would;
- ``/-/scisearch/download/<db>/<id>``: the original file, streamed;
- the zip of the movie and its ``_info.txt`` (written as it is sent, entries stored);
- the TIFF export of the same array (read again in the reader sandbox, written, then streamed).

Each figure is the best of ``--repeat`` runs, in MB/s, with its ratio to each baseline (the target for downloads is
≥ 0.5× the disk's read speed).  Keep the size small on a shared machine; a larger one is for a quiet machine.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.config import Settings  # noqa: E402
from datasette_scisearch.ingest.files import load_files  # noqa: E402


def make_data(root: Path, size_mb: int) -> dict[str, Path]:
    """A big TIFF, and a Direct Electron movie of the same size with its ``_info.txt`` (a pair, served as a zip)."""
    from ncempy.io import mrc

    side = int((size_mb * 2**20 / 2) ** 0.5)
    image = np.random.default_rng(0).integers(0, 4096, size=(side, side), dtype=np.uint16)
    made = {"tiff": root / "big_image.tif", "movie": root / "20230101_00001_movie.mrc"}
    tifffile.imwrite(made["tiff"], image)
    frames = max(1, size_mb * 2**20 // (2 * 512 * 512))
    movie = np.random.default_rng(1).integers(0, 4096, size=(frames, 512, 512)).astype(np.int16)
    mrc.mrcWriter(str(made["movie"]), movie, (1.0, 0.1, 0.1))
    (root / "20230101_00001_info.txt").write_text("Timestamp (epoch) = 1672531200\n")
    return made


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer {url} within {seconds:g} s")


def best_seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return min(times)


def best_time(function, options) -> float:
    times = []
    for _ in range(options.repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def read_file(path: Path) -> int:
    """A plain read of the whole file, a megabyte at a time, as a server would read it."""
    buffer, total = bytearray(1 << 20), 0
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            total += count
    return total


def curl(url: str) -> list[str]:
    return ["curl", "--silent", "--fail", "--output", "/dev/null", url]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=64, help="size of the file to download (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best is kept")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scisearch-downloads-bench-") as folder:
        folder = Path(folder)
        root = folder / "data"
        root.mkdir()
        made = make_data(root, options.size_mb)
        catalog = folder / "bench.db"
        db = open_catalog(catalog)
        load_files(db, [root], Settings(), progress=False, sandbox=False)
        ids = {
            name: db.execute("select id from files where path = ?", [str(path.resolve())]).fetchone()[0]
            for name, path in made.items()
        }
        db.close()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "datasette", "serve", str(catalog), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/-/versions.json")
            tiff = made["tiff"]
            size = tiff.stat().st_size
            direct = ["dd", f"if={tiff}", "of=/dev/null", "bs=4M", "iflag=direct", "status=none"]
            rows = [("disk read, no cache (dd iflag=direct)", best_seconds(direct, options.repeat), size)]
            read_file(tiff)  # into the page cache: every figure below reads from it
            rows.append(("read of the cached file (1 MiB reads)", best_time(lambda: read_file(tiff), options), size))
            download = f"{base}/-/scisearch/download/bench/{ids['tiff']}"
            subprocess.run(curl(download), check=True)  # warm: first request, imports
            rows.append(("download of the original", best_seconds(curl(download), options.repeat), size))
            movie = made["movie"]
            pair = movie.stat().st_size + (root / "20230101_00001_info.txt").stat().st_size
            url = f"{base}/-/scisearch/download/bench/{ids['movie']}"
            read_file(movie)
            rows.append(("zip of an MRC movie + its _info.txt", best_seconds(curl(url), options.repeat), pair))
            export = f"{base}/-/scisearch/export/bench/{ids['tiff']}.tiff"
            subprocess.run(curl(export), check=True)
            rows.append(("TIFF export (read again, written, sent)", best_seconds(curl(export), options.repeat), size))
        finally:
            server.terminate()
            server.wait(timeout=30)
    disk, cached = (nbytes / seconds for _, seconds, nbytes in rows[:2])
    print(f"file: {size / 2**20:.1f} MiB uncompressed TIFF; best of {options.repeat}; MB = 10^6 bytes")
    print(f"{'what':44} {'seconds':>9} {'MB/s':>9} {'× disk':>7} {'× cached read':>14}")
    for what, seconds, nbytes in rows:
        rate = nbytes / seconds
        print(f"{what:44} {seconds:9.4f} {rate / 1e6:9.1f} {rate / disk:7.2f} {rate / cached:14.2f}")


if __name__ == "__main__":
    main()
