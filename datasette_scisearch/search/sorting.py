"""Orders a researcher can ask for besides relevance: newest first, highest voltage, highest magnification.

The engine ranks, then this module re-orders the matched set (the ranked pool, before paging) by a column of
``files`` or by each item's date.  Items without the value (a paper has no voltage) follow those that have it,
in their relevance order, so sorting never hides a result.
"""

from __future__ import annotations

import json

import sqlite_utils

from .filters import ITEM_TIME, JOINS
from .query import QueryError

# sort name -> the SQL value it orders by (highest or newest first), over search_items si and its joins.
SORTS = {
    "relevance": None,
    "date": ITEM_TIME,
    "kv": "f.voltage_kv",
    "magnification": "f.magnification",
}
# The hit fact that carries each sort's value, for merging sorted answers of several catalogs.
SORT_FACTS = {"kv": "voltage_kv", "magnification": "magnification"}


def check(sort: str | None) -> str:
    """The sort named (relevance when none); an unknown name is a QueryError that lists the known ones."""
    sort = (sort or "relevance").strip().lower()
    if sort not in SORTS:
        raise QueryError(f"unknown sort {sort[:40]!r}: use one of {', '.join(SORTS)}")
    return sort


def sorted_rowids(db: sqlite_utils.Database, rowids: list[int], sort: str) -> list[int]:
    """``rowids`` (in relevance order) re-ordered by ``sort``, highest or newest first; ties and items without
    the value keep their relevance order."""
    expression = SORTS[sort]
    if expression is None or not rowids:
        return list(rowids)
    joins = " ".join(JOINS[name] for name in ("f", "se", "pr", "pa"))
    values = dict(
        db.execute(
            f"select si.id, {expression} from search_items si {joins} where si.id in (select value from json_each(?))",
            [json.dumps([int(r) for r in rowids])],
        ).fetchall()
    )
    with_value = [r for r in rowids if values.get(r) is not None]
    without = [r for r in rowids if values.get(r) is None]
    # Python's sort is stable: equal values keep the relevance order.
    with_value.sort(key=lambda r: values[r], reverse=True)
    return with_value + without
