"""Loading instrument files into the catalog: walk, skip what is unchanged, read, write one file at a time.

Every folder given to a load is a *data root*, recorded in ``data_roots``
(resolved, absolute); files are stored by their absolute, resolved path, and a
link that leads out of the data roots is not followed.  Reading
(``reading.read_file``: the file's chain of readers) needs no database and can
run anywhere; writing (``write_file``) is the single writer, one immediate
transaction per file, so a crash or kill leaves each file wholly there or
wholly absent and a re-run completes the rest.  Files are recognised by (path,
size, modification time) first and by content hash second: a second run over
the same folder hashes nothing and adds nothing.  A file that failed is
remembered with its size and time, and read again only when they change (or
with ``retry_errors``).

A catalogued file no longer in a folder a load walks keeps its row, preview and
tags (the data may be archived), marked ``missing_since`` (``sweep_missing``);
found again — at its path, or elsewhere with the same content (a move, which
keeps the row's id) — it is present again.  A watcher marks it the same way
when the folder tells it the file went.

On a Dask cluster (``cluster``) the writer still walks, decides what is
unchanged and commits, in the walk's order (a task's few files in one
transaction); hashing, reading and previews run as tasks (``read_on_worker``).
Both paths share the decisions (``_plan``, ``_decide``) and the writing
(``_write_read_file``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils
from tqdm import tqdm

from .. import jobs
from ..catalog import now_utc, write_transaction
from ..config import Settings
from ..errors import ScisearchError
from ..plugins import get_loaders
from .filerows import display_path
from .loader import FileLoader
from .reading import FileResult, companions_of, file_format, loader_id, loaders_for, read_file, sha256_of
from .sandbox import ReaderPool, shared_pool
from .views import write_views

__all__ = [
    "FileResult", "file_format", "load_files", "loaders_for", "read_file", "sha256_of", "sweep_missing", "walk",
    "write_file",
]  # fmt: skip

if TYPE_CHECKING:
    from ..cluster import Cluster, TaskFailure

# On a cluster, files go to workers in small groups (the scheduler costs a few ms a task, a small file ~10 ms to
# read), a few tasks ahead per worker thread: workers never wait, and results waiting for the writer stay few.
FILES_PER_TASK = 8
BYTES_PER_TASK = 256 * 2**20
TASKS_IN_FLIGHT_PER_WORKER = 3


class IngestError(ScisearchError):
    """The load cannot start (a missing folder, say); the message says what to do."""


@dataclass
class LoadSummary(jobs.Summary):
    """A load's summary, plus the single writer's time spent writing and committing (to see whether it limits
    a cluster run)."""

    writer_seconds: float = 0.0


@dataclass
class _Planned:
    """A file that must be hashed (and probably read), and what the catalog knew of its path before."""

    path: Path
    chain: list[FileLoader]  # the readers that claim it, the specialised one first
    known_sha256: str | None  # content already catalogued for this path by a reader of the same version
    replaces_existing: bool
    modified_text: str
    size_bytes: int

    @property
    def loader(self) -> FileLoader:
        return self.chain[0]


def file_loaders() -> list[FileLoader]:
    return [loader for loader in get_loaders() if isinstance(loader, FileLoader)]


def loader_for(path: Path, loaders: list[FileLoader]) -> FileLoader | None:
    """The first reader of ``path``'s chain (see ``reading.loaders_for`` for all of them)."""
    return next(iter(loaders_for(path, loaders)), None)


def data_roots(paths: list[Path]) -> list[Path]:
    """The folders a load was given, absolute and with links resolved (a file given alone: its folder)."""
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise IngestError(f"'{missing[0]}' does not exist: give a folder or file that does")
    roots = []
    for path in paths:
        resolved = Path(path).resolve()
        if not resolved.exists():
            raise IngestError(f"'{path}' is a link to '{resolved}', which does not exist: give a folder that does")
        roots.append(resolved if resolved.is_dir() else resolved.parent)
    return roots


