"""How fast instrument files enter the catalog, against the format readers alone on the same files.

    python benchmarks/loading.py [--demo-files 240] [--em ../shared/data/em] [--baseline-ref main] [--repeats 5]

For the real files in ../shared/data/em and for the demo facility it prints, in
one run: the readers alone (ncempy / tifffile / RosettaSciIO reading every
dataset into memory: the floor any loader pays), then each stage the pipeline
adds — content hashing, previews and normalisation, the catalog writes — and
the full ``load_files`` into a fresh catalog (in a warm process: its reader worker
started), plus a second, idempotent run over the same folder.

With ``--baseline-ref`` the same run also loads the real files with the code of
a git commit (exported to a scratch folder, run in a child process), alternating
with this code, and prints both throughputs (best of ``--repeats``) and their
ratio (best and median of ``--repeats`` rounds of three loads each): the figure a change to the loading
path must keep within 10%.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.config import load_settings  # noqa: E402
from datasette_scisearch.demo import build_facility  # noqa: E402
from datasette_scisearch.ingest.filerows import dataset_row  # noqa: E402
from datasette_scisearch.ingest.files import file_format, file_loaders, load_files, loader_for, sha256_of, walk  # noqa: E402
from datasette_scisearch.ingest.loader import LoaderError, NotData  # noqa: E402


def claimed_files(folder: Path) -> list[tuple[Path, object]]:
    loaders = file_loaders()
    pairs = [(path, loader_for(path, loaders)) for path in walk([folder])]
    return [(path, loader) for path, loader in pairs if loader is not None]


def readers_alone(files) -> tuple[float, int]:
    """Seconds to read every dataset into memory with the format libraries, and how many datasets."""
    started, count = time.perf_counter(), 0
    for path, loader in files:
        try:
            for dataset in loader.read(path):
                np.asarray(dataset.data).sum()  # make sure the pixels were really read
                count += 1
        except (LoaderError, NotData):
            continue
    return time.perf_counter() - started, count


def hashing(files) -> float:
    started = time.perf_counter()
    for path, loader in files:
        sha256_of([path, *loader.companions(path)])
    return time.perf_counter() - started


def read_and_describe(files, settings) -> float:
    """Reading plus what the core adds before writing: kinds, times, instruments, search text, PNG previews."""
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    for path, loader in files:
        try:
            for dataset in loader.read(path):
                dataset_row(dataset, path, file_format(path), settings, now)
        except (LoaderError, NotData):
            continue
    return time.perf_counter() - started


def full_load(folder: Path, settings) -> tuple[float, float, int, int]:
    with tempfile.TemporaryDirectory() as scratch:
        # Untimed: a process's first load starts the reader sandbox's worker (seconds on a busy machine), which a
        # long-running server or watcher pays once; the timed loads are those of a warm process.
        warm_up = open_catalog(Path(scratch) / "warm-up.db")
        load_files(warm_up, [folder], settings, progress=False)
        warm_up.close()
        db = open_catalog(Path(scratch) / "bench.db")
        started = time.perf_counter()
        first = load_files(db, [folder], settings, progress=False)
        first_seconds = time.perf_counter() - started
        started = time.perf_counter()
        load_files(db, [folder], settings, progress=False)
        second_seconds = time.perf_counter() - started
        rows = db["files"].count
        db.close()
    return first_seconds, second_seconds, first.added, rows


def megabytes(files) -> float:
    return sum(path.stat().st_size for path, _ in files) / 1e6


def report(name: str, folder: Path, settings) -> None:
    files = claimed_files(folder)
    size_mb = megabytes(files)
    readers_alone(files)  # warm-up: reader modules imported, files in the page cache, for every stage alike
    read_s, datasets = readers_alone(files)
    hash_s = hashing(files)
    describe_s = read_and_describe(files, settings)
    load_s, rerun_s, added, rows = full_load(folder, settings)
    print(f"\n{name}: {len(files)} instrument files, {size_mb:.1f} MB, {datasets} datasets")
    print(f"  {'stage':44} {'seconds':>8} {'files/s':>9} {'MB/s':>8}")
    for label, seconds in (
        ("baseline: format readers alone", read_s),
        ("sha256 of every file", hash_s),
        ("read + normalise + previews (no database)", describe_s),
        ("scisearch load files, fresh catalog", load_s),
        ("scisearch load files again (nothing changed)", rerun_s),
    ):
        print(f"  {label:44} {seconds:8.2f} {len(files) / seconds:9.1f} {size_mb / seconds:8.1f}")
    print(f"  catalog: {added} files added, {rows} dataset rows; pipeline / readers alone = {load_s / read_s:.1f}x")


# Run in a child process with a commit's code first on sys.path: (wall seconds, CPU seconds of the process and of
# its reader worker) of each fresh load of a folder.
_TIMED_LOADS = """
import json, logging, os, sys, tempfile, time, warnings
from pathlib import Path
sys.path.insert(0, sys.argv[1])
logging.disable(logging.WARNING)
warnings.filterwarnings("ignore")
from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
try:  # the ingest/ subpackage, or a commit from before it
    from datasette_scisearch.ingest.files import file_loaders, load_files
