"""What Datasette shows for every scisearch catalog it serves, whatever the file is called.

- Every connection has sqlite-vec loaded, so vector tables and functions work in SQL.
- Each attached database that is a catalog gets the titles, column descriptions,
  units, facets and label columns of ``catalog_metadata.yml``; the instance's own
  metadata.yml still overrides any of it.
- Previews are served from ``/-/scisearch/preview/<database>/<file id>.png`` and
  shown as thumbnails in the files table (full size on a file's row page).
- JSON columns render as a collapsed, pretty-printed block, and foreign keys link
  to their rows on row pages too (Datasette 0.65 links them only in table views).
"""

from __future__ import annotations

import importlib.resources
import json
import re
import sys

import markupsafe
import sqlite_utils
import yaml
from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.facets import Facet
from datasette.utils import (
    escape_sqlite,
    path_with_added_args,
    path_with_removed_args,
    tilde_encode,
)
from datasette.utils.asgi import Response

from .. import periods
from ..catalog import ITEM_TABLES, MAX_SQLITE_INTEGER, load_sqlite_vec, read_through_memory_map
from ..errors import ScisearchError
from ..ingest.normalize import magnification_label
from . import api, clicks, downloads, findable, pages, present, privacy, proprietary, sign_in, validation, warming
from .base import (
    Schema,
    WebError,
    catalog_schema,
    ensure_may_read,
    facility_settings,
    find_catalog,
    item_url,
    preview_url,
    preview_version,
    public_row_url,
    readable_item,
)
from .errors import answers_errors, error_response

PLUGIN_NAME = "datasette-scisearch"
LONG_TEXT_CHARS = 60
PACKAGE = importlib.resources.files(__name__)
# Kept as JSON text: parsing it is the cheapest way to a fresh copy, needed on every look-up.
CATALOG_TABLES_JSON = json.dumps(yaml.safe_load((PACKAGE / "catalog_metadata.yml").read_text())["tables"])

THUMBNAIL_WIDTH = 128
# Files' metadata JSON can reach a megabyte; a page shows this much of it and links to the rest.
JSON_DISPLAY_CHARS = 10_000
JSON_COLUMNS = frozenset({"metadata", "details", "arguments", "summary"})
ONE_YEAR_SECONDS = 365 * 24 * 3600
ONE_HOUR_SECONDS = 3600
# The column of each item table whose text links to the item's page under /-/scisearch/item.
ITEM_PAGE_LINK_COLUMNS = {"files": "name", "proposals": "title", "papers": "title", "sessions": "user"}
ITEM_TYPE_OF_TABLE = {table: item_type for item_type, table in ITEM_TABLES.items()}


# -- Connections and metadata ------------------------------------------------------------------


@hookimpl
def prepare_connection(conn, database, datasette):
    load_sqlite_vec(conn)
    read_through_memory_map(conn)
    proprietary.prepare_twin_connection(conn, database, datasette)


@hookimpl
def get_metadata(datasette, key, database, table):
    # This block has only `databases` at its top and `tables` within a database,
    # so other instance- and database-level look-ups (many per page) skip it.
    if table is None and key not in (None, "databases", "tables"):
        return None
    databases = {}
    for name in list(datasette.databases):
        schema = catalog_schema(datasette, name)
        if schema is not None:
            databases[name] = {"tables": catalog_tables_metadata(schema)}
    # Datasette merges plugin metadata first and the instance's metadata.yml over it.
    return {"databases": databases} if databases else None


