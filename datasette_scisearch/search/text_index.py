"""BM25 ranking with tantivy from an index on disk beside the catalog, kept in step with it.

FTS5 scores every document that matches before it can sort: measured on
100,000 documents (benchmarks/search.py), ranking a word that a quarter of the
catalog contains takes 40 ms; tantivy skips documents that cannot reach the
top (block-max WAND) and ranks the same queries in 0.1–1 ms.  Building a
tantivy index takes ~25 s per million documents, so it is built once, on
disk (``index_folder``), and kept up to date rather than rebuilt by each
process:

- the catalog is the source of truth.  Triggers log every change of
  ``search_items`` in ``search_changes``; the log's counter is the catalog's
  *generation*, and the index's state file records the generation it reflects.
- writers bring the index up to date after they commit (``catch_up``, called by
  ``refresh_search_items``): only the documents changed since the index's
  generation are deleted and added again, then the index commits and records
  the new generation.  Replaying a change twice is harmless, which is what
  makes a writer killed between the index's commit and its state file safe.
- a reader never writes.  One that finds the index behind reads the changed
  documents from the log and ranks them in a small in-memory index beside the
  one on disk, whose copies of them it leaves out (``TextIndex.ranked``);
  their BM25 statistics are then those of the small index until the next
  writer catches up.  A missing, corrupt or far-behind index is not used:
  FTS5 answers (correctly, more slowly) until ``scisearch index`` or the next
  writer rebuilds it.

Below ``MIN_DOCUMENTS`` documents FTS5 ranks alone, and writers keep no index
unless one was built (``scisearch index``).  FTS5 also makes the snippets.
Stemming differs slightly (tantivy's Snowball English, FTS5's Porter).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from dataclasses import dataclass, field

import sqlite_utils

from ..catalog import SEARCH_FTS_COLUMNS, write_transaction
from . import index_folder
from .query import Term

MIN_DOCUMENTS = 20_000
STATE = "text"  # text.json, text.lock and text-<build>/ in the catalog's index folder
BUILD_HEAP_BYTES = 200_000_000
UPDATE_HEAP_BYTES = 50_000_000
# A reader behind by more changed documents than this does not index them for each query: FTS5 answers.
MAX_OVERLAY = 20_000
# Log entries kept behind the index's generation, for readers that opened the index just before it moved on.
KEEP_LOG = 100_000


def available() -> bool:
    try:
        import tantivy  # noqa: F401
    except ImportError:
        return False
    return True


def generation(db: sqlite_utils.Database) -> int:
    """How many changes the search documents have had (the counter of ``search_changes``)."""
    row = db.execute("select seq from sqlite_sequence where name = 'search_changes'").fetchone()
    return int(row[0]) if row else 0


def changed_since(db: sqlite_utils.Database, since: int) -> set[int] | None:
    """The search documents changed after generation ``since``; None where the log no longer goes back that far."""
    oldest = db.execute("select min(seq) from search_changes").fetchone()[0]
    if oldest is not None and oldest > since + 1:
        return None
    return {row[0] for row in db.execute("select distinct item_rowid from search_changes where seq > ?", [since])}


# -- The index's shape -----------------------------------------------------------------------------------


def _schema():
    import tantivy

    builder = tantivy.SchemaBuilder()
    for column in SEARCH_FTS_COLUMNS:
        builder.add_text_field(column, stored=False, tokenizer_name="en_stem")
    # rowid is indexed so that a changed document can be deleted by it, and a fast field so that thousands of
    # hits' rowids are read at once (fetching stored documents costs ~3 µs each).
    builder.add_integer_field("rowid", stored=False, indexed=True, fast=True)
    builder.add_integer_field("doc_hash", stored=False, indexed=False, fast=True)  # for --check
    return builder.build()


_COLUMNS = ", ".join(SEARCH_FTS_COLUMNS)


def _documents(db: sqlite_utils.Database, rowids: list[int] | None):
    """(rowid, document) for these search documents (all of them for None)."""
    import tantivy

    sql = f"select id, doc_hash, {_COLUMNS} from search_items"
    chunks = [None] if rowids is None else [rowids[i : i + 500] for i in range(0, len(rowids), 500)]
    for chunk in chunks:
        where = "" if chunk is None else f" where id in ({','.join('?' * len(chunk))})"
        for rowid, doc_hash, *texts in db.execute(sql + where, chunk or []):
            fields = {column: text or "" for column, text in zip(SEARCH_FTS_COLUMNS, texts)}
            yield rowid, tantivy.Document(rowid=rowid, doc_hash=short_hash(doc_hash), **fields)


def short_hash(doc_hash: str | None) -> int:
    """A document's sha1 (``search_items.doc_hash``) cut to fit a signed 64-bit fast field."""
    return int(doc_hash[:15], 16) if doc_hash else 0


