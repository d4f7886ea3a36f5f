"""Writing records (user-log sessions, proposals, papers) into the catalog.

A ``RecordLoader`` plugin reads a file and yields plain dicts; this module does
the rest once, for every loader: it picks the loader, turns facility-local
times into UTC and instrument names into canonical ones, gives sessions stable
ids, upserts rows in batches, counts what was added, updated or unchanged,
records bad records in ``ingest_errors`` and the run in ``jobs``.

It also offers the two readers most record loaders need, ``json_records`` and
``csv_records``, so that a loader is little more than the mapping from a
source's fields to our columns.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import sys
import time
import zoneinfo
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils
from tqdm import tqdm

from .. import jobs
from ..catalog import RECORD_TABLES, now_utc, to_json, write_transaction
from ..config import Settings
from ..errors import ScisearchError
from ..plugins import get_loaders
from .loader import LoaderError, RecordError, RecordLoader
from .normalize import iso_utc, to_utc

# Rows per transaction: a killed load keeps every batch it committed.
BATCH_ROWS = 500
# Summary.errors lists this many; Summary.failed counts them all.
ERRORS_LISTED_MAX = 50
# A booking longer than this is almost always a typo in the end date.
SESSION_MAX_DAYS = 31
_BOOKKEEPING_COLUMNS = ("details", "source", "loaded_at")
# The columns a loader fills, by table (sessions get their id from the core).
LOADER_FIELDS = {
    "sessions": ["instrument", "user", "start", "end", "proposal_id", "notes"],
    "proposals": [
        "id",
        "title",
        "abstract",
        "pi",
        "institution",
        "division",
        "programs",
        "start_date",
        "end_date",
        "amount",
    ],
    "papers": ["id", "title", "abstract", "authors", "year", "published", "doi", "venue", "funding", "full_text"],
}


class RecordsError(ScisearchError):
    """A records load that cannot start; the message says what to do."""


class _Rejected(ScisearchError):
    """One record the core cannot store; the message becomes its ingest error."""


def load_records(
    db: sqlite_utils.Database,
    kind: str,
    path: Path,
    settings: Settings,
    options: dict | None = None,
    progress: bool = True,
) -> jobs.Summary:
    """Load the records in ``path`` (a file, or a folder searched recursively) as ``kind``.

    Re-loading a file is idempotent: rows are upserted by primary key and only
    changed rows are written.  Bad records become ingest errors and the load
    goes on; errors of lines that now load are cleared.
    """
    path = Path(path)
    options = dict(options or {})
    table_name = _table_for(kind)
    zone = _zone(settings, options)
    _check_columns_option(kind, table_name, options)
    sources, unclaimed = _sources(kind, path)
    loader_options = dict(options)
    if kind == "userlog":
        loader_options["columns"] = {**settings.userlog_columns, **options.get("columns", {})}

    summary = jobs.Summary(command=f"load {kind}")
    job_id = jobs.start_job(db, summary.command, {"kind": kind, "path": str(path), "options": options})
    writer = _Writer(db, table_name, settings, zone, summary, job_id)
    started = time.perf_counter()
    bar = tqdm(desc=f"loading {kind}", unit=" records", file=sys.stderr, disable=not progress)
    try:
        for file, loader in sources:
            label = _label(path, file)
            bar.set_postfix_str(label, refresh=False)
            for item in _read_guarded(loader, file, loader_options):
                writer.add(item, file, label, loader.name)
                bar.update()
            writer.flush()
            _clear_stale_errors(db, str(file.resolve()), job_id)
    except KeyboardInterrupt as error:
        writer.flush()
        summary.seconds = time.perf_counter() - started
        jobs.finish_job(db, job_id, summary, status="interrupted", error=error)
        raise
    except BaseException as error:
        summary.seconds = time.perf_counter() - started
        jobs.finish_job(db, job_id, summary, status="failed", error=error)
        raise
    finally:
        bar.close()
    summary.skipped += len(unclaimed)
    if unclaimed:
        suffixes = sorted({file.suffix.lower() or file.name for file in unclaimed})
        summary.notes.append(f"{len(unclaimed)} files not loaded: no {kind} loader reads {', '.join(suffixes)}")
    writer.note_duplicates()
    summary.seconds = time.perf_counter() - started
    jobs.finish_job(db, job_id, summary)
    return summary


def record_loader_for(kind: str, path: Path) -> RecordLoader:
    """The first registered loader of ``kind`` that claims ``path``."""
    for loader in _record_loaders(kind):
        if loader.claims(path):
            return loader
    suffixes = _supported_suffixes(kind)
    if not suffixes:
        raise RecordsError(f"no loader for {kind} is installed: run 'scisearch plugins' to see which are")
    raise RecordsError(f"cannot load '{path.name}' as {kind}: supported formats are {', '.join(suffixes)}")


def session_id(instrument: str, start_utc: str, user: str | None) -> str:
    """A short id that stays the same each time the same booking is loaded."""
    key = "\x1f".join([instrument, start_utc, user or ""])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def converted(records: Iterable[tuple[int, dict] | RecordError], convert) -> Iterator[dict | RecordError]:
    """Apply ``convert(line, raw)`` to each raw record; bad ones (and its LoaderErrors) become RecordErrors."""
    for item in records:
        if isinstance(item, RecordError):
            yield item
            continue
        line, raw = item
        try:
            yield convert(line, raw)
        except LoaderError as error:
            yield RecordError(line, str(error))


def json_records(path: Path) -> Iterator[tuple[int, dict] | RecordError]:
    """(line, object) for each record of a JSON-lines file, or of a JSON array (line = 1-based index)."""
    with open(path, encoding="utf-8-sig") as handle:
        try:
            head = handle.read(1024).lstrip()
            handle.seek(0)
            if head.startswith("["):
                yield from _json_array_records(path, handle)
                return
            line = 0
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as error:
                    yield RecordError(
                        line,
                        f"is not valid JSON ({error.msg} at column {error.pos + 1}): "
                        "each line must hold one JSON object",
                    )
                    continue
                if not isinstance(record, dict):
                    yield RecordError(line, f"holds a JSON {type(record).__name__}, not an object with named fields")
                    continue
                yield line, record
        except UnicodeDecodeError:
            yield RecordError(line + 1, f"'{path.name}' is not UTF-8 text from here on: save it as UTF-8")


def _json_array_records(path: Path, handle) -> Iterator[tuple[int, dict] | RecordError]:
    try:
        records = json.load(handle)
    except json.JSONDecodeError as error:
        yield RecordError(error.lineno, f"'{path.name}' is not valid JSON ({error.msg}, column {error.colno})")
        return
    for index, record in enumerate(records, start=1):
        if isinstance(record, dict):
            yield index, record
        else:
            yield RecordError(index, f"item {index} is a JSON {type(record).__name__}, not an object")


def csv_records(
    path: Path, required: Iterable[str | tuple[str, ...]] = (), hint: str = ""
) -> Iterator[tuple[int, dict] | RecordError]:
    """(line, row) for each row of a CSV (or, for .tsv, tab-separated) file with a header.

    ``required`` names columns the header must have (a tuple: any one of them);
    without one the whole file is a single error on line 1 and nothing loads.
    ``line`` is where a row starts, so a quoted field spanning lines is reported
    where the person will look for it.
    """
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        line_ended = 0
        try:
            header = [name.strip() for name in next(reader, [])]
            line_ended = reader.line_num
            missing = [_names(need) for need in required if not set(_alternatives(need)) & set(header)]
            if missing:
                found = ", ".join(repr(name) for name in header if name) or "none"
                yield RecordError(
                    1,
                    f"the header has no {' or '.join(missing)} column (columns found: {found})"
                    + (f"; {hint}" if hint else ""),
                )
                return
            for fields in reader:
                line, line_ended = line_ended + 1, reader.line_num
                if not any(field.strip() for field in fields):
                    continue
                if len(fields) != len(header):
                    yield RecordError(
                        line,
                        f"has {len(fields)} fields but the header has {len(header)}: "
                        "check for a missing or extra separator, or quote fields that hold one",
                    )
                    continue
                yield line, dict(zip(header, fields))
        except UnicodeDecodeError:
            yield RecordError(line_ended + 1, f"'{path.name}' is not UTF-8 text from here on: save it as UTF-8")
        except csv.Error as error:
            yield RecordError(line_ended + 1, f"is not valid CSV ({error}): check its quotes")


def _alternatives(need: str | tuple[str, ...]) -> tuple[str, ...]:
    return (need,) if isinstance(need, str) else need


def _names(need: str | tuple[str, ...]) -> str:
    return "/".join(repr(name) for name in _alternatives(need))


def _sources(kind: str, path: Path) -> tuple[list[tuple[Path, RecordLoader]], list[Path]]:
    """(file, loader) pairs to read, and the files of a folder that no loader of the kind claims."""
    if not path.exists():
        raise RecordsError(f"cannot load {kind} from '{path}': no such file or folder")
    if path.is_file():
        return [(path, record_loader_for(kind, path))], []
    sources, unclaimed = [], []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in file.relative_to(path).parts):
            continue  # editor backups, .DS_Store, version-control folders
        try:
            sources.append((file, record_loader_for(kind, file)))
        except RecordsError:
            unclaimed.append(file)
    if not sources:
        suffixes = ", ".join(_supported_suffixes(kind))
        raise RecordsError(f"no {kind} files in folder '{path}': supported formats are {suffixes}")
    return sources, unclaimed


def _supported_suffixes(kind: str) -> list[str]:
    return sorted({suffix for loader in _record_loaders(kind) for suffix in loader.suffixes})


def _record_loaders(kind: str) -> list[RecordLoader]:
    return [loader for loader in get_loaders() if isinstance(loader, RecordLoader) and loader.kind == kind]


def _label(root: Path, file: Path) -> str:
    """How a row's ``source`` names its file: the name, or the path inside the loaded folder."""
    return file.name if root == file else str(Path(root.name) / file.relative_to(root))