def walk(paths: list[Path], refused: list[str] | None = None, roots: list[Path] | None = None) -> list[Path]:
    """Every file under the given folders (and the given files), absolute, resolved and sorted, each once.

    A link is followed only when it leads to a file inside one of the folders given (the data roots, or
    ``roots`` when given): a link to /etc/passwd in a loaded folder is not read, and ``refused`` gets a line
    saying so."""
    return list(dict.fromkeys(iter_walk(paths, refused, roots)))


def iter_walk(paths: list[Path], refused: list[str] | None = None, roots: list[Path] | None = None) -> Iterator[Path]:
    """``walk`` one file at a time (a file reached twice comes twice): a watcher scanning a million files keeps
    only the ones it has not handled yet."""
    roots = data_roots(paths) if roots is None else roots
    for given in paths:
        given = Path(given)
        if os.path.isfile(given):
            yield from _inside(Path(os.path.abspath(given)), roots, refused)
            continue
        for folder, subfolders, names in os.walk(Path(given).resolve(), onerror=None):
            subfolders.sort()
            for name in sorted(names):
                yield from _inside(Path(folder) / name, roots, refused)


def _inside(path: Path, roots: list[Path], refused: list[str] | None) -> Iterator[Path]:
    resolved = path.resolve() if path.is_symlink() else path
    if path.is_symlink() and not any(resolved.is_relative_to(root) for root in roots):
        if refused is not None:
            refused.append(f"link out of the data roots not followed: {display_path(path)} -> {display_path(resolved)}")
        return
    if not resolved.is_dir():  # sockets and broken files too: they become error rows that say what they are
        yield resolved


def write_file(db: sqlite_utils.Database, result: FileResult, job_id: int | None, commit: bool = True) -> str:
    """Write one file's rows, previews and cleared errors (or its error) in one immediate transaction; returns
    'added', 'updated', 'error' or 'skipped'.  With ``commit=False`` the caller holds the transaction (several
    files at once: one disk sync for all).  Everything goes through statements that join the open transaction
    (sqlite-utils' insert and upsert nest as savepoints), so a kill leaves the file wholly written or absent."""
    path_text = display_path(result.path)
    with write_transaction(db) if commit else contextlib.nullcontext():
        if result.error:
            state = (result.size_bytes, result.modified_at.isoformat(timespec="seconds"))
            jobs.record_error(db, path_text, result.error, result.loader, job_id, file_state=state)
            return "error"
        jobs.clear_errors(db, path_text)
        if result.skipped:
            return "skipped"
        existing = {
            row["dataset"]: row["id"] for row in db.query("select id, dataset from files where path = ?", [path_text])
        }
        loaded_at = now_utc()
        views = result.views if len(result.views) == len(result.rows) else [None] * len(result.rows)
        for row, preview, view in zip(result.rows, result.previews, views):
            row.update(
                size_bytes=result.size_bytes,
                sha256=result.sha256,
                modified_at=result.modified_at.isoformat(timespec="seconds"),
                loader=result.loader,
                loaded_at=loaded_at,
                missing_since=None,  # read just now: on disk
            )
            _ensure_instrument(db, row["instrument"], row["instrument_reported"])
            file_id = existing.pop(row["dataset"], None)
            if file_id is None:
                file_id = db["files"].insert(row).last_pk
            else:
                db["files"].update(file_id, row)
            if preview is None:
                db.execute("delete from previews where file_id = ?", [file_id])
            else:
                png, width, height = preview
                db.execute(
                    "insert or replace into previews (file_id, png, width, height) values (?, ?, ?, ?)",
                    [file_id, png, width, height],
                )
            write_views(db, file_id, view)
        for stale_id in existing.values():  # the new version of the file has fewer datasets
            db.execute("delete from previews where file_id = ?", [stale_id])
            write_views(db, stale_id, None)
            db.execute("delete from files where id = ?", [stale_id])
        return "updated" if result.replaces_existing else "added"


def _ensure_instrument(db: sqlite_utils.Database, name: str | None, reported: str | None) -> None:
    if name and not db.execute("select 1 from instruments where name = ?", [name]).fetchone():
        db.execute(
            "insert into instruments (name, reported_as, first_seen) values (?, ?, ?)", [name, reported, now_utc()]
        )