# -- Writing -------------------------------------------------------------------------------------------


def build(db: sqlite_utils.Database, progress: bool = False) -> dict | None:
    """Index every search document into a new folder, then make it the current one; returns the new state.
    Waits for a writer that is catching up.  None for an in-memory catalog."""
    folder = index_folder.indexes_folder(db)
    if folder is None or not available():
        return None
    with index_folder.writer_lock(folder, STATE, wait=True):
        return _build(db, folder, progress)


def _build(db: sqlite_utils.Database, folder, progress: bool) -> dict:
    import tantivy
    from tqdm import tqdm

    started = time.perf_counter()
    reflects = generation(db)  # read before the documents: they can only be newer than it, never older
    build_name = f"{STATE}-{time.strftime('%Y%m%dT%H%M%S')}-{time.perf_counter_ns() % 10**6:06d}"
    (folder / build_name).mkdir(parents=True)
    index = tantivy.Index(_schema(), path=str(folder / build_name), reuse=False)
    writer = index.writer(heap_size=BUILD_HEAP_BYTES, num_threads=1)
    total = db.execute("select count(*) from search_items").fetchone()[0]
    documents = 0
    with tqdm(total=total, desc="indexing search documents", unit="doc", disable=not progress, leave=False) as bar:
        for _, document in _documents(db, None):
            writer.add_document(document)
            documents += 1
            if documents % 10_000 == 0:
                bar.update(10_000)
        bar.update(documents % 10_000)
    writer.commit()
    writer.wait_merging_threads()
    state = {
        "folder": build_name,
        "generation": reflects,
        "catalog": index_folder.catalog_identity(db),
        "documents": documents,
        "built_seconds": round(time.perf_counter() - started, 3),
    }
    index_folder.write_state(folder, STATE, state)
    for old in folder.glob(f"{STATE}-*"):
        if old.name != build_name:  # a reader that has it open keeps its files (unlinked, still mapped)
            shutil.rmtree(old, ignore_errors=True)
    return state


def catch_up(db: sqlite_utils.Database, progress: bool = False) -> int | None:
    """After a writer's commit: bring the index up to the catalog's generation with just the changed documents
    (build it where it is missing, corrupt or of another catalog, and the catalog is large enough to want one).
    Returns how many documents were re-indexed, None where nothing was done (no index wanted, or another writer
    holds the index and will catch up itself)."""
    folder = index_folder.indexes_folder(db)
    if folder is None or db.conn.in_transaction or not available():
        return None  # the catalog must commit first: the index never runs ahead of what others can read
    state = index_folder.read_state(folder, STATE)
    if state is None and not (folder / f"{STATE}.json").exists():
        size = db.execute("select count(*) from search_items").fetchone()[0]
        if size < MIN_DOCUMENTS:
            return None
    with index_folder.writer_lock(folder, STATE, wait=False) as mine:
        if not mine:
            return None
        state = index_folder.read_state(folder, STATE)  # another writer may have moved it on while we waited
        if state is None or state.get("catalog") != index_folder.catalog_identity(db):
            return _build(db, folder, progress)["documents"]
        current = generation(db)
        if state["generation"] > current:  # an index of a catalog that was restored from an older copy
            return _build(db, folder, progress)["documents"]
        if state["generation"] == current:
            return 0
        changed = changed_since(db, state["generation"])
        if changed is None:
            return _build(db, folder, progress)["documents"]
        try:
            documents = _apply(db, folder / state["folder"], sorted(changed))
        except (OSError, ValueError):  # tantivy reports a damaged index as either
            return _build(db, folder, progress)["documents"]
        state = {**state, "generation": current, "documents": documents}
        index_folder.write_state(folder, STATE, state)
        with write_transaction(db):  # the log behind the index is needed only by readers not moved on yet
            db.execute("delete from search_changes where seq <= ?", [current - KEEP_LOG])
        return len(changed)


def _apply(db: sqlite_utils.Database, path, rowids: list[int]) -> int:
    """Delete and add again these documents (those still in the catalog); returns how many the index then holds."""
    import tantivy

    index = tantivy.Index.open(str(path))
    writer = index.writer(heap_size=UPDATE_HEAP_BYTES, num_threads=1)
    for rowid in rowids:
        writer.delete_documents_by_term("rowid", rowid)  # applies to documents added before it only
    for _, document in _documents(db, rowids):
        writer.add_document(document)
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return index.searcher().num_docs


# -- Reading -------------------------------------------------------------------------------------------


@dataclass
class _Opened:
    folder: str
    generation: int
    index: object
    searcher: object


@dataclass
class _Overlay:
    """The documents changed since the index's generation, indexed in memory for the queries of one reader."""

    key: tuple
    changed: list[int]
    index: object | None
    searcher: object | None


