"""Proposals and awards: what a user came to the facility to do, as JSON lines or CSV.

The NSF award export (``award_id``, ``effective_date``, ``expiration_date``,
``programs`` ...) and a generic shape (``id``, ``title``, ``abstract``, ``pi``
...) are both understood; the load's ``columns`` option names any other
column.  Fields we have no column for are kept in ``details``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dateutil import parser as dateparser

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest.loader import LoaderError, RecordError, RecordLoader
from datasette_scisearch.ingest.records import converted, csv_records, json_records

# Our field -> the source names it goes by, first match wins.
ALIASES = {
    "id": ("id", "proposal_id", "award_id", "award_number", "proposal"),
    "title": ("title",),
    "abstract": ("abstract", "summary", "description"),
    "pi": ("pi", "principal_investigator", "pi_name"),
    "institution": ("institution", "organization", "organisation", "affiliation"),
    "division": ("division",),
    "programs": ("programs", "program"),
    "start_date": ("start_date", "effective_date", "start"),
    "end_date": ("end_date", "expiration_date", "end"),
    "amount": ("amount", "award_amount", "budget"),
}


class ProposalsLoader(RecordLoader):
    name = "proposals"
    kind = "proposals"
    description = "proposals and awards (JSON lines, JSON, CSV); NSF award exports as they are"
    suffixes = frozenset({".jsonl", ".ndjson", ".json", ".csv", ".tsv"})

    def read(self, path: Path, options: dict[str, Any]) -> Iterator[dict | RecordError]:
        aliases = {**ALIASES, **{field: (column,) for field, column in (options.get("columns") or {}).items()}}
        if path.suffix.lower() in (".csv", ".tsv"):
            records = csv_records(path, required=[aliases["id"]], hint="map it with the columns option (id=NAME)")
        else:
            records = json_records(path)
        yield from converted(records, lambda line, raw: proposal(line, raw, aliases))


def proposal(line: int, raw: dict, aliases: dict[str, tuple[str, ...]]) -> dict:
    row: dict[str, Any] = {"_line": line}
    used = set()
    for field, names in aliases.items():
        name = next((name for name in names if _present(raw.get(name))), None)
        if name is not None:
            row[field] = raw[name]
            used.add(name)
    if "id" not in row:
        looked_for = ", ".join(aliases["id"])
        raise LoaderError(f"has no id (looked for {looked_for}): add one or map it with the columns option")
    row["id"] = str(row["id"]).strip()
    for field in ("start_date", "end_date"):
        if field in row:
            row[field] = iso_date(row[field], field)
    if "amount" in row:
        row["amount"] = amount(row["amount"])
    row["details"] = {key: value for key, value in raw.items() if key not in used and _present(value)}
    return row


def iso_date(value: Any, field: str) -> str:
    """A date as YYYY-MM-DD; US month-first for slashed dates, as the NSF export writes them."""
    try:
        return dateparser.parse(str(value)).date().isoformat()
    except (ValueError, OverflowError):
        raise LoaderError(f"{field} {value!r} is not a date: write it like 2017-07-01 or 07/01/2017") from None


def amount(value: Any) -> float:
    """An award amount from 261580, '261580' or '$261,580.00'."""
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).replace("$", "").replace(",", "").strip())
    except ValueError:
        raise LoaderError(f"amount {value!r} is not a number: write it like 261580 or $261,580") from None


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and not (isinstance(value, str) and not value.strip())


@hookimpl
def register_loaders(register):
    register(ProposalsLoader())