def _describe_instruments(db: sqlite_utils.Database, settings: Settings) -> None:
    """Instruments first met in files get the description metadata.yml gives them."""
    with write_transaction(db):
        for rule in settings.instruments:
            if rule.description:
                db.execute(
                    "update instruments set description = ? where name = ? and description is null",
                    [rule.description, rule.name],
                )


def load_files(
    db: sqlite_utils.Database,
    paths: list[Path],
    settings: Settings,
    progress: bool = True,
    loaders: list[FileLoader] | None = None,
    cluster: Cluster | None = None,
    retry_errors: bool = False,
    sandbox: bool | ReaderPool = True,
    roots: list[Path] | None = None,
    job_id: int | None = None,
) -> LoadSummary:
    """Load every instrument file under ``paths``; see the module docstring for what is skipped.

    With a ``cluster`` the files are hashed and read by its workers; the catalog ends up the same.  With
    ``retry_errors`` the files that failed before are read again even when they have not changed.  Files are
    read in a worker process (``sandbox.ReaderPool``: a crash, a timeout or exhausted memory is that file's
    error) unless ``sandbox`` is False; a ReaderPool of one's own sets other limits.

    ``roots`` are the data roots when ``paths`` are files inside them (a watcher's batch; by default a file's own
    folder is its root); with a ``job_id`` the load is part of that running job (a watcher's), which it leaves
    running for its owner to finish."""
    with _syncing_at_checkpoints(db):
        return _load_files(db, paths, settings, progress, loaders, cluster, retry_errors, sandbox, roots, job_id)


@contextlib.contextmanager
def _syncing_at_checkpoints(db: sqlite_utils.Database):
    """While a load commits one transaction per file, SQLite syncs the disk at checkpoints instead of at every commit
    (WAL with synchronous=NORMAL, on this connection only): a killed load still loses nothing it committed, since
    the WAL is written before a commit returns; a power cut can lose its last few files, never the catalog's
    consistency, and the next load reads them again from the disk they are still on.  One disk sync a file less
    (10 ms each on this machine, a tenth of a small file's load)."""
    before = db.execute("PRAGMA synchronous").fetchone()[0]
    db.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        db.execute(f"PRAGMA synchronous={int(before)}")


def _load_files(db, paths, settings, progress, loaders, cluster, retry_errors, sandbox, roots, job_id) -> LoadSummary:
    started = time.perf_counter()
    paths = [Path(p) for p in paths]
    roots = data_roots(paths) if roots is None else [Path(r) for r in roots]
    refused: list[str] = []
    all_files = walk(paths, refused, roots)
    loaders = file_loaders() if loaders is None else loaders
    summary = LoadSummary(command="load files")
    for line in refused:
        summary.skipped += 1
        _note(summary, line)
    own_job = job_id is None
    if own_job:
        job_id = jobs.start_job(db, "load files", {"paths": [display_path(p) for p in paths]})
    _record_data_roots(db, roots, job_id)
    stopped_by = None
    bar = tqdm(total=len(all_files), desc="loading files", unit="file", disable=not progress, leave=False)
    pool = None
    if cluster is None and sandbox:
        pool = sandbox if isinstance(sandbox, ReaderPool) else shared_pool()
    try:
        if cluster is None and pool is not None:
            _load_reading_ahead(db, all_files, loaders, settings, job_id, summary, retry_errors, pool, bar)
        elif cluster is None:
            for path in all_files:
                summary.total += 1
                chain = loaders_for(path, loaders)
                _count(summary, _load_one(db, path, chain, settings, job_id, summary, retry_errors, pool))
                bar.update()
        else:
            _load_on_cluster(db, all_files, loaders, settings, job_id, summary, cluster, bar, retry_errors)
        gone, back = sweep_missing(db, paths)
        if gone:
            _note(summary, f"{gone} catalogued file(s) no longer in the folders loaded: kept, marked missing")
        if back:
            _note(summary, f"{back} file(s) marked missing are back in their folders")
    except BaseException as error:  # a load that did not finish is never recorded 'done'
        stopped_by = error
        raise
    finally:
        if pool is not None and pool.unavailable:
            _note(summary, pool.unavailable)
        bar.close()
        summary.seconds = round(time.perf_counter() - started, 3)
        summary.writer_seconds = round(summary.writer_seconds, 3)
        if own_job:
            jobs.finish_job(db, job_id, summary, status=jobs.ending_of(stopped_by), error=stopped_by)
        _describe_instruments(db, settings)
    return summary


