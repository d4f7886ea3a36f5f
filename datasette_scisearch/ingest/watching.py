"""Watching folders: files become searchable as the instruments write them.

The watched folders become data roots, as a load's do.  A file is taken in once it is complete: its size and
modification time have not changed for ``settle_s`` (a file already that old when first seen is complete at
once), and its partner files (partners.py: TIA .emi + .ser, a Dectris master + its data files) are there and
complete too — or ``partner_timeout_s`` has passed, when it is read without them and a note says so (the
reader's error row then says what is missing; the partner's arrival later makes it be read again).

Complete files are loaded in batches through the library's own change functions (changes.py: ``load_files``
— load, link, search documents — then ``tag_new`` once the queue is idle or every ``tag_interval_s``, the order
``changes.take_in_files`` follows in one call), one transaction per file as every
load commits, so searches keep being answered between files.  Restarts lose nothing: a scan at start reads every
file the catalog does not already hold as it is now (its stored size and time decide), so a second start reads
none, and a watcher killed mid-batch finds the rest.  Backpressure: at most ``max_pending`` files wait in memory;
beyond that new arrivals are left to a scan once the queue has drained to half, so a burst of any size holds
bounded memory.  The running job row (``jobs``, command 'watch') carries the counts and what is waiting, for
``scisearch status``.

A catalogued file deleted from a watched folder, or moved out of it, keeps its row, preview and tags, marked
missing since the moment the watcher saw it go (files.py's ``sweep_missing``, as ``load files`` marks what its
walk no longer finds; the scan at start marks what went while no watcher ran).  Back at its path, or moved to
another watched place with the same content, it is the same item again, present.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils
from sqlite_utils.utils import sqlite3  # the driver the catalog's connection uses (pysqlite3 here)

from .. import changes, jobs
from ..config import Settings
from ..errors import ScisearchError
from .filerows import display_path
from .files import LoadSummary, catalogued_unchanged, data_roots, file_loaders, iter_walk, sweep_missing
from .loader import FileLoader
from .partners import expected_partners, owners_of
from .reading import loaders_for
from .sandbox import ReaderPool

if TYPE_CHECKING:
    from ..cluster import Cluster

NOTES_KEPT = 50  # the job row keeps the latest notes, not the first
WORK_S = 5.0  # loading at most this long before looking at new events again
BACKOFF_S = 10.0  # after a batch the catalog refused (busy with another writer, its disk full)


@dataclass
class WatchOptions:
    """How a watcher decides that files are complete and how much it takes at once."""

    settle_s: float = 2.0  # size and time unchanged this long: the file is complete
    partner_timeout_s: float = 300.0  # read a file without its partners after this long
    batch_files: int = 200  # files per load (each still commits on its own)
    max_pending: int = 20_000  # files waiting in memory at most; more are found by a scan later
    poll_s: float = 0.5  # how often waiting files are looked at again
    tag: bool = True
    tag_interval_s: float = 60.0  # while files keep coming, tag at least this often
    tag_options: dict = field(default_factory=dict)  # changes.tag_new's options (tagger_names, device, …)
    status_interval_s: float = 5.0  # how often the job row is brought up to date


@dataclass(slots=True)
class _Arrival:
    """A file seen but not yet loaded."""

    size: int
    mtime_ns: int
    stable_since: float  # since when size and time have been what they are
    first_seen: float
    partners: list[Path] | None = None  # worked out once the file has settled
    said_waiting: bool = False


class Watcher:
    """Watch ``folders`` and keep ``db`` up to date with them until ``stop`` is set (``run``), or catch up once
    (``catch_up``).  ``report`` receives one line per thing a person watching the log would want to see."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        folders: list[Path],
        settings: Settings,
        options: WatchOptions | None = None,
        report: Callable[[str], None] = lambda line: None,
        sandbox: bool | ReaderPool = True,
        loaders: list[FileLoader] | None = None,
        cluster: Cluster | None = None,
    ):
        self.db, self.settings = db, settings
        self.options = options or WatchOptions()
        self.roots = data_roots([Path(f) for f in folders])
        self.report, self.sandbox, self.cluster = report, sandbox, cluster
        self.loaders = file_loaders() if loaders is None else loaders
        self.stop = threading.Event()
        self.pending: dict[Path, _Arrival] = {}
        self.deleted: set[Path] = set()  # paths the folders said went, to be marked missing at the next step
        self.sweep_all = False  # more went than are kept one by one: the whole folders are swept instead
        self.overflowed = False
        self.rescan_at: dict[Path, float] = {}  # new folders, and when to scan them once more
        self.present = {root: True for root in self.roots}
        self.summary = LoadSummary(command="watch")
        self.notes: collections.deque[str] = collections.deque(maxlen=NOTES_KEPT)
        self.batches = 0
        self.tag_runs = 0
        self.loaded_since_tag = 0
        self.last_tag = time.monotonic()
        self.last_status = 0.0
        self.last_batch_at: str | None = None
        self.job_id: int | None = None

    # --- the two ways to run -------------------------------------------------------------------------------

    def run(self) -> LoadSummary:
        """Scan, then watch until ``self.stop`` is set (a signal handler's job) or Ctrl-C."""
        import watchfiles

        def watching_step() -> None:
            present = [root for root in self.roots if self._check_root(root)]
            if not present:
                self.stop.wait(max(self.options.poll_s, 1.0))
                return
            try:
                looked = False
                for found in watchfiles.watch(
                    *present,
                    debounce=int(self.options.poll_s * 1000),
                    step=50,
                    rust_timeout=int(self.options.poll_s * 1000),
                    yield_on_timeout=True,
                    stop_event=self.stop,
                ):
                    if not looked:
                        # The operating system reports changes from the moment the watch is set up, which is
                        # done by now: what was written or deleted before (while this process started, or while
                        # a folder was away) only a look finds.  Looking before, a file written in between was
                        # never seen (a test under load caught it: 0 files in 120 s).
                        looked = True
                        self._scan(present)
                        self._sweep(present)
                    for change, path_text in found:
                        self._observe(change == watchfiles.Change.deleted, Path(path_text))
                    self._work()
                    if any(not self._check_root(root) for root in present) or any(
                        self._check_root(root) for root in self.roots if root not in present
                    ):
                        return  # a folder went or came back: watch the ones there now
            except (FileNotFoundError, RuntimeError, OSError) as error:  # a folder vanished under the watcher
                self._note(f"watching stopped for a moment ({error}); starting again")
                self.stop.wait(self.options.poll_s)

        return self._job(watching_step, look_first=False)

    def catch_up(self) -> LoadSummary:
        """Scan the folders, load what is new or changed (waiting for files to complete), and return."""

        def step() -> None:
            for root in self.roots:
                self._check_root(root)
            self._work()
            if not self.pending and not self.overflowed:
                self.stop.set()
            else:
                self.stop.wait(self.options.poll_s)

        return self._job(step)

    def _job(self, step: Callable[[], None], look_first: bool = True) -> LoadSummary:
        started = time.perf_counter()
        self.job_id = jobs.start_job(
            self.db,
            "watch",
            {"folders": [display_path(r) for r in self.roots], **{k: v for k, v in vars(self.options).items()}},
        )
        status, stopped_by = "failed", None
        try:
            self.report(f"watching {', '.join(display_path(r) for r in self.roots)} (job {self.job_id})")
            if look_first:  # else the step looks, once it is watching
                present = [root for root in self.roots if self._check_root(root)]
                self._scan(present)
                self._sweep(present)  # what was deleted while no watcher ran
            while not self.stop.is_set():
                step()
            self._drain_after_stop()
            status = "stopped"
        except KeyboardInterrupt:
            status = "stopped"
        except BaseException as error:
            stopped_by = error
            raise
        finally:
            self.summary.seconds = round(time.perf_counter() - started, 3)
            self._update_status(force=True)
            self.summary.notes = list(self.notes)
            jobs.finish_job(self.db, self.job_id, self.summary, status=status, error=stopped_by)
        return self.summary

    def _drain_after_stop(self) -> None:
        """Tags for what was loaded since the last tagging, so a stopped watcher leaves nothing half-done that a
        restart's scan would not see (files waiting are found again by the scan)."""
        if self.loaded_since_tag:
            self._tag()

    # --- seeing files --------------------------------------------------------------------------------------

    def _observe(self, deleted: bool, path: Path) -> None:
        if deleted:
            if self.pending.pop(path, None) is not None:
                self._note(f"vanished before it was complete, not loaded: {display_path(path)}")
            elif len(self.deleted) < self.options.max_pending:
                self.deleted.add(path)  # a catalogued file (or a folder of them) went: marked at the next step
            else:
                self.sweep_all = True
            return
        if path.is_dir() and not path.is_symlink():  # a folder moved or copied in: its files made no events
            self._scan([path])
            # A folder just made is watched only once the operating system has seen it: files written into it
            # before then make no event, and may not be there yet for this scan.  One more scan a little later.
            self.rescan_at[path] = time.monotonic() + max(self.options.settle_s, 1.0) + self.options.poll_s
            return
        chain = self._chain(path)
        if chain:
            self._track(path)
            for partner in expected_partners(path):  # a partner that failed alone is read again with it
                if partner.exists() and self._chain(partner) and self._has_error(partner):
                    self._track(partner)
        else:
            for owner in owners_of(path, self._chain):  # a sidecar or data file: its owner is read again
                self._track(owner)

    def _chain(self, path: Path) -> list[FileLoader]:
        return loaders_for(path, self.loaders)

    def _has_error(self, path: Path) -> bool:
        return bool(self.db.execute("select 1 from ingest_errors where source = ?", [display_path(path)]).fetchone())

    def _track(self, path: Path) -> None:
        if path in self.pending:
            return  # its next look sees what changed
        if len(self.pending) >= self.options.max_pending:
            if not self.overflowed:
                self._note(f"more than {self.options.max_pending} files waiting: the rest are found by a scan later")
            self.overflowed = True
            return
        try:
            stat = path.stat()
        except OSError:
            return
        now = time.time()
        self.pending[path] = _Arrival(stat.st_size, stat.st_mtime_ns, min(now, stat.st_mtime), now)

    def _scan(self, folders: list[Path]) -> None:
        """Every file under ``folders`` that the catalog does not hold as it is now starts waiting, until the
        queue is full (then the scan is done again once it has drained)."""
        refused: list[str] = []
        found = 0
        for path in iter_walk(folders, refused, self.roots):
            if self.overflowed or self.stop.is_set():
                break
            chain = self._chain(path)
            if not chain or path in self.pending or catalogued_unchanged(self.db, path, chain):
                continue
            if owners_of(path, self._chain):  # an .emi or data file read with its owner: the owner's time covers it
                continue
            self._track(path)
            found += 1
        for line in refused[:10]:
            self._note(line)
        if found:
            self.report(f"scan of {', '.join(display_path(f) for f in folders)}: {_files(found)} to read")

    def _sweep(self, paths: list[Path]) -> None:
        """Mark the catalogued files at or under ``paths`` that are gone as missing (and unmark those back)."""
        if not paths:
            return
        try:
            gone, back = sweep_missing(self.db, paths)
        except (ScisearchError, sqlite3.Error) as error:  # the catalog busy: the next scan or event marks them
            self._note(f"could not mark files gone from the folders now: {error}")
            return
        if gone:
            where = display_path(paths[0]) if len(paths) == 1 else f"{len(paths)} places"
            self._note(f"{_files(gone)} gone from {where}: kept in the catalog, marked missing")
        if back:
            self._note(f"{_files(back)} marked missing are back")

    def _check_root(self, root: Path) -> bool:
        """Whether ``root`` is there, saying so when that changes (an unmounted share, a removed folder)."""
        present = root.is_dir()
        if present != self.present[root]:
            self.present[root] = present
            if present:
                self._note(f"folder {display_path(root)} is back: reading what changed while it was away")
                self._scan([root])
                self._sweep([root])
            else:
                dropped = [p for p in self.pending if p.is_relative_to(root)]
                for path in dropped:
                    del self.pending[path]
                self._note(
                    f"folder {display_path(root)} is gone (unmounted or removed?): its catalogued files stay, "
                    f"{len(dropped)} waiting files are read when it comes back"
                )
        return present

    # --- deciding and loading ------------------------------------------------------------------------------

    def _work(self) -> None:
        """One step: load batches of complete files for up to ``WORK_S`` (then new events are taken in), else tag
        when idle; rescan after an overflow."""
        began = time.monotonic()
        due = [path for path, at in self.rescan_at.items() if at <= began]
        for path in due:
            del self.rescan_at[path]
        if due:
            self._scan([path for path in due if path.is_dir()])
        if self.sweep_all:
            self.sweep_all = False
            self.deleted.clear()
            self._sweep([root for root in self.roots if self.present[root]])
        elif self.deleted:
            gone, self.deleted = sorted(self.deleted), set()
            self._sweep(gone)
        ready = self._ready_files(time.time())
        if not ready and self.loaded_since_tag:
            self._tag()
        while ready and not self.stop.is_set():
            try:
                self._load(ready)
            except (ScisearchError, OSError, sqlite3.Error) as error:  # the catalog busy or its disk full
                self._note(f"{_files(len(ready))} not loaded, tried again in {BACKOFF_S:g} s: {error}")
                for path in ready:
                    self._track(path)
                self.stop.wait(BACKOFF_S)
                break
            if time.monotonic() - began >= WORK_S:
                break
            ready = self._ready_files(time.time())
        if self.loaded_since_tag and time.monotonic() - self.last_tag >= self.options.tag_interval_s:
            self._tag()
        if self.overflowed and len(self.pending) <= self.options.max_pending // 2:
            self.overflowed = False
            self._scan([root for root in self.roots if self.present[root]])
        self._update_status()

    def _ready_files(self, now: float) -> list[Path]:
        ready: list[Path] = []
        for path, arrival in list(self.pending.items()):
            if len(ready) >= self.options.batch_files:
                break
            if self._is_ready(path, arrival, now):
                ready.append(path)
        return ready

    def _is_ready(self, path: Path, arrival: _Arrival, now: float) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            del self.pending[path]
            self._note(f"vanished before it was complete, not loaded: {display_path(path)}")
            return False
        except OSError:
            return False
        if (stat.st_size, stat.st_mtime_ns) != (arrival.size, arrival.mtime_ns):
            arrival.size, arrival.mtime_ns, arrival.stable_since = stat.st_size, stat.st_mtime_ns, now
            arrival.partners = None
            return False
        if now - arrival.stable_since < self.options.settle_s:
            return False
        if arrival.partners is None:
            arrival.partners = expected_partners(path)
        waiting_for = [p for p in arrival.partners if not self._partner_complete(p, now)]
        if not waiting_for:
            return True
        names = ", ".join(p.name for p in waiting_for)
        if now - arrival.first_seen < self.options.partner_timeout_s:
            if not arrival.said_waiting:
                arrival.said_waiting = True
                self.report(f"waiting for {names} (partner of {path.name})")
            return False
        self._note(
            f"{names} did not arrive within {self.options.partner_timeout_s:g} s: {display_path(path)} read "
            "without it (it is read again when the partner comes)"
        )
        return True

    def _partner_complete(self, partner: Path, now: float) -> bool:
        try:
            stat = partner.stat()
        except OSError:
            return False
        waiting = self.pending.get(partner)
        if waiting is not None:  # a partner that is itself waiting: complete once it would be ready on its own
            return (stat.st_size, stat.st_mtime_ns) == (waiting.size, waiting.mtime_ns) and (
                now - waiting.stable_since >= self.options.settle_s
            )
        return now - stat.st_mtime >= self.options.settle_s

    def _load(self, batch: list[Path]) -> None:
        seen = {path: (self.pending[path].size, self.pending[path].mtime_ns) for path in batch}
        for path in batch:
            del self.pending[path]
        # retry_errors: a file is here because it changed or a partner came, so an earlier failure is no reason
        # to skip it (the scan leaves out files that failed and have not changed).
        summary, _ = changes.load_files(
            self.db,
            batch,
            self.settings,
            progress=False,
            retry_errors=True,
            sandbox=self.sandbox,
            loaders=self.loaders,
            roots=self.roots,
            job_id=self.job_id,
            cluster=self.cluster,
        )
        self._add(summary)
        self.batches += 1
        self.last_batch_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if self.options.tag:
            self.loaded_since_tag += summary.added + summary.updated
        for path, (size, mtime_ns) in seen.items():
            try:
                stat = path.stat()
            except FileNotFoundError:
                self._note(f"vanished while it was read: {display_path(path)} (scisearch errors shows what was seen)")
                continue
            if (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns):
                self._note(f"changed while it was read: {display_path(path)} is read again once it settles")
                self._track(path)
        self.report(
            f"loaded {_files(len(batch))} in {summary.seconds:.1f} s: {summary.added} added, {summary.updated} "
            f"updated, {summary.unchanged} unchanged, {summary.skipped} skipped, {summary.failed} failed; "
            f"{len(self.pending)} waiting"
        )
        for error in summary.errors[:5]:
            self.report(f"  failed: {error['source']}: {error['message']}")

    def _add(self, summary: LoadSummary) -> None:
        for name in ("total", "added", "updated", "unchanged", "skipped", "failed"):
            setattr(self.summary, name, getattr(self.summary, name) + getattr(summary, name))
        self.summary.writer_seconds += summary.writer_seconds
        self.summary.errors = (self.summary.errors + summary.errors)[-200:]
        for note in summary.notes:
            self.notes.append(note)

    def _tag(self) -> None:
        try:
            tagged = changes.tag_new(self.db, self.settings, progress=False, **self.options.tag_options)
        except Exception as error:  # a tagger's failure must not stop the loading; the next run tries again
            self._note(f"tagging failed, tried again after the next files: {type(error).__name__}: {error}")
        else:
            self.tag_runs += 1
            done = sum(stats.tagged for stats in tagged.taggers)
            self.report(f"tagged {done} items in {tagged.seconds:.1f} s")
        self.loaded_since_tag = 0
        self.last_tag = time.monotonic()

    # --- telling --------------------------------------------------------------------------------------------

    def _note(self, line: str) -> None:
        self.notes.append(line)
        self.report(f"note: {line}")

    def _update_status(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_status < self.options.status_interval_s:
            return
        self.last_status = time.monotonic()
        self.summary.notes = list(self.notes)
        waiting_partners = sum(1 for a in self.pending.values() if a.said_waiting)
        progress = {
            "waiting": len(self.pending),
            "waiting_for_partners": waiting_partners,
            "left_for_a_scan": self.overflowed,
            "batches": self.batches,
            "tag_runs": self.tag_runs,
            "last_batch_at": self.last_batch_at,
            "folders": {display_path(root): ("present" if self.present[root] else "missing") for root in self.roots},
            "pid": os.getpid(),
        }
        if not self.tag_runs and not self.options.tag:
            progress["tagging"] = "off"
        jobs.update_job(self.db, self.job_id, self.summary, progress)


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"