# Context a researcher asks for in one place: everything linked to a file, and what a proposal produced;
# {table} is the table, or its public view (canned_queries).
CONTEXT_QUERIES = {
    "file_context": {
        "title": "Context of a file",
        "description": "The session, proposal and papers linked to one file (its id), with how each link was found.",
        "sql": """
select 'session' as linked, s.id as id,
       s.instrument || ' booked by ' || coalesce(s.user, '?') || ', ' || s.start || ' to ' || s.end as what,
       l.method, l.evidence, l.confidence
from {links} l join {sessions} s on s.id = l.to_id
where l.from_type = 'file' and l.from_id = :file_id and l.to_type = 'session'
union all
select 'proposal', p.id, p.title, l.method, l.evidence, l.confidence
from {links} l join {proposals} p on p.id = l.to_id
where l.from_type = 'file' and l.from_id = :file_id and l.to_type = 'proposal'
union all
select 'paper', pa.id, pa.title, 'via proposal ' || l.to_id || ': ' || lp.method, lp.evidence,
       round(l.confidence * lp.confidence, 3)
from {links} l
join {links} lp on lp.from_type = 'paper' and lp.to_type = 'proposal' and lp.to_id = l.to_id
join papers pa on pa.id = lp.from_id
where l.from_type = 'file' and l.from_id = :file_id and l.to_type = 'proposal'
""",
    },
    "proposal_output": {
        "title": "What a proposal produced",
        "description": "Sessions, files (by instrument and kind) and papers linked to one proposal (its id).",
        "sql": """
select 'papers' as what, pa.title as detail, count(*) as count, pa.id as id
from {links} l join papers pa on pa.id = l.from_id
where l.from_type = 'paper' and l.to_type = 'proposal' and l.to_id = :proposal_id
group by pa.id
union all
select 'sessions', instrument || ', ' || min(start) || ' to ' || max(end), count(*), null
from {sessions} where proposal_id = :proposal_id group by instrument
union all
select 'files', coalesce(instrument, '?') || ' ' || coalesce(kind, ''), count(*), null
from {files} where proposal_id = :proposal_id group by instrument, kind
""",
    },
}


@hookimpl
def canned_queries(datasette, database, actor):
    schema = catalog_schema(datasette, database)
    if schema is None:
        return None
    # While periods are kept the queries read the public views, which leave proprietary rows out
    # (proprietary.py), so everyone may run them.
    suffix = "_public" if "proposal_periods" in schema.tables else ""
    tables = {table: f"{table}{suffix}" for table in ("links", "sessions", "proposals", "files")}
    queries = {name: {**query, "sql": query["sql"].format(**tables)} for name, query in CONTEXT_QUERIES.items()}
    return queries


def catalog_tables_metadata(schema: Schema) -> dict:
    # A fresh copy each time: Datasette merges the instance's metadata into what hooks return.
    tables = json.loads(CATALOG_TABLES_JSON)
    # Hiding a vec0 table hides its shadow tables too: Datasette hides tables by name prefix.
    for name in schema.vector_tables:
        tables.setdefault(name, {})["hidden"] = True
    return tables


# -- Facets ------------------------------------------------------------------------------------


@hookimpl
def register_facet_classes():
    return [LocalDateFacet]


class LocalDateFacet(Facet):
    """Counts by the calendar day written in an ISO 8601 value, before its UTC offset.

    Datasette's date facet uses SQLite's date(), which converts a value with an
    offset to UTC: an evening session in California would count as the next day.
    Choosing a day filters with ``column__startswith=YYYY-MM-DD``.
    """

    type = "local_date"

    async def facet_results(self):
        facet_results, facets_timed_out = [], []
        chosen = dict(self.get_querystring_pairs())
        facet_size = self.get_facet_size()
        for source_and_config in self.get_configs():
            config = source_and_config["config"]
            column = config.get("column") or config["simple"]
            filter_arg = f"{column}__startswith"
            sql = f"""
                select substr({escape_sqlite(column)}, 1, 10) as value, count(*) as count
                from ({self.sql})
                where {escape_sqlite(column)} glob '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'
                group by value order by count desc, value desc limit {facet_size + 1}
            """
            try:
                rows = await self.ds.execute(
                    self.database,
                    sql,
                    self.params,
                    truncate=False,
                    custom_time_limit=self.ds.setting("facet_time_limit_ms"),
                )
            except QueryInterrupted:
                facets_timed_out.append(column)
                continue
            values = []
            for row in rows.rows[:facet_size]:
                selected = chosen.get(filter_arg) == row["value"]
                change = path_with_removed_args if selected else path_with_added_args
                toggle_path = change(self.request, {filter_arg: row["value"]})
                values.append(
                    {
                        "value": row["value"],
                        "label": row["value"],
                        "count": row["count"],
                        "toggle_url": self.ds.absolute_url(self.request, self.ds.urls.path(toggle_path)),
                        "selected": selected,
                    }
                )
            facet_results.append(
                {
                    "name": column,
                    "type": self.type,
                    "hideable": source_and_config["source"] != "metadata",
                    "toggle_url": self.ds.urls.path(
                        path_with_removed_args(self.request, {f"_facet_{self.type}": column})
                    ),
                    "results": values,
                    "truncated": len(rows.rows) > facet_size,
                }
            )
        return facet_results, facets_timed_out