def _record_data_roots(db: sqlite_utils.Database, roots: list[Path], job_id: int) -> None:
    """The folders this load was given become (or stay) data roots: what may be read, served and watched."""
    now = now_utc()
    with write_transaction(db):
        for root in dict.fromkeys(roots):
            db.execute(
                """insert into data_roots (path, first_loaded_at, last_loaded_at, last_job_id) values (?, ?, ?, ?)
                   on conflict (path) do update set last_loaded_at = excluded.last_loaded_at,
                   last_job_id = excluded.last_job_id""",
                [display_path(root), now, now, job_id],
            )


def _load_one(db, path: Path, chain: list[FileLoader], settings, job_id, summary, retry_errors=False, pool=None) -> str:
    prepared = _prepare(db, path, chain, job_id, summary, retry_errors)
    if isinstance(prepared, str):
        return prepared
    planned, digest, decision = prepared
    result = read_one(pool, path, chain, settings, digest)
    return _write_read_file(db, planned, result, decision == "moved", job_id, summary)


def _load_reading_ahead(db, all_files, loaders, settings, job_id, summary, retry_errors, pool, bar) -> None:
    """``_load_one`` for every file, with the sandbox's worker reading the next file while this process hashes,
    decides on and writes the ones before it (``ReaderPool.read_ahead``)."""
    written: set[str] = set()  # content written by this load: a copy read alongside its original is a duplicate

    def to_read():
        for path in all_files:
            summary.total += 1
            chain = loaders_for(path, loaders)
            prepared = _prepare(db, path, chain, job_id, summary, retry_errors)
            if isinstance(prepared, str):
                _count(summary, prepared)
                bar.update()
                continue
            yield prepared, path, chain, settings, prepared[1]

    for (planned, digest, decision), result in pool.read_ahead(to_read()):
        if decision == "new" and digest in written:  # decided before its twin was written: decide again
            decision = _decide(db, planned, digest, summary)
        if decision in ("unchanged", "duplicate"):
            outcome = decision
        else:
            outcome = _write_read_file(db, planned, result, decision == "moved", job_id, summary)
            written.add(digest)
        _count(summary, outcome)
        bar.update()


def _prepare(db, path: Path, chain: list[FileLoader], job_id, summary, retry_errors=False):
    """A file's outcome already (unchanged, not claimed, an error …), or (planned, content hash, decision) for one
    that must be read."""
    planned = _plan(db, path, chain, job_id, summary, retry_errors)
    if isinstance(planned, str):
        return planned
    if not os.access(path, os.R_OK):
        return _error(
            db,
            summary,
            path,
            "permission denied: the catalog's user cannot read it (check its permissions)",
            planned,
            job_id,
        )
    try:
        digest = sha256_of([path, *companions_of(path, chain)])
    except OSError as error:
        return _error(db, summary, path, f"cannot read it: {error.strerror or error}", planned, job_id)
    decision = _decide(db, planned, digest, summary)
    if decision in ("unchanged", "duplicate"):
        return decision
    return planned, digest, decision


def read_one(pool: ReaderPool | None, path: Path, chain: list[FileLoader], settings, sha256: str) -> FileResult:
    """Read a file through its chain of readers: in the sandbox's worker, or here."""
    if pool is None:
        return read_file(path, chain, settings, sha256=sha256)
    return pool.read(path, chain, settings, sha256)


