"""The catalog's private half: what names a person or what they searched, in a second file beside the catalog.

Datasette lets anyone who may see a database run SQL over all of it: hiding a
table hides it from the index page, not from ``?sql=``, ``.json`` or facets.  So
what must stay private cannot live in the catalog at all.  It lives in
``<catalog>.private.db`` beside it:

- the search log (``search_log``, ``search_impressions``, ``search_clicks``),
- what ``scisearch learn`` made of it (``click_signals``: queries people typed),
- who made each change to a tag (``change_actors``; the catalog's ``tag_history``
  keeps the change without the name),
- judged query–item pairs a facility imports (``judgments``, ``scisearch load
  judgments``): queries, like the log's, that the public should not read.

Datasette serves the file as ``<catalog>_private`` to staff only (the ``staff``
allow block, see ``web/privacy.py``); the command-line tool reads it directly.
A second file also keeps the site's log writes off the catalog's write lock, so a
busy site never makes a load or a tagging run wait.

Readers open it with their own connection, read-only: it is never ATTACHed to a
catalog connection, since a connection Datasette hands to anonymous SQL would then
see it too.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations
from sqlite_utils.utils import sqlite3

PRIVATE_SUFFIX = ".private.db"
PRIVATE_TABLES = ("search_log", "search_impressions", "search_clicks", "click_signals", "change_actors", "judgments")
MIGRATIONS = Migrations("datasette-scisearch-private")

__all__ = [
    "PRIVATE_SUFFIX",
    "PRIVATE_TABLES",
    "actors",
    "catalog_file",
    "is_private_file",
    "open_private",
    "private_path",
    "read_private",
    "record_actors",
]


def private_path(catalog: str | Path | None) -> Path | None:
    """``lab.db`` → ``lab.private.db``; None for a catalog that has no file (in memory)."""
    if not catalog or str(catalog) == ":memory:":
        return None
    catalog = Path(catalog)
    return catalog.with_name(catalog.stem + PRIVATE_SUFFIX)


def is_private_file(path: str | Path | None) -> bool:
    return bool(path) and str(path).endswith(PRIVATE_SUFFIX)


def catalog_file(db) -> str | None:
    """The file behind a catalog connection (sqlite_utils.Database or DB-API connection); None in memory."""
    conn = getattr(db, "conn", db)
    for _, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return file or None
    return None


def _where(catalog) -> Path | None:
    if isinstance(catalog, str | Path):
        return private_path(catalog)
    return private_path(catalog_file(catalog))


def open_private(catalog, create: bool = True) -> sqlite_utils.Database | None:
    """The private database of ``catalog`` (a path or an open catalog), migrated; None when the catalog is in
    memory, or when it has none yet and ``create`` is False."""
    path = _where(catalog)
    if path is None:
        return None
    if not create and not path.exists():
        return None
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA busy_timeout=30000")  # first: two writers may open it at once
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        db.execute("PRAGMA journal_mode=WAL")  # the site logs searches while `scisearch learn` reads
    _migrate(db)
    return db


def _migrate(db: sqlite_utils.Database, attempts: int = 100) -> None:
    """Apply pending migrations; two processes creating the file at once both end with it migrated (the loser's
    deferred transaction cannot wait for the winner's lock, so it looks again)."""
    for attempt in range(attempts):
        try:
            if MIGRATIONS.pending(db):
                MIGRATIONS.apply(db)
            return
        except sqlite3.OperationalError:
            if db.conn.in_transaction:
                db.conn.rollback()
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)


def read_private(catalog) -> sqlite3.Connection | None:
    """A read-only connection to the private database of ``catalog``, or None where it has none."""
    path = _where(catalog)
    if path is None or not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=1000")
        conn.execute("select 1 from sqlite_master limit 1")
    except sqlite3.Error:
        return None
    return conn


def record_actors(catalog, entries: list[tuple[int, str, str]]) -> None:
    """Who made which tag change: ``entries`` are (history id, actor id, changed_at)."""
    if not entries:
        return
    db = open_private(catalog)
    if db is None:
        return
    try:
        with db.conn:
            db.conn.executemany(
                "insert or replace into change_actors (history_id, actor, changed_at) values (?, ?, ?)", entries
            )
    finally:
        db.close()


def actors(catalog, history_ids) -> dict[int, str]:
    """history id -> who made that change, for the ids the private database knows."""
    ids = [int(history_id) for history_id in history_ids]
    conn = read_private(catalog) if ids else None
    if conn is None:
        return {}
    try:
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                conn.execute(f"select history_id, actor from change_actors where history_id in ({marks})", chunk)
            )
        return found
    except sqlite3.OperationalError:  # a private file from before change_actors: no names to give
        return {}
    finally:
        conn.close()


def create_log_tables(db: sqlite_utils.Database) -> None:
    """The search log and what ``scisearch learn`` makes of it."""
    # What people searched, what they were shown (in order) and what they opened; only the Datasette actor id.
    db["search_log"].create(
        {"id": int, "query": str, "query_key": str, "tab": str, "catalog": str, "actor": str, "created_at": str},
        pk="id",
    )
    db["search_log"].create_index(["query_key"])
    db["search_impressions"].create(
        {"search_id": int, "position": int, "item_type": str, "item_id": str},
        pk=("search_id", "position"),
        foreign_keys=[("search_id", "search_log", "id")],
    )
    db["search_clicks"].create(
        {
            "id": int,
            "search_id": int,
            "position": int,
            "item_type": str,
            "item_id": str,
            "actor": str,
            "clicked_at": str,
        },
        pk="id",
        foreign_keys=[("search_id", "search_log", "id")],
    )
    db["search_clicks"].create_index(["search_id"])
    # What 'scisearch learn' made of the clicks: a bounded, position-debiased boost per (query, item).
    db["click_signals"].create(
        {
            "query_key": str,
            "item_type": str,
            "item_id": str,
            "clicks": int,
            "impressions": int,
            "attractiveness": float,
            "boost": float,
            "updated_at": str,
        },
        pk=("query_key", "item_type", "item_id"),
    )


@MIGRATIONS()
def m001_logs_and_actors(db: sqlite_utils.Database) -> None:
    create_log_tables(db)
    # Who made each change of the catalog's tag_history (its id): the catalog keeps the change, not the name.
    db["change_actors"].create({"history_id": int, "actor": str, "changed_at": str}, pk="history_id")


@MIGRATIONS()
def m002_judgments(db: sqlite_utils.Database) -> None:
    # Judged (query, item) pairs a facility imports (TREC qrels or JSONL): evidence for learning the ranking.
    db["judgments"].create(
        {
            "query_id": str,
            "query": str,
            "item_type": str,
            "item_id": str,
            "relevance": int,
            "source": str,  # the file they came from
            "imported_at": str,
        },
        pk=("query_id", "item_type", "item_id"),
    )
