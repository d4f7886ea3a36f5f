"""Jobs and ingest errors: what every long command records so a person can see and resume it.

A job row is written when a command starts and updated when it ends: ``done``, ``failed`` (with its error) or
``interrupted``.  While it runs, a thread of its process writes a heartbeat every HEARTBEAT_S.  A job still
'running' whose process is gone (its pid no longer exists on this host, or now belongs to a process started after
the job) or whose heartbeat stopped was killed or crashed: it is shown as ``interrupted`` at once
(``shown_status``) and recorded so by the next command that starts a job.  Errors are keyed by (source, line), so
a re-run refreshes an error instead of duplicating it, and clears it once it succeeds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import sqlite_utils

from .catalog import CatalogBusy, now_utc, share_between_writers, write_transaction

HEARTBEAT_S = 15.0
# A heartbeat missed this long means the process is gone (or stuck for minutes), where its pid cannot be checked:
# long enough for a heartbeat to wait out another writer's transaction.
HEARTBEAT_STALE_S = 300.0


@dataclass
class Summary:
    """What a load did; printed at the end of a command and stored with its job."""

    command: str
    total: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    job_id: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def start_job(db: sqlite_utils.Database, command: str, arguments: dict) -> int:
    mark_interrupted_jobs(db)
    now = now_utc()
    with write_transaction(db):
        job_id = (
            db["jobs"]
            .insert(
                {
                    "command": command,
                    "arguments": json.dumps(arguments, default=str),
                    "status": "running",
                    "started_at": now,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "heartbeat_at": now,
                }
            )
            .last_pk
        )
    _Heartbeat.start(db, job_id)
    return job_id


def finish_job(
    db: sqlite_utils.Database, job_id: int, summary, status: str = "done", error: BaseException | str | None = None
) -> None:
    """Record how the job ended; a ``failed`` or ``interrupted`` one with what stopped it."""
    _Heartbeat.stop(db, job_id)
    summary.job_id = job_id
    with write_transaction(db):
        db["jobs"].update(
            job_id,
            {
                "status": status,
                "finished_at": now_utc(),
                "heartbeat_at": now_utc(),
                "total": summary.total,
                "succeeded": summary.added + summary.updated + summary.unchanged,
                "skipped": summary.skipped,
                "failed": summary.failed,
                "summary": json.dumps(summary.as_dict(), default=str),
                "error": None if error is None else describe_failure(error),
            },
        )


def fail_job(db: sqlite_utils.Database, job_id: int | None, error: BaseException) -> None:
    """A job whose command failed after its own work was recorded (the refresh after a load, say) did not finish:
    record it ``failed`` (``interrupted`` for Ctrl-C) with the error, keeping its counts."""
    if job_id is None:
        return
    _Heartbeat.stop(db, job_id)
    status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    with write_transaction(db):
        db.execute(
            "update jobs set status = ?, error = ?, finished_at = ? where id = ?",
            [status, describe_failure(error), now_utc(), job_id],
        )


@contextmanager
def recorded_job(db: sqlite_utils.Database, command: str, arguments: dict | None = None) -> Iterator[Summary]:
    """A job row (with its heartbeat) around a command's work: ``done`` when the block ends, ``failed`` with the
    error when it raises, ``interrupted`` for Ctrl-C; a kill leaves it 'running' with a dead pid, which
    ``shown_status`` shows as interrupted and the next job records so.  Yields the job's Summary (its ``job_id``
    set) for the block to fill in with counts and notes."""
    summary = Summary(command)
    summary.job_id = start_job(db, command, arguments or {})
    started = time.perf_counter()
    stopped_by = None
    try:
        yield summary
    except BaseException as error:
        stopped_by = error
        raise
    finally:
        summary.seconds = round(time.perf_counter() - started, 3)
        if stopped_by is not None and db.conn.in_transaction:  # the write the error broke off goes first
            db.conn.rollback()
        finish_job(db, summary.job_id, summary, status=ending_of(stopped_by), error=stopped_by)


def ending_of(error: BaseException | None) -> str:
    """The status a job ends with when ``error`` stopped it (None: it finished)."""
    if error is None:
        return "done"
    return "interrupted" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "failed"


def describe_failure(error: BaseException | str) -> str:
    if isinstance(error, str):
        return printable(error)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGINT)"
    return printable(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


def shown_status(row: dict, now: dt.datetime | None = None) -> tuple[str, str | None]:
    """A job's status as it really is, with why, for a row of ``jobs``: a 'running' job whose process is gone or
    whose heartbeat stopped is 'interrupted'.  Reads nothing and writes nothing."""
    if row.get("status") != "running":
        return row.get("status"), row.get("error")
    gone = _why_gone(row, now or dt.datetime.now(dt.UTC))
    return ("interrupted", gone) if gone else ("running", None)


def _why_gone(row: dict, now: dt.datetime) -> str | None:
    pid, host = row.get("pid"), row.get("host")
    if pid and (host is None or host == socket.gethostname()):
        if pid == os.getpid():
            return None if _Heartbeat.beating(row["id"]) else f"its process ({pid}) no longer runs it"
        started = _started_at(pid)
        job_started = _parse(row.get("started_at"))
        if started is None:
            return f"its process ({pid}) ended without finishing it: killed or crashed"
        if job_started is not None and started > job_started + dt.timedelta(seconds=2):
            return f"its process ({pid}) ended without finishing it; the pid now belongs to another program"
        return None
    beat = _parse(row.get("heartbeat_at")) or _parse(row.get("started_at"))
    if beat is not None and (now - beat).total_seconds() > HEARTBEAT_STALE_S:
        return f"no heartbeat from its process ({pid} on {host}) since {row.get('heartbeat_at')}"
    return None


def update_job(db: sqlite_utils.Database, job_id: int, summary: Summary, progress: dict | None = None) -> None:
    """A long-running job's counts so far (a watcher's), with what it is doing now (``progress``) in its summary."""
    payload = summary.as_dict()
    if progress:
        payload["progress"] = progress
    with write_transaction(db):
        db["jobs"].update(
            job_id,
            {
                "total": summary.total,
                "succeeded": summary.added + summary.updated + summary.unchanged,
                "skipped": summary.skipped,
                "failed": summary.failed,
                "summary": json.dumps(payload, default=str),
            },
        )


def mark_interrupted_jobs(db: sqlite_utils.Database) -> None:
    """Jobs still 'running' whose process is gone were killed or crashed: record them interrupted, with why."""
    for row in db["jobs"].rows_where("status = 'running'"):
        status, why = shown_status(row)
        if status == "running":
            continue
        with write_transaction(db):
            db.execute(
                "update jobs set status = 'interrupted', error = ?, finished_at = ? where id = ? "
                "and status = 'running'",
                [why, now_utc(), row["id"]],
            )


def _started_at(pid: int) -> dt.datetime | None:
    """When process ``pid`` started (None: no such process), from /proc where there is one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22: start time after boot, in ticks
        with open("/proc/stat") as stat:
            boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return dt.datetime.min.replace(tzinfo=dt.UTC)  # alive; when it started cannot be told here
    return dt.datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), dt.UTC)


