"""The catalog: one SQLite file, its schema (through migrations) and how to open it.

Every connection the tool opens has sqlite-vec loaded, so later vector tables
work the same from the CLI and from Datasette.  The schema only changes through
``MIGRATIONS``; the number of applied migrations is the recorded schema version.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import random
import secrets
import time
from pathlib import Path

import sqlite_utils
import sqlite_vec
from sqlite_utils import Migrations

from .errors import BUSY, ScisearchError

MIGRATIONS = Migrations("datasette-scisearch")

# The record tables a RecordLoader kind writes into, with their full-text columns.
RECORD_TABLES = {"userlog": "sessions", "proposals": "proposals", "papers": "papers"}
FTS_COLUMNS = {
    "files": ["name", "search_text"],
    "proposals": ["id", "title", "abstract"],
    "papers": ["title", "abstract", "authors", "funding", "full_text"],
    "sessions": ["instrument", "user", "proposal_id", "notes"],
}
ITEM_TYPES = ("file", "proposal", "paper", "session")
ITEM_TABLES = {"file": "files", "proposal": "proposals", "paper": "papers", "session": "sessions"}
SEARCH_FTS_COLUMNS = ["title", "body", "tags", "context"]
SEARCH_FTS_TOKENIZE = "porter unicode61"  # the search documents' FTS5 tokenizer (search/fts.py highlights with it too)
# The largest integer SQLite stores; a larger file id cannot exist.
MAX_SQLITE_INTEGER = 2**63 - 1


# Sharing the catalog between writers (loads, tagging, training, experts on the site): SQLite's own busy handler
# waits BUSY_TIMEOUT_MS for the write lock on each attempt; write_transaction then tries again with growing pauses
# until WRITE_PATIENCE_S have passed, so a writer waits out another one's long transaction instead of failing.
BUSY_TIMEOUT_MS = 5_000
WRITE_PATIENCE_S = 600.0
_FIRST_PAUSE_S = 0.05
_LONGEST_PAUSE_S = 2.0
# How long writers in this context wait in all; a web request waits less than a batch command (waiting_at_most).
_patience_s: contextvars.ContextVar[float | None] = contextvars.ContextVar("write_patience_s", default=None)


class CatalogError(ScisearchError):
    """The path is not a catalog this version can use; the message says what to do."""


class CatalogBusy(CatalogError):
    """Another program kept the catalog's write lock for longer than this one would wait."""

    kind = BUSY


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def load_sqlite_vec(connection) -> None:
    connection.enable_load_extension(True)
    sqlite_vec.load(connection)
    connection.enable_load_extension(False)


def open_catalog(path: str | Path, create: bool = True) -> sqlite_utils.Database:
    """Open (and migrate) the catalog at ``path``; with ``create=False`` a missing or empty file is an error.

    Refused with a CatalogError that says what to do: a folder, a file that is not SQLite, an SQLite
    database that is not a catalog (migrating it would turn someone's database into one), and a catalog
    written by a newer datasette-scisearch.
    """
    path = Path(path)
    if not create and not path.exists():
        raise CatalogError(f"no catalog at '{path}'", fix=f"build one with 'scisearch load files {path} DIR'")
    if path.exists():
        check_catalog_file(path, allow_empty=create)
    db = sqlite_utils.Database(path)
    load_sqlite_vec(db.conn)
    read_through_memory_map(db.conn)
    share_between_writers(db)
    if MIGRATIONS.pending(db):
        # Two commands opening a new catalog at once must not both create its tables: the second waits for the
        # write lock, then finds nothing left to do.
        with write_transaction(db):
            if MIGRATIONS.pending(db):
                MIGRATIONS.apply(db)
                # other tools (and other catalogs' readers) read the version from here
                db["catalog_info"].upsert({"key": "schema_version", "value": str(schema_version(db))}, pk="key")
    return db


# A search looks up a few thousand rows scattered over the catalog (the pool's item types, facets, the filters'
# check of tantivy's best matches), most of them a page of their own.  Through a memory map those pages are read
# from the operating system's cache without a read() call and a copy each (the pool's item types at 100,000 items:
# 3.3 -> 0.8 ms), and they are shared by every process instead of filling each connection's own page cache.
MMAP_BYTES = 2**36  # 64 GiB of address space, not memory; a SQLite built with a lower ceiling maps up to it