def _table_for(kind: str) -> str:
    if kind not in RECORD_TABLES:
        raise RecordsError(f"unknown record kind {kind!r}: use one of {', '.join(RECORD_TABLES)}")
    return RECORD_TABLES[kind]


def _zone(settings: Settings, options: dict) -> zoneinfo.ZoneInfo:
    name = options.get("timezone")
    if not name:
        return settings.zone
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise RecordsError(f"unknown time zone {name!r}: use an IANA name such as 'America/Los_Angeles'") from None


def _check_columns_option(kind: str, table_name: str, options: dict) -> None:
    columns = options.get("columns") or {}
    if not isinstance(columns, dict):
        raise RecordsError(
            "the columns option maps our field names to the source's column names, e.g. {'start': 'Begin'}"
        )
    fields = LOADER_FIELDS[table_name]
    unknown = sorted(set(columns) - set(fields))
    if unknown:
        raise RecordsError(f"unknown field {unknown[0]!r} in columns: {kind} fields are {', '.join(fields)}")


def _read_guarded(loader: RecordLoader, file: Path, options: dict) -> Iterator[dict | RecordError]:
    """The loader's records; a loader that raises becomes one error at the line it reached."""
    last_line = 0
    records = loader.read(file, options)
    while True:
        try:
            item = next(records)
        except StopIteration:
            return
        except LoaderError as error:
            yield RecordError(last_line + 1 if last_line else 0, str(error))
            return
        except Exception as error:  # a third-party loader's bug must not end the whole load
            yield RecordError(
                last_line + 1 if last_line else 0, f"loader {loader.name!r} failed: {type(error).__name__}: {error}"
            )
            return
        last_line = item.line if isinstance(item, RecordError) else int(item.get("_line") or 0)
        yield item