@dataclass
class TextIndex:
    """The on-disk index as one reader sees it now: the index, and the changes it has not taken yet."""

    index: object
    searcher: object
    overlay: _Overlay | None = None
    generation: int = 0
    behind: int = 0  # documents changed since the index's generation (ranked from the overlay)
    documents: int = 0

    def ranked(self, clauses: list[list[Term]], every_clause: bool, weights: dict, limit: int):
        """(rowid, BM25 score) best first and how many documents match; None where tantivy cannot parse the query."""
        import tantivy

        text = " ".join(
            "(" + " OR ".join(_quoted(term) for term in clause) + ")" if len(clause) > 1 else _quoted(clause[0])
            for clause in clauses
        )
        boosts = {column: float(weights.get(column, 1.0)) for column in SEARCH_FTS_COLUMNS}
        try:
            query = self.index.parse_query(
                text, list(SEARCH_FTS_COLUMNS), field_boosts=boosts, conjunction_by_default=every_clause
            )
            if self.overlay is not None and self.overlay.changed:
                # The disk's copies of changed documents are out of date (or deleted): leave them all out.
                outdated = tantivy.Query.term_set_query(self.index.schema, "rowid", self.overlay.changed)
                query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.MustNot, outdated)])
            found, matches = _hits(self.searcher, query, limit)
            if self.overlay is not None and self.overlay.index is not None:
                fresh_query = self.overlay.index.parse_query(
                    text, list(SEARCH_FTS_COLUMNS), field_boosts=boosts, conjunction_by_default=every_clause
                )
                fresh, fresh_matches = _hits(self.overlay.searcher, fresh_query, limit)
                found = sorted(found + fresh, key=lambda hit: -hit[1])[:limit]
                matches += fresh_matches
        except ValueError:
            return None
        return found, matches

    def mentioning(self, phrases: list[str], rowids: list[int]) -> set[int] | None:
        """Which of these documents contain any of the phrases (in any column); None where tantivy cannot
        parse them.  One query for all of them, however many: the filters' check of a quantity in free text."""
        import tantivy

        text = " OR ".join(_quoted(Term(phrase, "phrase")) for phrase in phrases)
        schema = self.index.schema
        try:
            among = [(tantivy.Occur.Must, tantivy.Query.term_set_query(schema, "rowid", rowids))]
            if self.overlay is not None and self.overlay.changed:
                among.append(
                    (tantivy.Occur.MustNot, tantivy.Query.term_set_query(schema, "rowid", self.overlay.changed))
                )
            query = self.index.parse_query(text, list(SEARCH_FTS_COLUMNS))
            found, _ = _hits(
                self.searcher, tantivy.Query.boolean_query([(tantivy.Occur.Must, query), *among]), len(rowids)
            )
            result = {rowid for rowid, _ in found}
            if self.overlay is not None and self.overlay.index is not None:
                overlay_schema = self.overlay.index.schema
                fresh = [(tantivy.Occur.Must, tantivy.Query.term_set_query(overlay_schema, "rowid", rowids))]
                query = self.overlay.index.parse_query(text, list(SEARCH_FTS_COLUMNS))
                found, _ = _hits(
                    self.overlay.searcher,
                    tantivy.Query.boolean_query([(tantivy.Occur.Must, query), *fresh]),
                    len(rowids),
                )
                result |= {rowid for rowid, _ in found}
        except ValueError:
            return None
        return result


def _hits(searcher, query, limit: int) -> tuple[list[tuple[int, float]], int]:
    result = searcher.search(query, limit, count=True)
    rowids = searcher.fast_field_values("rowid", [address for _, address in result.hits])
    return [(rowid, score) for rowid, (score, _) in zip(rowids, result.hits)], result.count


def _quoted(term: Term) -> str:
    # Inside quotes tantivy's query language has no operators; the words are tokenised like the documents.
    words = re.sub(r'["\\]', " ", term.text).strip()
    return f'"{words}"' + ("*" if term.kind == "prefix" else "") if words else '""'


_opened: dict[str, _Opened] = {}
_overlays: dict[str, _Overlay] = {}
_lock = threading.Lock()


def text_index(db: sqlite_utils.Database, min_documents: int | None = None) -> TextIndex | None:
    """The catalog's on-disk tantivy index as of now, or None where FTS5 should rank: a small catalog, no
    tantivy, no index (or a damaged one, or one far behind)."""
    folder = index_folder.indexes_folder(db)
    if folder is None or not available():
        return None
    state = index_folder.read_state(folder, STATE)  # before the index: what it holds is at least this generation
    if state is None or state.get("catalog") != index_folder.catalog_identity(db):
        return None
    if state["documents"] < (MIN_DOCUMENTS if min_documents is None else min_documents):
        return None
    key = str(folder)
    with _lock:
        opened = _open(key, folder, state)
        if opened is None:
            return None
        current = generation(db)
        if current < opened.generation:  # the catalog was restored from an older copy: this index is ahead of it
            return None
        if current == opened.generation:
            return TextIndex(opened.index, opened.searcher, None, opened.generation, 0, state["documents"])
        overlay = _overlay(db, key, opened, current)
        if overlay is None:
            return None
        return TextIndex(
            opened.index, opened.searcher, overlay, opened.generation, len(overlay.changed), state["documents"]
        )