def _plan(db, path: Path, chain: list[FileLoader], job_id, summary, retry_errors=False) -> _Planned | str:
    """The writer's cheap look at a file: an outcome already ('unchanged', an error …) or what to read."""
    path_text = display_path(path)
    if not chain:
        _note(summary, f"not an instrument file (no installed reader claims '{path.suffix}'): {path_text}")
        return "not claimed"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return _error(db, summary, path, "the file disappeared while the folder was being read", chain[0], job_id)
    except OSError as error:
        return _error(db, summary, path, f"cannot read it: {error.strerror}", chain[0], job_id)
    known = db.execute(
        "select size_bytes, modified_at, sha256, loader from files where path = ? limit 1", [path_text]
    ).fetchone()
    modified_text = _latest_change(path, stat.st_mtime, chain)
    # A reader's new version may read more from the same bytes (a detector it used to miss): read again.
    readers = {loader_id(loader) for loader in chain}
    same_reader = known is not None and known[3] in readers
    if known and same_reader and known[0] == stat.st_size and known[1] == modified_text:
        return "unchanged"
    if not known and not retry_errors and _failed_unchanged(db, path_text, stat.st_size, modified_text, readers):
        _note(summary, f"failed before and unchanged since, not read again (load with --retry-errors): {path_text}")
        return "failed before"
    return _Planned(path, chain, known[2] if same_reader else None, known is not None, modified_text, stat.st_size)


def sweep_missing(db: sqlite_utils.Database, paths: list[Path]) -> tuple[int, int]:
    """The catalogued files at or under ``paths`` that are no longer on disk are marked missing since now (a mark
    already there keeps its time); marked ones that are there again lose the mark.  Returns (newly missing, back).

    One look at the disk per catalogued file under the paths, and one transaction for all the marks: a load walks
    those folders anyway, and a watcher calls it with the few paths its folder said were deleted."""
    gone: list[str] = []
    back: list[str] = []
    for given in paths:
        given = Path(given)
        top = display_path(given.resolve() if given.is_dir() else Path(os.path.abspath(given)))
        under = top.rstrip("/") + "/"
        rows = db.execute(
            """select distinct path, missing_since is not null from files
               where path = ? or (path >= ? and path < ?)""",
            [top, under, under[:-1] + "0"],  # '0' follows '/': every path that starts with the folder's
        )
        for path_text, marked in rows:
            if "\\x" in path_text:  # a non-UTF-8 name shown with escapes: not a path to look at, leave it be
                continue
            present = os.path.lexists(path_text)
            if marked and present:
                back.append(path_text)
            elif not marked and not present:
                gone.append(path_text)
    if gone or back:
        with write_transaction(db):
            db.execute(
                "update files set missing_since = ? where path in (select value from json_each(?))",
                [now_utc(), json.dumps(gone)],
            )
            db.execute(
                "update files set missing_since = null where path in (select value from json_each(?))",
                [json.dumps(back)],
            )
    return len(gone), len(back)


def catalogued_unchanged(db, path: Path, chain: list[FileLoader]) -> bool:
    """True when the catalog already holds ``path`` as it is now (same size and time, read by a reader of its
    chain), or holds its failure with these very bytes: a load would read nothing.  A watcher's scan at start asks
    this of every file, so what was loaded before it stopped is not read twice."""
    try:
        stat = path.stat()
    except OSError:
        return False
    path_text = display_path(path)
    modified_text = _latest_change(path, stat.st_mtime, chain)
    readers = {loader_id(loader) for loader in chain}
    known = db.execute(
        "select size_bytes, modified_at, loader from files where path = ? limit 1", [path_text]
    ).fetchone()
    if known is not None:
        return known[2] in readers and known[0] == stat.st_size and known[1] == modified_text
    return _failed_unchanged(db, path_text, stat.st_size, modified_text, readers)


def _latest_change(path: Path, mtime: float, chain: list[FileLoader]) -> str:
    """When the file, or a companion read with it (a TIA .emi, a Direct Electron sidecar), last changed: editing a
    sidecar must make the next load read the file again, as the content hash that covers both says."""
    for companion in companions_of(path, chain):
        with contextlib.suppress(OSError):
            mtime = max(mtime, companion.stat().st_mtime)
    return dt.datetime.fromtimestamp(mtime, dt.UTC).isoformat(timespec="seconds")


