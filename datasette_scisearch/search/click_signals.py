"""What clicks taught the engine: a query's canonical key and the bounded boosts ``scisearch learn`` stored for it.

The search log, the learner and the engine must agree on when two searches are
"the same search": ``query_key`` is the parsed query's words and filters in a
canonical form (lower case, sorted, units already converted by the parser), so
``HAADF gold`` and ``gold  haadf`` share their clicks while ``gold -HAADF`` does
not.  The tab a search was made in is not part of the key: an item is the same
item under "All" and under "Papers".

``boosts`` reads ``click_signals`` (written by ``learning.clicks.learn`` into the
private database beside the catalog); the
engine adds each boost to the fused score as a bounded stage (see engine.py).
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.utils import sqlite3

from ..private import read_private
from .query import ParsedQuery, Term

MAX_KEY_CHARS = 500


def _term(term: Term) -> str:
    text = " ".join(term.text.lower().split())
    return {"phrase": f'"{text}"', "prefix": f"{text}*"}.get(term.kind, text)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def query_key(parsed: ParsedQuery) -> str:
    """The canonical form of a parsed query, e.g. ``gold haadf type:file voltage_kv:200..``."""
    parts = [" OR ".join(sorted({_term(term) for term in clause})) for clause in parsed.clauses]
    parts += [f"-{_term(term)}" for term in parsed.excluded]
    parts += [f"type:{value}" for value in parsed.item_types] + [f"-type:{v}" for v in parsed.excluded_item_types]
    parts += [f"kind:{value.lower()}" for value in parsed.kinds] + [f"-kind:{v.lower()}" for v in parsed.excluded_kinds]
    for text_filter in parsed.text_filters:
        if text_filter.field == "catalog":
            continue  # each catalog keeps its own log, so naming it adds nothing
        values = ",".join(sorted({" ".join(v.lower().split()) for v in text_filter.values}))
        parts.append(f"{'-' if text_filter.negated else ''}{text_filter.field}:{values}")
    for number in parsed.numbers:
        sign = "-" if number.negated else "~" if number.soft else ""  # ~: written in free text ("300 kV")
        parts.append(f"{sign}{number.column}:{_number(number.low)}..{_number(number.high)}")
    for date in parsed.dates:
        parts.append(f"{'-' if date.negated else ''}date:{date.start or ''}..{date.end or ''}")
    return " ".join(sorted(set(parts)))[:MAX_KEY_CHARS]


def boosts(db: sqlite_utils.Database, key: str) -> dict[int, float]:
    """search_items id -> the learned boost for this query key; empty where nothing was learned.  The signals are
    read from the private database beside the catalog (``private.py``), on a connection of their own."""
    if not key:
        return {}
    signals = read_private(db)
    if signals is None:
        return {}
    try:
        learned = signals.execute(
            "select item_type, item_id, boost from click_signals where query_key = ? and boost != 0", [key]
        ).fetchall()
    except sqlite3.OperationalError:  # a private file not yet migrated by a writer
        learned = []
    finally:
        signals.close()
    found: dict[int, float] = {}
    by_item = {(item_type, str(item_id)): float(boost) for item_type, item_id, boost in learned}
    for start in range(0, len(learned), 300):
        chunk = learned[start : start + 300]
        marks = ",".join("(?, ?)" for _ in chunk)
        rows = db.execute(
            f"select id, item_type, item_id from search_items where (item_type, item_id) in (values {marks})",
            [value for item_type, item_id, _ in chunk for value in (item_type, str(item_id))],
        )
        for rowid, item_type, item_id in rows:
            found[rowid] = by_item[(item_type, str(item_id))]
    return found