def _clear_stale_errors(db: sqlite_utils.Database, source: str, job_id: int) -> None:
    """Errors of this file that this run did not see again were fixed."""
    with write_transaction(db):
        db.execute("delete from ingest_errors where source = ? and (job_id is null or job_id != ?)", [source, job_id])


class _Writer:
    """Turns records into rows and writes them a batch per transaction, counting as it goes."""

    def __init__(self, db, table_name, settings, zone, summary, job_id):
        self.db = db
        self.table = db[table_name]
        self.columns = list(self.table.columns_dict)
        self.settings = settings
        self.zone = zone
        self.summary = summary
        self.job_id = job_id
        self.rows: list[dict] = []
        self.errors: list[tuple[str, int, str, str]] = []
        self.new_instruments: dict[str, str] = {}
        self.known_instruments = {row[0] for row in db.execute("select name from instruments").fetchall()}
        self.first_source_of: dict[str, str] = {}
        self.duplicates: list[tuple[str, str]] = []

    def add(self, item: dict | RecordError, file: Path, label: str, loader_name: str) -> None:
        self.summary.total += 1
        if isinstance(item, RecordError):
            self._error(file, item.line, item.message, loader_name)
        else:
            line = int(item.get("_line") or 0)
            source = f"{label}:{line}" if line else label
            try:
                row = self._row(item, source)
            except _Rejected as rejection:
                self._error(file, line, str(rejection), loader_name)
                return
            if row["id"] in self.first_source_of:
                self.duplicates.append((source, self.first_source_of[row["id"]]))
                self.summary.skipped += 1
                return
            self.first_source_of[row["id"]] = source
            self.rows.append(row)
        if len(self.rows) + len(self.errors) >= BATCH_ROWS:
            self.flush()

    def _error(self, file: Path, line: int, message: str, loader_name: str) -> None:
        self.summary.failed += 1
        source = str(file.resolve())
        self.errors.append((source, line, message, loader_name))
        if len(self.summary.errors) < ERRORS_LISTED_MAX:
            self.summary.errors.append({"source": source, "line": line, "message": message})

    def _row(self, record: dict, source: str) -> dict:
        record = dict(record)
        record.pop("_line", None)
        details = record.pop("details", None)
        details = dict(details) if isinstance(details, dict) else ({"details": details} if details else {})
        row: dict[str, Any] = {}
        for key, value in record.items():
            if key in self.columns and key not in _BOOKKEEPING_COLUMNS:
                row[key] = _cell(value)
            elif value not in (None, "", [], {}):
                details[key] = value  # a field our schema lacks is kept, not dropped
        if self.table.name == "sessions":
            self._session(row)
        if not row.get("id"):
            raise _Rejected("has no id: give each record an id (or map the id column with the columns option)")
        row["id"] = str(row["id"])
        row["details"] = to_json(details) if details else None
        row["source"] = source
        row["loaded_at"] = now_utc()
        return {column: row.get(column) for column in self.columns}

    def _session(self, row: dict) -> None:
        """Canonical instrument, UTC times and the stable id of one booking."""
        reported = row.get("instrument")
        instrument = self.settings.canonical_instrument(reported)
        if not instrument:
            raise _Rejected("has no instrument: every session needs one")
        if row.get("start") is None:
            raise _Rejected("has no start time: every session needs one")
        start = to_utc(_as_datetime(row["start"]), self.zone)
        end = to_utc(_as_datetime(row["end"]), self.zone) if row.get("end") is not None else None
        if end is not None and end < start:
            raise _Rejected(f"ends ({iso_utc(end)}) before it starts ({iso_utc(start)}): check its end time")
        if end is not None and end - start > dt.timedelta(days=SESSION_MAX_DAYS):
            raise _Rejected(
                f"lasts {(end - start).days} days (from {iso_utc(start)} to {iso_utc(end)}): "
                f"check its end date; sessions longer than {SESSION_MAX_DAYS} days are refused"
            )
        row.update(instrument=instrument, start=iso_utc(start), end=iso_utc(end))
        row["id"] = session_id(instrument, row["start"], row.get("user"))
        if instrument not in self.known_instruments:
            self.known_instruments.add(instrument)
            self.new_instruments[instrument] = str(reported).strip()

    def flush(self) -> None:
        """Write the pending rows and errors in one transaction."""
        if not self.rows and not self.errors and not self.new_instruments:
            return
        with write_transaction(self.db):
            self._write_instruments()
            for source, line, message, loader_name in self.errors:
                jobs.record_error(
                    self.db, source=source, line=line, message=message, loader=loader_name, job_id=self.job_id
                )
            added, updated, unchanged = self._write_rows()
        # Counted only once committed, so a batch retried after an interrupted commit is not counted twice.
        self.summary.added += added
        self.summary.updated += updated
        self.summary.unchanged += unchanged
        self.rows, self.errors, self.new_instruments = [], [], {}

    def _write_instruments(self) -> None:
        descriptions = {rule.name: rule.description for rule in self.settings.instruments}
        self.db["instruments"].insert_all(
            [
                {"name": name, "description": descriptions.get(name), "reported_as": reported, "first_seen": now_utc()}
                for name, reported in self.new_instruments.items()
            ],
            pk="name",
            ignore=True,
        )

    def _write_rows(self) -> tuple[int, int, int]:
        """Upsert the rows that are new or differ from what is stored; (added, updated, unchanged)."""
        if not self.rows:
            return 0, 0, 0
        ids = [row["id"] for row in self.rows]
        placeholders = ", ".join("?" for _ in ids)
        stored = {row["id"]: row for row in self.table.rows_where(f"id in ({placeholders})", ids)}
        compared = [column for column in self.columns if column != "loaded_at"]
        new = [row for row in self.rows if row["id"] not in stored]
        changed = [
            row
            for row in self.rows
            if row["id"] in stored and any(stored[row["id"]][column] != row[column] for column in compared)
        ]
        # Unchanged rows are not written, which keeps their loaded_at and spares the FTS index.
        if new or changed:
            self.table.upsert_all(new + changed, pk="id")
        return len(new), len(changed), len(self.rows) - len(new) - len(changed)

    def note_duplicates(self) -> None:
        if self.duplicates:
            repeat, first = self.duplicates[0]
            self.summary.notes.append(
                f"{len(self.duplicates)} records repeat an earlier record's id and were skipped "
                f"(the first: {repeat} repeats {first})"
            )


def _cell(value: Any) -> Any:
    """A value SQLite stores as is: text stripped (empty is NULL), lists joined, dicts as JSON."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (list, tuple)):
        return "; ".join(str(item).strip() for item in value if str(item).strip()) or None
    if isinstance(value, dict):
        return to_json(value)
    return value


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise _Rejected(f"time {value!r} is not ISO 8601 (such as 2011-10-18T17:00)") from None
