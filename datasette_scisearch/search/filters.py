"""A parsed query's filters as SQL over ``search_items`` (alias ``si``) and the item tables behind it.

Every search document is one row of ``search_items``; its item's own row is
joined only when a filter needs it: ``f`` (files), ``se`` (sessions), ``pr``
(proposals), ``pa`` (papers).  A filter on a field that an item type does not
have (a voltage for a proposal) leaves that type out, except for quantities
written in free text, which a proposal or paper matches by mentioning them.
Conditions are wrapped in ``coalesce(…, 0)`` so that a negated filter keeps
the items a missing value cannot decide against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .expressions import fts_any, quoted
from .query import NumberFilter, ParsedQuery, TextFilter

JOINS = {
    # The unary + keeps the planner from walking every row of a type through the item_type index
    # when it should look a few candidate rows up by id.
    "f": "left join files f on +si.item_type = 'file' and f.id = cast(si.item_id as integer)",
    "se": "left join sessions se on +si.item_type = 'session' and se.id = si.item_id",
    "pr": "left join proposals pr on +si.item_type = 'proposal' and pr.id = si.item_id",
    "pa": "left join papers pa on +si.item_type = 'paper' and pa.id = si.item_id",
}
# The day an item belongs to: a file's local acquisition day, a session's start, a proposal's start, a paper's
# publication (its year alone when that is all there is).
ITEM_DAY = """coalesce(substr(f.acquired_local, 1, 10), substr(se.start, 1, 10), substr(pr.start_date, 1, 10),
    substr(pa.published, 1, 10), case when pa.year is not null then pa.year || '-01-01' end)"""
# The moment an item belongs to, for "newest first": files and sessions in UTC, to the second.
ITEM_TIME = """coalesce(f.acquired_at, se.start, pr.start_date, pa.published,
    case when pa.year is not null then pa.year || '-01-01' end)"""


# A quantity written in free text ("300 kV") lets a proposal or paper through when it mentions the number; in SQL
# that is one FTS5 match per such document, ~0.15 ms each at 100,000 documents (300 ms for a query whose 10,000
# candidates hold 1,500 papers).  Checking a list of candidates, the engine asks the text index once instead
# (``mentioned``) and the condition becomes a list of ids: this marks where.
MENTION_CONDITION = "exists (select 1 from search_items_fts where search_items_fts match ? and rowid = si.id)"
MENTIONED_CONDITION = "si.id in (select value from json_each(?))"


@dataclass
class FilterSql:
    """``from`` and ``where`` text for the items a query's filters allow, with its parameters."""

    joins: set[str] = field(default_factory=set)
    conditions: list[str] = field(default_factory=list)
    params: list = field(default_factory=list)
    # (index into params, the phrases) of each free-text quantity a proposal or paper may mention
    mentions: list[tuple[int, list[str]]] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.conditions

    def joins_sql(self, *also: str) -> str:
        return " ".join(JOINS[alias] for alias in JOINS if alias in self.joins or alias in also)

    def from_sql(self, *also: str) -> str:
        return "search_items si " + self.joins_sql(*also)

    def where_sql(self) -> str:
        return " and ".join(f"({condition})" for condition in self.conditions) or "1"

    def add(self, condition: str, params: list, joins: set[str] = frozenset(), negated: bool = False) -> None:
        self.joins |= set(joins)
        self.conditions.append(f"not coalesce(({condition}), 0)" if negated else f"coalesce(({condition}), 0)")
        self.params.extend(params)


def allowed(db, rowids: list[int], filters: FilterSql, mentioned=None) -> set[int]:
    """Which of these search documents the filters let through.  ``mentioned(phrases, rowids)``, where given,
    says which of the documents contain any of the phrases (a set, or None to leave it to FTS5)."""
    rowids = [int(r) for r in rowids]
    where, params = filters.where_sql(), filters.params
    if filters.mentions and mentioned is not None and rowids:
        where, params = _with_mentions(db, filters, rowids, mentioned)
    sql = f"""select si.id from {filters.from_sql()}
              where si.id in (select value from json_each(?)) and {where}"""
    return {row[0] for row in db.execute(sql, [json.dumps(rowids), *params])}


