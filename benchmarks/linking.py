"""How long context linking takes at facility scale, against an in-memory numpy interval match.

    python benchmarks/linking.py [--files 100000] [--sessions 10000]

Builds a synthetic catalog (5 instruments, back-to-back bookings, files taken
in and slightly around them), then times ``link_all`` (every derived link
rebuilt, as after each load) twice, and a numpy baseline that only finds each
file's session with ``searchsorted`` on sorted start times, no database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.config import Settings  # noqa: E402
from datasette_scisearch.ingest.linking import link_all  # noqa: E402

INSTRUMENTS = ["TitanCubed", "Themis", "TEAM 0.5", "Helios", "Gemini"]


def synthetic(n_files: int, n_sessions: int, seed: int = 0):
    rng = random.Random(seed)
    sessions, files = [], []
    per_instrument = n_sessions // len(INSTRUMENTS)
    files_per_session = max(1, n_files // n_sessions)
    for instrument in INSTRUMENTS:
        moment = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
        for number in range(per_instrument):
            start = moment + dt.timedelta(hours=rng.randint(10, 40))
            end = start + dt.timedelta(hours=rng.randint(2, 8))
            sessions.append(
                {
                    "id": f"{instrument}-{number}",
                    "instrument": instrument,
                    "user": "u",
                    "start": start.isoformat(timespec="seconds"),
                    "end": end.isoformat(timespec="seconds"),
                    "proposal_id": f"P-{number % 50}",
                }
            )
            minutes = int((end - start).total_seconds() / 60)
            for _ in range(files_per_session):
                taken = start + dt.timedelta(minutes=rng.randint(-20, minutes + 20))
                files.append(
                    {
                        "name": f"f{len(files)}",
                        "path": f"/data/{len(files)}",
                        "dataset": 0,
                        "instrument": instrument,
                        "acquired_at": taken.isoformat(timespec="seconds"),
                        "acquired_at_source": "metadata",
                    }
                )
            moment = end
    return sessions, files


def numpy_baseline(sessions, files, tolerance_s: float) -> tuple[float, int]:
    started = time.perf_counter()
    found = 0
    for instrument in INSTRUMENTS:
        starts = np.array(
            [dt.datetime.fromisoformat(s["start"]).timestamp() for s in sessions if s["instrument"] == instrument]
        )
        ends = np.array(
            [dt.datetime.fromisoformat(s["end"]).timestamp() for s in sessions if s["instrument"] == instrument]
        )
        times = np.array(
            [dt.datetime.fromisoformat(f["acquired_at"]).timestamp() for f in files if f["instrument"] == instrument]
        )
        index = np.searchsorted(starts, times + tolerance_s, side="right") - 1
        valid = index >= 0
        found += int(np.count_nonzero(valid & (times <= ends[np.clip(index, 0, None)] + tolerance_s)))
    return time.perf_counter() - started, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    args = parser.parse_args()
    sessions, files = synthetic(args.files, args.sessions)
    settings = Settings(link_tolerance_minutes=10)
    with tempfile.TemporaryDirectory() as scratch:
        db = open_catalog(Path(scratch) / "bench.db")
        with db.conn:
            db["sessions"].insert_all(sessions, batch_size=5000)
            db["files"].insert_all(files, batch_size=5000)
        started = time.perf_counter()
        summary = link_all(db, settings)
        first = time.perf_counter() - started
        started = time.perf_counter()
        link_all(db, settings)
        second = time.perf_counter() - started
        db.close()
    baseline, found = numpy_baseline(sessions, files, settings.link_tolerance_minutes * 60)
    print(f"{len(files):,} files, {len(sessions):,} sessions on {len(INSTRUMENTS)} instruments")
    print(f"  {'':44} {'seconds':>8} {'files/s':>10} {'linked':>8}")
    print(f"  {'baseline: numpy searchsorted, in memory':44} {baseline:8.2f} {len(files) / baseline:10,.0f} {found:8,}")
    print(f"  {'link_all, first run':44} {first:8.2f} {len(files) / first:10,.0f} {summary.files_in_sessions:8,}")
    print(f"  {'link_all, again (all links rebuilt)':44} {second:8.2f} {len(files) / second:10,.0f}")
    print("  link_all also writes a link row with evidence per file and per session, and the files' foreign keys")


if __name__ == "__main__":
    main()
