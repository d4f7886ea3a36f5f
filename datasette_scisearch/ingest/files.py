"""Loading instrument files into the catalog: walk, skip what is unchanged, read, write one file at a time.

Reading (``read_file``) needs no database and can run anywhere; writing
(``write_file``) is the single writer, one transaction per file, so a crash or
kill loses nothing already committed and a re-run completes the rest.  Files
are recognised by (path, size, modification time) first and by content hash
second: a second run over the same folder hashes nothing and adds nothing.

On a Dask cluster (``cluster``) the writer still walks, decides what is
unchanged and commits, in the walk's order (a task's few files in one
transaction); hashing, reading and previews run as tasks (``read_on_worker``).
Both paths share the decisions (``_plan``, ``_decide``) and the writing
(``_write_read_file``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils
from tqdm import tqdm

from .. import jobs
from ..catalog import now_utc
from ..config import Settings
from ..errors import ScisearchError
from ..plugins import get_loaders
from .filerows import dataset_row, display_path
from .loader import FileLoader, LoaderError, NotData

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
class FileResult:
    """What reading one file produced: rows and previews to write, or why there are none."""

    path: Path
    loader: str
    size_bytes: int
    modified_at: dt.datetime
    sha256: str
    rows: list[dict] = field(default_factory=list)
    previews: list[tuple[bytes, int, int] | None] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    replaces_existing: bool = False


@dataclass
class LoadSummary(jobs.Summary):
    """A load's summary, plus the single writer's time spent writing and committing (to see whether it limits
    a cluster run)."""

    writer_seconds: float = 0.0


@dataclass
class _Planned:
    """A file that must be hashed (and probably read), and what the catalog knew of its path before."""

    path: Path
    loader: FileLoader
    known_sha256: str | None  # content already catalogued for this path by the same loader version
    replaces_existing: bool
    modified_text: str
    size_bytes: int


def file_loaders() -> list[FileLoader]:
    return [loader for loader in get_loaders() if isinstance(loader, FileLoader)]


def loader_for(path: Path, loaders: list[FileLoader]) -> FileLoader | None:
    return next((loader for loader in loaders if loader.claims(path)), None)


def walk(paths: list[Path]) -> list[Path]:
    """Every file under the given folders (and the given files), sorted, links to folders not followed."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise IngestError(f"'{missing[0]}' does not exist: give a folder or file that does")
    found: list[Path] = []
    for root in paths:
        if root.is_file():
            found.append(root)
            continue
        for folder, subfolders, names in os.walk(root, onerror=None):
            subfolders.sort()
            found.extend(Path(folder) / name for name in sorted(names))
    return found