def read_through_memory_map(conn) -> None:
    """Let this connection read the catalog through a memory map (writes still go through the WAL)."""
    conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")


def share_between_writers(db: sqlite_utils.Database) -> None:
    """WAL, so that readers (a served site, a search) never wait for a writer nor a writer for them, and the busy
    timeout each write attempt waits for the lock.  Every connection the package writes through is set up so."""
    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        retry_when_busy(lambda: db.execute("PRAGMA journal_mode=WAL"), doing="switching the catalog to WAL")
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def is_busy(error: BaseException) -> bool:
    """SQLite's "database is locked" / "database is busy": another connection holds the lock."""
    text = str(error).lower()
    return isinstance(error, sqlite3_errors()) and ("locked" in text or "busy" in text)


def sqlite3_errors() -> tuple[type, ...]:
    """The OperationalError classes of the SQLite modules in use (pysqlite3 here, the standard one in tests)."""
    import sqlite3

    classes = {sqlite3.OperationalError}
    with contextlib.suppress(ImportError):
        import pysqlite3.dbapi2

        classes.add(pysqlite3.dbapi2.OperationalError)
    return tuple(classes)


def retry_when_busy(work, *, doing: str, patience_s: float | None = None):
    """``work()``, tried again with growing, jittered pauses while SQLite says the catalog is locked, for up to
    ``patience_s`` in all; then CatalogBusy, which says what was waited for.  ``work`` must be safe to run again
    after a busy error (a statement that failed whole, a transaction rolled back whole)."""
    if patience_s is None:
        patience_s = WRITE_PATIENCE_S if _patience_s.get() is None else _patience_s.get()
    began = time.monotonic()
    pause = _FIRST_PAUSE_S
    while True:
        try:
            return work()
        except sqlite3_errors() as error:
            if not is_busy(error):
                raise
            waited = time.monotonic() - began
            if waited >= patience_s:
                raise CatalogBusy(
                    f"the catalog stayed locked by another program for {waited:.0f} s while {doing}",
                    fix="see which job holds it with 'scisearch status', wait for it to finish, then run this again",
                ) from None
            time.sleep(min(pause * random.uniform(0.5, 1.5), max(0.0, patience_s - waited)))
            pause = min(pause * 2, _LONGEST_PAUSE_S)


@contextlib.contextmanager
def waiting_at_most(seconds: float):
    """Writers inside wait at most ``seconds`` for the catalog (a web request answers "busy, try again" rather than
    hang for the ten minutes a batch command may wait)."""
    token = _patience_s.set(seconds)
    try:
        yield
    finally:
        _patience_s.reset(token)


def begin_write(db: sqlite_utils.Database, *, patience_s: float | None = None) -> None:
    """BEGIN IMMEDIATE, waiting (busy timeout, then backoff) while another writer holds the lock; for code that
    commits or rolls back itself (write_transaction does both for a block)."""
    retry_when_busy(lambda: db.conn.execute("BEGIN IMMEDIATE"), doing="waiting to write", patience_s=patience_s)


@contextlib.contextmanager
def write_transaction(db: sqlite_utils.Database, *, patience_s: float | None = None):
    """One write transaction taken with the write lock at once (BEGIN IMMEDIATE), the one way the package writes
    to a catalog.  A writer that must wait, waits before it has read anything: SQLite's busy timeout, then
    retries with backoff (``retry_when_busy``), never half-way through its work — a deferred transaction that
    read first can find its snapshot stale when it starts writing, and fails at once whatever the timeout.
    Everything inside commits together or not at all.  Inside a transaction already open (the caller's), it is
    a savepoint of that one; sqlite-utils' own writes nest inside it as savepoints too."""
    if db.conn.in_transaction:
        savepoint = f"scisearch_{secrets.token_hex(8)}"
        db.conn.execute(f"SAVEPOINT {savepoint}")
        try:
            yield db
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                db.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
            raise
        else:
            db.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
        return
    begin_write(db, patience_s=patience_s)
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        # In WAL a transaction holding the write lock commits without waiting; repeat only what cannot have begun.
        retry_when_busy(lambda: db.conn.execute("COMMIT"), doing="committing", patience_s=patience_s)


