"""Everyone writing to one catalog at once, for a minute: what was tried, what failed, what was lost.

    python benchmarks/concurrent_writers.py [--seconds 60] [--em ../shared/data/em] [--json]

Issue 18's concurrent run, each actor its own process as on a facility's server:

- two loads at once, each looping over its own folder, which gains a few new instrument files (from the demo
  facility's generator) before every round, so each round adds rows, previews and search documents;
- a tagging run looping (``scisearch tag --force``: every item's tags, vectors and documents rewritten);
- a served site (Datasette, through its in-process client) answering a search every 0.5 s (each search logs to
  the private database) while an expert accepts, rejects and adds tags through the validation API.

Afterwards it checks what must hold: no "database is locked" anywhere (commands' output, web answers), no
command failed, no job recorded ``done`` for a process that failed and none left ``running``, ``PRAGMA
integrity_check`` ok, no file half-written or duplicated, every expert change the site confirmed is in the
history, and a last load of both folders finds nothing missing.  The report says what was tried and what was
lost (must be nothing); the exit status is 1 when anything was.  tests/test_concurrent_writers.py runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch import jobs  # noqa: E402
from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.demo import build_facility  # noqa: E402

# Small real files of several formats, in both folders from the start (the same content twice: duplicates).
FIRST_FILES = ("08_carbon.dm3", "dmTest_float32_nonSquare_diffPixelSize.dm4", "16_STOimage_1.ser", "16_STOimage.emi")
FILES_PER_ROUND = 3
DEMO_FILES = 60
FAST_TAGGERS = ("filenames", "metadata", "image_analysis")
LOCKED = ("database is locked", "database is busy", "database table is locked")

SITE = r"""
import asyncio, json, random, sys, time
from datasette.app import Datasette

catalog, seconds, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
name = __import__("pathlib").Path(catalog).stem
ds = Datasette([catalog], metadata={"plugins": {"datasette-scisearch": {"edit": {"allow": {"id": ["expert"]}}}}})
cookies = {"ds_actor": ds.sign({"a": {"id": "expert"}}, "actor")}
report = {"searches": 0, "search_failures": [], "edits": 0, "edit_failures": [], "confirmed_history_ids": []}
words = ["carbon", "STO", "HAADF", "image", "diffraction", "dm4", "amorphous", "nanoparticles"]

async def token():
    page = await ds.client.get(f"/-/scisearch/item/{name}/file/1", cookies=cookies)
    return page.cookies.get("ds_csrftoken") or ds.sign("unused", "csrftoken")

async def searches(until):
    while time.monotonic() < until:
        response = await ds.client.get("/-/scisearch.json", params={"q": random.choice(words)})
        report["searches"] += 1
        if response.status_code != 200 or "locked" in response.text:
            report["search_failures"].append(f"{response.status_code}: {response.text[:200]}")
        await asyncio.sleep(0.5)

async def edits(until):
    csrf = await token()
    jar = {**cookies, "ds_csrftoken": csrf}
    while time.monotonic() < until:
        db = ds.get_database(name)
        rows = (await db.execute("select id, item_id from tags where item_type = 'file' and via is null "
                                 "order by random() limit 1")).rows
        if rows:
            tag_id, item_id = rows[0]
            action = random.choice(["accept", "reject", "add"])
            if action == "add":
                path, data = f"/-/scisearch/tags/{name}/add", {"item_type": "file", "item_id": item_id,
                                                               "text": f"checked {random.randrange(10**6)}"}
            else:
                path, data = f"/-/scisearch/tags/{name}/{tag_id}", {"action": action}
            response = await ds.client.post(path, data={**data, "csrftoken": csrf}, cookies=jar,
                                            headers={"accept": "application/json"})
            report["edits"] += 1
            body = response.json() if "json" in response.headers.get("content-type", "") else {}
            if response.status_code == 200 and (body.get("history") or {}).get("id"):
                report["confirmed_history_ids"].append(body["history"]["id"])
            elif response.status_code not in (404,):  # the tagger may have replaced the tag meanwhile
                report["edit_failures"].append(f"{response.status_code}: {response.text[:200]}")
        await asyncio.sleep(random.uniform(0.3, 0.8))

