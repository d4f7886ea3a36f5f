"""Loading and tagging throughput in-process against 1 and 2 Dask workers, with the single writer's share.

    python benchmarks/scale.py [--files 480] [--workers 1 2] [--taggers metadata filenames image_analysis]

Builds the demo facility (``scisearch demo``'s synthetic instrument files), then for each way of running —
in this process, and a ``LocalCluster`` of N single-threaded worker processes — loads it into a fresh catalog
and tags it with the cheap taggers, timing each.  Every run writes the same catalog; the table gives files/s
for loading, tagging and both together, the speed-up over one worker, and the writer's busy time: seconds
spent writing and committing (files, previews, tags, vectors, search documents) against wall time.  A writer
busy close to 100% of the wall time would be the bottleneck; anything well under it leaves room for more
workers.  "Main process CPU" is how much of the machine's cores the process that runs the command used (the
writer, and on a LocalCluster its scheduler and client): what is left of 2 cores for 2 workers; "workers CPU"
how many cores the workers got (less than N where the machine is shared).  Cluster
start-up (a few seconds) is not counted; each way runs once before timing so imports and
the page cache are warm for all alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.cluster import open_cluster  # noqa: E402
from datasette_scisearch.config import load_settings  # noqa: E402
from datasette_scisearch.demo import build_facility  # noqa: E402
from datasette_scisearch.ingest.files import load_files, walk  # noqa: E402
from datasette_scisearch.tagging.pipeline import tag_catalog  # noqa: E402


def run_once(folder: Path, scratch: Path, settings, taggers: list[str], cluster) -> dict:
    """Load and tag ``folder`` into a fresh catalog; seconds and writer seconds of each step."""
    path = scratch / f"catalog-{time.monotonic_ns()}.db"
    db = open_catalog(path)
    cpu_started = time.process_time()  # this process: the writer, and with --workers the scheduler and client too
    workers_started = workers_cpu_seconds(cluster)
    try:
        started = time.perf_counter()
        loaded = load_files(db, [folder], settings, progress=False, cluster=cluster)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        tagged = tag_catalog(db, settings, taggers, item_types=["file"], progress=False, cluster=cluster)
        tag_s = time.perf_counter() - started
        main_cpu_s = time.process_time() - cpu_started
        workers_cpu_s = workers_cpu_seconds(cluster) - workers_started
        items = db["files"].count
    finally:
        db.close()
        path.unlink()
    return {
        "files": loaded.added,
        "items": items,
        "load_s": load_s,
        "tag_s": tag_s,
        "load_writer_s": loaded.writer_seconds,
        "tag_writer_s": tagged.writer_seconds,
        "tagged": sum(s.tagged for s in tagged.taggers),
        "main_cpu_s": main_cpu_s,
        "workers_cpu_s": workers_cpu_s,
    }


def workers_cpu_seconds(cluster) -> float:
    """CPU seconds the worker processes have used so far (0 in-process)."""
    return 0.0 if cluster is None else sum(cluster.client.run(time.process_time).values())


def warm(folder: Path) -> None:
    """Every file read once, so no run pays for the disk and the others for the page cache."""
    for path in walk([folder]):
        path.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=480, help="demo facility size (480: ~30 s in-process)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--taggers", nargs="+", default=["metadata", "filenames", "image_analysis"])
    args = parser.parse_args()
    settings = load_settings(REPO / "metadata.yml")
    print(f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()[0]:.2f} (1-min average)")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        started = time.perf_counter()
        facility = build_facility(scratch / "demo", n_files=args.files, progress=False)
        size_mb = sum(p.stat().st_size for p in walk([facility.data_dir])) / 1e6
        print(f"demo facility: {args.files} files, {size_mb:.0f} MB, written in {time.perf_counter() - started:.0f} s")
        warm(facility.data_dir)
        sample = scratch / "sample"
        sample.mkdir()
        for path in sorted(walk([facility.data_dir]))[:6]:
            os.link(path, sample / path.name)
        results = {}
        for workers in [0, *args.workers]:
            label = "in-process" if workers == 0 else f"{workers} worker{'s' if workers > 1 else ''}"
            started = time.perf_counter()
            with open_cluster(workers=workers or None) as cluster:
                up_s = time.perf_counter() - started
                run_once(sample, scratch, settings, args.taggers, cluster)  # imports, models, worker caches
                results[label] = run_once(facility.data_dir, scratch, settings, args.taggers, cluster)
                results[label]["up_s"] = up_s
            print(f"  {label}: done ({results[label]['load_s'] + results[label]['tag_s']:.1f} s)", flush=True)
        print_table(results)
    print(f"load after: {os.getloadavg()[0]:.2f} (1-min average)")


def print_table(results: dict) -> None:
    one = results.get("1 worker")
    print(
        f"\n{'run':12} {'load f/s':>9} {'tag f/s':>8} {'both f/s':>9} {'both s':>7} {'vs 1 worker':>12} "
        f"{'writer busy (load / tag)':>28} {'main process CPU':>17} {'workers CPU':>12} {'start-up':>9}"
    )
    for label, r in results.items():
        both_s = r["load_s"] + r["tag_s"]
        speedup = f"{(one['load_s'] + one['tag_s']) / both_s:.2f}x" if one else "-"
        writer_s = r["load_writer_s"] + r["tag_writer_s"]
        busy = (
            f"{writer_s:.1f} s = {writer_s / both_s:.0%} "
            f"({r['load_writer_s'] / r['load_s']:.0%} / {r['tag_writer_s'] / r['tag_s']:.0%})"
        )
        print(
            f"{label:12} {r['files'] / r['load_s']:9.1f} {r['items'] / r['tag_s']:8.1f} {r['files'] / both_s:9.1f} "
            f"{both_s:7.1f} {speedup:>12} {busy:>28} {r['main_cpu_s'] / both_s:11.2f} cores "
            f"{r['workers_cpu_s'] / both_s:6.2f} cores {r['up_s']:8.1f}s"
        )
    first = next(iter(results.values()))
    print(f"({first['files']} files, {first['items']} dataset rows, {first['tagged']} tagger-item results per run)")


if __name__ == "__main__":
    main()