# -- Routes: previews --------------------------------------------------------------------------------


@hookimpl
def register_routes(datasette):
    return [
        (r"^/-/scisearch/preview/(?P<database>[^/]+)/(?P<file_id>[^/]*)\.png$", serve_preview),
        (r"^/-/scisearch/frame/(?P<database>[^/]+)/(?P<file_id>[^/]*)/(?P<frame>[^/]*)\.png$", serve_frame),
        *api.ROUTES,
        *downloads.ROUTES,
        *findable.ROUTES,
        *pages.ROUTES,
        *validation.ROUTES,
        *clicks.ROUTES,
        # Last: any other URL under /-/scisearch is a 404 page that says so, with the search box.
        (r"^/-/scisearch/.*$", not_a_page),
    ]


@hookimpl
def startup(datasette):
    privacy.attach_private_databases(datasette)
    proprietary.add_sql_twins(datasette)
    # Both off with `preload_query_models: false`: the query models start loading at once (seconds), and a
    # thread runs one search per catalog, which also opens its indexes (off with SCISEARCH_WARM=0 as well).
    warming.warm_in_background(datasette)
    return pages.preload_query_models(datasette)  # loads in a thread: start-up does not wait for a model


@hookimpl
def asgi_wrapper(datasette):
    # A sign-in fills the catalogs' people (web/sign_in.py).
    return sign_in.asgi_wrapper(datasette)


@hookimpl
def handle_exception(datasette, request, exception):
    # The one handler for the package's errors that escape a route: the error's kind decides the status code,
    # the client what it gets back (web/errors.py).  Anything else is Datasette's to report.
    if isinstance(exception, ScisearchError):

        async def answer():
            return await error_response(datasette, request, exception)

        return answer


@hookimpl
def permission_allowed(datasette, actor, action, resource):
    # Datasette collects hooks from this module only: who may read the private databases is decided in
    # privacy.py, who may read a catalog's raw tables and SQL while it holds proprietary data in proprietary.py,
    # who may edit tags in validation.py.
    for rule in (privacy.permission_allowed, proprietary.permission_allowed, validation.permission_allowed):
        decided = rule(datasette, actor, action, resource)
        if decided is not None:
            return decided
    return None


@answers_errors
async def not_a_page(request, datasette):
    raise WebError(
        f"There is no page at {request.path[:200]}: search from /-/scisearch, or open an item from its results.",
        404,
    )


@answers_errors
async def serve_preview(request, datasette):
    db = find_catalog(datasette, request.url_vars["database"])
    await ensure_may_read(datasette, request.actor, db, "files")
    text = request.url_vars["file_id"]
    row = None
    if text.isascii() and text.isdigit() and int(text) <= MAX_SQLITE_INTEGER:
        result = await db.execute(
            """
            select previews.png, files.sha256, files.loaded_at, files.preview
            from previews join files on files.id = previews.file_id
            where previews.file_id = ?
            """,
            [int(text)],
        )
        row = result.first()
    if row is not None and not await readable_item(datasette, request.actor, db, "file", int(text)):
        row = None  # a file under its proprietary period, not the reader's: as if it had no preview
    if row is None or not row["png"]:
        raise WebError(f"There is no preview for file '{text[:100]}' in '{db.name}'.", 404)
    current = preview_version(row["sha256"], row["loaded_at"], row["preview"])
    max_age = ONE_YEAR_SECONDS if request.args.get("v") == current else ONE_HOUR_SECONDS
    cache = f"public, max-age={max_age}"
    if await db.execute_fn(lambda conn: under_period(conn, int(text))):
        cache = "private, no-store"  # the team's or staff's copy: no shared cache may hand it to anyone else
    return Response(bytes(row["png"]), content_type="image/png", headers={"Cache-Control": cache})