def _open(key: str, folder, state: dict) -> _Opened | None:
    import tantivy

    opened = _opened.get(key)
    try:
        if opened is None or opened.folder != state["folder"]:
            index = tantivy.Index.open(str(folder / state["folder"]))
            opened = _Opened(state["folder"], state["generation"], index, index.searcher())
        elif opened.generation != state["generation"]:
            opened.index.reload()
            opened = _Opened(state["folder"], state["generation"], opened.index, opened.index.searcher())
    except (OSError, ValueError):
        _opened.pop(key, None)  # damaged, or replaced by a rebuild while we opened it: FTS5 answers this time
        return None
    _opened[key] = opened
    return opened


def _overlay(db: sqlite_utils.Database, key: str, opened: _Opened, current: int) -> _Overlay | None:
    cache_key = (opened.folder, opened.generation, current)
    cached = _overlays.get(key)
    if cached is not None and cached.key == cache_key:
        return cached
    changed = changed_since(db, opened.generation)
    if changed is None or len(changed) > MAX_OVERLAY:
        return None
    import tantivy

    index = tantivy.Index(_schema())
    writer = index.writer(heap_size=UPDATE_HEAP_BYTES, num_threads=1)
    added = 0
    for _, document in _documents(db, sorted(changed)):
        writer.add_document(document)
        added += 1
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    overlay = _Overlay(cache_key, sorted(changed), index if added else None, index.searcher() if added else None)
    _overlays[key] = overlay
    return overlay


def forget() -> None:
    """Close every opened index (for tests, and for a catalog replaced on disk)."""
    with _lock:
        _opened.clear()
        _overlays.clear()


# -- Checking ------------------------------------------------------------------------------------------


@dataclass
class CheckReport:
    """How the index and the catalog compare; ``agrees`` where every document the index should hold matches."""

    exists: bool
    index_generation: int = 0
    catalog_generation: int = 0
    documents_in_catalog: int = 0
    documents_in_index: int = 0
    missing: list[int] = field(default_factory=list)  # rowids the index lacks
    extra: list[int] = field(default_factory=list)  # rowids the index has and the catalog does not
    outdated: list[int] = field(default_factory=list)  # rowids whose indexed text is not the catalog's
    pending: int = 0  # documents changed since the index's generation (a reader ranks them apart)

    @property
    def agrees(self) -> bool:
        return self.exists and not (self.missing or self.extra or self.outdated)


def check(db: sqlite_utils.Database) -> CheckReport:
    """Compare every indexed document with the catalog: the documents changed since the index's generation are
    set aside (a reader takes them from the log), every other one must be there with the catalog's text."""
    import tantivy

    folder = index_folder.indexes_folder(db)
    state = index_folder.read_state(folder, STATE) if folder is not None else None
    report = CheckReport(exists=False, catalog_generation=generation(db))
    report.documents_in_catalog = db.execute("select count(*) from search_items").fetchone()[0]
    if state is None or state.get("catalog") != index_folder.catalog_identity(db):
        return report
    try:
        index = tantivy.Index.open(str(folder / state["folder"]))
        searcher = index.searcher()
        result = searcher.search(tantivy.Query.all_query(), max(searcher.num_docs, 1), count=True)
        addresses = [address for _, address in result.hits]
        indexed = dict(
            zip(searcher.fast_field_values("rowid", addresses), searcher.fast_field_values("doc_hash", addresses))
        )
    except (OSError, ValueError):
        return report
    report.exists = True
    report.index_generation = state["generation"]
    report.documents_in_index = len(indexed)
    pending = changed_since(db, state["generation"])
    if pending is None:  # the log no longer reaches back: every document must match as it is now
        pending = set()
    report.pending = len(pending)
    catalog = {rowid: short_hash(doc_hash) for rowid, doc_hash in db.execute("select id, doc_hash from search_items")}
    for rowid, doc_hash in catalog.items():
        if rowid in pending:
            continue
        if rowid not in indexed:
            report.missing.append(rowid)
        elif indexed[rowid] != doc_hash:
            report.outdated.append(rowid)
    report.extra = sorted(rowid for rowid in indexed if rowid not in catalog and rowid not in pending)
    return report
