"""The base every scisearch view stands on: which catalog a request means, what its actor may read, one error
type, and every URL the pages link to.

- ``find_catalog`` / ``find_catalogs`` turn a ``db=`` parameter or a URL's database route into Datasette
  Databases that are scisearch catalogs (``catalog_schema`` decides which are).
- ``readable_item`` / ``readable_items`` answer "may this actor read this item": the one rule that downloads,
  exports, the item page's JSON-LD, the sitemap and the DataCite export ask, so that a rule narrowing what a
  visitor sees per item (proprietary periods) holds by each of those routes at once.
- ``readable_item_types`` answers, once per request, which item tables (files, proposals, papers,
  sessions) the actor may see under metadata.yml's table-level ``allow`` rules: the item JSON, "similar",
  the search hits and the HTML pages all ask it, so a table rule holds by every route.
- ``WebError`` (a ``ScisearchError``) is the error a view raises for bad input, something missing or
  something refused; web/errors.py answers it as a 400/403/404 page, or JSON for a JSON client.
- ``hidden_proposals`` answers, once per request, which proposals' data the actor may not see now (still under
  their proprietary period, and not their team's: periods.py); ``readable_item`` says whether one item is
  readable by both rules.  Search, items, "similar", previews, tags, the queue and federation all ask them.
- URLs are built here only: ``search_url``, ``item_url``, ``similar_url``, ``preview_url``, ``frame_url``,
  ``download_url``, ``export_url``, ``row_urls``.

Nothing here imports the views, so every view imports this module at its top.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import re
import time
import urllib.parse
import weakref
from dataclasses import dataclass, field

import datasette.handle_exception
import sqlite_utils
from datasette.utils import actor_matches_allow, tilde_decode, tilde_encode
from datasette.utils.asgi import Forbidden
from datasette.utils.sqlite import sqlite3

from .. import changes, people, periods
from ..catalog import ITEM_TABLES, load_sqlite_vec
from ..config import ConfigError, Settings, load_settings, settings_from_dict
from ..errors import ScisearchError
from ..search import index_folder

PLUGIN_NAME = "datasette-scisearch"

# Datasette 0.65's last-resort error handler prints every error with rich when rich is importable (KeyBERT
# brings it in), and rich refuses to print a traceback outside an ``except:`` block: every 404 for a URL no
# route matches became a 500.  Without rich the handler prints real server errors with ``traceback`` as
# before and answers 404s as 404s.
datasette.handle_exception.rich = None


class WebError(ScisearchError):
    """A request a view cannot answer: what was wrong and what to do (``message``, ``fix``), and its kind or
    HTTP status (``WebError("...", 404)``); web/errors.py answers it as a page or as JSON."""


# -- Which attached databases are catalogs ---------------------------------------------------

# A database is a catalog when it has these tables: `files` alone is too common a
# name to decide on, and `catalog_info` is written by the first migration.
CATALOG_MARKER_TABLES = frozenset({"files", "catalog_info"})
# A load can turn an empty file into a catalog, or add vector tables, while
# Datasette serves it: the schema is re-read when it is older than this.
SCHEMA_MAX_AGE_SECONDS = 5.0
VEC0_TABLE = re.compile(r"\busing\s+vec0\b", re.IGNORECASE)


@dataclass(frozen=True)
class Schema:
    """The parts of a database's schema this plugin decides on."""

    tables: frozenset[str] = frozenset()
    vector_tables: tuple[str, ...] = ()
    # (table, column) -> the table that column's foreign key points to
    foreign_keys: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def is_catalog(self) -> bool:
        return CATALOG_MARKER_TABLES <= self.tables


