"""BM25 ranking of large catalogs with tantivy, when it is installed.

FTS5 scores every document that matches before it can sort: measured here on
100,000 documents (benchmarks/search.py), ranking a word that a quarter of the
catalog contains takes 40 ms, and 80–110 ms when filters are joined in.
tantivy skips documents that cannot reach the top (block-max WAND) and ranks
the same queries in 0.1–1 ms.  So for catalogs of ``MIN_DOCUMENTS`` or more,
each process keeps an in-memory tantivy index of the search documents — built
at the first query (about 5 s per 100,000 documents) and again when FTS5's
index changes — and ranks with it; filters are then applied to its best
matches in SQL.  FTS5 stays the source of truth: it ranks small catalogs, it
answers whenever tantivy is absent or cannot take a query, and it makes the
snippets.  Stemming differs slightly (tantivy's Snowball English, FTS5's
Porter).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import sqlite_utils

from ..catalog import SEARCH_FTS_COLUMNS
from .index import documents_version
from .query import Term
from .staleness import fresh_enough

MIN_DOCUMENTS = 20_000
WRITER_HEAP_BYTES = 200_000_000


@dataclass
class TextIndex:
    index: object
    searcher: object
    version: tuple
    built_at: float
    build_seconds: float
    documents: int

    def ranked(self, clauses: list[list[Term]], every_clause: bool, weights: dict, limit: int):
        """(rowid, score) best first and how many documents match; None where tantivy cannot parse the query."""
        text = " ".join(
            "(" + " OR ".join(_quoted(term) for term in clause) + ")" if len(clause) > 1 else _quoted(clause[0])
            for clause in clauses
        )
        boosts = {column: float(weights.get(column, 1.0)) for column in SEARCH_FTS_COLUMNS}
        try:
            query = self.index.parse_query(
                text, list(SEARCH_FTS_COLUMNS), field_boosts=boosts, conjunction_by_default=every_clause
            )
            result = self.searcher.search(query, limit, count=True)
        except ValueError:
            return None
        # A fast field reads the rowids of thousands of hits at once, where fetching stored documents costs ~3 µs each.
        rowids = self.searcher.fast_field_values("rowid", [address for _, address in result.hits])
        return [(rowid, score) for rowid, (score, _) in zip(rowids, result.hits)], result.count


def _quoted(term: Term) -> str:
    # Inside quotes tantivy's query language has no operators; the words are tokenised like the documents.
    words = re.sub(r'["\\]', " ", term.text).strip()
    return f'"{words}"' + ("*" if term.kind == "prefix" else "") if words else '""'


_indexes: dict[str, TextIndex] = {}
_lock = threading.Lock()


def available() -> bool:
    try:
        import tantivy  # noqa: F401
    except ImportError:
        return False
    return True


def _version(db: sqlite_utils.Database) -> tuple:
    """Changes whenever the search documents change (a counter ``refresh_search_items`` bumps), per catalog."""
    created = db.execute("select value from catalog_info where key = 'created_at'").fetchone()
    return (created[0] if created else "", documents_version(db))


def text_index(db: sqlite_utils.Database, min_documents: int | None = None) -> TextIndex | None:
    """The tantivy index of this catalog's search documents, or None (small catalog, no tantivy, in memory)."""
    size = db.execute("select max(id) from search_items").fetchone()[0] or 0
    if size < (MIN_DOCUMENTS if min_documents is None else min_documents) or not available():
        return None
    filename = next((f for _, name, f in db.execute("pragma database_list").fetchall() if name == "main"), "")
    if not filename:
        return None
    version = _version(db)
    cached = _indexes.get(filename)
    if cached is not None and (cached.version == version or fresh_enough(cached, version)):
        return cached
    with _lock:
        cached = _indexes.get(filename)
        if cached is not None and cached.version == version:
            return cached
        built = _build(db, version)
        _indexes[filename] = built
        return built


def _build(db: sqlite_utils.Database, version: tuple) -> TextIndex:
    import tantivy

    started = time.perf_counter()
    builder = tantivy.SchemaBuilder()
    for column in SEARCH_FTS_COLUMNS:
        builder.add_text_field(column, stored=False, tokenizer_name="en_stem")
    builder.add_integer_field("rowid", stored=False, indexed=False, fast=True)
    index = tantivy.Index(builder.build())
    writer = index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
    documents = 0
    columns = ", ".join(SEARCH_FTS_COLUMNS)
    for rowid, *texts in db.execute(f"select id, {columns} from search_items"):
        fields = {column: text or "" for column, text in zip(SEARCH_FTS_COLUMNS, texts)}
        writer.add_document(tantivy.Document(rowid=rowid, **fields))
        documents += 1
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return TextIndex(
        index=index,
        searcher=index.searcher(),
        version=version,
        built_at=time.monotonic(),
        build_seconds=time.perf_counter() - started,
        documents=documents,
    )


def forget() -> None:
    _indexes.clear()
