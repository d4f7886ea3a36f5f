"""Full-text search over ``search_items_fts``: safe FTS5 expressions, BM25 ranking, highlights.

Everything a person typed reaches FTS5 as quoted strings, never as syntax, so
no query can be an FTS5 syntax error.  Ranking is FTS5's ``bm25()`` with one
weight per column (title, body, tags, context).

Speed, measured on 100,000 documents (benchmarks/search.py): ``order by
bm25(...) limit n`` with explicit weights costs half of ``order by rank``, and
a query whose words must all match costs a fraction of one where any may,
because FTS5 then steps through the rarest word's postings only.  So the
engine asks for all the words first and falls back to any of them only when
nothing has them all (or when the query is a sentence rather than keywords).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field

import sqlite_utils

from ..catalog import SEARCH_FTS_COLUMNS, SEARCH_FTS_TOKENIZE
from . import text_index
from .expressions import all_terms, fts_all, fts_any
from .filters import allowed
from .query import Term

# Markers that cannot occur in catalog text; replaced by <mark> after HTML-escaping.
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"
SNIPPET_TOKENS = 24
# A query of more clauses than this reads as a sentence (a claim, a question): its words are alternatives
# ranked by BM25, as in the published BEIR baselines; shorter queries are keywords that must all match.
KEYWORD_CLAUSES = 3


@dataclass
class FtsResult:
    ranked: list[int] = field(default_factory=list)  # search_items ids, best first
    scores: dict[int, float] = field(default_factory=dict)  # -bm25: higher is better
    mode: str = "all"  # all (every word), any (some of the words)
    expression: str = ""  # the FTS5 expression, for highlights and counts
    matches: int | None = None  # how many documents match, where the ranker counted them
    ranker: str = "fts5"
    complete: bool = True  # every match was considered (False: the best of them, before filters)


def bm25_args(weights: dict) -> list[float]:
    return [float(weights.get(column, 1.0)) for column in SEARCH_FTS_COLUMNS]


def ranked(db: sqlite_utils.Database, expression: str, filters, weights: dict, limit: int) -> list[tuple[int, float]]:
    """Documents matching ``expression`` and the filters, best BM25 first (at most ``limit``)."""
    marks = ", ".join("?" * len(SEARCH_FTS_COLUMNS))
    if filters.is_empty:
        sql = f"""
            select rowid, bm25(search_items_fts, {marks}) as score from search_items_fts
            where search_items_fts match ? order by score limit ?"""
        params = [*bm25_args(weights), expression, limit]
    else:
        sql = f"""
            select search_items_fts.rowid, bm25(search_items_fts, {marks}) as score
            from search_items_fts join search_items si on si.id = search_items_fts.rowid {filters.joins_sql()}
            where search_items_fts match ? and {filters.where_sql()} order by score limit ?"""
        params = [*bm25_args(weights), expression, *filters.params, limit]
    return [(rowid, -score) for rowid, score in db.execute(sql, params)]


def count(db: sqlite_utils.Database, expression: str) -> int:
    """How many documents match: cheap, as FTS5 counts postings without scoring them."""
    sql = "select count(*) from search_items_fts where search_items_fts match ?"
    return db.execute(sql, [expression]).fetchone()[0]


def search(db, clauses: list[list[Term]], filters, weights: dict, limit: int) -> FtsResult:
    """All the words first; any of them when nothing has all (or the query is a sentence).  Large catalogs are
    ranked by tantivy where it is installed (``text_index``), small ones and the rest by FTS5."""
    index = text_index.text_index(db, weights.get("tantivy_from"))
    if index is not None:
        found = _search_tantivy(db, index, clauses, filters, weights, limit)
        if found is not None:
            return found
    if len(clauses) <= KEYWORD_CLAUSES:
        expression = fts_all(clauses)
        rows = ranked(db, expression, filters, weights, limit)
        if rows or len(clauses) == 1:
            return FtsResult([r for r, _ in rows], dict(rows), "all", expression)
    expression = fts_any(all_terms(clauses))
    rows = ranked(db, expression, filters, weights, limit)
    return FtsResult([r for r, _ in rows], dict(rows), "any", expression)


# With filters, tantivy's best matches are read this many times over before the filters choose among them,
# deeper while fewer than FILTERED_ENOUGH pass; past the last depth FTS5 ranks every match the filters allow
# (measured at a million items: filtering tantivy's best 10,000 costs ~30 ms, FTS5 130-360 ms).  The middle
# depth spares a filter that lets a few percent through the full 10,000: on the search benchmark's ten filtered
# queries at 100k, the same first 20 results for all ten and p95 53 -> 38 ms.
FILTERED_DEPTH_FACTORS = (3, 8, 20)
FILTERED_ENOUGH = 100


def _search_tantivy(db, index, clauses, filters, weights: dict, limit: int) -> FtsResult | None:
    every = [True, False] if len(clauses) <= KEYWORD_CLAUSES and len(clauses) > 1 else [len(clauses) == 1]
    depths = [limit] if filters.is_empty else [limit * factor for factor in FILTERED_DEPTH_FACTORS]
    passes: dict[int, bool] = {}  # what the filters said of each document read so far, not asked twice
    for depth in depths:
        for every_clause in every:
            found = index.ranked(clauses, every_clause, weights, depth)
            if found is None:
                return None
            rows, matches = found
            if rows:
                break
        complete = matches <= depth
        if filters.is_empty or not rows:
            break
        unchecked = [rowid for rowid, _ in rows if rowid not in passes]
        if unchecked:
            permitted = allowed(db, unchecked, filters, index.mentioning)
            passes.update((rowid, rowid in permitted) for rowid in unchecked)
        rows = [(rowid, score) for rowid, score in rows if passes[rowid]]
        matches = len(rows) if complete else None
        if len(rows) >= FILTERED_ENOUGH or complete:
            break
    else:
        return None  # a selective filter: let FTS5 rank every match that passes it
    mode = "all" if every_clause else "any"
    expression = fts_all(clauses) if every_clause else fts_any(all_terms(clauses))
    rows = rows[:limit]
    return FtsResult([r for r, _ in rows], dict(rows), mode, expression, matches, "tantivy", complete)


def mention_check(db: sqlite_utils.Database, filters, weights: dict):
    """What ``filters.allowed`` may ask which candidates mention a quantity: the text index, where there is one
    (else None: FTS5 checks each candidate)."""
    if not filters.mentions:
        return None
    index = text_index.text_index(db, weights.get("tantivy_from"))
    return index.mentioning if index is not None else None


@dataclass
class Highlight:
    snippet: str  # HTML-safe, with <mark>
    matched: dict[str, list[str]]  # column -> the words that matched there, as written in the document


def highlights(db: sqlite_utils.Database, expression: str, rowids: list[int]) -> dict[int, Highlight]:
    """A snippet and the matched words per column, for the few documents on a page.

    The snippet comes from the item's own text where the words are there (a line of tags reads badly), else from
    whichever column matched best; the matched words of the text are read from a wider window of it."""
    if not rowids or not expression:
        return {}
    table = _page_table(db, rowids)
    marks = ",".join("?" * len(rowids))
    body = SEARCH_FTS_COLUMNS.index("body")
    short_columns = [name for name in SEARCH_FTS_COLUMNS if name != "body"]
    columns = ", ".join(
        f"highlight({table}, {SEARCH_FTS_COLUMNS.index(name)}, '{MARK_OPEN}', '{MARK_CLOSE}')" for name in short_columns
    )

    def snippet(column: int, tokens: int) -> str:
        return f"snippet({table}, {column}, '{MARK_OPEN}', '{MARK_CLOSE}', '…', {tokens})"

    sql = f"""
        select rowid, {snippet(-1, SNIPPET_TOKENS)}, {snippet(body, SNIPPET_TOKENS)}, {snippet(body, 64)}, {columns}
        from {table} where {table} match ? and rowid in ({marks})"""
    found = {}
    for rowid, best, own_text, wide_text, *short_values in db.execute(sql, [expression, *rowids]):
        matched = {name: marked_words(value) for name, value in zip(short_columns, short_values)}
        matched["body"] = marked_words(wide_text)
        shown = own_text if MARK_OPEN in (own_text or "") else best
        found[rowid] = Highlight(snippet_html(shown), {k: v for k, v in matched.items() if v})
    return found


PAGE_TABLE = "scisearch_page_fts"


def _page_table(db: sqlite_utils.Database, rowids: list[int]) -> str:
    """An FTS5 table to highlight the page's documents in: a temporary one holding just them, where it can be made.

    FTS5 cannot narrow a MATCH by rowid: highlighting 20 documents in the catalog's own index evaluates the query
    over all of it (10–20 ms for a sentence at 100,000 documents).  Snippets and highlights depend only on each
    document and the query, so a table of the page's documents, with the same tokenizer, gives the same ones.
    Temporary tables live in the connection's own temp database, writable even on read-only connections; a caller
    inside a transaction keeps it to itself and gets the catalog's index instead."""
    if db.conn.in_transaction:
        return "search_items_fts"
    columns = ", ".join(SEARCH_FTS_COLUMNS)
    db.execute(
        f"create virtual table if not exists temp.{PAGE_TABLE} using fts5({columns}, tokenize={SEARCH_FTS_TOKENIZE!r})"
    )
    db.execute(f"delete from temp.{PAGE_TABLE}")
    db.execute(
        f"insert into temp.{PAGE_TABLE} (rowid, {columns}) select id, {columns} from search_items "
        "where id in (select value from json_each(?))",
        [json.dumps([int(r) for r in rowids])],
    )
    db.conn.commit()  # the temp writes began a transaction: end it, so this connection reads the newest catalog
    return PAGE_TABLE


def marked_words(text: str | None) -> list[str]:
    words: list[str] = []
    for word in re.findall(f"{MARK_OPEN}(.*?){MARK_CLOSE}", text or "", flags=re.DOTALL):
        if word.lower() not in (w.lower() for w in words):
            words.append(word)
    return words


def snippet_html(text: str | None) -> str:
    escaped = html.escape(text or "", quote=False)
    return escaped.replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>")


def plain_snippet(text: str | None, words: int = SNIPPET_TOKENS) -> str:
    """The start of a document that matched by meaning alone, HTML-escaped."""
    tokens = (text or "").split()
    cut = " ".join(tokens[:words]) + (" …" if len(tokens) > words else "")
    return html.escape(cut, quote=False)