except ImportError:
    from datasette_scisearch.ingest import file_loaders, load_files
settings = load_settings(Path(sys.argv[1]) / "metadata.yml")
file_loaders()


def cpu_seconds():  # of this process and of its children still running (a reader sandbox's worker)
    ticks, total = os.sysconf("SC_CLK_TCK"), time.process_time()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():  # fields after the name: state, ppid, ... utime (12th), stime (13th)
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


seconds = []
for _ in range(int(sys.argv[3]) + 1):  # the first run warms the page cache and imports the readers
    with tempfile.TemporaryDirectory() as scratch:
        db = open_catalog(Path(scratch) / "bench.db")
        started, cpu_before = time.perf_counter(), cpu_seconds()
        load_files(db, [Path(sys.argv[2])], settings, progress=False)
        seconds.append((time.perf_counter() - started, cpu_seconds() - cpu_before))
        db.close()
print(json.dumps(seconds[1:]))
"""


def export_commit(ref: str, folder: Path) -> Path:
    """The tree of ``ref`` in ``folder``, with the import names pyproject.toml maps the built-in plugins to."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    for name, target in (("scisearch_loaders", "loaders"), ("scisearch_taggers", "plugins")):
        if (folder / target).exists() and not (folder / name).exists():
            (folder / name).symlink_to(target)
    return folder


def timed_loads(code_root: Path, folder: Path, repeats: int) -> list[tuple[float, float]]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", _TIMED_LOADS, str(code_root), str(folder), str(repeats)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=str(code_root),
    )
    return [tuple(pair) for pair in json.loads(done.stdout.strip().splitlines()[-1])]


# Timed loads per round and per code: on a busy machine one load in a round is often slowed by what else runs.
LOADS_PER_ROUND = 3


def compare_with_baseline(ref: str, folder: Path, repeats: int) -> None:
    """This code's load throughput against ``ref``'s, alternating rounds so that both see the same machine.

    Besides the wall time it prints the CPU time a load costs (the loading process and its reader worker
    together): on a machine shared with other work, the wall time of a load that keeps two processes busy depends
    on what else runs, the CPU time much less.  Best and median of all the loads."""
    files = len(claimed_files(folder))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        baseline_root = export_commit(ref, Path(scratch))
        ours, theirs = [], []
        for _ in range(repeats):
            theirs += timed_loads(baseline_root, folder, LOADS_PER_ROUND)
            ours += timed_loads(REPO, folder, LOADS_PER_ROUND)
    print(f"\nload throughput on {folder} ({files} files), {repeats} rounds of {LOADS_PER_ROUND} loads each", end="")
    print(f" in this run (load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after):")
    print(f"  {'':28} {'best: wall s':>12} {'files/s':>8} {'CPU s':>6} {'median: wall s':>15} {'CPU s':>6}")
    for name, runs in ((f"baseline {ref}", theirs), ("this code", ours)):
        (wall, cpu), (median_wall, median_cpu) = _best(runs), _median(runs)
        print(f"  {name:28} {wall:12.2f} {files / wall:8.1f} {cpu:6.2f} {median_wall:15.2f} {median_cpu:6.2f}")
    (wall_ours, cpu_ours), (wall_theirs, cpu_theirs) = _best(ours), _best(theirs)
    (median_ours, _), (median_theirs, _) = _median(ours), _median(theirs)
    print(
        f"  this code / baseline throughput: {wall_theirs / wall_ours:.2f} (best wall), "
        f"{median_theirs / median_ours:.2f} (median wall), {cpu_theirs / cpu_ours:.2f} (best CPU)"
    )


def _best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The fastest wall time and the smallest CPU time of several runs (each is least disturbed in its best run)."""
    return min(wall for wall, _ in runs), min(cpu for _, cpu in runs)


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(wall for wall, _ in runs), statistics.median(cpu for _, cpu in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--em", type=Path, default=REPO.parent / "shared" / "data" / "em")
    parser.add_argument("--demo-files", type=int, default=240)
    parser.add_argument("--baseline-ref", help="also time loading the real files with this git commit's code")
    parser.add_argument("--repeats", type=int, default=5, help="rounds for --baseline-ref (best is kept)")
    args = parser.parse_args()
    settings = load_settings(REPO / "metadata.yml")
    file_loaders()  # load the plugins before timing anything
    if args.em.exists():
        report(f"real files ({args.em})", args.em, settings)
        if args.baseline_ref:
            compare_with_baseline(args.baseline_ref, args.em, args.repeats)
    else:
        print(f"skipping the real files: {args.em} not found")
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        facility = build_facility(Path(scratch) / "demo", n_files=args.demo_files, progress=False)
        print(f"\n(demo facility of {args.demo_files} files written in {time.perf_counter() - started:.1f} s)")
        report("demo facility", facility.data_dir, settings)


if __name__ == "__main__":
    main()