def check_catalog_file(path: str | Path, allow_empty: bool = False) -> None:
    """Raise CatalogError, saying what to do, unless ``path`` is a catalog this code can open (an older one is
    fine: opening migrates it); ``allow_empty`` lets an empty file through, which opening makes a catalog."""
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"no catalog at '{path}'", fix=f"build one with 'scisearch load files {path} DIR'")
    if path.is_dir():
        raise CatalogError(f"'{path}' is a folder, not a catalog file")
    if path.stat().st_size:
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise CatalogError(f"'{path}' is not an SQLite database, so not a catalog")
    db = sqlite_utils.Database(path)
    try:
        tables = set(db.table_names())
        if not tables:
            if allow_empty:
                return
            raise CatalogError(
                f"'{path}' is empty, not a catalog yet", fix=f"build one with 'scisearch load files {path} DIR'"
            )
        if "catalog_info" not in tables:
            shown = ", ".join(sorted(tables)[:5]) + (" …" if len(tables) > 5 else "")
            raise CatalogError(
                f"'{path}' is an SQLite database but not a scisearch catalog (its tables: {shown})",
                fix="give a catalog made by 'scisearch load'",
            )
        version, newer = catalog_schema_version(db)
        if newer:
            raise CatalogError(
                f"'{path}' has a newer catalog schema (version {version}) than this datasette-scisearch knows "
                f"({CURRENT_SCHEMA_VERSION})",
                fix="upgrade datasette-scisearch to use it",
            )
    finally:
        db.close()


def schema_version(db: sqlite_utils.Database) -> int:
    """How many of this package's migrations the catalog has had: 1 is the first schema."""
    return len(MIGRATIONS.applied(db))


def catalog_schema_version(db: sqlite_utils.Database) -> tuple[int, bool]:
    """The catalog's schema version, and whether it has migrations this code does not know (a newer version)."""
    applied = [migration.name for migration in MIGRATIONS.applied(db)]
    recorded = 0
    if "catalog_info" in db.table_names():
        row = db.execute("select value from catalog_info where key = 'schema_version'").fetchone()
        if row and str(row[0]).strip().isdigit():
            recorded = int(row[0])
    newer = any(name not in KNOWN_MIGRATIONS for name in applied) or recorded > CURRENT_SCHEMA_VERSION
    return max(len(applied), recorded), newer