async def main():
    until = time.monotonic() + seconds
    await asyncio.gather(searches(until), edits(until))

random.seed(seed)
asyncio.run(main())
print(json.dumps(report))
"""


class Actor:
    """One looping command-line writer: runs its command again until time is up, keeping every outcome."""

    def __init__(self, name: str, command: list[str], before_each=None):
        self.name, self.command, self.before_each = name, command, before_each
        self.process: subprocess.Popen | None = None
        self.runs: list[dict] = []
        self.round = 0

    def step(self, until: float) -> bool:
        """Start the next run when the last has ended; False once time is up and nothing runs."""
        if self.process is not None:
            if self.process.poll() is None:
                return True
            out, err = self.process.communicate()
            self.runs.append({"pid": self.process.pid, "exit": self.process.returncode, "output": out + err})
            self.process = None
        if time.monotonic() >= until:
            return False
        self.round += 1
        if self.before_each:
            self.before_each(self.round)
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return True


def scisearch(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "datasette_scisearch", *arguments]


def copy_round(files: list[Path], folder: Path, lane: int, lanes: int = 2):
    """Before round ``number`` of a load: the next few demo files (new content, so new rows) into a folder of its
    own; after the demo's files run out they come round again (same content elsewhere: recorded as duplicates)."""

    def copy(number: int) -> None:
        target = folder / f"round-{number:03d}"
        target.mkdir(parents=True, exist_ok=True)
        start = ((number - 1) * lanes + lane) * FILES_PER_ROUND
        for offset in range(FILES_PER_ROUND):
            source = files[(start + offset) % len(files)]
            shutil.copy2(source, target / source.name)

    return copy