class SchemaWatch:
    """Each attached database's Schema, read through one connection per database and re-read now and then.

    Datasette asks for metadata synchronously and many times per page, so the
    answer has to be at hand: reading sqlite_master takes well under a
    millisecond, and is done at most once every SCHEMA_MAX_AGE_SECONDS.
    """

    def __init__(self):
        self._watched = weakref.WeakKeyDictionary()  # Datasette Database -> [connection, Schema, read at]

    def schema(self, db) -> Schema:
        if db.name == "_internal" or (db.is_memory and not db.memory_name):
            return Schema()
        entry = self._watched.get(db)
        now = time.monotonic()
        if entry is not None and now - entry[2] < SCHEMA_MAX_AGE_SECONDS:
            return entry[1]
        connection = entry[0] if entry is not None else None
        try:
            if connection is None:
                connection = db.connect()
                load_sqlite_vec(connection)
            schema = _read_schema(connection)
        except sqlite3.Error:
            # Unreadable for now (locked, closed, not a database): not a catalog; reconnect next time.
            if connection is not None:
                connection.close()
            connection, schema = None, Schema()
        self._watched[db] = [connection, schema, now]
        return schema

    def connection(self, db):
        """The watcher's own read connection to ``db`` (None when it cannot be had): for the few cheap reads
        Datasette's synchronous hooks need."""
        self.schema(db)
        entry = self._watched.get(db)
        return entry[0] if entry is not None else None


def _read_schema(connection) -> Schema:
    rows = connection.execute("select name, sql from sqlite_master where type = 'table'").fetchall()
    # rootpage 0 leaves out virtual tables, whose modules may not be loaded here.
    foreign_keys = connection.execute(
        """
        select m.name, fk."from", fk."table"
        from sqlite_master m join pragma_foreign_key_list(m.name) fk
        where m.type = 'table' and m.rootpage != 0
        """
    ).fetchall()
    return Schema(
        tables=frozenset(name for name, _ in rows),
        vector_tables=tuple(name for name, sql in rows if VEC0_TABLE.search(sql or "")),
        foreign_keys={(table, column): other for table, column, other in foreign_keys},
    )


schemas = SchemaWatch()


def catalog_schema(datasette, database: str | None) -> Schema | None:
    """The Schema of ``database`` if it is an attached catalog, else None."""
    db = datasette.databases.get(database) if database else None
    if db is None:
        return None
    schema = schemas.schema(db)
    return schema if schema.is_catalog else None


# -- The catalog a request means ----------------------------------------------------------------------

NO_CATALOG = (
    "No catalog is attached to this Datasette, so there is nothing to search yet. "
    "Build one with 'scisearch load files catalog.db DIR' and serve it with 'scisearch serve catalog.db'."
)


def find_catalog(datasette, requested: str | None):
    """The Datasette Database named by ``requested`` (a route, tilde-encoded, or a name), else the first
    catalog attached; a 404 ``WebError`` when there is no such catalog."""
    if requested:
        try:
            db = datasette.get_database(route=tilde_decode(requested))
        except (KeyError, ValueError):  # tilde_decode refuses some malformed escapes
            db = datasette.databases.get(requested)
        if db is None:
            raise WebError(f"There is no database called '{requested[:100]}' here.", 404)
        if catalog_schema(datasette, db.name) is None:
            raise WebError(f"Database '{db.name}' is not a scisearch catalog, so it cannot be searched.", 404)
        return db
    return find_catalogs(datasette, None)[0]


def find_catalogs(datasette, requested: str | None) -> list:
    """The Datasette Databases a search covers: the one named by ``db=``, else every catalog attached."""
    if requested:
        return [find_catalog(datasette, requested)]
    catalogs = [db for name, db in list(datasette.databases.items()) if catalog_schema(datasette, name) is not None]
    if not catalogs:
        raise WebError(NO_CATALOG, 404)
    return catalogs


def url_id(request, name: str) -> str:
    """A tilde-encoded id from the URL, decoded; a 404 for one that cannot be (``~zz``)."""
    text = request.url_vars[name]
    try:
        return tilde_decode(text)
    except ValueError:
        raise WebError(f"'{text[:100]}' is not an id this catalog could hold.", 404) from None


def item_table(item_type: str) -> str:
    """The table of an item type named in a URL; a 404 for anything else."""
    if item_type not in ITEM_TABLES:
        raise WebError(
            f"'{item_type[:40]}' is not a kind of item here: items are files, proposals, papers and sessions.", 404
        )
    return ITEM_TABLES[item_type]


