"""How soon a file written into a watched folder is searchable, and what a burst of files costs a watcher.

    python benchmarks/watch.py [--files 200] [--big-mb 100] [--settle 2]

1. A big file (``--big-mb``, a 16-bit TIFF) is written into a folder that a running ``scisearch watch``
   (``--no-tag``: CPU, no CLIP) watches; the figure is the seconds from the moment the writer closes the file
   ("complete") to the moment a keyword search of the catalog finds it, polled every 50 ms.  It includes the
   quiet time the watcher waits (``--settle``) to know that the file is complete.  Baseline, same run, same file:
   a plain ``scisearch load files`` into a fresh catalog, from start to exit (the file then searchable).
2. A burst of ``--files`` small distinct TIFFs renamed into the watched folder at once; the figures are the
   seconds until every one is catalogued, whether each is catalogued exactly once, the peak resident memory of
   the watcher (its process and its reader worker together, sampled every 0.2 s), and how long keyword searches
   took while the burst was loading (search is not starved).  Baseline: a plain ``scisearch load files`` of the
   same files into a fresh catalog, its time and peak memory.

The watcher and the loads are subprocesses of the installed ``scisearch``; the machine may be shared, so run it
quiet for figures to quote.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import tifffile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.search import engine  # noqa: E402

SCISEARCH = [sys.executable, "-m", "datasette_scisearch"]


class PeakMemory:
    """Samples the resident memory of a process and its children (the reader worker) until stopped."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self.process, self.every_s, self.peak_bytes = psutil.Process(pid), every_s, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.is_set():
            try:
                family = [self.process, *self.process.children(recursive=True)]
                total = 0
                for member in family:
                    try:
                        total += member.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                self.peak_bytes = max(self.peak_bytes, total)
            except psutil.NoSuchProcess:
                return
            self.done.wait(self.every_s)

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return self.peak_bytes / 2**20


def count(catalog: Path, sql: str) -> int:
    if not catalog.exists():
        return 0
    connection = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        connection.close()


def searchable(catalog: Path, word: str) -> bool:
    db = open_catalog(catalog, create=False)
    try:
        return bool(engine.search(db, word, mode="keyword", per_page=1).hits)
    finally:
        db.close()


def write_tiff(path: Path, megabytes: float, seed: int) -> None:
    side = int((megabytes * 2**20 / 2) ** 0.5)
    pixels = np.random.default_rng(seed).integers(0, 4096, size=(side, side), dtype=np.uint16)
    tifffile.imwrite(path, pixels)


def start_watcher(catalog: Path, folder: Path, settle_s: float, log: Path) -> subprocess.Popen:
    command = [*SCISEARCH, "watch", str(catalog), str(folder), "--no-tag", "--settle", f"{settle_s}s"]
    process = subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    wait_for(lambda: count(catalog, "select count(*) from jobs where status = 'running'") > 0, 120, "watcher start")
    return process