def _parse(text: str | None) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _catalog_file(db: sqlite_utils.Database) -> str:
    """The file behind a connection ('' for an in-memory one)."""
    return next((row[2] for row in db.execute("pragma database_list") if row[1] == "main"), "")


class _Heartbeat:
    """A thread that stamps a running job's ``heartbeat_at`` every HEARTBEAT_S through a connection of its own, so
    a job whose process died is told from one that is busy.  Best effort: a beat that finds the catalog busy is
    skipped, not waited for."""

    _running: dict[tuple[str, int], _Heartbeat] = {}  # by (catalog file, job id): two catalogs each have a job 1

    def __init__(self, path: str, job_id: int):
        self.path, self.job_id = path, job_id
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"job {job_id} heartbeat", daemon=True)

    @classmethod
    def start(cls, db: sqlite_utils.Database, job_id: int) -> None:
        path = _catalog_file(db)
        if not path:  # an in-memory catalog has no other process to tell
            return
        heartbeat = cls._running[(path, job_id)] = cls(path, job_id)
        heartbeat.thread.start()

    @classmethod
    def stop(cls, db: sqlite_utils.Database, job_id: int) -> None:
        """Stop beating and wait for the thread: the command's own connection must be the catalog's last, so that
        closing it checkpoints the WAL into the file (a catalog copied as one file then holds everything)."""
        heartbeat = cls._running.pop((_catalog_file(db), job_id), None)
        if heartbeat is not None:
            heartbeat.stopped.set()
            heartbeat.thread.join(timeout=HEARTBEAT_S + 5)

    @classmethod
    def beating(cls, job_id: int) -> bool:
        """Whether this process beats for a job of this id (in some catalog: a row does not say which)."""
        return any(running_id == job_id for _, running_id in cls._running)

    def _beat(self) -> None:
        while not self.stopped.wait(HEARTBEAT_S):
            try:
                self._stamp()
            except CatalogBusy:
                continue
            except Exception:  # the catalog went away or broke: the job itself will say so
                return

    def _stamp(self) -> None:
        # A connection per beat: none is left open between beats to keep the WAL from being checkpointed at the end.
        db = sqlite_utils.Database(self.path)
        try:
            share_between_writers(db)
            with write_transaction(db, patience_s=HEARTBEAT_S):
                db.execute(
                    "update jobs set heartbeat_at = ? where id = ? and status = 'running'", [now_utc(), self.job_id]
                )
        finally:
            db.close()


def record_error(
    db: sqlite_utils.Database,
    source: str,
    message: str,
    loader: str | None,
    job_id: int | None,
    line: int = 0,
    file_state: tuple[int, str] | None = None,
) -> None:
    """Remember that ``source`` (a file, or a line of one) failed; call inside the caller's transaction.
    ``file_state`` is the file's (size, modification time) when it failed: until it changes, a load need not
    read it again."""
    message = printable(message)
    size, modified = file_state or (None, None)
    existing = db.execute(
        "select id, attempts from ingest_errors where source = ? and line = ?", [source, line]
    ).fetchone()
    now = now_utc()
    if existing:
        db.execute(
            """update ingest_errors set message = ?, loader = ?, job_id = ?, last_seen = ?, attempts = ?,
               size_bytes = ?, modified_at = ? where id = ?""",
            [message, loader, job_id, now, existing[1] + 1, size, modified, existing[0]],
        )
    else:
        db.execute(
            """insert into ingest_errors (source, line, loader, message, job_id, first_seen, last_seen, attempts,
               size_bytes, modified_at) values (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)""",
            [source, line, loader, message, job_id, now, now, size, modified],
        )


MAX_ERROR_MESSAGE_CHARS = 600


def printable(message: str) -> str:
    """An error message fit for a public table: a reader that quotes the bytes it choked on must not put a file's
    contents on the page, so control characters go and long messages are cut."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(message))
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_MESSAGE_CHARS else text[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"


def clear_errors(db: sqlite_utils.Database, source: str) -> None:
    """A source that now loads has no errors any more (every line of it)."""
    db.execute("delete from ingest_errors where source = ?", [source])