def run(seconds: float, em: Path, work: Path, seed: int = 0) -> dict:
    """The concurrent run in ``work``; returns the report (``lost`` empty when nothing was)."""
    catalog = work / "catalog.db"
    disks = [work / "disk-a", work / "disk-b"]
    for disk in disks:
        disk.mkdir()
        for name in FIRST_FILES:
            shutil.copy2(em / name, disk / name)
    build_facility(work / "facility", n_files=DEMO_FILES, seed=seed, progress=False)
    demo_files = sorted(path for path in (work / "facility" / "data").rglob("*") if path.is_file())
    # A catalog with files and tags to begin with, so the site has something to search and edit from the start.
    for command in (scisearch("load", "files", str(catalog), str(disks[0]), "--quiet"), tag_command(catalog)):
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    actors = [
        Actor(
            "load a",
            scisearch("load", "files", str(catalog), str(disks[0]), "--quiet"),
            copy_round(demo_files, disks[0], 0),
        ),
        Actor(
            "load b",
            scisearch("load", "files", str(catalog), str(disks[1]), "--quiet"),
            copy_round(demo_files, disks[1], 1),
        ),
        Actor("tag", tag_command(catalog, "--force")),
    ]
    began = time.monotonic()
    until = began + seconds
    site = subprocess.Popen(
        [sys.executable, "-c", SITE, str(catalog), str(seconds), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while any([actor.step(until) for actor in actors]):
        time.sleep(0.05)
    site_out, site_err = site.communicate()
    wall_s = time.monotonic() - began
    site_report = json.loads(site_out.strip().splitlines()[-1]) if site.returncode == 0 and site_out.strip() else {}
    return check(catalog, disks, actors, site.returncode, site_report, site_err, wall_s)


def tag_command(catalog: Path, *extra: str) -> list[str]:
    return scisearch(
        "tag", str(catalog), *[part for name in FAST_TAGGERS for part in ("--tagger", name)], "--quiet", *extra
    )


def check(catalog: Path, disks, actors, site_exit: int, site: dict, site_err: str, wall_s: float) -> dict:
    lost: list[str] = []
    outputs = [run["output"] for actor in actors for run in actor.runs] + [site_err]
    outputs += site.get("search_failures", []) + site.get("edit_failures", [])
    locked = sum(text.lower().count(word) for text in outputs for word in LOCKED)
    if locked:
        lost.append(f'{locked} "database is locked" messages')
    for actor in actors:
        for run in actor.runs:
            if run["exit"] != 0:
                lost.append(f"{actor.name} (pid {run['pid']}) exited {run['exit']}: {run['output'][-300:]}")
    if site_exit != 0:
        lost.append(f"the site's process exited {site_exit}: {site_err[-300:]}")
    lost += [f"search failed: {failure}" for failure in site.get("search_failures", [])]
    lost += [f"expert change failed: {failure}" for failure in site.get("edit_failures", [])]

    db = open_catalog(catalog, create=False)
    try:
        exits = {run["pid"]: run["exit"] for actor in actors for run in actor.runs}
        job_rows = list(db.query("select * from jobs"))
        for row in job_rows:
            shown, _ = jobs.shown_status(row)
            if row["pid"] in exits and exits[row["pid"]] != 0 and row["status"] == "done":
                lost.append(f"job {row['id']} ({row['command']}) is recorded done, but its process failed")
            if shown == "running":
                lost.append(f"job {row['id']} ({row['command']}) is still shown running after every process ended")
        if (integrity := db.execute("pragma integrity_check").fetchone()[0]) != "ok":
            lost.append(f"integrity_check: {integrity}")
        lost += [f"half-written: {name}" for name in half_written(db)]
        duplicates = db.execute("select path from files group by path, dataset having count(*) > 1").fetchall()
        lost += [f"duplicate file row: {path}" for (path,) in duplicates]
        confirmed = set(site.get("confirmed_history_ids", []))
        stored = {row[0] for row in db.execute("select id from tag_history")}
        lost += [f"expert change {entry} confirmed but not in tag_history" for entry in sorted(confirmed - stored)]
        files_before = db["files"].count
    finally:
        db.close()
    # Nothing a load reported as done may be missing: a last, quiet load of both folders must add nothing.
    last = subprocess.run(
        scisearch("load", "files", str(catalog), *map(str, disks), "--json"), capture_output=True, text=True
    )
    if last.returncode != 0:
        lost.append(f"the last load failed: {last.stderr[-300:]}")
    else:
        summary = json.loads(last.stdout)
        if summary.get("added") or summary.get("updated"):
            lost.append(
                f"the last load still found {summary.get('added')} new and {summary.get('updated')} changed files"
            )
    return {
        "seconds": round(wall_s, 1),
        "tried": {
            "loads": sum(len(a.runs) for a in actors if a.name.startswith("load")),
            "tagging runs": sum(len(a.runs) for a in actors if a.name == "tag"),
            "searches": site.get("searches", 0),
            "expert changes": site.get("edits", 0),
            "files catalogued": files_before,
            "jobs recorded": len(job_rows),
        },
        "database is locked": locked,
        "jobs": {
            status: sum(1 for row in job_rows if row["status"] == status) for status in {r["status"] for r in job_rows}
        },
        "lost": lost,
    }


def half_written(db) -> list[str]:
    """Rows that say they have a preview but have none, and previews of no row: what a torn write leaves."""
    torn = db.execute(
        "select name from files where preview is not null and id not in (select file_id from previews)"
    ).fetchall()
    orphans = db.execute("select file_id from previews where file_id not in (select id from files)").fetchall()
    return [row[0] for row in torn] + [f"preview of {row[0]}" for row in orphans]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--em", type=Path, default=REPO.parent / "shared" / "data" / "em")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    random.seed(options.seed)
    with tempfile.TemporaryDirectory(prefix="concurrent-writers-") as work:
        report = run(options.seconds, options.em.resolve(), Path(work), options.seed)
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}", file=sys.stderr)
    if options.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['seconds']} s of concurrent writers: " + ", ".join(f"{v} {k}" for k, v in report["tried"].items())
        )
        print(f'"database is locked": {report["database is locked"]}; jobs: {report["jobs"]}')
        print("lost: nothing" if not report["lost"] else "lost:\n  " + "\n  ".join(report["lost"]))
    return 1 if report["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
