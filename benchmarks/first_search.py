"""The first search a fresh server answers: cold (baseline: SCISEARCH_WARM=0) against warmed in the background.

    python benchmarks/first_search.py CATALOG               # e.g. the demo's demo.db
    python benchmarks/first_search.py CATALOG --rounds 2 --query "gold nanoparticles"

Each round serves CATALOG with ``datasette serve`` and the repository's metadata.yml twice, as a researcher runs
it, once per configuration, one after the other so that the load others put on a shared machine falls on both:

- cold: the server answers /-/versions.json, then the first search is timed, then a second one;
- warmed: the server answers, then the bench waits until the server's log says its catalogs are warmed up
  (web/warming.py; how long that took from the process's start is reported), then the same two searches.

A researcher who arrives while the warm-up still runs waits for what is left of it (the query model is loaded
once, behind a lock): the warm-up moves the cost off the first researcher, it does not remove it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 600


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch_seconds(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=WAIT_SECONDS) as response:
        response.read()
        assert response.status == 200, response.status
    return time.perf_counter() - started


def serve_and_time(catalog: Path, query: str, warm: bool) -> dict:
    port = free_port()
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    env = {**os.environ, "SCISEARCH_WARM": "1" if warm else "0", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with open(log, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "datasette", "serve", str(catalog), "--metadata", str(REPO / "metadata.yml")]
            + ["--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                fetch_seconds(f"{base}/-/versions.json")
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > WAIT_SECONDS:
                    raise RuntimeError(f"the server did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        answering = time.perf_counter() - started
        warmed = None
        if warm:
            while "warmed up in" not in log.read_text() and "could not warm up" not in log.read_text():
                if time.perf_counter() - started > WAIT_SECONDS:
                    raise RuntimeError(f"no warm-up within {WAIT_SECONDS} s:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
            warmed = time.perf_counter() - started
        search = f"{base}/-/scisearch?q={urllib.parse.quote(query)}"
        first = fetch_seconds(search)
        second = fetch_seconds(search + "&page=2")
        return {"answering": answering, "warmed": warmed, "first": first, "second": second}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--query", default="gold nanoparticles")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"cold (baseline)": [], "warmed in the background": []}
    for _ in range(args.rounds):
        results["cold (baseline)"].append(serve_and_time(args.catalog, args.query, warm=False))
        results["warmed in the background"].append(serve_and_time(args.catalog, args.query, warm=True))
    print(f"{args.catalog} · query {args.query!r} · {args.rounds} round(s), median · load {os.getloadavg()[0]:.1f}")
    print(f"{'':28} {'answers after':>14} {'warmed after':>13} {'1st search':>11} {'2nd search':>11}")
    for name, rounds in results.items():

        def median(key: str, rounds=rounds) -> str:
            values = [r[key] for r in rounds if r[key] is not None]
            return f"{statistics.median(values):.2f} s" if values else "—"

        print(
            f"{name:28} {median('answering'):>14} {median('warmed'):>13} {median('first'):>11} {median('second'):>11}"
        )


if __name__ == "__main__":
    main()