def under_period(conn, file_id: int) -> bool:
    """Whether a file is still its proposal team's (an anonymous visitor may not see it)."""
    db = sqlite_utils.Database(conn)
    return periods.item_is_hidden(db, "file", file_id, periods.hidden_proposals(db, periods.ANONYMOUS))


@answers_errors
async def serve_frame(request, datasette):
    """A frame of a stack or 4D scan, kept at load; the item page's slider steps through them."""
    db = find_catalog(datasette, request.url_vars["database"])
    await ensure_may_read(datasette, request.actor, db, "files")
    file_text, frame_text = request.url_vars["file_id"], request.url_vars["frame"]
    row = None
    numbers = (file_text, frame_text)
    if all(t.isascii() and t.isdigit() and int(t) <= MAX_SQLITE_INTEGER for t in numbers) and "frames" in (
        await db.table_names()
    ):
        result = await db.execute("select png from frames where file_id = ? and frame = ?", [int(t) for t in numbers])
        row = result.first()
    # A frame of a file still under its proposal's period is as absent as the file, for whoever is not its team's.
    if row is None or not row["png"] or not await readable_item(datasette, request.actor, db, "file", int(file_text)):
        raise WebError(f"There is no frame '{frame_text[:20]}' of file '{file_text[:100]}' in '{db.name}'.", 404)
    cache = "public, max-age=3600"
    if await db.execute_fn(lambda conn: under_period(conn, int(file_text))):
        cache = "private, no-store"
    return Response(bytes(row["png"]), content_type="image/png", headers={"Cache-Control": cache})


@hookimpl
def extra_css_urls(datasette):
    return [datasette.urls.static_plugins(PLUGIN_NAME, "scisearch.css")]


@hookimpl
def extra_template_vars(datasette, database):
    # templates/base.html puts the search box in Datasette's top bar when a catalog is served;
    # with several, the box on one catalog's pages searches that one.
    catalogs = [name for name in list(datasette.databases) if catalog_schema(datasette, name) is not None]
    here = database if database in catalogs and len(catalogs) > 1 else None
    return {
        "scisearch_search_url": datasette.urls.path("-/scisearch") if catalogs else None,
        "scisearch_search_db": datasette.get_database(here).route if here else None,
        # Times on the pages in ISO 8601, in the facility's zone (a stored time is UTC).
        "scisearch_time": lambda text: present.time_element(text, facility_settings(datasette).zone),
    }


# -- Cells ---------------------------------------------------------------------------------


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    schema = catalog_schema(datasette, database) if table else None
    if schema is None:
        return None
    # A public view (files_public …: web/proprietary.py) shows its table's rows, and its cells as the table's;
    # a link back to the row goes to the view's, which the visitor can open.
    shown = table
    table = table.removesuffix("_public") if table.endswith("_public") and table not in schema.tables else table
    if table == "files" and column == "preview" and value:
        return preview_cell(datasette, database, row, value)
    if column in JSON_COLUMNS and isinstance(value, str):
        return json_cell(datasette, database, shown, row, value)
    if table == "files" and column == "magnification" and isinstance(value, (int, float)) and value > 0:
        return markupsafe.Markup(f'<span title="{value:g}">{markupsafe.escape(magnification_label(value))}</span>')
    if column == "search_text" and isinstance(value, str) and len(value) > LONG_TEXT_CHARS:
        return long_text_cell(value)
    if ITEM_PAGE_LINK_COLUMNS.get(table) == column and value not in (None, ""):
        return item_page_cell(datasette, database, table, row, value)
    other_table = schema.foreign_keys.get((table, column))
    if other_table is not None:
        return foreign_key_cell(datasette, database, table, column, other_table, value)
    return None


def item_page_cell(datasette, database, table, row, value):
    """An item's name or title links to its search item page (tags, context, similar items)."""
    row_id = _field(row, "id")
    if row_id is None:
        return None
    href = markupsafe.escape(item_url(datasette, database, ITEM_TYPE_OF_TABLE[table], row_id))
    return markupsafe.Markup(f'<a class="scisearch-item-link" href="{href}">{markupsafe.escape(value)}</a>')


def _field(row, name):
    """A column of a row, or None when the page did not select it."""
    try:
        return row[name]
    except (KeyError, IndexError):
        return None