def _failed_unchanged(db, path_text: str, size: int, modified_text: str, readers: set[str]) -> bool:
    """The file failed before with these very bytes (same size and time) and the same reader versions."""
    failed = db.execute(
        "select size_bytes, modified_at, loader from ingest_errors where source = ? and line = 0", [path_text]
    ).fetchone()
    return failed is not None and failed[0] == size and failed[1] == modified_text and failed[2] in readers


def _decide(db, planned: _Planned, digest: str, summary) -> str:
    """Given the content hash: 'unchanged' (touched only), 'duplicate', 'moved' here, or 'new' content."""
    path_text = display_path(planned.path)
    if planned.known_sha256 == digest:
        with _transaction(db):  # touched, not changed: remember the new time so the next run skips it cheaply
            db.execute("update files set modified_at = ? where path = ?", [planned.modified_text, path_text])
        return "unchanged"
    other = db.execute("select path from files where sha256 = ? and path != ? limit 1", [digest, path_text]).fetchone()
    if other and os.path.exists(other[0]):
        _note(summary, f"same content as {other[0]}: {path_text}")
        return "duplicate"
    if other:  # the catalogued copy is gone: the file moved here, and keeps its rows' ids (and tags)
        _move(db, other[0], planned.path)
        return "moved"
    return "new"


def _write_read_file(db, planned: _Planned, result: FileResult, moved: bool, job_id, summary, commit=True) -> str:
    began = time.perf_counter()
    result.replaces_existing = planned.replaces_existing or moved
    if result.size_bytes:  # what the next load compares with: the latest change of the file and its companions
        result.modified_at = dt.datetime.fromisoformat(planned.modified_text)
    outcome = write_file(db, result, job_id, commit)
    summary.writer_seconds += time.perf_counter() - began
    path_text = display_path(planned.path)
    if outcome == "error":
        _remember(summary, path_text, result.error)
    elif outcome == "skipped":
        _note(summary, f"{result.skipped}: {path_text}")
    for note in result.notes:
        _note(summary, note)
    return outcome


def read_on_worker(files: list[tuple[Path, list[FileLoader], str | None]], settings: Settings) -> list[FileResult]:
    """A Dask task: hash each (path, reader chain, catalogued hash) and, unless its content is what the catalog
    holds, read it.  Several small files to a task keep the scheduler's per-task cost out of the way."""
    return [_read_one_on_worker(path, chain, settings, known_sha256) for path, chain, known_sha256 in files]


def _read_one_on_worker(
    path: Path, chain: list[FileLoader], settings: Settings, known_sha256: str | None
) -> FileResult:
    from ..cluster import worker_address

    unknown_time = dt.datetime.fromtimestamp(0, dt.UTC)
    first = loader_id(chain[0])
    if not os.path.exists(path):
        message = (
            f"the Dask worker {worker_address()} cannot see '{path}' (the loading machine can): mount the same "
            "file system on the workers, at the same path"
        )
        return FileResult(path, first, 0, unknown_time, "", error=message)
    if not os.access(path, os.R_OK):
        return FileResult(
            path, first, 0, unknown_time, "", error="permission denied: the catalog's user cannot read it"
        )
    try:
        digest = sha256_of([path, *companions_of(path, chain)])
    except OSError as error:
        return FileResult(path, first, 0, unknown_time, "", error=f"cannot read it: {error.strerror or error}")
    if digest == known_sha256:  # touched, not changed: the writer only notes the new time
        return FileResult(path, first, 0, unknown_time, digest)
    return read_file(path, chain, settings, sha256=digest)