# -- What the actor may read ---------------------------------------------------------------------------


# Set while a scisearch view asks Datasette about a table: those views leave out each proprietary row the
# visitor may not see (``hidden_proposals``), so the rule that closes the raw tables to Datasette's own pages
# while a catalog holds such rows (proprietary.py) is not theirs; metadata.yml's table rules still are.
CHECKING_FOR_SCISEARCH = contextvars.ContextVar("checking_for_scisearch", default=False)


@contextlib.contextmanager
def checking_for_scisearch():
    token = CHECKING_FOR_SCISEARCH.set(True)
    try:
        yield
    finally:
        CHECKING_FOR_SCISEARCH.reset(token)


async def ensure_may_read(datasette, actor, db, table: str | None = None) -> None:
    """Datasette's own 403 unless the actor may see this catalog (and this table of it)."""
    checks = [("view-database", db.name), "view-instance"]
    if table is not None:
        checks.insert(0, ("view-table", (db.name, table)))
    with checking_for_scisearch():
        await datasette.ensure_permissions(actor, checks)


async def table_allowed(datasette, actor, db, table: str) -> bool:
    """Whether metadata.yml's rules let the actor see this table of the catalog through the scisearch views."""
    with checking_for_scisearch():
        return await datasette.permission_allowed(actor, "view-table", (db.name, table), default=True)


async def readable_item_types(datasette, actor, db) -> frozenset[str]:
    """The item types whose tables this actor may see in this catalog (the catalog itself already allowed).

    Datasette's table-level ``allow`` rules guard its table pages; the search hits, item JSON and
    "similar" answer from the same tables, so they ask this and leave the rest out.
    """
    readable = set()
    for item_type, table in ITEM_TABLES.items():
        if await table_allowed(datasette, actor, db, table):
            readable.add(item_type)
    return frozenset(readable)


DEFAULT_STAFF = {"id": "root"}


def staff_allow(datasette) -> dict | bool:
    """metadata.yml's ``staff`` allow block (root alone without one)."""
    block = (datasette.plugin_config(PLUGIN_NAME) or {}).get("staff") or {}
    allow = block.get("allow") if isinstance(block, dict) else None
    return DEFAULT_STAFF if allow is None else allow


def is_staff(datasette, actor) -> bool:
    return actor is not None and bool(actor_matches_allow(actor, staff_allow(datasette)))


def viewer(datasette, actor) -> periods.Viewer:
    """Who is looking, for proprietary periods: staff, or a sign-in id that may be a person's account id."""
    account = actor.get("id") if isinstance(actor, dict) else None
    return periods.Viewer(account_id=str(account) if account is not None else None, staff=is_staff(datasette, actor))


async def hidden_proposals(datasette, actor, db) -> frozenset[str]:
    """The proposals whose files, previews, tags, sessions and own fields this actor may not see in this catalog
    now; computed against the clock at each request, so a period that ends needs no reload.  The first request
    after a period ends also lets the papers acknowledging the proposal be found by its words (periods.py)."""
    who = viewer(datasette, actor)

    def read(conn):
        catalog = sqlite_utils.Database(conn)
        hidden = frozenset() if who.staff else periods.hidden_proposals(catalog, who)
        # A signed-in account no person has yet, where something is hidden from it: a sign-in fills people.
        unknown = bool(hidden) and who.account_id is not None and not people.person_for_account(catalog, who.account_id)
        return hidden, bool(periods.words_due(catalog)), unknown

    hidden, due, unknown = await db.execute_fn(read)
    if due:
        await release_due_words(db)
    if unknown:
        await fill_people(datasette, actor, {db.name: db})
        hidden = await db.execute_fn(lambda conn: periods.hidden_proposals(sqlite_utils.Database(conn), who))
    return hidden