def preview_cell(datasette, database, row, size_text: str):
    file_id = _field(row, "id")
    if file_id is None:
        return None
    version = preview_version(_field(row, "sha256"), _field(row, "loaded_at"), size_text)
    url = markupsafe.escape(preview_url(datasette, database, file_id, version))
    name = _field(row, "name") or f"file {file_id}"
    # Width and height attributes reserve the thumbnail's space before it loads.
    size = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", str(size_text))
    dimensions = f'width="{THUMBNAIL_WIDTH}"'
    if size and int(size[1]) and int(size[2]):
        width = min(THUMBNAIL_WIDTH, int(size[1]))
        dimensions = f'width="{width}" height="{max(1, round(width * int(size[2]) / int(size[1])))}"'
    return markupsafe.Markup(
        f'<a class="scisearch-preview" href="{url}" title="{markupsafe.escape(size_text)} preview">'
        f'<img loading="lazy" src="{url}" alt="preview of {markupsafe.escape(name)}" {dimensions}></a>'
    )


def long_text_cell(text: str):
    """Long derived text (a file's searchable words) folds away instead of making every row tall."""
    return markupsafe.Markup(
        f'<details class="scisearch-json"><summary>{markupsafe.escape(text[:LONG_TEXT_CHARS])}…</summary>'
        f"<pre>{markupsafe.escape(text)}</pre></details>"
    )


def json_cell(datasette, database, table, row, text: str):
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not parsed or not isinstance(parsed, (dict, list)):
        return None
    pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
    count = f"{len(parsed)} {'field' if isinstance(parsed, dict) else 'item'}{'' if len(parsed) == 1 else 's'}"
    rest = ""
    if len(pretty) > JSON_DISPLAY_CHARS:
        pretty = pretty[:JSON_DISPLAY_CHARS] + "\n…"
        row_id = _field(row, "id")
        if row_id is not None and table.endswith("_public"):
            href = public_row_url(datasette, database, table, row_id, "json")
        elif row_id is not None:
            href = datasette.urls.row(database, table, tilde_encode(str(row_id)), format="json")
        if row_id is not None:
            rest = f' <a href="{markupsafe.escape(href)}">all of it as JSON</a>'
    return markupsafe.Markup(
        f'<details class="scisearch-json"><summary>{count}</summary>'
        f"<pre>{markupsafe.escape(pretty)}</pre>{rest}</details>"
    )


def foreign_key_cell(datasette, database, table, column, other_table, value):
    if isinstance(value, dict):
        # A table view has already looked the label up: {"value": ..., "label": ...}.
        return foreign_key_link(datasette, database, other_table, value["value"], value["label"])
    if value is None or value == "":
        return None

    async def link_with_label():
        labels = await datasette.expand_foreign_keys(database, table, column, [value])
        if (column, value) not in labels:
            return None  # it points at no row: show the value as it is
        return foreign_key_link(datasette, database, other_table, value, labels[(column, value)])

    return link_with_label


def foreign_key_link(datasette, database, other_table, value, label):
    href = markupsafe.escape(datasette.urls.row(database, other_table, tilde_encode(str(value))))
    text = markupsafe.escape(value)
    # Datasette would print "None" for a row whose label column is empty.
    if label in (None, "") or str(label) == str(value):
        return markupsafe.Markup(f'<a href="{href}">{text}</a>')
    return markupsafe.Markup(f'<a href="{href}">{markupsafe.escape(label)}</a>&nbsp;<em>{text}</em>')


def _registered_whole() -> None:
    """Datasette loads its plugins the first time anything imports it; when that first import is this package's own
    (a program importing ``datasette_scisearch.web…`` before Datasette), Datasette registers this module while it is
    still half-made, with none of the hooks above.  Register it again now that it is whole."""
    from datasette.plugins import pm

    module = sys.modules[__name__]
    name = pm.get_name(module) if pm.is_registered(module) else None
    if name is not None and len(pm.get_hookcallers(module) or []) < len(_HOOKS):
        pm.unregister(module)
        pm.register(module, name)


_HOOKS = [value for value in list(globals().values()) if hasattr(value, "datasette_impl")]
_registered_whole()
