"""What clicks taught the engine: a query's canonical key and the bounded boosts ``scisearch learn`` stored for it.

The search log, the learner and the engine must agree on when two searches are
"the same search": ``query_key`` is the parsed query's words and filters in a
canonical form (lower case, sorted, units already converted by the parser), so
``HAADF gold`` and ``gold  haadf`` share their clicks while ``gold -HAADF`` does
not.  The tab a search was made in is not part of the key: an item is the same
item under "All" and under "Papers".

``boosts`` reads ``click_signals`` (written by ``learning.clicks.learn``); the
engine adds each boost to the fused score as a bounded stage (see engine.py).
"""

from __future__ import annotations

import sqlite_utils

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
    """search_items id -> the learned boost for this query key; empty where nothing was learned."""
    if not key or not db.execute("select 1 from sqlite_master where name = 'click_signals'").fetchone():
        return {}
    rows = db.execute(
        """select si.id, cs.boost from click_signals cs
           join search_items si on si.item_type = cs.item_type and si.item_id = cs.item_id
           where cs.query_key = ? and cs.boost != 0""",
        [key],
    )
    return {rowid: float(boost) for rowid, boost in rows}