async def fill_people(datasette, actor: dict, databases=None) -> None:
    """Make a signed-in actor a person (people.py's ``fill_from_sign_in``) in each catalog served from a file that
    can be written (every one, or those given); one that cannot be written is left as it is, with a warning, and
    the request goes on.  web/sign_in.py calls it at a sign-in, ``hidden_proposals`` for an actor that comes with
    each request."""
    from ..private import is_private_file

    for name, db in list((databases or datasette.databases).items()):
        if not db.is_mutable or not db.path or is_private_file(db.path) or catalog_schema(datasette, name) is None:
            continue
        try:
            await db.execute_write_fn(lambda conn: people.fill_from_sign_in(sqlite_utils.Database(conn), actor))
        except (sqlite3.Error, ScisearchError, OSError) as error:
            print(f"warning: could not add the signed-in account {actor.get('id')!r} to the people of {name}: {error}")


# Catalogs Datasette cannot write to (immutable, read-only files): their papers wait for the next load instead.
_cannot_write: weakref.WeakSet = weakref.WeakSet()


async def release_due_words(db) -> None:
    """Rewrite, on Datasette's write thread, the documents of papers acknowledging a proposal whose period ended
    (or began: a date moved ahead by something that did not rewrite them, as ``scisearch periods`` does).  Where
    the catalog cannot be written (served immutable), an ended period's papers stay without its words until the
    next load; a date can only move ahead in such a file by a writer, and the package's writers rewrite them."""
    if not db.is_mutable or db in _cannot_write:
        return
    try:
        await db.execute_write_fn(lambda conn: changes.release_due_words(sqlite_utils.Database(conn)), block=True)
    except (sqlite3.Error, ScisearchError, OSError) as error:
        _cannot_write.add(db)
        print(f"warning: could not add released proposals' words to the papers of {db.name}: {error}")


async def readable_item(datasette, actor, db, item_type: str, item_id) -> bool:
    """Whether the actor may read this one item of the catalog: the catalog and the item's table (metadata.yml's
    ``allow`` rules) and its proposal's proprietary period.  Downloads, exports, the item page, its JSON-LD and
    every other route that serves one item ask this."""
    return bool(await readable_items(datasette, actor, db, item_type, [item_id]))


async def readable_items(datasette, actor, db, item_type: str, item_ids: list) -> list:
    """Of these ids of one item type, those the actor may read, in the order given: ``readable_item``'s rule
    decided for many at once (the sitemap asks about ten thousand; the permission check, a millisecond, is made
    once)."""
    if item_type not in ITEM_TABLES:
        return []
    try:
        await ensure_may_read(datasette, actor, db, ITEM_TABLES[item_type])
    except Forbidden:
        return []
    hidden = await hidden_proposals(datasette, actor, db)
    if not hidden:
        return list(item_ids)

    def visible(conn) -> list:
        catalog = sqlite_utils.Database(conn)
        return [item_id for item_id in item_ids if not periods.item_is_hidden(catalog, item_type, item_id, hidden)]

    return await db.execute_fn(visible)


def without_unreadable_links(detail: dict, readable: frozenset[str]) -> dict:
    """An item's detail with the linked records of tables the actor may not see left out."""
    detail = dict(detail)
    for item_type, key in (("session", "session"), ("proposal", "proposal")):
        if item_type not in readable:
            detail[key] = None
    for item_type, key in (("session", "sessions"), ("proposal", "proposals"), ("paper", "papers"), ("file", "files")):
        if item_type not in readable and key in detail:
            detail[key] = []
    if "file" not in readable:
        detail["files_total"] = 0
    return detail


def readable_hit(hit, readable: frozenset[str]):
    """A hit the actor may see, with the proposal it names left out when proposals are not readable;
    None when its own table is not readable."""
    if hit.item_type not in readable:
        return None
    if "proposal" not in readable and getattr(hit, "proposal", None):
        hit.proposal = None
    return hit


# -- Settings and the engine ----------------------------------------------------------------------------


def facility_settings(datasette) -> Settings:
    """The settings Datasette was started with (time zone; taggers' options embed queries), as the CLI reads them."""
    try:
        block = datasette.plugin_config(PLUGIN_NAME)
        settings = settings_from_dict(block) if block else load_settings()
    except ConfigError:
        return Settings()  # the CLI reports a broken config; pages still work with the defaults
    index_folder.configure(settings.index_folder)  # where the on-disk search indexes live (search/index_folder.py)
    return settings


