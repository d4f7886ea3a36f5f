"""Download throughput against the disk's own read speed, in the same run.

    python benchmarks/downloads.py [--size-mb 64] [--repeat 5]

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

Each row is timed once per round, ``--repeat`` rounds; printed: the best MB/s, and the median (and range) of each
round's ratio to that round's disk read (the target for downloads is ≥ 0.5× the disk's read speed): the load of a
shared machine drifts between rounds, and a ratio within one round compares like with like.  Keep the size small
on a shared machine; a larger one is for a quiet machine.
"""

from __future__ import annotations

import argparse
import socket
import statistics
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

DISK = "disk read, no cache (dd iflag=direct)"
CACHED = "read of the cached file (1 MiB reads)"


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


def best_time(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
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
    parser.add_argument("--repeat", type=int, default=5, help="rounds, each timing every row once (default 5)")
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
            rounds, sizes = measure(base, made, ids, root, options.repeat)
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(rounds, sizes)


def measure(base: str, made: dict, ids: dict, root: Path, repeat: int) -> tuple[list[dict], dict]:
    """``repeat`` rounds, each timing every row once in turn: on a shared machine the load drifts, and a ratio taken
    within one round compares like with like."""
    tiff, movie = made["tiff"], made["movie"]
    pair = movie.stat().st_size + (root / "20230101_00001_info.txt").stat().st_size
    urls = {
        "download of the original": f"{base}/-/scisearch/download/bench/{ids['tiff']}",
        "zip of an MRC movie + its _info.txt": f"{base}/-/scisearch/download/bench/{ids['movie']}",
        "TIFF export (read again, written, sent)": f"{base}/-/scisearch/export/bench/{ids['tiff']}.tiff",
    }
    sizes = {DISK: tiff.stat().st_size, CACHED: tiff.stat().st_size}
    sizes.update(dict.fromkeys(urls, tiff.stat().st_size))
    sizes["zip of an MRC movie + its _info.txt"] = pair
    read_file(tiff)  # into the page cache, as the downloads read it
    read_file(movie)
    for url in urls.values():
        subprocess.run(curl(url), check=True)  # warm: the server's first request, the sandbox's start
    direct = ["dd", f"if={tiff}", "of=/dev/null", "bs=4M", "iflag=direct", "status=none"]
    rounds = []
    for _ in range(repeat):
        timed = {DISK: best_seconds(direct, 1)}
        timed[CACHED] = best_time(lambda: read_file(tiff), 1)
        for what, url in urls.items():
            timed[what] = best_seconds(curl(url), 1)
        rounds.append(timed)
    return rounds, sizes


def report(rounds: list[dict], sizes: dict) -> None:
    print(f"file: {sizes[DISK] / 2**20:.1f} MiB uncompressed TIFF; {len(rounds)} rounds; MB = 10^6 bytes")
    print(f"{'what':44} {'best MB/s':>10} {'× disk: median':>15} {'(range)':>13} {'× cached read':>14}")
    for what in rounds[0]:
        rates = [sizes[what] / timed[what] for timed in rounds]
        to_disk = sorted(sizes[what] / timed[what] / (sizes[DISK] / timed[DISK]) for timed in rounds)
        to_cached = statistics.median(sizes[what] / timed[what] / (sizes[CACHED] / timed[CACHED]) for timed in rounds)
        spread = f"{to_disk[0]:.2f}–{to_disk[-1]:.2f}"
        print(f"{what:44} {max(rates) / 1e6:10.1f} {statistics.median(to_disk):15.2f} {spread:>13} {to_cached:14.2f}")


if __name__ == "__main__":
    main()
