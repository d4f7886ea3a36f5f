"""Jobs and ingest errors: what every long command records so a person can see and resume it.

A job row is written when a command starts and updated when it ends.  A job
left 'running' by a process that is gone was interrupted (killed, crashed);
the next command marks it so.  Errors are keyed by (source, line), so a re-run
refreshes an error instead of duplicating it, and clears it once it succeeds.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import sqlite_utils

from .catalog import now_utc


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
    with db.conn:
        return (
            db["jobs"]
            .insert(
                {
                    "command": command,
                    "arguments": json.dumps(arguments, default=str),
                    "status": "running",
                    "started_at": now_utc(),
                    "pid": os.getpid(),
                }
            )
            .last_pk
        )


def finish_job(db: sqlite_utils.Database, job_id: int, summary: Summary, status: str = "done") -> None:
    summary.job_id = job_id
    with db.conn:
        db["jobs"].update(
            job_id,
            {
                "status": status,
                "finished_at": now_utc(),
                "total": summary.total,
                "succeeded": summary.added + summary.updated + summary.unchanged,
                "skipped": summary.skipped,
                "failed": summary.failed,
                "summary": json.dumps(summary.as_dict(), default=str),
            },
        )


def update_job(db: sqlite_utils.Database, job_id: int, summary: Summary, progress: dict | None = None) -> None:
    """A long-running job's counts so far (a watcher's), with what it is doing now (``progress``) in its summary."""
    payload = summary.as_dict()
    if progress:
        payload["progress"] = progress
    with db.conn:
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
    """Jobs still 'running' whose process no longer exists were killed or crashed."""
    for row in db["jobs"].rows_where("status = 'running'"):
        if row["pid"] and _process_alive(row["pid"]) and row["pid"] != os.getpid():
            continue
        with db.conn:
            db["jobs"].update(row["id"], {"status": "interrupted", "finished_at": now_utc()})


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
