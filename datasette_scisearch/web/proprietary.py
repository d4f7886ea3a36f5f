"""Datasette's own pages, JSON and SQL over a catalog that holds proprietary data.

Datasette's table pages cannot leave out rows per visitor, so a catalog that holds anything private — a proposal
still under its proprietary period (periods.py), or the ``people`` who are proposals' teams — is shown to whoever
is not staff through views that leave private rows out (``files_public``, ``sessions_public``,
``proposals_public``, ``tags_public``, ``links_public``, decided by SQLite's clock at each query), and its raw
tables, its downloads and SQL over it are staff's (``permission_allowed``).  Papers and instruments stay open.

SQL keeps working for everyone over the views: each catalog ``lab`` has a twin ``lab_public``, an in-memory
database whose connections attach the catalog read-only as ``catalog`` and name the views after the tables
(``select * from files`` there reads ``files_public``).  An authorizer on those connections refuses every read of
the catalog that does not go through a public view, so ``select * from catalog.files`` is refused; the twin holds
nothing of its own.

While nothing in a catalog is private (every period over, no people yet) its tables are what the views show, and
Datasette serves it as before.
"""

from __future__ import annotations

import urllib.parse
import weakref
from pathlib import Path

from datasette.database import Database
from datasette.utils.sqlite import sqlite3

from ..periods import PUBLIC_VIEWS, now_utc
from ..private import is_private_file
from .base import CHECKING_FOR_SCISEARCH, catalog_schema, is_staff, schemas

TWIN_SUFFIX = "_public"
# Tables that never hold anything private; the twin reads them as they are.
OPEN_TABLES = frozenset({"papers", "instruments", "catalog_info"})
# The twin's names for the views: what a visitor writes in SQL.
TWIN_VIEWS = {name.removesuffix("_public"): name for name in PUBLIC_VIEWS}
# Datasette's actions that read a database's rows or hand its file out, besides the table pages.
WHOLE_DATABASE_ACTIONS = frozenset({"execute-sql", "view-database-download"})
# Names, e-mails and which proposals are private now: staff's whatever else holds.
STAFF_TABLES = frozenset({"people", "proposal_people", "proposal_periods", "proposal_words_withheld"})

# Datasette -> {twin name: catalog path}
_twins: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def holds_private_data(datasette, database: str) -> bool:
    """Whether a catalog has a proposal under its period now, or people (names and e-mails), by the schema
    watcher's own connection: cheap enough for Datasette's many permission checks, and exact at each one."""
    db = datasette.databases.get(database)
    schema = catalog_schema(datasette, database)
    if db is None or schema is None or "proposal_periods" not in schema.tables:
        return False
    connection = schemas.connection(db)
    if connection is None:
        return True  # cannot tell: keep it closed
    try:
        row = connection.execute(
            "select exists(select 1 from proposal_periods where release_date > ?) or exists(select 1 from people)",
            [now_utc()],
        ).fetchone()
    except sqlite3.Error:
        return True
    return bool(row[0])


def permission_allowed(datasette, actor, action, resource):
    """Staff only for a catalog's raw tables, SQL and download while it holds private data; None otherwise."""
    if resource is None or CHECKING_FOR_SCISEARCH.get() or is_staff(datasette, actor):
        return None
    database = resource[0] if isinstance(resource, tuple | list) else resource
    table = resource[1] if isinstance(resource, tuple | list) and len(resource) > 1 else None
    schema = catalog_schema(datasette, database)
    if schema is None:
        return None
    if action == "view-table" and table in STAFF_TABLES:
        return False
    if action not in WHOLE_DATABASE_ACTIONS and not (action == "view-table" and table in schema.tables):
        return None  # views (the public ones among them), canned queries, the database page
    if action == "view-table" and table in OPEN_TABLES:
        return None
    if not holds_private_data(datasette, database):
        return None
    return False


# -- The SQL twin ------------------------------------------------------------------------------------------


def add_sql_twins(datasette) -> None:
    """Give each catalog served from a file its ``<name>_public`` twin for visitors' SQL (the start-up hook)."""
    twins = _twins.setdefault(datasette, {})
    for name, db in list(datasette.databases.items()):
        if not db.path or is_private_file(db.path) or name.endswith(TWIN_SUFFIX):
            continue
        schema = catalog_schema(datasette, name)
        if schema is None or "proposal_periods" not in schema.tables:
            continue  # not a catalog, or one from before periods (no views to read)
        twin = f"{name}{TWIN_SUFFIX}"
        if twin in datasette.databases:
            continue
        twins[twin] = str(Path(db.path).resolve())
        datasette.add_database(Database(datasette, is_memory=True), twin)


def prepare_twin_connection(conn, database: str, datasette) -> None:
    """A twin's connection: the catalog attached read-only, the views under the tables' names, the guard."""
    path = _twins.get(datasette, {}).get(database)
    if path is None:
        return
    conn.execute("attach database ? as catalog", [f"file:{urllib.parse.quote(path)}?mode=ro"])
    for name, view in TWIN_VIEWS.items():
        conn.execute(f"create temp view if not exists [{name}] as select * from catalog.[{view}]")
    for table in OPEN_TABLES:
        conn.execute(f"create temp view if not exists [{table}] as select * from catalog.[{table}]")
    conn.set_authorizer(_only_through_public_views)


ALLOWED_VIEWS = frozenset(PUBLIC_VIEWS) | frozenset(TWIN_VIEWS) | OPEN_TABLES


def _only_through_public_views(action, first, second, database, inner):
    # SQLite names the innermost view a read comes through (None for the query's own text): a read of the
    # catalog is allowed only through one of the public views, or of a table that holds nothing private.
    if action == sqlite3.SQLITE_READ and database == "catalog":
        if inner in ALLOWED_VIEWS or (inner is None and first in OPEN_TABLES):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK
