"""Writers that share one catalog: loads, tagging, experts and a served site all make progress together; a job
that failed or whose process died is never recorded 'done' nor shown 'running'."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import types

import pytest

from datasette_scisearch import jobs
from datasette_scisearch.catalog import CatalogBusy, open_catalog, waiting_at_most, write_transaction
from datasette_scisearch.config import load_settings
from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.plugins import get_plugin_manager
from datasette_scisearch.tagging import items as tagging_items
from datasette_scisearch.tagging import pipeline
from datasette_scisearch.tagging.tagger import Result, Tag, Tagger

from .conftest import REPO, shared_data


@pytest.fixture
def catalog_path(em_catalog_file, tmp_path):
    path = tmp_path / "em.db"
    shutil.copy(em_catalog_file, path)
    return path


@pytest.fixture
def settings():
    return load_settings(REPO / "metadata.yml")


@pytest.fixture
def register():
    """Register taggers for one test; they are gone after it."""
    manager = get_plugin_manager()
    names = []

    def add(*taggers):
        plugin = types.SimpleNamespace(register_taggers=hookimpl(lambda register: [register(t) for t in taggers]))
        names.append(f"shared-writers-test-{len(names)}")
        manager.register(plugin, name=names[-1])

    yield add
    for name in names:
        manager.unregister(name=name)


class BusyNeighbourTagger(Tagger):
    """Tags each file with its kind; while it works, another program commits to the catalog (a load, an expert)."""

    name = "busy_neighbour_test"
    version = "1"
    batch_size = 2

    def __init__(self, catalog_path):
        self.catalog_path = catalog_path
        self.batches = 0

    def tag_batch(self, items):
        self.batches += 1
        other = open_catalog(self.catalog_path)
        with write_transaction(other):
            other.execute(
                "insert into instruments (name, first_seen) values (?, '2026-01-01')", [f"neighbour {self.batches}"]
            )
        other.close()
        for item in items:
            yield item, Result(tags=[Tag(f"kind {item.row['kind']}", score=0.9)])


def test_tagging_finishes_while_another_program_commits_between_its_batches(
    catalog_path, settings, register, monkeypatch
):
    # Small chunks and pages, so the run reads items, writes, and reads more items many times over.
    monkeypatch.setattr(pipeline, "CHUNK_SIZE", 3)
    monkeypatch.setattr(tagging_items, "ITEMS_PER_PAGE", 4)
    tagger = BusyNeighbourTagger(catalog_path)
    register(tagger)
    db = open_catalog(catalog_path)
    summary = pipeline.tag_catalog(db, settings, tagger_names=[tagger.name], progress=False)
    files = db["files"].count
    assert summary.taggers[0].tagged == files and tagger.batches >= files // 2
    assert db.execute("select count(distinct item_id) from tags where source = ?", [tagger.name]).fetchone()[0] == files
    assert db.execute("select status from jobs order by id desc limit 1").fetchone()[0] == "done"
    db.close()


HOLD_THE_LOCK = """
import sys, time
from datasette_scisearch.catalog import open_catalog
db = open_catalog(sys.argv[1])
db.conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
db.conn.execute("COMMIT")
"""


def test_a_writer_waits_out_another_programs_long_transaction_instead_of_failing(catalog_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(catalog_path), "2"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    waiter = open_catalog(catalog_path)
    waiter.execute("PRAGMA busy_timeout = 100")  # so the retries with backoff do the waiting, not SQLite alone
    began = time.monotonic()
    with write_transaction(waiter):
        waiter.execute("insert into instruments (name) values ('after the wait')")
    assert time.monotonic() - began > 1.0 and holder.wait() == 0
    assert waiter.execute("select count(*) from instruments where name = 'after the wait'").fetchone()[0] == 1
    waiter.close()


def test_a_writer_that_waited_too_long_says_who_to_ask_not_database_is_locked(catalog_path):
    holder = open_catalog(catalog_path)
    holder.conn.execute("BEGIN IMMEDIATE")
    waiter = open_catalog(catalog_path)
    waiter.execute("PRAGMA busy_timeout = 100")
    with waiting_at_most(0.5), pytest.raises(CatalogBusy) as refused:
        with write_transaction(waiter):
            waiter.execute("insert into instruments (name) values ('never')")
    assert "locked by another program" in refused.value.message and "scisearch status" in refused.value.fix
    assert "database is locked" not in str(refused.value)
    holder.conn.execute("ROLLBACK")
    holder.close()
    waiter.close()


def test_two_loads_started_at_once_on_a_new_catalog_both_finish_and_catalog_every_file(tmp_path):
    folders = [tmp_path / "a", tmp_path / "b"]
    em = shared_data("em")
    shutil.copytree(em, folders[0])
    shutil.copytree(shared_data("em-vendors"), folders[1])
    catalog = tmp_path / "new.db"
    loads = [
        subprocess.Popen(
            [sys.executable, "-m", "datasette_scisearch", "load", "files", str(catalog), str(folder), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in folders
    ]
    outcomes = [load.communicate() for load in loads]
    assert [load.returncode for load in loads] == [0, 0], [err[-500:] for _, err in outcomes]
    added = sum(json.loads(out)["added"] for out, _ in outcomes)
    db = open_catalog(catalog)
    assert db.execute("select count(distinct path) from files").fetchone()[0] == added > 0
    done = "select count(*) from jobs where status = 'done' and command = 'load files'"
    assert db.execute(done).fetchone()[0] == 2
    db.close()


def test_a_tagging_run_stopped_by_a_failed_write_is_recorded_failed_with_its_error(catalog_path, settings, register):
    class Poisoned(BusyNeighbourTagger):
        name = "poisoned_test"

        def tag_batch(self, items):
            for item in items:
                yield item, Result(tags=[Tag("poison")])

    register(Poisoned(catalog_path))
    db = open_catalog(catalog_path)
    # A write SQLite refuses midway (as a full disk would): the run stops with it.
    db.execute(
        "create trigger refuse_poison before insert on tags when new.tag = 'poison' "
        "begin select raise(abort, 'no space left for tags'); end"
    )
    with pytest.raises(Exception, match="no space left for tags"):
        pipeline.tag_catalog(db, settings, tagger_names=["poisoned_test"], progress=False)
    status, error = db.execute("select status, error from jobs order by id desc limit 1").fetchone()
    assert status == "failed" and "no space left for tags" in error
    db.close()


def _wait_for_running_job(catalog, process, timeout_s=60.0) -> int:
    """The id of the job ``process`` started, once its row says running (read with plain SQL: the catalog may be
    half-way through being created)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with contextlib.closing(sqlite3.connect(catalog)) as conn:
                row = conn.execute("select id from jobs where pid = ? and status = 'running'", [process.pid]).fetchone()
        except sqlite3.Error:
            row = None
        if row:
            return row[0]
        assert process.poll() is None, "the command ended before its job could be seen running"
        time.sleep(0.05)
    raise AssertionError("no running job appeared")


