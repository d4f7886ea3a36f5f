"""How fast instrument files enter the catalog, against the format readers alone on the same files.

    python benchmarks/loading.py [--demo-files 240] [--em ../shared/data/em]

For the real files in ../shared/data/em and for the demo facility it prints, in
one run: the readers alone (ncempy / tifffile / RosettaSciIO reading every
dataset into memory: the floor any loader pays), then each stage the pipeline
adds — content hashing, previews and normalisation, the catalog writes — and
the full ``load_files`` into a fresh catalog, plus a second, idempotent run over
the same folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--em", type=Path, default=REPO.parent / "shared" / "data" / "em")
    parser.add_argument("--demo-files", type=int, default=240)
    args = parser.parse_args()
    settings = load_settings(REPO / "metadata.yml")
    file_loaders()  # load the plugins before timing anything
    if args.em.exists():
        report(f"real files ({args.em})", args.em, settings)
    else:
        print(f"skipping the real files: {args.em} not found")
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        facility = build_facility(Path(scratch) / "demo", n_files=args.demo_files, progress=False)
        print(f"\n(demo facility of {args.demo_files} files written in {time.perf_counter() - started:.1f} s)")
        report("demo facility", facility.data_dir, settings)


if __name__ == "__main__":
    main()