def _with_mentions(db, filters: FilterSql, rowids: list[int], mentioned) -> tuple[str, list]:
    """The filters' SQL with each quantity's FTS5 match replaced by the candidates that mention it."""
    params = list(filters.params)
    replaced = 0
    # Only a proposal's or paper's mention counts (a file is judged by its own value): ask about those alone.
    others = [
        row[0]
        for row in db.execute(
            "select id from search_items where id in (select value from json_each(?)) and item_type != 'file'",
            [json.dumps(rowids)],
        )
    ]
    for position, phrases in filters.mentions:
        found = mentioned(phrases, others) if others else set()
        if found is not None:
            params[position] = json.dumps(sorted(found))
            replaced += 1
    where = filters.where_sql()
    if replaced == len(filters.mentions):
        where = where.replace(MENTION_CONDITION, MENTIONED_CONDITION)
    else:  # all or none: the conditions are found by their text
        params = filters.params
    return where, params


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_sql(query: ParsedQuery, item_type: str | None = None) -> FilterSql:
    """The SQL for everything in ``query`` except its free words (and for the tab ``item_type``)."""
    sql = FilterSql()
    if item_type:
        sql.add("si.item_type = ?", [item_type])
    if query.item_types or query.kinds:  # any of them: type:paper,image is papers and image files
        wanted, params = [], []
        if query.item_types:
            wanted.append(f"si.item_type in ({','.join('?' * len(query.item_types))})")
            params += sorted(query.item_types)
        if query.kinds:
            wanted.append(f"(si.item_type = 'file' and f.kind in ({','.join('?' * len(query.kinds))}))")
            params += sorted(query.kinds)
        sql.add(" or ".join(wanted), params, {"f"} if query.kinds else set())
    if query.excluded_item_types:
        marks = ",".join("?" * len(query.excluded_item_types))
        sql.add(f"si.item_type in ({marks})", sorted(query.excluded_item_types), negated=True)
    if query.excluded_kinds:
        marks = ",".join("?" * len(query.excluded_kinds))
        sql.add(f"f.kind in ({marks})", sorted(query.excluded_kinds), {"f"}, negated=True)
    if query.missing is not None:  # -is:missing keeps every item but the files gone from their folders
        sql.add("si.item_type = 'file' and f.missing_since is not null", [], {"f"}, negated=not query.missing)
    for number_filter in query.numbers:
        _number(sql, number_filter)
    for text_filter in query.text_filters:
        _text(sql, text_filter)
    for date_filter in query.dates:
        bounds, params = [], []
        if date_filter.start:
            bounds.append(f"{ITEM_DAY} >= ?")
            params.append(date_filter.start)
        if date_filter.end:
            bounds.append(f"{ITEM_DAY} < ?")
            params.append(date_filter.end)
        sql.add(" and ".join(bounds), params, {"f", "se", "pr", "pa"}, negated=date_filter.negated)
    if query.excluded:
        sql.add(
            "si.id in (select rowid from search_items_fts where search_items_fts match ?)",
            [fts_any(query.excluded)],
            negated=True,
        )
    return sql


def _range(column: str, number_filter: NumberFilter) -> tuple[str, list]:
    bounds, params = [f"{column} is not null"], []
    if number_filter.low is not None:
        bounds.append(f"{column} >= ?")
        params.append(number_filter.low)
    if number_filter.high is not None:
        bounds.append(f"{column} <= ?")
        params.append(number_filter.high)
    return " and ".join(bounds), params


def _number(sql: FilterSql, number_filter: NumberFilter) -> None:
    condition, params = _range(f"f.{number_filter.column}", number_filter)
    if not number_filter.soft:
        sql.add(f"si.item_type = 'file' and {condition}", params, {"f"}, negated=number_filter.negated)
        return
    # "300 kV" in free text: files by their voltage, other items by saying it.
    phrases = " OR ".join(quoted(alternative) for alternative in number_filter.phrase_alternatives)
    # One index seek per proposal or paper, rather than a set of every document that mentions the number.
    sql.mentions.append((len(sql.params) + len(params), list(number_filter.phrase_alternatives)))
    sql.add(
        f"(si.item_type = 'file' and {condition}) or (si.item_type != 'file' and {MENTION_CONDITION})",
        [*params, phrases],
        {"f"},
    )


def _text(sql: FilterSql, text_filter: TextFilter) -> None:
    values = text_filter.values
    negated = text_filter.negated
    if text_filter.field == "catalog":
        return  # catalogs are chosen before the engine runs on each (search/federation.py)
    if text_filter.field == "tag":
        # Taggers write tags in their canonical case; these variants find 'haadf' for 'HAADF' through the index.
        variants = sorted({v for value in values for v in (value, value.lower(), value.upper(), value.title())})
        marks = ",".join("?" * len(variants))
        sql.add(
            f"exists (select 1 from tags t where t.item_type = si.item_type and t.item_id = si.item_id "
            f"and t.tag in ({marks}) and coalesce(t.status, '') != 'rejected')",
            variants,
            negated=negated,
        )
        return
    if text_filter.field == "instrument":
        # A prefix finds a family: instrument:titan is TitanCubed and TitanX.
        likes = " or ".join("coalesce(f.instrument, se.instrument) like ? escape '\\'" for _ in values)
        sql.add(likes, [like_escape(v) + "%" for v in values], {"f", "se"}, negated)
        return
    if text_filter.field in ("mode", "detector", "format"):
        column = f"f.{text_filter.field}"
        likes = " or ".join(f"{column} like ? escape '\\'" for _ in values)
        sql.add(f"si.item_type = 'file' and ({likes})", [like_escape(v) for v in values], {"f"}, negated)
        return
    if text_filter.field == "user":
        # A file's user is whoever booked the session it was linked to.
        likes = " or ".join(
            "coalesce(se.user, (select s.user from sessions s where s.id = f.session_id)) like ? escape '\\'"
            for _ in values
        )
        sql.add(likes, [like_escape(v) for v in values], {"f", "se"}, negated)
        return
    if text_filter.field == "proposal":
        escaped = [like_escape(v) for v in values]
        ors = []
        params: list = []
        for value in escaped:
            ors.append(
                "coalesce(f.proposal_id, se.proposal_id) like ? escape '\\' "
                "or (si.item_type = 'proposal' and si.item_id like ? escape '\\') "
                "or (si.item_type = 'paper' and si.item_id in (select from_id from links where from_type = 'paper' "
                "and to_type = 'proposal' and to_id like ? escape '\\'))"
            )
            params += [value, value, value]
        sql.add(" or ".join(ors), params, {"f", "se"}, negated)
        return
    raise ValueError(f"no SQL for the {text_filter.field!r} filter")