def test_a_job_whose_process_was_killed_shows_as_interrupted_with_why_and_not_running(tmp_path):
    folder = tmp_path / "disk"
    shutil.copytree(shared_data("em"), folder)
    catalog = tmp_path / "catalog.db"
    command = [sys.executable, "-m", "datasette_scisearch", "load", "files", str(catalog), str(folder), "--quiet"]
    load = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job_id = _wait_for_running_job(catalog, load)
    os.kill(load.pid, signal.SIGKILL)
    load.wait()
    shown = subprocess.run(
        [sys.executable, "-m", "datasette_scisearch", "status", str(catalog), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    job = next(job for job in json.loads(shown.stdout)["jobs"] if job["id"] == job_id)
    assert job["status"] == "interrupted" and "killed or crashed" in job["error"]
    # The next command records it so, for good.
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = open_catalog(catalog)
    assert db.execute("select status from jobs where id = ?", [job_id]).fetchone()[0] == "interrupted"
    assert db.execute("select status from jobs order by id desc limit 1").fetchone()[0] == "done"
    db.close()


def test_a_running_job_on_another_host_is_interrupted_once_its_heartbeat_is_stale():
    row = {"id": 1, "status": "running", "pid": 4242, "host": "elsewhere", "started_at": "2026-01-01T00:00:00+00:00"}
    fresh = {**row, "heartbeat_at": jobs.now_utc()}
    stale = {**row, "heartbeat_at": "2026-01-01T00:00:00+00:00"}
    assert jobs.shown_status(fresh) == ("running", None)
    status, why = jobs.shown_status(stale)
    assert status == "interrupted" and "no heartbeat" in why


def _concurrent_writers_benchmark():
    spec = importlib.util.spec_from_file_location("concurrent_writers", REPO / "benchmarks" / "concurrent_writers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_loads_tagging_searches_and_expert_edits_at_once_for_25_seconds_lose_nothing(tmp_path):
    # The minute is benchmarks/concurrent_writers.py's default; the suite runs a shorter stretch of it.
    report = _concurrent_writers_benchmark().run(25, shared_data("em"), tmp_path)
    assert report["lost"] == [] and report["database is locked"] == 0
    tried = report["tried"]
    assert tried["loads"] >= 4 and tried["tagging runs"] >= 2 and tried["searches"] >= 10
    assert tried["expert changes"] >= 5


def test_a_running_job_stamps_its_heartbeat_and_stops_when_it_finishes(catalog_path, monkeypatch):
    monkeypatch.setattr(jobs, "HEARTBEAT_S", 0.2)
    db = open_catalog(catalog_path)
    job_id = jobs.start_job(db, "test", {})
    started = db.execute("select started_at from jobs where id = ?", [job_id]).fetchone()[0]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # timestamps have whole seconds: wait for the next one
        beat = db.execute("select heartbeat_at from jobs where id = ?", [job_id]).fetchone()[0]
        if beat > started:
            break
        time.sleep(0.1)
    assert beat > started and jobs.shown_status(db["jobs"].get(job_id)) == ("running", None)
    jobs.finish_job(db, job_id, jobs.Summary(command="test"))
    assert db["jobs"].get(job_id)["status"] == "done" and not jobs._Heartbeat.beating(job_id)
    db.close()
