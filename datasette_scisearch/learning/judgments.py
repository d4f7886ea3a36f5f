"""Judged query–item pairs a facility imports: ``scisearch load judgments CATALOG FILE``.

Two layouts are read:

- **TREC qrels**: ``QUERY_ID ITERATION ITEM_ID RELEVANCE`` per line (whitespace
  separated), or BEIR's tab-separated ``query-id corpus-id score`` with its
  header.  Qrels name queries by id only, so their texts come from ``--queries``
  (BEIR ``queries.jsonl`` with ``_id`` and ``text``, or ``ID<TAB>TEXT`` lines).
- **JSONL**: one object per line with ``query`` (its text), ``item_id``, and
  optionally ``query_id``, ``item_type`` and ``relevance`` (default 1).

An item is named by its id; its type is ``--type`` or, without it, whichever
item type has that id in the catalog.  A line that cannot be used (unknown item,
no query text, a malformed line) is counted and described, and the rest goes on.
The pairs are kept in the private database beside the catalog (``private.py``):
queries are what people asked, which the public does not read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlite_utils

from ..catalog import ITEM_TYPES, now_utc
from ..errors import ScisearchError
from ..private import open_private

MAX_PROBLEMS_KEPT = 20


class JudgmentsError(ScisearchError):
    """The judgments file as a whole cannot be read (missing, or not one of the two layouts)."""


@dataclass
class JudgmentsReport:
    source: str
    read: int = 0
    imported: int = 0
    queries: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def skip(self, where: str, why: str) -> None:
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(f"{where}: {why}")

    def as_dict(self) -> dict:
        return asdict(self)


def read_query_texts(path: Path) -> dict[str, str]:
    """query id -> text from BEIR ``queries.jsonl`` (``_id``, ``text``) or ``ID<TAB>TEXT`` lines."""
    texts = {}
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
                texts[str(record.get("_id", record.get("query_id", record.get("id"))))] = str(record["text"])
            except (ValueError, KeyError, TypeError):
                raise JudgmentsError(f"{path.name} line {number}: expected JSON with _id and text") from None
        elif "\t" in line:
            query_id, text = line.split("\t", 1)
            texts[query_id.strip()] = text.strip()
        else:
            raise JudgmentsError(f"{path.name} line {number}: expected JSON or 'ID<TAB>TEXT'")
    return texts


def load_judgments(
    db: sqlite_utils.Database,
    path: Path,
    *,
    queries: Path | None = None,
    item_type: str | None = None,
    replace: bool = False,
) -> JudgmentsReport:
    """Import the judgments in ``path`` into the catalog's private database; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise JudgmentsError(f"no such file: {path}")
    if item_type is not None and item_type not in ITEM_TYPES:
        raise JudgmentsError(f"unknown item type {item_type!r}: use one of {', '.join(ITEM_TYPES)}")
    texts = read_query_texts(Path(queries)) if queries else {}
    report = JudgmentsReport(str(path))
    resolve = _resolver(db, item_type)
    rows = []
    for where, record in _records(path, report):
        report.read += 1
        text = record.get("query") or texts.get(record.get("query_id") or "")
        if not text or not str(text).strip():
            report.skip(where, f"no text for query {record.get('query_id')!r}: give the queries file with --queries")
            continue
        found = resolve(str(record["item_id"]), record.get("item_type"))
        if isinstance(found, str):
            report.skip(where, found)
            continue
        query_id = record.get("query_id") or "q:" + hashlib.sha1(str(text).encode()).hexdigest()[:12]
        rows.append((str(query_id), str(text).strip(), *found, int(record.get("relevance", 1)), path.name, now_utc()))
    private = open_private(db)
    if private is None:
        raise JudgmentsError("judgments are kept beside the catalog's file, and this catalog has none (in memory)")
    try:
        with private.conn:
            if replace:
                private.execute("delete from judgments")
            private.conn.executemany(
                "insert or replace into judgments (query_id, query, item_type, item_id, relevance, source, "
                "imported_at) values (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    finally:
        private.close()
    report.imported = len(rows)
    report.queries = len({row[0] for row in rows})
    return report


def judged_pairs(db: sqlite_utils.Database) -> list[tuple[str, str, str, str, int]]:
    """(query id, query, item type, item id, relevance) of every imported judgment with relevance > 0."""
    private = open_private(db, create=False)
    if private is None:
        return []
    try:
        return [
            tuple(row)
            for row in private.execute(
                "select query_id, query, item_type, item_id, relevance from judgments where relevance > 0 "
                "order by query_id, item_type, item_id"
            ).fetchall()
        ]
    finally:
        private.close()


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise JudgmentsError(f"{path.name} is not UTF-8 text: judgments are TREC qrels or JSONL") from None
    except OSError as error:
        raise JudgmentsError(f"cannot read {path}: {error.strerror or error}") from None


def _records(path: Path, report: JudgmentsReport):
    """(where, {query_id, query, item_type, item_id, relevance}) for each usable line, in either layout."""
    lines = _lines(path)
    first = next((line for line in lines if line.strip()), "")
    is_jsonl = first.lstrip().startswith("{")
    for number, line in enumerate(lines, start=1):
        where = f"{path.name} line {number}"
        if not line.strip():
            continue
        if is_jsonl:
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "item_id" not in record:
                    raise ValueError
            except ValueError:
                report.skip(where, "expected a JSON object with query and item_id")
                continue
            yield where, {**record, "query_id": record.get("query_id") and str(record["query_id"])}
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) == 3 and number == 1 and not fields[2].strip().lstrip("-").isdigit():
            continue  # BEIR's header: query-id, corpus-id, score
        if len(fields) == 4:
            query_id, _, item_id, relevance = fields
        elif len(fields) == 3:
            query_id, item_id, relevance = fields
        else:
            report.skip(where, "expected QUERY_ID ITERATION ITEM_ID RELEVANCE (TREC) or QUERY_ID ITEM_ID SCORE (BEIR)")
            continue
        if not relevance.strip().lstrip("-").isdigit():
            report.skip(where, f"relevance must be a whole number (got {relevance.strip()[:20]!r})")
            continue
        yield where, {"query_id": query_id.strip(), "item_id": item_id.strip(), "relevance": int(relevance)}


def _resolver(db: sqlite_utils.Database, item_type: str | None):
    """item id (and the line's own type, if any) -> (item type, item id) in this catalog, or why not."""

    def resolve(item_id: str, line_type: str | None):
        wanted = line_type or item_type
        if wanted is not None and wanted not in ITEM_TYPES:
            return f"unknown item type {wanted!r}"
        sql = "select item_type from search_items where item_id = ?" + (" and item_type = ?" if wanted else "")
        found = [row[0] for row in db.execute(sql, [item_id, wanted] if wanted else [item_id]).fetchall()]
        if not found:
            return f"no {wanted or 'item'} {item_id!r} in this catalog"
        if len(found) > 1:
            return f"{item_id!r} names a {' and a '.join(sorted(found))}: give --type"
        return found[0], item_id

    return resolve
