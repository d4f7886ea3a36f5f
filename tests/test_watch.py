"""scisearch watch: files written into a watched folder become searchable, partners wait for each other, a
watcher killed at any moment and started again completes the work, and faults are notices, not crashes.

The watcher runs as a real subprocess over real files copied from ../shared/data/em; the tests wait on
conditions in the catalog (with a deadline), never on fixed sleeps.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from datasette_scisearch import changes
from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.cli import cli
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.loader import Dataset, FileLoader
from datasette_scisearch.ingest.partners import expected_partners
from datasette_scisearch.ingest.watching import Watcher, WatchOptions
from datasette_scisearch.search import engine

from .conftest import shared_data

RUNNING_JOB = "select 1 from jobs where status = 'running' and pid = ?"
DEADLINE_S = 120  # the machine running the suite may be busy; a working watcher takes a few seconds


def until(condition, what: str, deadline_s: float = DEADLINE_S, process: subprocess.Popen | None = None):
    """Poll ``condition`` until it gives something true; fail saying ``what`` was awaited (and the watcher's
    output, when it died)."""
    ends = time.monotonic() + deadline_s
    while time.monotonic() < ends:
        found = condition()
        if found:
            return found
        if process is not None and process.poll() is not None:
            pytest.fail(f"the watcher exited ({process.returncode}) while waiting for {what}")
        time.sleep(0.2)
    pytest.fail(f"gave up after {deadline_s} s waiting for {what}")


def query(catalog: Path, sql: str, params=()) -> list[tuple]:
    """Read the catalog as a bystander would, without migrating it (the watcher may be creating it just now)."""
    if not catalog.exists():
        return []
    connection = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise
    finally:
        connection.close()


def watch_command(catalog: Path, folder: Path, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "datasette_scisearch",
        "watch",
        str(catalog),
        str(folder),
        "--no-tag",
        "--settle",
        "0.3s",
        *options,
    ]


class Watching:
    """A watcher subprocess over ``folder``, its output in ``log``."""

    def __init__(self, tmp_path: Path, *options: str, folder: Path | None = None):
        self.folder = folder or tmp_path / "instrument"
        self.folder.mkdir(exist_ok=True)
        self.catalog = tmp_path / "catalog.db"
        self.log = tmp_path / f"watch-{time.monotonic_ns()}.log"
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                watch_command(self.catalog, self.folder, *options), stdout=out, stderr=subprocess.STDOUT
            )
        until(lambda: self.said("watching "), "the watcher to start", process=self.process)

    def said(self, text: str) -> bool:
        return text in self.log.read_text()

    def files(self) -> list[str]:
        return [row[0] for row in query(self.catalog, "select name from files order by name")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def watching(tmp_path):
    started: list[Watching] = []

    def start(*options: str, folder: Path | None = None) -> Watching:
        watcher = Watching(tmp_path, *options, folder=folder)
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


def copy_in(name: str, folder: Path) -> Path:
    """Copy a real file into the watched folder as an instrument would write it: under a temporary name first
    is not what instruments do, so the bytes arrive in place."""
    target = folder / name
    shutil.copyfile(shared_data("em", name), target)
    return target


def test_a_file_written_into_a_watched_folder_becomes_findable_by_search(watching):
    watcher = watching()
    copy_in("08_carbon.dm3", watcher.folder)

    def found():
        if not watcher.catalog.exists():
            return None
        db = open_catalog(watcher.catalog)
        try:
            return [hit.title for hit in engine.search(db, "carbon", mode="keyword").hits]
        finally:
            db.close()

    assert until(found, "'carbon' to find the new file", process=watcher.process) == ["08_carbon.dm3"]


def test_a_watched_file_is_tagged_and_found_by_a_word_only_its_tags_carry(watching):
    watcher = watching("--tag", "-t", "filenames", "--tag-every", "1s")
    copy_in("16_STOimage.emi", watcher.folder)
    copy_in("16_STOimage_1.ser", watcher.folder)

    def found():
        if not watcher.catalog.exists():
            return None
        db = open_catalog(watcher.catalog)
        try:
            return [hit.title for hit in engine.search(db, '"strontium titanate"', mode="keyword").hits]
        finally:
            db.close()

    assert until(found, "the filename tagger's words in search", process=watcher.process) == ["16_STOimage_1.ser"]


def test_a_tia_data_file_waits_for_its_emi_partner_and_loads_with_its_settings_once_it_comes(watching):
    watcher = watching()
    copy_in("16_STOimage_1.ser", watcher.folder)
    until(lambda: watcher.said("waiting for 16_STOimage.emi"), "the watcher to wait for the .emi")
    assert watcher.files() == [] and query(watcher.catalog, "select source from ingest_errors") == []
    copy_in("16_STOimage.emi", watcher.folder)
    until(lambda: watcher.files(), "the .ser to be catalogued", process=watcher.process)
    assert query(watcher.catalog, "select voltage_kv from files where name = '16_STOimage_1.ser'") == [(80.0,)]
    assert query(watcher.catalog, "select source from ingest_errors") == []


def test_a_partner_that_never_arrives_is_read_after_the_timeout_with_an_error_row_and_a_note(watching):
    watcher = watching("--partner-timeout", "1s")
    copy_in("au_145mm_68kx_microprobe_01_master.h5", watcher.folder)
    errors = until(
        lambda: query(watcher.catalog, "select message from ingest_errors"), "the master's error row", process=None
    )
    assert "au_145mm_68kx_microprobe_01_data_000001.h5" in errors[0][0]
    until(lambda: watcher.said("did not arrive within 1 s"), "the note about the missing data file")
    assert watcher.process.poll() is None


def test_a_file_that_vanishes_before_it_is_complete_is_a_notice_and_the_watcher_goes_on(watching):
    watcher = watching("--settle", "3s")
    doomed = copy_in("temp.mrc", watcher.folder)
    until(lambda: watcher.said("watching"), "the watcher")
    time.sleep(0.6)  # let the watcher see it arrive (an event it must have had before the file goes)
    doomed.unlink()
    until(lambda: watcher.said("vanished before it was complete"), "the notice", process=watcher.process)
    copy_in("08_carbon.dm3", watcher.folder)
    assert until(lambda: watcher.files(), "the next file", process=watcher.process) == ["08_carbon.dm3"]
    assert query(watcher.catalog, "select source from ingest_errors") == []


def test_a_watched_folder_that_disappears_and_comes_back_is_read_again(watching, tmp_path):
    watcher = watching()
    away = tmp_path / "unmounted"
    watcher.folder.rename(away)
    until(lambda: watcher.said("is gone (unmounted or removed?)"), "the notice", process=watcher.process)
    shutil.copyfile(shared_data("em", "08_carbon.dm3"), away / "08_carbon.dm3")
    away.rename(watcher.folder)
    until(lambda: watcher.said("is back"), "the folder to be seen again", process=watcher.process)
    assert until(lambda: watcher.files(), "the file written while it was away") == ["08_carbon.dm3"]


def test_status_shows_a_running_watcher_and_what_it_has_loaded(watching):
    watcher = watching()
    copy_in("08_carbon.dm3", watcher.folder)
    until(lambda: watcher.files(), "the file", process=watcher.process)

    def shown():
        result = CliRunner().invoke(cli, ["status", str(watcher.catalog), "--json"])
        watching_now = json.loads(result.output)["watching"]
        return watching_now if watching_now and watching_now[0]["loaded"] == 1 else None

    watchers = until(shown, "status to show the watcher with its file", deadline_s=30)
    assert watchers[0]["progress"]["folders"] == {str(watcher.folder.resolve()): "present"}


def test_a_second_catch_up_over_the_same_folder_reads_no_file(tmp_path):
    folder = tmp_path / "disk"
    shutil.copytree(shared_data("em"), folder)
    db = open_catalog(tmp_path / "catalog.db")
    options = WatchOptions(settle_s=0.0, partner_timeout_s=0.0, tag=False)
    first = Watcher(db, [folder], load_settings(None), options).catch_up()
    second = Watcher(db, [folder], load_settings(None), options).catch_up()
    assert first.added + first.failed == first.total > 0
    assert second.total == 0


def test_a_watcher_killed_with_sigkill_at_random_moments_then_restarted_catalogs_every_file_once(tmp_path):
    source = shared_data("em")
    folder = tmp_path / "instrument"
    folder.mkdir()
    catalog = tmp_path / "catalog.db"
    command = watch_command(catalog, folder, "--partner-timeout", "1s")
    names = sorted(os.listdir(source))
    delays_s = random.Random(16).sample(range(0, 30), 3)  # tenths of a second after the watcher's job starts
    for delay in delays_s:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            until(lambda pid=process.pid: query(catalog, RUNNING_JOB, [pid]), "the watcher's job", process=process)
            kill_at = time.monotonic() + delay / 10
            while time.monotonic() < kill_at:  # files keep arriving, a few a second, while it works
                if names:
                    name = names.pop(0)
                    shutil.copyfile(source / name, folder / name)
                time.sleep(0.1)
        finally:  # killed at its moment, or when the test fails before it: no watcher outlives the test
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        assert query(catalog, "pragma integrity_check") == [("ok",)]
    for name in names:
        shutil.copyfile(source / name, folder / name)
    subprocess.run([*command, "--once"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    reference = tmp_path / "reference.db"
    subprocess.run(
        [sys.executable, "-m", "datasette_scisearch", "load", "files", str(reference), str(folder), "--quiet"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    assert query(catalog, "pragma integrity_check") == [("ok",)]
    assert query(catalog, "select path, dataset from files group by path, dataset having count(*) > 1") == []
    catalogued = query(catalog, "select name, dataset from files order by name, dataset")
    assert catalogued == query(reference, "select name, dataset from files order by name, dataset")
    assert query(catalog, "select status from jobs where command = 'watch' order by id") == [
        ("interrupted",),
        ("interrupted",),
        ("interrupted",),
        ("stopped",),
    ]


def test_partners_are_known_before_they_arrive():
    folder = Path("/instrument")
    assert expected_partners(folder / "16_STOimage_1.ser") == [folder / "16_STOimage.emi"]
    assert expected_partners(folder / "x_data_000001.h5") == [folder / "x_master.h5"]
    assert expected_partners(shared_data("em", "au_145mm_68kx_microprobe_01_master.h5")) == [
        shared_data("em") / "au_145mm_68kx_microprobe_01_data_000001.h5"
    ]
    assert expected_partners(folder / "08_carbon.dm3") == []


def test_a_settle_time_that_is_not_a_duration_is_refused_with_what_to_write(tmp_path):
    result = CliRunner().invoke(cli, ["watch", str(tmp_path / "c.db"), str(tmp_path), "--settle", "soon"])
    assert result.exit_code == 2
    assert "write e.g. 2s, 500ms, 5m or 1h" in result.output


def test_more_files_than_the_queue_holds_are_all_catalogued_once_by_a_later_scan(tmp_path):
    folder = tmp_path / "disk"
    shutil.copytree(shared_data("em"), folder)
    db = open_catalog(tmp_path / "catalog.db")
    options = WatchOptions(settle_s=0.0, partner_timeout_s=0.0, tag=False, max_pending=3, batch_files=2)
    watcher = Watcher(db, [folder], load_settings(None), options)
    summary = watcher.catch_up()
    assert any("the rest are found by a scan later" in note for note in summary.notes)
    assert db.execute("select count(*) from files group by path, dataset having count(*) > 1").fetchall() == []
    reference = open_catalog(tmp_path / "reference.db")
    changes.load_files(reference, [folder], load_settings(None), progress=False)
    names = "select name, dataset from files order by name, dataset"
    assert db.execute(names).fetchall() == reference.execute(names).fetchall()


class InstrumentStillWriting(FileLoader):
    """A reader during whose read the instrument appends a second frame to the file (once): what a watcher meets
    when a writer pauses longer than the settle time and then goes on."""

    name = "still-writing"
    suffixes = frozenset({".frames"})

    def read(self, path: Path):
        frames = path.read_text().splitlines()
        if len(frames) == 1:
            with open(path, "a") as handle:
                handle.write("frame 2\n")
        yield Dataset(data=np.arange(16, dtype=np.uint16).reshape(4, 4) * len(frames))


def test_a_file_that_changes_while_it_is_read_is_noted_and_read_again_once_it_settles(tmp_path):
    folder = tmp_path / "instrument"
    folder.mkdir()
    (folder / "movie.frames").write_text("frame 1\n")
    db = open_catalog(tmp_path / "catalog.db")
    options = WatchOptions(settle_s=0.0, tag=False)
    watcher = Watcher(db, [folder], load_settings(None), options, sandbox=False, loaders=[InstrumentStillWriting()])
    summary = watcher.catch_up()
    assert any(note.startswith("changed while it was read") for note in summary.notes)
    assert (summary.added, summary.updated) == (1, 1)
    stored = db.execute("select size_bytes from files where name = 'movie.frames'").fetchall()
    assert stored == [((folder / "movie.frames").stat().st_size,)]


def test_a_file_written_while_the_watch_is_being_set_up_is_catalogued(tmp_path, monkeypatch):
    """A file that arrives after the watcher started but before the operating system watches the folder makes no
    event: the watcher looks once the watch is set up, so it is found all the same."""
    import threading

    import watchfiles

    folder = tmp_path / "instrument"
    folder.mkdir()
    real_watch = watchfiles.watch

    def watch_after_a_file_arrived(*paths, **options):
        shutil.copy(shared_data("em", "08_carbon.dm3"), folder)  # the instrument writes, the watch not yet set
        yield from real_watch(*paths, **options)

    monkeypatch.setattr(watchfiles, "watch", watch_after_a_file_arrived)
    stop = threading.Event()
    failures: list[BaseException] = []

    def watch() -> None:
        try:
            db = open_catalog(tmp_path / "catalog.db")
            watcher = Watcher(db, [folder], load_settings(None), WatchOptions(settle_s=0.0, tag=False))
            watcher.stop = stop
            watcher.run()
        except BaseException as error:  # seen by the test, not lost in the thread
            failures.append(error)
            stop.set()

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        until(lambda: stop.is_set() or query(tmp_path / "catalog.db", "select name from files"), "the file")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not failures, failures
    assert query(tmp_path / "catalog.db", "select name from files where dataset = 0") == [("08_carbon.dm3",)]
