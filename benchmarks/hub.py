"""Search across facilities: what asking another scisearch instance over HTTP adds to a search, against the
same search answered locally (the baseline), in the same run.

    python benchmarks/hub.py                   # 20 rounds of 8 queries
    python benchmarks/hub.py --rounds 50

Two catalogs are built from the shared data (../shared/data/em as "west",
em-vendors/digitalmicrograph as "east"; no vectors) and served by ``datasette
serve`` on their own ports, as a facility runs them.  Three west instances list
other facilities under ``hub:``: the first east alone; the second east and a port
nobody listens on; the third east and a server that never answers (timeout 1 s).
Every query is sent to each configuration in turn (so the load others put on a
shared machine falls on all alike), over HTTP from this process:

- baseline: the first west instance with ``facilities=local`` (its catalog only);
- + east: the same instance, ``facilities=all``;
- + east + a dead port: the second;
- + east + a silent facility: the third (bounded by the silent facility's timeout).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.config import load_settings  # noqa: E402
from datasette_scisearch.ingest.files import load_files  # noqa: E402
from datasette_scisearch.tagging.pipeline import tag_catalog  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
QUERIES = ["HAADF", "diffraction", "STEM image", "dm3", "carbon", "type:file", "voltage>=200kV", "gold nanoparticles"]


def build(folder: Path) -> dict[str, Path]:
    settings = load_settings(REPO / "metadata.yml")
    paths = {}
    for name, source in (("west", SHARED / "em"), ("east", SHARED / "em-vendors" / "digitalmicrograph")):
        paths[name] = folder / f"{name}.db"
        db = open_catalog(paths[name])
        load_files(db, [source], settings, progress=False)
        tag_catalog(db, settings, ["metadata", "filenames"], progress=False)
        db.close()
    return paths


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def metadata(folder: Path, name: str, facilities: list[dict] | None) -> Path:
    document = yaml.safe_load((REPO / "metadata.yml").read_text())
    if facilities:
        document["plugins"]["datasette-scisearch"]["hub"] = {"name": "west", "facilities": facilities}
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(document))
    return path


@contextlib.contextmanager
def serving(catalog: Path, metadata_path: Path):
    port = free_port()
    log = open(metadata_path.with_suffix(".log"), "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", str(catalog), "--metadata", str(metadata_path)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "-/scisearch.json", params={"q": "warm", "facilities": "local"}).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"datasette did not start: see {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait()
        log.close()


class Silent(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        time.sleep(30)

    def log_message(self, *args):
        pass


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    silent = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    silent.daemon_threads = True
    threading.Thread(target=silent.serve_forever, daemon=True).start()
    silent_url = f"http://127.0.0.1:{silent.server_address[1]}/"
    with tempfile.TemporaryDirectory(prefix="scisearch-hub-") as temporary, contextlib.ExitStack() as stack:
        folder = Path(temporary)
        started = time.perf_counter()
        catalogs = build(folder)
        print(f"built west and east in {time.perf_counter() - started:.1f} s")
        east = stack.enter_context(serving(catalogs["east"], metadata(folder, "east", None)))
        east_entry = {"name": "east", "url": east, "timeout_seconds": 10}
        hubs = {
            "west + east": [east_entry],
            "west + east + a dead port": [east_entry, {"name": "dead", "url": f"http://127.0.0.1:{free_port()}/"}],
            "west + east + a silent facility (1 s)": [
                east_entry,
                {"name": "silent", "url": silent_url, "timeout_seconds": 1},
            ],
        }
        urls = {
            label: stack.enter_context(serving(catalogs["west"], metadata(folder, f"hub{number}", facilities)))
            for number, (label, facilities) in enumerate(hubs.items())
        }
        configurations = {"baseline: west alone (facilities=local)": (urls["west + east"], "local")}
        configurations |= {label: (url, "all") for label, url in urls.items()}
        timings: dict[str, list[float]] = {label: [] for label in configurations}
        hits: dict[str, int] = {label: 0 for label in configurations}
        notices: dict[str, int] = {label: 0 for label in configurations}
        with httpx.Client(timeout=60) as client:
            for _ in range(args.rounds):
                for query in QUERIES:
                    for label, (url, scope) in configurations.items():
                        began = time.perf_counter()
                        answer = client.get(url + "-/scisearch.json", params={"q": query, "facilities": scope})
                        timings[label].append((time.perf_counter() - began) * 1000)
                        data = answer.json()
                        hits[label] += data.get("total", 0)
                        notices[label] += len(data.get("notices", []))
        baseline = statistics.median(timings[next(iter(timings))])
        print(
            f"{args.rounds} rounds of {len(QUERIES)} queries, sequential, over HTTP on 127.0.0.1; load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        print(f"{'configuration':44} {'p50 ms':>8} {'p95 ms':>8} {'p50 vs baseline':>16} {'results':>8} {'notices':>8}")
        for label, values in timings.items():
            p50 = statistics.median(values)
            print(
                f"{label:44} {p50:8.1f} {percentile(values, 0.95):8.1f} {p50 / baseline:15.2f}x "
                f"{hits[label] // args.rounds:8} {notices[label] // args.rounds:8}"
            )
    silent.shutdown()


if __name__ == "__main__":
    main()