def _load_on_cluster(db, all_files, loaders, settings, job_id, summary, cluster: Cluster, bar, retry_errors) -> None:
    """The writer's side of a cluster load: plan each file here, read it there, commit here in the walk's order
    (so which of two identical files is catalogued, and every row's id, are as in an in-process load)."""
    from ..cluster import TaskFailure

    def task(group: list[_Planned]) -> tuple:
        return group, ([(p.path, p.chain, p.known_sha256) for p in group], settings)

    def tasks():
        group: list[_Planned] = []
        for path in all_files:
            summary.total += 1
            planned = _plan(db, path, loaders_for(path, loaders), job_id, summary, retry_errors)
            if isinstance(planned, str):
                _count(summary, planned)
                bar.update()
                continue
            group.append(planned)
            if len(group) == FILES_PER_TASK or sum(p.size_bytes for p in group) >= BYTES_PER_TASK:
                yield task(group)
                group = []
        if group:
            yield task(group)

    window = TASKS_IN_FLIGHT_PER_WORKER * max(1, sum(cluster.client.nthreads().values()))
    stream = cluster.stream(read_on_worker, tasks(), window=window, ordered=True)
    for group, results in stream:
        if isinstance(results, TaskFailure) and results.worker_died and len(group) > 1:
            for planned in group:  # find the file that kills workers; the others load as usual
                stream.push(*task([planned]))
            continue
        if isinstance(results, TaskFailure):
            results = [results] * len(group)
        began = time.perf_counter()
        # A task's files in one transaction: one disk sync instead of one per file; a kill or an error rolls the
        # whole group back, and the next run reads those files again.
        with write_transaction(db):
            outcomes = [
                _commit_read_file(db, planned, result, job_id, summary) for planned, result in zip(group, results)
            ]
        summary.writer_seconds += time.perf_counter() - began
        for outcome in outcomes:
            _count(summary, outcome)
            bar.update()


def _commit_read_file(db, planned: _Planned, result: FileResult | TaskFailure, job_id, summary) -> str:
    """What a worker read, decided on and written as ``_load_one`` would have (left for the caller to commit)."""
    if not isinstance(result, FileResult):  # the worker died on it every time, or the task failed
        return _error(db, summary, planned.path, result.message, planned, job_id)
    if result.error and not result.sha256:  # failed before its content was known: nothing to compare
        return _write_read_file(db, planned, result, False, job_id, summary, commit=False)
    decision = _decide(db, planned, result.sha256, summary)
    if decision in ("unchanged", "duplicate"):
        return decision
    return _write_read_file(db, planned, result, decision == "moved", job_id, summary, commit=False)


def _transaction(db):
    """A write transaction of its own, or part of the caller's when one is open (a cluster group's files commit
    together)."""
    return write_transaction(db)


def _move(db, old_path: str, new_path: Path) -> None:
    with _transaction(db):
        db.execute(
            "update files set path = ?, name = ?, folder = ? where path = ?",
            [display_path(new_path), display_path(new_path.name), display_path(new_path.parent), old_path],
        )


def _note(summary: jobs.Summary, text: str) -> None:
    if len(summary.notes) < 50:
        summary.notes.append(text)


def _error(db, summary, path: Path, message: str, reader: FileLoader | _Planned, job_id) -> str:
    """Record an error found before any reader ran (the file vanished, cannot be opened), with the file's state
    when known so that an unchanged file is not tried again."""
    planned = reader if isinstance(reader, _Planned) else None
    loader = planned.loader if planned else reader
    state = (planned.size_bytes, planned.modified_text) if planned else None
    path_text = display_path(path)
    with _transaction(db):
        jobs.record_error(db, path_text, message, loader_id(loader), job_id, file_state=state)
    _remember(summary, path_text, message)
    return "error"


def _remember(summary: jobs.Summary, path_text: str, message: str | None) -> None:
    if len(summary.errors) < 200:
        summary.errors.append({"source": path_text, "line": 0, "message": message})


def _count(summary: jobs.Summary, outcome: str) -> None:
    if outcome == "added":
        summary.added += 1
    elif outcome == "updated":
        summary.updated += 1
    elif outcome == "unchanged":
        summary.unchanged += 1
    elif outcome == "failed before":  # unchanged since it failed: counted failed, not read again
        summary.failed += 1
    elif outcome == "error":
        summary.failed += 1
    else:
        summary.skipped += 1