def sha256_of(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def file_format(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or "none"


def read_file(path: Path, loader: FileLoader, settings: Settings, sha256: str | None = None) -> FileResult:
    """Read one file with its loader and turn each dataset into a row; never raises for a bad file."""
    loader_id = f"{loader.name}:{loader.version}"
    try:
        stat = path.stat()
    except OSError as error:  # gone or unreadable since the walk
        unknown_time = dt.datetime.fromtimestamp(0, dt.UTC)
        return FileResult(path, loader_id, 0, unknown_time, sha256 or "", error=f"cannot read it: {error.strerror}")
    modified_at = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
    result = FileResult(path, loader_id, stat.st_size, modified_at, sha256 or "")
    if stat.st_size == 0:
        result.error = "the file is empty (0 bytes); it was probably not copied completely"
        return result
    try:
        companions = loader.companions(path)
        result.sha256 = sha256 or sha256_of([path, *companions])
        _read_datasets(path, loader, settings, result)
    except NotData as reason:
        result.skipped = str(reason)
        result.rows, result.previews = [], []
    except LoaderError as error:
        result.error = str(error)
    except MemoryError:
        result.error = "ran out of memory reading it; load it on a machine with more memory"
    except Exception as error:  # a reader library's own failure on a truncated or odd file
        result.error = f"{loader.name} could not read it: {type(error).__name__}: {error}"
    if result.error:
        result.rows, result.previews = [], []
    elif not result.rows and not result.skipped:
        result.error = "the file holds no datasets"
    _backfill_times(result)
    return result


def _read_datasets(path: Path, loader: FileLoader, settings: Settings, result: FileResult) -> None:
    for dataset in loader.read(path):
        row, preview, note = dataset_row(dataset, path, file_format(path), settings, result.modified_at)
        result.rows.append(row)
        result.previews.append(preview)
        if note:
            result.notes.append(f"{path.name} #{dataset.index}: {note}")


def _backfill_times(result: FileResult) -> None:
    """A dataset without a time of its own takes its sibling's (one acquisition, one clock): a Bruker
    file records the date with its EDS map, not with the HAADF image taken alongside."""
    times = [r for r in result.rows if r["acquired_at_source"] == "metadata"]
    for row in result.rows:
        if row["acquired_at_source"] == "file modification time" and times:
            row["acquired_at"] = times[0]["acquired_at"]
            row["acquired_local"] = times[0]["acquired_local"]
            row["acquired_at_source"] = "metadata of another dataset in the file"


def write_file(db: sqlite_utils.Database, result: FileResult, job_id: int | None, commit: bool = True) -> str:
    """Commit one file's rows (or its error) in one transaction; returns 'added', 'updated', 'error' or 'skipped'.
    With ``commit=False`` the caller commits (several files at once: one disk sync for all)."""
    path_text = display_path(result.path)
    with db.conn if commit else contextlib.nullcontext():
        if result.error:
            jobs.record_error(db, path_text, result.error, result.loader, job_id)
            return "error"
        jobs.clear_errors(db, path_text)
        if result.skipped:
            return "skipped"
        existing = {
            row["dataset"]: row["id"] for row in db.query("select id, dataset from files where path = ?", [path_text])
        }
        loaded_at = now_utc()
        for row, preview in zip(result.rows, result.previews):
            row.update(
                size_bytes=result.size_bytes,
                sha256=result.sha256,
                modified_at=result.modified_at.isoformat(timespec="seconds"),
                loader=result.loader,
                loaded_at=loaded_at,
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
                db["previews"].upsert({"file_id": file_id, "png": png, "width": width, "height": height}, pk="file_id")
        for stale_id in existing.values():  # the new version of the file has fewer datasets
            db.execute("delete from previews where file_id = ?", [stale_id])
            db.execute("delete from files where id = ?", [stale_id])
        return "updated" if result.replaces_existing else "added"


def _ensure_instrument(db: sqlite_utils.Database, name: str | None, reported: str | None) -> None:
    if name and not db.execute("select 1 from instruments where name = ?", [name]).fetchone():
        db["instruments"].insert({"name": name, "reported_as": reported, "first_seen": now_utc()})


def _describe_instruments(db: sqlite_utils.Database, settings: Settings) -> None:
    """Instruments first met in files get the description metadata.yml gives them."""
    with db.conn:
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
) -> LoadSummary:
    """Load every instrument file under ``paths``; see the module docstring for what is skipped.

    With a ``cluster`` the files are hashed and read by its workers; the catalog ends up the same."""
    started = time.perf_counter()
    paths = [Path(p) for p in paths]
    all_files = walk(paths)
    loaders = file_loaders() if loaders is None else loaders
    summary = LoadSummary(command="load files")
    job_id = jobs.start_job(db, "load files", {"paths": [display_path(p) for p in paths]})
    status = "failed"
    bar = tqdm(total=len(all_files), desc="loading files", unit="file", disable=not progress, leave=False)
    try:
        if cluster is None:
            for path in all_files:
                summary.total += 1
                _count(summary, _load_one(db, path, loader_for(path, loaders), settings, job_id, summary))
                bar.update()
        else:
            _load_on_cluster(db, all_files, loaders, settings, job_id, summary, cluster, bar)
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        bar.close()
        summary.seconds = round(time.perf_counter() - started, 3)
        summary.writer_seconds = round(summary.writer_seconds, 3)
        jobs.finish_job(db, job_id, summary, status=status)
        _describe_instruments(db, settings)
    return summary


def _load_one(db, path: Path, loader: FileLoader | None, settings, job_id, summary) -> str:
    planned = _plan(db, path, loader, job_id, summary)
    if isinstance(planned, str):
        return planned
    if not os.access(path, os.R_OK):
        return _error(
            db, summary, display_path(path), "permission denied: the catalog's user cannot read it", loader, job_id
        )
    try:
        digest = sha256_of([path, *loader.companions(path)])
    except OSError as error:
        return _error(db, summary, display_path(path), f"cannot read it: {error.strerror or error}", loader, job_id)
    decision = _decide(db, planned, digest, summary)
    if decision in ("unchanged", "duplicate"):
        return decision
    result = read_file(path, loader, settings, sha256=digest)
    return _write_read_file(db, planned, result, decision == "moved", job_id, summary)


def _plan(db, path: Path, loader: FileLoader | None, job_id, summary) -> _Planned | str:
    """The writer's cheap look at a file: an outcome already ('unchanged', an error …) or what to read."""
    path_text = display_path(path)
    if loader is None:
        _note(summary, f"not an instrument file: {path_text}")
        return "not claimed"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return _error(db, summary, path_text, "the file disappeared while the folder was being read", loader, job_id)
    except OSError as error:
        return _error(db, summary, path_text, f"cannot read it: {error.strerror}", loader, job_id)
    known = db.execute(
        "select size_bytes, modified_at, sha256, loader from files where path = ? limit 1", [path_text]
    ).fetchone()
    modified_text = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).isoformat(timespec="seconds")
    # A loader's new version may read more from the same bytes (a detector it used to miss): read again.
    same_reader = known is not None and known[3] == f"{loader.name}:{loader.version}"
    if known and same_reader and known[0] == stat.st_size and known[1] == modified_text:
        return "unchanged"
    return _Planned(path, loader, known[2] if same_reader else None, known is not None, modified_text, stat.st_size)


def _decide(db, planned: _Planned, digest: str, summary) -> str:
    """Given the content hash: 'unchanged' (touched only), 'duplicate', 'moved' here, or 'new' content."""
    path_text = display_path(planned.path)
    if planned.known_sha256 == digest:
        with db.conn:  # touched, not changed: remember the new time so the next run skips it cheaply
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


def read_on_worker(files: list[tuple[Path, FileLoader, str | None]], settings: Settings) -> list[FileResult]:
    """A Dask task: hash each (path, loader, catalogued hash) and, unless its content is what the catalog
    holds, read it.  Several small files to a task keep the scheduler's per-task cost out of the way."""
    return [_read_one_on_worker(path, loader, settings, known_sha256) for path, loader, known_sha256 in files]


def _read_one_on_worker(path: Path, loader: FileLoader, settings: Settings, known_sha256: str | None) -> FileResult:
    from ..cluster import worker_address

    unknown_time = dt.datetime.fromtimestamp(0, dt.UTC)
    loader_id = f"{loader.name}:{loader.version}"
    if not os.path.exists(path):
        message = (
            f"the Dask worker {worker_address()} cannot see '{path}' (the loading machine can): mount the same "
            "file system on the workers, at the same path"
        )
        return FileResult(path, loader_id, 0, unknown_time, "", error=message)
    if not os.access(path, os.R_OK):
        return FileResult(
            path, loader_id, 0, unknown_time, "", error="permission denied: the catalog's user cannot read it"
        )
    try:
        digest = sha256_of([path, *loader.companions(path)])
    except OSError as error:
        return FileResult(path, loader_id, 0, unknown_time, "", error=f"cannot read it: {error.strerror or error}")
    if digest == known_sha256:  # touched, not changed: the writer only notes the new time
        return FileResult(path, loader_id, 0, unknown_time, digest)
    return read_file(path, loader, settings, sha256=digest)


def _load_on_cluster(db, all_files, loaders, settings, job_id, summary, cluster: Cluster, bar) -> None:
    """The writer's side of a cluster load: plan each file here, read it there, commit here in the walk's order
    (so which of two identical files is catalogued, and every row's id, are as in an in-process load)."""
    from ..cluster import TaskFailure

    def task(group: list[_Planned]) -> tuple:
        return group, ([(p.path, p.loader, p.known_sha256) for p in group], settings)

    def tasks():
        group: list[_Planned] = []
        for path in all_files:
            summary.total += 1
            planned = _plan(db, path, loader_for(path, loaders), job_id, summary)
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
        try:
            for planned, result in zip(group, results):
                _count(summary, _commit_read_file(db, planned, result, job_id, summary))
                bar.update()
            began = time.perf_counter()
            db.conn.commit()  # a task's files in one transaction: one disk sync instead of one per file
            summary.writer_seconds += time.perf_counter() - began
        except BaseException:
            db.conn.rollback()  # a file half written is not kept; the next run reads it again
            raise


def _commit_read_file(db, planned: _Planned, result: FileResult | TaskFailure, job_id, summary) -> str:
    """What a worker read, decided on and written as ``_load_one`` would have (left for the caller to commit)."""
    if not isinstance(result, FileResult):  # the worker died on it every time, or the task failed
        return _error(db, summary, display_path(planned.path), result.message, planned.loader, job_id)
    if result.error and not result.sha256:  # failed before its content was known: nothing to compare
        return _write_read_file(db, planned, result, False, job_id, summary, commit=False)
    decision = _decide(db, planned, result.sha256, summary)
    if decision in ("unchanged", "duplicate"):
        return decision
    return _write_read_file(db, planned, result, decision == "moved", job_id, summary, commit=False)


def _move(db, old_path: str, new_path: Path) -> None:
    with db.conn:
        db.execute(
            "update files set path = ?, name = ?, folder = ? where path = ?",
            [display_path(new_path), display_path(new_path.name), display_path(new_path.parent), old_path],
        )


def _note(summary: jobs.Summary, text: str) -> None:
    if len(summary.notes) < 50:
        summary.notes.append(text)


def _error(db, summary, path_text: str, message: str, loader: FileLoader, job_id) -> str:
    with db.conn:
        jobs.record_error(db, path_text, message, f"{loader.name}:{loader.version}", job_id)
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
    elif outcome == "error":
        summary.failed += 1
    else:
        summary.skipped += 1