def parse_page(text: str | None) -> tuple[int, str | None]:
    """A page number from the URL (1 or more), and a note when it had to be changed."""
    if text in (None, ""):
        return 1, None
    if not re.fullmatch(r"\s*[-+]?\d{1,100}\s*", text):
        return 1, f"'{text[:40]}' is not a page number; showing the first page."
    page = int(text)
    if page < 1:
        return 1, f"There is no page {page:,}; showing the first page."
    return page, None


async def call_engine(db, function, *args, **kwargs):
    """Run an engine function on one of Datasette's read connections (each has sqlite-vec loaded)."""
    return await db.execute_fn(lambda conn: function(sqlite_utils.Database(conn), *args, **kwargs))


# -- URLs -------------------------------------------------------------------------------------------------


def _route(datasette, database: str) -> str:
    return tilde_encode(datasette.get_database(database).route)


def search_url(datasette, params: list[tuple[str, str]] | None = None) -> str:
    url = datasette.urls.path("-/scisearch")
    query = urllib.parse.urlencode([(key, value) for key, value in params or [] if value not in (None, "")])
    return f"{url}?{query}" if query else url


def item_url(datasette, database: str, item_type: str, item_id, suffix: str = "") -> str:
    """The item page of one file, proposal, paper or session (ids may hold any character); ``.json`` for its JSON."""
    route = _route(datasette, database)
    return datasette.urls.path(f"-/scisearch/item/{route}/{item_type}/{tilde_encode(str(item_id))}{suffix}")


def similar_url(datasette, database: str, item_type: str, item_id) -> str:
    route = _route(datasette, database)
    return datasette.urls.path(f"-/scisearch/similar/{route}/{item_type}/{tilde_encode(str(item_id))}.json")


def preview_url(datasette, database: str, file_id, version: str | None = None) -> str:
    url = datasette.urls.path(f"-/scisearch/preview/{_route(datasette, database)}/{file_id}.png")
    return f"{url}?v={version}" if version else url


def frame_url(datasette, database: str, file_id, frame: int) -> str:
    """One of the frames kept of a stack or 4D scan (``ingest/views.py``), by its number in the dataset."""
    return datasette.urls.path(f"-/scisearch/frame/{_route(datasette, database)}/{file_id}/{int(frame)}.png")


def download_url(datasette, database: str, file_id) -> str:
    """The original file (a zip with its partners when it has any)."""
    return datasette.urls.path(f"-/scisearch/download/{_route(datasette, database)}/{file_id}")


def export_url(datasette, database: str, file_id, format_name: str) -> str:
    """The file's array as ``tiff``, ``png`` or ``emd``."""
    return datasette.urls.path(f"-/scisearch/export/{_route(datasette, database)}/{file_id}.{format_name}")


async def row_urls(datasette, actor, database: str, table: str, item_id) -> tuple[str, str]:
    """An item's row in Datasette, as a page and as JSON, where this actor can open it: the table's own row page
    where they may read the table, else the row in its public view (web/proprietary.py), which holds it when it
    is theirs to see — never a link that answers 403."""
    if await datasette.permission_allowed(actor, "view-table", (database, table), default=True):
        row = tilde_encode(str(item_id))
        return datasette.urls.row(database, table, row), datasette.urls.row(database, table, row, format="json")
    return public_row_url(datasette, database, f"{table}_public", item_id), public_row_url(
        datasette, database, f"{table}_public", item_id, "json"
    )


def public_row_url(datasette, database: str, view: str, item_id, format_name: str | None = None) -> str:
    """One row of a public view (a view has no row pages: its table page filtered to the row's id)."""
    query = urllib.parse.urlencode({"id": str(item_id)})
    return f"{datasette.urls.table(database, view, format=format_name)}?{query}"


def preview_version(sha256, loaded_at, preview) -> str:
    """Changes whenever ingest rewrites the file's row, so a preview URL can be cached for long."""
    key = "\x1f".join(str(part) for part in (sha256, loaded_at, preview))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
