"""User logs: who booked which instrument when, as CSV or JSON lines from a booking system.

Column names come from the facility settings (``userlog_columns``) or the
load's ``columns`` option, both mapping our field to the source's column.
Times are read as written; the core applies the facility time zone to those
without an offset, canonicalises the instrument and gives each session its id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dateutil import parser as dateparser

from datasette_scisearch.config import DEFAULT_USERLOG_COLUMNS
from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest.loader import LoaderError, RecordError, RecordLoader
from datasette_scisearch.ingest.records import converted, csv_records, json_records

FIELDS = ("instrument", "user", "start", "end", "proposal_id", "notes")
REQUIRED = ("instrument", "start", "end")
EXAMPLE_TIMES = "2011-10-18 17:00, 2011-10-18T17:00:00-07:00 or 10/18/2011 5:00 PM"
# Two defaults that differ in every part: a time parsed the same under both has a full date of its own.
_DEFAULT_A = dt.datetime(1901, 1, 1)
_DEFAULT_B = dt.datetime(1902, 2, 2)


class UserLogLoader(RecordLoader):
    name = "userlog"
    kind = "userlog"
    description = "instrument bookings and user-log sessions (CSV, TSV, JSON lines)"
    suffixes = frozenset({".csv", ".tsv", ".jsonl", ".ndjson", ".json"})

    def read(self, path: Path, options: dict[str, Any]) -> Iterator[dict | RecordError]:
        columns = {**DEFAULT_USERLOG_COLUMNS, **(options.get("columns") or {})}
        dayfirst = bool(options.get("dayfirst", False))
        if path.suffix.lower() in (".csv", ".tsv"):
            hint = "name it in userlog_columns in metadata.yml, or with the columns option of this load"
            records = csv_records(path, required=[columns[field] for field in REQUIRED], hint=hint)
        else:
            records = json_records(path)
        yield from converted(records, lambda line, raw: session(line, raw, columns, dayfirst))


def session(line: int, raw: dict, columns: dict[str, str], dayfirst: bool) -> dict:
    """One booking as the core's ``sessions`` fields; the source's other columns go into details."""
    values = {field: _text(raw.get(columns[field])) for field in FIELDS}
    missing = [columns[field] for field in REQUIRED if not values[field]]
    if missing:
        raise LoaderError(
            f"has no {' or '.join(repr(name) for name in missing)}: every session needs an instrument, "
            "a start time and an end time"
        )
    mapped = {columns[field] for field in FIELDS}
    details = {key: value for key, value in raw.items() if key not in mapped and _text(value)}
    return {
        "_line": line,
        "instrument": values["instrument"],
        "user": values["user"],
        "start": parse_time(values["start"], columns["start"], dayfirst),
        "end": parse_time(values["end"], columns["end"], dayfirst),
        "proposal_id": values["proposal_id"],
        "notes": values["notes"],
        "details": details,
    }


def parse_time(text: str, column: str, dayfirst: bool = False) -> dt.datetime:
    """A date and time as written: naive for local time, aware when the text carries an offset."""
    try:
        first = dateparser.parse(text, default=_DEFAULT_A, dayfirst=dayfirst)
        second = dateparser.parse(text, default=_DEFAULT_B, dayfirst=dayfirst)
    except (ValueError, OverflowError):
        raise LoaderError(f"{column} {text!r} is not a date and time: write it like {EXAMPLE_TIMES}") from None
    if first.date() != second.date():
        raise LoaderError(f"{column} {text!r} has no full date: write it like {EXAMPLE_TIMES}")
    return first


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@hookimpl
def register_loaders(register):
    register(UserLogLoader())
