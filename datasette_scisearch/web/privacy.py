"""Who may read what names a person: the private database beside each catalog, served to staff only.

Each catalog ``lab.db`` has ``lab.private.db`` beside it (``private.py``): the
search log, the click signals and who made each tag change.  At start-up the
private database of every mutable catalog Datasette serves is attached as
``lab_private``.  Every route into a private database — its pages, ``.json``,
SQL, canned queries, facets, downloads — needs the ``staff`` allow block::

    plugins:
      datasette-scisearch:
        staff:
          allow: {id: [root]}

Without the block only root (``datasette --root``) is staff.  A private database
is recognised by its file name, so one served by name (``datasette lab.db
lab.private.db``) is guarded the same way.

Datasette does not change the files it serves, so a catalog from before the
private file (schema 4 or older, its log still inside) is not migrated here: its
log tables and SQL over it are for staff until ``scisearch`` opens it once.
"""

from __future__ import annotations

from pathlib import Path

from datasette.database import Database

from ..private import PRIVATE_TABLES, is_private_file, open_private, private_path
from .base import is_staff, schemas

PLUGIN_NAME = "datasette-scisearch"
# Everything Datasette checks before it reads a database or a table in it, or hands its file out.
READING_ACTIONS = frozenset(
    {
        "view-database",
        "view-database-download",
        "view-table",
        "view-query",
        "execute-sql",
        "insert-row",
        "delete-row",
        "update-row",
        "create-table",
        "alter-table",
        "drop-table",
    }
)


def is_private_database(datasette, name: str | None) -> bool:
    db = datasette.databases.get(name) if name else None
    return db is not None and is_private_file(db.path)


def legacy_private_tables(datasette, name: str | None) -> frozenset[str]:
    """The private tables an older catalog still holds (it has not been opened by this version's scisearch)."""
    db = datasette.databases.get(name) if name else None
    if db is None or is_private_file(db.path):
        return frozenset()
    return schemas.schema(db).tables & frozenset(PRIVATE_TABLES)


def permission_allowed(datasette, actor, action, resource):
    """Datasette's permission hook for private data: staff only, whatever other rules say."""
    if action not in READING_ACTIONS or resource is None:
        return None
    database = resource[0] if isinstance(resource, tuple | list) else resource
    table = resource[1] if isinstance(resource, tuple | list) and len(resource) > 1 else None
    if is_private_database(datasette, database):
        return is_staff(datasette, actor)
    legacy = legacy_private_tables(datasette, database)
    if legacy and (action in ("execute-sql", "view-database-download") or table in legacy):
        return is_staff(datasette, actor)
    return None


def private_database(datasette, catalog_db) -> Database | None:
    """The Datasette Database of a catalog's private half, or None (a catalog served immutable, or in memory)."""
    path = private_path(catalog_db.path)
    if path is None:
        return None
    for db in datasette.databases.values():
        if db.path and Path(db.path).resolve() == path.resolve():
            return db
    return None


def attach_private_databases(datasette) -> None:
    """Serve each mutable, current catalog's private half to staff (the start-up hook)."""
    for name, db in list(datasette.databases.items()):
        if not db.is_mutable or not db.path or is_private_file(db.path) or private_database(datasette, db):
            continue
        schema = schemas.schema(db)
        if not schema.is_catalog or schema.tables & frozenset(PRIVATE_TABLES):
            continue  # not a catalog, or one whose log is still inside (see above)
        log = open_private(db.path)
        log.close()
        private_name = f"{name}_private"
        datasette.add_database(Database(datasette, path=str(private_path(db.path)), is_mutable=True), private_name)