@MIGRATIONS()
def m001_catalog(db: sqlite_utils.Database) -> None:
    db["catalog_info"].create({"key": str, "value": str}, pk="key")
    db["catalog_info"].insert_all(
        [
            {"key": "created_at", "value": now_utc()},
            {"key": "created_by", "value": "datasette-scisearch"},
        ]
    )
    db["instruments"].create({"name": str, "description": str, "reported_as": str, "first_seen": str}, pk="name")
    db["proposals"].create(
        {
            "id": str,
            "title": str,
            "abstract": str,
            "pi": str,
            "institution": str,
            "division": str,
            "programs": str,
            "start_date": str,
            "end_date": str,
            "amount": float,
            "details": str,
            "source": str,
            "loaded_at": str,
        },
        pk="id",
    )
    db["sessions"].create(
        {
            "id": str,
            "instrument": str,
            "user": str,
            "start": str,
            "end": str,
            "proposal_id": str,
            "notes": str,
            "details": str,
            "source": str,
            "loaded_at": str,
        },
        pk="id",
        foreign_keys=[("instrument", "instruments", "name"), ("proposal_id", "proposals", "id")],
    )
    db["sessions"].create_index(["instrument", "start"])
    db["papers"].create(
        {
            "id": str,
            "title": str,
            "abstract": str,
            "authors": str,
            "year": int,
            "published": str,
            "doi": str,
            "venue": str,
            "funding": str,
            "full_text": str,
            "details": str,
            "source": str,
            "loaded_at": str,
        },
        pk="id",
    )
    # Column order is what Datasette shows: the preview and the facts a researcher scans first.
    db["files"].create(
        {
            "id": int,
            "preview": str,
            "name": str,
            "kind": str,
            "instrument": str,
            "acquired_local": str,
            "mode": str,
            "detector": str,
            "voltage_kv": float,
            "magnification": float,
            "pixel_size_nm": float,
            "camera_length_mm": float,
            "shape": str,
            "session_id": str,
            "proposal_id": str,
            "path": str,
            "folder": str,
            "format": str,
            "dataset": int,
            "dataset_name": str,
            "dtype": str,
            "instrument_reported": str,
            "acquired_at": str,
            "acquired_at_source": str,
            "size_bytes": int,
            "sha256": str,
            "modified_at": str,
            "search_text": str,
            "metadata": str,
            "loader": str,
            "loaded_at": str,
        },
        pk="id",
        foreign_keys=[
            ("instrument", "instruments", "name"),
            ("session_id", "sessions", "id"),
            ("proposal_id", "proposals", "id"),
        ],
    )
    db["files"].create_index(["path", "dataset"], unique=True)
    db["files"].create_index(["sha256"])
    db["files"].create_index(["instrument", "acquired_at"])
    db["previews"].create(
        {"file_id": int, "png": bytes, "width": int, "height": int},
        pk="file_id",
        foreign_keys=[("file_id", "files", "id")],
    )
    db["links"].create(
        {
            "id": int,
            "from_type": str,
            "from_id": str,
            "to_type": str,
            "to_id": str,
            "method": str,
            "evidence": str,
            "confidence": float,
            "created_at": str,
        },
        pk="id",
    )
    db["links"].create_index(["from_type", "from_id", "to_type", "to_id"], unique=True)
    db["links"].create_index(["to_type", "to_id"])
    db["tags"].create(
        {
            "id": int,
            "item_type": str,
            "item_id": str,
            "tag": str,
            "score": float,
            "source": str,
            "source_version": str,
            "status": str,  # machine, accepted, rejected, added
            "evidence": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db["tags"].create_index(["item_type", "item_id"])
    db["tags"].create_index(["tag"])
    db["tag_history"].create(
        {
            "id": int,
            "tag_id": int,
            "changed_at": str,
            "actor": str,
            "action": str,
            "old_value": str,
            "new_value": str,
        },
        pk="id",
        foreign_keys=[("tag_id", "tags", "id")],
    )
    db["jobs"].create(
        {
            "id": int,
            "command": str,
            "arguments": str,
            "status": str,  # running, done, failed, interrupted
            "started_at": str,
            "finished_at": str,
            "total": int,
            "succeeded": int,
            "skipped": int,
            "failed": int,
            "summary": str,
            "pid": int,
        },
        pk="id",
    )
    db["ingest_errors"].create(
        {
            "id": int,
            "source": str,
            "line": int,  # 0 for a whole file
            "loader": str,
            "message": str,
            "job_id": int,
            "first_seen": str,
            "last_seen": str,
            "attempts": int,
        },
        pk="id",
        foreign_keys=[("job_id", "jobs", "id")],
    )
    db["ingest_errors"].create_index(["source", "line"], unique=True)
    for table, columns in FTS_COLUMNS.items():
        db[table].enable_fts(columns, create_triggers=True, tokenize="porter unicode61")
        _reindex_only_when_text_changes(db, table, columns)


@MIGRATIONS()
def m002_tagging_and_search(db: sqlite_utils.Database) -> None:
    """Tag provenance per run, one search document per item, and the registry of vector spaces."""
    # A tag inherited along a link ("via proposal P-12") says where it came from.
    db["tags"].add_column("via", str)
    db["tags"].create_index(["item_type", "item_id", "source"])
    # One row per (tagger, item): which version tagged which content, so re-runs skip what is current
    # and an interrupted run resumes where it stopped.
    db["tag_runs"].create(
        {
            "tagger": str,
            "item_type": str,
            "item_id": str,
            "tagger_version": str,
            "fingerprint": str,
            "status": str,  # done, error
            "message": str,
            "job_id": int,
            "ran_at": str,
        },
        pk=("tagger", "item_type", "item_id"),
    )
    # Every searchable item as one document; its integer id is the rowid of its vectors.
    db["search_items"].create(
        {
            "id": int,
            "item_type": str,
            "item_id": str,
            "title": str,
            "body": str,
            "tags": str,
            "context": str,
            "doc_hash": str,
            "updated_at": str,
        },
        pk="id",
    )
    db["search_items"].create_index(["item_type", "item_id"], unique=True)
    db["search_items"].enable_fts(SEARCH_FTS_COLUMNS, create_triggers=True, tokenize=SEARCH_FTS_TOKENIZE)
    _reindex_only_when_text_changes(db, "search_items", SEARCH_FTS_COLUMNS)
    db["vector_spaces"].create(
        {"name": str, "dimensions": int, "tagger": str, "model": str, "table_name": str, "created_at": str},
        pk="name",
    )


@MIGRATIONS()
def m003_experts_learning_and_clicks(db: sqlite_utils.Database) -> None:
    """Experts' edits as readable history, learned tag sets, and the search log that clicks are learned from."""
    # History must stay readable after the tag itself is edited or removed, so each entry names its item and text.
    for column in ("item_type", "item_id", "tag", "source"):
        db["tag_history"].add_column(column, str)
    db["tag_history"].create_index(["tag_id"])
    db["tag_history"].create_index(["item_type", "item_id"])
    # One row per training of a tag set; the head's weights live here so the catalog stays one file.
    db["learned_models"].create(
        {
            "id": int,
            "tag_set": str,  # the expert's name for the set of classes, e.g. "morphology"
            "version": int,  # its tags have source "learned:<tag_set>.v<version>"
            "classes": str,  # JSON list
            "feature_space": str,  # the vector space its frozen features come from (clip, image_features)
            "labels": int,
            "cv_accuracy": float,
            "baseline_accuracy": float,
            "report": str,  # JSON: per-class counts, folds, confusion, baseline used
            "weights": bytes,  # numpy .npz of the trained head
            "status": str,  # current, retired
            "trained_at": str,
            "trained_by": str,
        },
        pk="id",
    )
    db["learned_models"].create_index(["tag_set", "version"], unique=True)
    # The learned tagger's doubt per item: the queue page offers the least certain items first.
    db["learned_predictions"].create(
        {"model_id": int, "item_type": str, "item_id": str, "label": str, "probability": float, "margin": float},
        pk=("model_id", "item_type", "item_id"),
        foreign_keys=[("model_id", "learned_models", "id")],
    )
    db["learned_predictions"].create_index(["model_id", "margin"])
    # The search log and click signals were created here until m005 moved them to the private database; an older
    # catalog migrates through them, so they are still made here (from the one definition) and dropped by m005.
    from .private import create_log_tables

    create_log_tables(db)


@MIGRATIONS()
def m004_tag_ids_are_never_reused(db: sqlite_utils.Database) -> None:
    """A tag's id is what its history refers to: a retraining that deletes old learned tags and writes new ones must
    not hand a deleted tag's id (and so its history) to a new tag, so ids come from AUTOINCREMENT from now on."""
    columns = "item_type, item_id, tag, score, source, source_version, status, evidence, created_at, updated_at, via"
    db.execute(
        """create table tags_new (id integer primary key autoincrement, item_type text, item_id text, tag text,
           score real, source text, source_version text, status text, evidence text, created_at text,
           updated_at text, via text)"""
    )
    db.execute(f"insert into tags_new (id, {columns}) select id, {columns} from tags")
    db.execute("drop table tags")
    db.execute("alter table tags_new rename to tags")
    db["tags"].create_index(["item_type", "item_id"])
    db["tags"].create_index(["tag"])
    db["tags"].create_index(["item_type", "item_id", "source"])
    # Ids already reused or referred to by history stay taken: start above both.
    db.execute(
        """insert into sqlite_sequence (name, seq) values ('tags', max(
             coalesce((select max(id) from tags), 0), coalesce((select max(tag_id) from tag_history), 0)))"""
    )


@MIGRATIONS()
def m005_private_rows_leave_the_catalog(db: sqlite_utils.Database) -> None:
    """Anyone who may read the catalog may run SQL over all of it, so the search log, the click signals (queries
    people typed) and the names in tag_history move to the private database beside it (``private.py``).  Rows are
    copied with their ids first; a copy interrupted before this migration commits is simply made again."""
    from .private import PRIVATE_TABLES, open_private

    moving = [table for table in PRIVATE_TABLES if table in db.table_names()]
    private = open_private(db)
    if private is not None:
        try:
            with private.conn:
                for table in moving:
                    columns = [column.name for column in db[table].columns]
                    rows = db.execute(f"select {', '.join(columns)} from [{table}]").fetchall()
                    private.conn.executemany(
                        f"insert or replace into [{table}] ({', '.join(columns)}) "
                        f"values ({', '.join('?' * len(columns))})",
                        rows,
                    )
                private.conn.executemany(
                    "insert or replace into change_actors (history_id, actor, changed_at) values (?, ?, ?)",
                    db.execute("select id, actor, changed_at from tag_history where actor is not null").fetchall(),
                )
        finally:
            private.close()
    for table in ("search_clicks", "search_impressions", "search_log", "click_signals"):
        if table in moving:
            db.execute(f"drop table [{table}]")
    db.execute("update tag_history set actor = null where actor is not null")


@MIGRATIONS()
def m006_search_index_change_logs(db: sqlite_utils.Database) -> None:
    """The on-disk indexes beside the catalog (search/text_index.py, search/mapped_vectors.py) record the
    generation they reflect; these logs say which search documents and which vectors changed after any
    generation, so an index that is behind can take just those.  Triggers write the documents' log, so every
    writer of ``search_items`` is covered; ``vectors.write_vectors`` writes the vectors' (sqlite-vec tables take
    no triggers).  A generation is its log's AUTOINCREMENT counter, which keeps counting after old entries are
    pruned."""
    db.execute("create table search_changes (seq integer primary key autoincrement, item_rowid integer not null)")
    db.execute("insert into sqlite_sequence (name, seq) values ('search_changes', 0)")
    db.execute(
        "create table vector_changes (seq integer primary key autoincrement, space text not null, "
        "item_rowid integer not null)"
    )
    db.execute("create index vector_changes_by_space on vector_changes (space, seq)")
    # created_at has whole seconds: two catalogs made at one path within a second need something else apart.
    db.execute("insert or ignore into catalog_info (key, value) values ('catalog_uid', lower(hex(randomblob(16))))")
    for event, row in (("insert", "new"), ("update of title, body, tags, context", "new"), ("delete", "old")):
        name = event.split()[0]
        db.execute(
            f"""create trigger search_items_log_{name} after {event} on search_items
                begin insert into search_changes (item_rowid) values ({row}.id); end"""
        )


@MIGRATIONS()
def m007_data_roots_and_remembered_failures(db: sqlite_utils.Database) -> None:
    """Every folder given to a load is a data root (what may be read, served and watched), and a file that failed
    keeps the size and modification time it failed with, so that a second load does not read it again."""
    db["data_roots"].create({"path": str, "first_loaded_at": str, "last_loaded_at": str, "last_job_id": int}, pk="path")
    db["ingest_errors"].add_column("size_bytes", int)
    db["ingest_errors"].add_column("modified_at", str)


@MIGRATIONS()
def m008_ranking_models(db: sqlite_utils.Database) -> None:
    """Learned ranking, versioned like taggers: fusion weights fitted from the evidence (``learning/fusion.py``)
    and fine-tuned text encoders (``learning/encoder.py``).  One row per fit; the one in use is 'current', the
    ones before it 'retired' (kept for rollback), a fit that measured worse 'refused' with its report."""
    db["ranking_models"].create(
        {
            "id": int,
            "kind": str,  # fusion, encoder
            "version": int,
            "weights": str,  # JSON: the fitted fusion weights and floors (fusion)
            "model_path": str,  # the fine-tuned sentence-transformers folder (encoder)
            "vector_space": str,  # the vector space its vectors are written to (encoder)
            "evidence": str,  # JSON: how many queries of each kind it learned from
            "report": str,  # JSON: held-out figures and settings
            "ndcg_before": float,  # held-out nDCG@10 with what was in use
            "ndcg_after": float,  # held-out nDCG@10 with this fit
            "status": str,  # current, retired, refused, embedding, rolled back
            "created_at": str,
        },
        pk="id",
    )
    db["ranking_models"].create_index(["kind", "version"], unique=True)


@MIGRATIONS()
def m009_facility_image_models(db: sqlite_utils.Database) -> None:
    """The facility's own image encoder (learning/pretrain.py): one row per training, weights and report inside, so
    the catalog stays one file and every vector of the ``facility_image`` space names the version that made it."""
    db["image_models"].create(
        {
            "id": int,
            "space": str,  # the vector space its image vectors fill
            "version": int,
            "architecture": str,  # JSON: the open_clip model config it was built from
            "images": int,  # previews it was trained on
            "report": str,  # JSON: labels learned, losses per epoch, timings
            "weights": bytes,  # torch state dict: vision tower, MiniLM projection, label heads
            "status": str,  # current, retired
            "trained_at": str,
            "trained_by": str,
        },
        pk="id",
    )
    db["image_models"].create_index(["space", "version"], unique=True)


@MIGRATIONS()
def m010_job_heartbeats_and_errors(db: sqlite_utils.Database) -> None:
    """A job tells whether its process is still alive (the host it runs on, a heartbeat its process stamps) and, when
    it failed or was interrupted, what stopped it: no job reads 'done' after a crash, none 'running' for ever."""
    db["jobs"].add_column("host", str)
    db["jobs"].add_column("heartbeat_at", str)
    db["jobs"].add_column("error", str)


@MIGRATIONS()
def m011_proprietary_periods_and_people(db: sqlite_utils.Database) -> None:
    """Proprietary periods (periods.py): people and the proposals they are the team of, each proposal's release
    date, and the public views that Datasette shows whoever is not staff.  Dates start from the default period;
    the next load recomputes them with the facility's ``proprietary_period_days``."""
    from . import periods

    db["people"].create(
        {"id": int, "name": str, "email": str, "account_id": str, "added_at": str}, pk="id", not_null={"name"}
    )
    db["people"].create_index(["email"], unique=True)
    db["people"].create_index(["account_id"], unique=True)
    db["proposal_people"].create(
        {"proposal_id": str, "person_id": int, "role": str, "source": str},
        pk=("proposal_id", "person_id", "role"),
        foreign_keys=[("person_id", "people", "id")],
    )
    db["proposal_people"].create_index(["person_id"])
    db["proposal_periods"].create(
        {"proposal_id": str, "release_date": str, "source": str}, pk="proposal_id", not_null={"release_date"}
    )
    db["proposal_periods"].create_index(["release_date"])
    periods.update_release_dates(db)
    periods.create_public_views(db)


@MIGRATIONS()
def m012_tag_categories(db: sqlite_utils.Database) -> None:
    """Each tag says what it is about (material, technique, instrument settings …; ``tagging.tagger.TAG_CATEGORIES``)
    so pages group tags as a microscopist reads them.  Tags written before have none and show as "other" until their
    tagger runs again (the built-in taggers' versions went up with this, so the next ``scisearch tag`` does it)."""
    db["tags"].add_column("category", str)
    db["tags"].create_index(["tag", "category"])


@MIGRATIONS()
def m013_spectra_and_frames(db: sqlite_utils.Database) -> None:
    """What the item page plots and steps through, made at load (``ingest/views.py``) so the server never reads an
    instrument file: a spectrum's points with its axis and units, and a few frames of a stack or 4D scan.  Files
    loaded before have neither until they are read again (a reader's new version, or the file changing)."""
    db["spectra"].create(
        {
            "file_id": int,
            "x": str,  # JSON list, in x_unit
            "y": str,  # JSON list, in y_unit
            "x_label": str,  # energy, energy loss, channel, position
            "x_unit": str,  # eV, keV, nm, or '' for channels
            "y_label": str,
            "y_unit": str,
            "summed_over": int,  # scan positions added up (a spectrum image's spectrum)
            "channels": int,  # channels before binning for the plot
        },
        pk="file_id",
        foreign_keys=[("file_id", "files", "id")],
    )
    db["frames"].create(
        {"file_id": int, "frame": int, "label": str, "png": bytes, "width": int, "height": int, "frames_total": int},
        pk=("file_id", "frame"),
        foreign_keys=[("file_id", "files", "id")],
    )


@MIGRATIONS()
def m014_encoder_vectors(db: sqlite_utils.Database) -> None:
    """A tuned text encoder's vectors, made beside the ones in use until all are ready (learning/encoder_switch.py),
    and the ones it replaced, kept for rollback; a vector space pinned to the model folder its vectors came from."""
    db["encoder_vectors"].create(
        {"space": str, "version": int, "item_rowid": int, "embedding": bytes},  # embedding null: the model refused
        pk=("space", "version", "item_rowid"),
    )
    db["vector_spaces"].add_column("model_path", str)


@MIGRATIONS()
def m015_files_missing_from_their_folder(db: sqlite_utils.Database) -> None:
    """When a catalogued file was found gone from its folder (deleted, or moved where no load has seen it): its row,
    preview and tags stay — the data may be archived — and ``missing_since`` says since when (null: on disk)."""
    db["files"].add_column("missing_since", str)


@MIGRATIONS()
def m016_proposal_words_withheld(db: sqlite_utils.Database) -> None:
    """The proposals whose words some public paper's search document leaves out while their period runs
    (periods.py), so that the words join the moment it ends.  It starts empty: documents built before hold every
    acknowledged proposal's words, so each one under its period now is due (``periods.words_due``) and the next
    request or change rebuilds its papers' documents.  The public views are made again: ``links_public`` now
    leaves out links to a private file or session too.  A person says who added them: staff, or a sign-in
    (people.py)."""
    from . import periods

    periods.create_public_views(db)
    db["people"].add_column("added_by", str)  # 'staff', or 'sign-in' for a row a sign-in made (people.py)
    db.execute("update people set added_by = 'staff'")
    db["proposal_words_withheld"].create({"proposal_id": str}, pk="proposal_id")


def _reindex_only_when_text_changes(db: sqlite_utils.Database, table: str, columns: list[str]) -> None:
    """sqlite-utils' update trigger re-indexes a row whatever column changed; linking a million
    files to their sessions must not rewrite a million full-text entries."""
    quoted = ", ".join(f'"{column}"' for column in columns)
    old_values = ", ".join(f'old."{column}"' for column in columns)
    new_values = ", ".join(f'new."{column}"' for column in columns)
    db.execute(f'DROP TRIGGER "{table}_au"')
    db.execute(
        f"""CREATE TRIGGER "{table}_au" AFTER UPDATE OF {quoted} ON "{table}" BEGIN
  INSERT INTO "{table}_fts" ("{table}_fts", rowid, {quoted}) VALUES('delete', old.rowid, {old_values});
  INSERT INTO "{table}_fts" (rowid, {quoted}) VALUES (new.rowid, {new_values});
END"""
    )


def item_key(item_type: str, item_id) -> str | int | None:
    """The primary-key value of an item as its table holds it (files are keyed by an integer, so '01' is file 1),
    or None when no such item can exist."""
    if item_type not in ITEM_TABLES:
        return None
    key = str(item_id)
    if item_type != "file":
        return key
    if not key.isascii() or not key.isdigit() or int(key) > MAX_SQLITE_INTEGER:
        return None
    return int(key)


def item_counts(db: sqlite_utils.Database) -> dict[str, int]:
    return {
        table: db[table].count
        for table in ("files", "sessions", "proposals", "papers", "links", "tags", "ingest_errors")
    }


def to_json(value) -> str:
    """JSON for raw metadata: numpy scalars, bytes and dates become plain values."""
    return json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=True)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


# Every migration this code defines is pending on an empty database; sqlite-utils has no other public list.
KNOWN_MIGRATIONS = [migration.name for migration in MIGRATIONS.pending(sqlite_utils.Database(memory=True))]
CURRENT_SCHEMA_VERSION = len(KNOWN_MIGRATIONS)