def wait_for(condition, deadline_s: float, what: str, every_s: float = 0.05) -> float:
    ends = time.monotonic() + deadline_s
    while time.monotonic() < ends:
        if condition():
            return time.monotonic()
        time.sleep(every_s)
    raise SystemExit(f"gave up waiting for {what} after {deadline_s} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()


def big_file(work: Path, megabytes: float, settle_s: float) -> None:
    folder, catalog = work / "big", work / "big.db"
    folder.mkdir()
    watcher = start_watcher(catalog, folder, settle_s, work / "big.log")
    try:
        # A running watcher has its reader worker started: a first small file, as on any day at the facility.
        write_tiff(folder / "warmup_image.tif", 0.1, seed=1)
        wait_for(lambda: count(catalog, "select count(*) from files") == 1, 120, "the warm-up file")
        target = folder / "bigsample_frame.tif"
        began = time.monotonic()
        write_tiff(target, megabytes, seed=2)  # closed on return: the file is complete
        complete = time.monotonic()
        found = wait_for(lambda: searchable(catalog, "bigsample"), 300, "the big file in search")
    finally:
        stop(watcher)
    size_mb = target.stat().st_size / 2**20
    fresh = work / "plain.db"
    plain_began = time.monotonic()
    subprocess.run([*SCISEARCH, "load", "files", str(fresh), str(target), "--quiet"], check=True, capture_output=True)
    plain_s = time.monotonic() - plain_began
    assert searchable(fresh, "bigsample")
    print(f"big file: {size_mb:.0f} MB TIFF written in {complete - began:.1f} s")
    print(f"  watch (--settle {settle_s:g}s): complete → searchable {found - complete:.2f} s")
    print(f"  baseline: scisearch load files of the same file, start → exit (searchable) {plain_s:.2f} s")


def burst(work: Path, n_files: int, settle_s: float) -> None:
    staging, folder, catalog = work / "staging", work / "burst", work / "burst.db"
    staging.mkdir()
    folder.mkdir()
    made = time.monotonic()
    for number in range(n_files):  # distinct contents: identical files would be one file catalogued twice
        tifffile.imwrite(staging / f"burst_{number:06d}.tif", np.full((16, 16), number % 65536, dtype=np.uint16))
    print(f"burst: {n_files} small TIFFs made in {time.monotonic() - made:.1f} s")
    watcher = start_watcher(catalog, folder, settle_s, work / "burst.log")
    memory = PeakMemory(watcher.pid)
    search_s: list[float] = []
    searching = threading.Event()

    def search_while_loading() -> None:
        while not searching.is_set():
            began = time.perf_counter()
            searchable(catalog, "burst")
            search_s.append(time.perf_counter() - began)
            searching.wait(0.5)

    try:
        for name in sorted(os.listdir(staging)):
            os.rename(staging / name, folder / name)
        arrived = time.monotonic()
        searcher = threading.Thread(target=search_while_loading, daemon=True)
        searcher.start()
        done = wait_for(
            lambda: count(catalog, "select count(distinct path) from files") >= n_files, 3600, "the burst", 0.5
        )
    finally:
        searching.set()
        peak_mb = memory.stop()
        stop(watcher)
    rows = count(catalog, "select count(*) from files")
    paths = count(catalog, "select count(distinct path) from files")
    errors = count(catalog, "select count(*) from ingest_errors")
    print(f"  watch: all {paths} catalogued {done - arrived:.1f} s after the burst ({paths / (done - arrived):.0f}/s)")
    print(f"  catalogued once: {rows == paths == n_files} ({rows} rows, {paths} paths, {errors} errors)")
    print(f"  watcher peak memory (process + reader worker): {peak_mb:.0f} MB")
    if search_s:
        print(
            f"  keyword searches during the burst: {len(search_s)}, median {statistics.median(search_s) * 1000:.0f}"
            f" ms, slowest {max(search_s) * 1000:.0f} ms"
        )
    fresh = work / "burst-plain.db"
    began = time.monotonic()
    command = [*SCISEARCH, "load", "files", str(fresh), str(folder), "--quiet"]
    plain = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    plain_memory = PeakMemory(plain.pid)
    plain.wait()
    plain_s, plain_peak = time.monotonic() - began, plain_memory.stop()
    plain_rows = count(fresh, "select count(*) from files")
    print(
        f"  baseline: scisearch load files of the same {plain_rows} files {plain_s:.1f} s "
        f"({plain_rows / plain_s:.0f}/s), peak memory {plain_peak:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="files in the burst (10000 for the full figure)")
    parser.add_argument("--big-mb", type=float, default=100.0, help="size of the big file in MB")
    parser.add_argument("--settle", type=float, default=2.0, help="the watcher's --settle, seconds")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-burst", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scisearch-watch-bench-"))
    try:
        if not args.skip_big:
            big_file(work, args.big_mb, args.settle)
        if not args.skip_burst:
            burst(work, args.files, args.settle)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
