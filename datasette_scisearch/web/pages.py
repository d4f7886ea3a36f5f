"""The HTML pages under /-/scisearch: the search page and the item page.

Both pages show what the search engine returns and build no SQL of their own:
``search`` for results, facets and counts, ``item_detail`` for one item,
``similar`` for "more like this".  This module turns request parameters into
engine calls; ``present`` turns the answers into what the templates show.

Facet links add a query-language filter (``instrument:Themis``) as a URL
parameter of its own (``&instrument=Themis``), so the box keeps what the
researcher typed and each filter shows as a chip that removes it.

Bad input never ends in a traceback: a query the engine refuses is a 400 page
that says what to change, an unknown item or database a 404 page with the
search box, and page numbers out of range are clamped with a note.
"""

from __future__ import annotations

import re
import sys

import sqlite_utils
from datasette.utils.asgi import Forbidden, Response

from ..catalog import ITEM_TYPES
from ..config import ConfigError, Settings
from ..search import embedding, engine, hub
from ..search.detail import item_detail, similar_items
from ..search.federation import catalog_answer, schema_problem, search_catalogs_async
from ..tagging.tagger import DEFAULT_TAG_CATEGORY, category_label, category_order
from . import clicks, downloads, findable, present, validation
from .base import (
    WebError,
    call_engine,
    ensure_may_read,
    facility_settings,
    find_catalog,
    find_catalogs,
    hidden_proposals,
    item_table,
    parse_page,
    readable_hit,
    readable_item,
    readable_item_types,
    row_urls,
    search_url,
    url_id,
    without_unreadable_links,
)

PLUGIN_NAME = "datasette-scisearch"
PER_PAGE = 24  # four rows of six previews, or six of four, on a laptop screen
SIMILAR_COUNT = 12
# Before anything is typed the page browses everything, newest first (a query of filters alone is ranked by date).
BROWSE_EVERYTHING = "type:" + ",".join(ITEM_TYPES)
PAGE_LINKS_AROUND = 2  # page numbers shown either side of the current one
FACET_VALUES_SHOWN = 8  # the rest fold away under "more"

# The tabs, in order; a tab is an item type, None is "all".
TABS = [(None, "All"), ("file", "Images"), ("proposal", "Proposals"), ("paper", "Papers"), ("session", "Sessions")]
# Facets a researcher narrows by, in sidebar order; each name is also the query language's filter.
FACETS = {
    "catalog": "Catalog",  # given by the engine only when several catalogs are served
    "instrument": "Instrument",
    "kind": "Kind",
    "mode": "Mode",
    "detector": "Detector",
    "tag": "Tag",
    "proposal": "Proposal",
    "year": "Year",
}
# The orders a researcher can pick (search/sorting.py), as the page names them.
SORTS = [("relevance", "Relevance"), ("date", "Newest"), ("kv", "Voltage"), ("magnification", "Magnification")]
# What the search box understands, as examples that run when clicked.
EXAMPLES = [
    ("gold nanoparticles HAADF", "words, in any order"),
    ('"grain boundary"', "an exact phrase"),
    ("ceria -SEM", "leave out a word or a filter"),
    ("tag:diffraction", "items with a tag"),
    ("instrument:Themis type:file", "one instrument, one kind of item"),
    ("voltage>=200kV mag:1M-20M", "numbers with units"),
    ("pixel<0.05nm", "pixel sizes in nm, pm or Å"),
    ("date:2021-03..2021-12", "a span of dates"),
]

_SEARCH_ROUTE = r"^/-/scisearch/?$"
# An id ending in .json is the JSON API's route, not this page.
_ITEM_ROUTE = r"^/-/scisearch/item/(?P<database>[^/]+)/(?P<item_type>[^/]+)/(?P<item_id>[^/]+?)(?<!\.json)/?$"
_KEEP = object()  # "leave this parameter as it is"


# -- The catalog, its settings and the engine -------------------------------------------------------------


async def searchable_catalogs(datasette, request, catalogs: list) -> tuple[list, list[str]]:
    """Of these catalogs, those this actor may see and whose schema this code searches; and a note for each
    left out for its schema.  An actor who may see none of them (a catalog named by ``db=``, or a private
    instance) gets a 403; one of several that is hidden from them is silently not searched."""
    usable, notes, forbidden = [], [], None
    for db in catalogs:
        try:
            await datasette.ensure_permissions(request.actor, [("view-database", db.name), "view-instance"])
        except Forbidden as error:
            forbidden = error
            continue
        problem = await db.execute_fn(lambda conn, name=db.name: schema_problem(sqlite_utils.Database(conn), name))
        if problem:
            notes.append(problem)
        else:
            usable.append(db)
    if forbidden is not None and not usable and not notes:
        raise forbidden
    return usable, notes


def facility_hub(datasette) -> tuple[hub.Hub, list[str]]:
    """The other facilities this instance searches with its own (the ``hub:`` block of metadata.yml), and a
    note when that block cannot be used (then none are searched; the page and JSON say why)."""
    block = datasette.plugin_config(PLUGIN_NAME) or {}
    try:
        return hub.hub_from_config(block.get("hub")), []
    except ConfigError as error:
        return hub.Hub(), [f"other facilities were not searched: {error.message}"]


def fans_out(request, facilities: hub.Hub) -> bool:
    """Whether this request searches the other facilities too (never one that a hub sent: no loops)."""
    forwarded = hub.FORWARDED_HEADER.lower() in request.headers
    return facilities.fans_out(request.args.get(hub.SCOPE_PARAMETER), forwarded)


async def search_catalogs(
    datasette,
    actor,
    catalogs: list,
    query: str,
    *,
    served: int,
    facilities: list[hub.Facility] | None = None,
    notices: list[hub.Notice] | None = None,
    **options,
):
    """The engine's search over these catalogs as one (search/federation.py), each on Datasette's connections,
    and over the other ``facilities`` by HTTP (search/hub.py; what went wrong with one is added to ``notices``).

    Each catalog's tables this actor may not see (metadata.yml's table-level ``allow``) are hidden from its
    search, so its hits, counts and facets all hold to the rule, and a hit's proposal is left out where
    proposals are not to be seen.  So are the proposals still under their proprietary period that are not the
    actor's (``hidden_proposals``), with their files and sessions.  Other facilities are asked anonymously, so
    they send what anyone may see.
    """
    settings = facility_settings(datasette)
    readable = {db.name: await readable_item_types(datasette, actor, db) for db in catalogs}
    private = {db.name: await hidden_proposals(datasette, actor, db) for db in catalogs}
    notices = notices if notices is not None else []
    facilities = hub.askable(list(facilities or []), readable, notices)

    def engine_of(db):
        hidden = frozenset(ITEM_TYPES) - readable[db.name]

        async def run(text: str, **engine_options):
            options = {"settings": settings, "hidden_item_types": hidden, **engine_options}
            options["hidden_proposals"] = private[db.name]
            return await call_engine(db, catalog_answer, text, **options)

        return run

    engines = {db.name: engine_of(db) for db in catalogs}
    if facilities:
        async with hub.anonymous_client() as client:
            engines |= hub.remote_engines(client, facilities, notices)
            results = await search_catalogs_async(engines, query, served=served + len(facilities), **options)
    else:
        results = await search_catalogs_async(engines, query, served=served, **options)
    results.hits = [
        hit
        for hit in results.hits
        if isinstance(hit, hub.RemoteHit) or readable_hit(hit, readable.get(hit.database, frozenset()))
    ]
    if any("proposal" not in types for types in readable.values()):
        # A proposal's title is the proposals table's to show: where it is hidden, the facet keeps bare ids.
        for entry in (results.facets or {}).get("proposal") or []:
            entry.pop("label", None)
    return results


# -- The search page ------------------------------------------------------------------------------------


def _filter_token(facet: str, value: str) -> str:
    value = value.replace('"', "").strip()
    return f'{facet}:"{value}"' if re.search(r"[\s:()]", value) else f"{facet}:{value}"


class SearchRequest:
    """The search page's parameters: the typed query, the tab, facet filters and the page."""

    def __init__(self, request):
        args = request.args
        self.q = args.get("q") or ""
        self.db = args.get("db") or ""
        self.notes: list[str] = []
        tab = args.get("type") or ""
        known = {item_type for item_type, _ in TABS if item_type}
        if tab and tab not in known and tab != "all":
            self.notes.append(f"There is no '{tab[:40]}' tab; showing all results.")
        self.item_type = tab if tab in known else None
        self.filters = [(facet, value) for facet in FACETS for value in args.getlist(facet) if value.strip()]
        self.page, note = parse_page(args.get("page"))
        if note:
            self.notes.append(note)
        sort = (args.get("sort") or "").strip().lower()
        if sort and sort not in dict(SORTS):
            self.notes.append(f"There is no '{sort[:40]}' order; showing the most relevant first.")
        self.sort = sort if sort in dict(SORTS) else None
        # Results as previews (the default) or as a table to compare values across many items.
        self.view = "table" if (args.get("view") or "").strip().lower() == "table" else None
        # Whether other facilities are searched too (search/hub.py): kept as it was given, for every link.
        self.scope = (args.get(hub.SCOPE_PARAMETER) or "").strip().lower() or None

    @property
    def engine_query(self) -> str:
        return " ".join([self.q.strip(), *(_filter_token(facet, value) for facet, value in self.filters)]).strip()

    def url(
        self,
        datasette,
        *,
        item_type=_KEEP,
        filters: list | None = None,
        page: int = 1,
        sort=_KEEP,
        view=_KEEP,
        scope=_KEEP,
    ) -> str:
        """This search with the tab, filters, order or page changed; any change but the page starts at page 1."""
        tab = self.item_type if item_type is _KEEP else item_type
        order = self.sort if sort is _KEEP else sort
        params = [("q", self.q), ("type", tab or ""), ("db", self.db)]
        params += self.filters if filters is None else filters
        if order and order != "relevance":
            params.append(("sort", order))
        if (self.view if view is _KEEP else view) == "table":
            params.append(("view", "table"))
        if (self.scope if scope is _KEEP else scope) in (hub.FAN_OUT, hub.LOCAL_ONLY):
            params.append((hub.SCOPE_PARAMETER, self.scope if scope is _KEEP else scope))
        if page > 1:
            params.append(("page", str(page)))
        return search_url(datasette, params)


def facilities_view(
    datasette, search: SearchRequest, facilities: hub.Hub, fanned_out: bool, notices: list[hub.Notice] = ()
) -> dict | None:
    """The link that searches the other facilities too, or this one only, and which answered; none where no hub
    is configured."""
    if not facilities.facilities:
        return None
    if fanned_out:
        failed = {notice.facility for notice in notices}
        searched = [f"{f.name} (no answer)" if f.name in failed else f.name for f in facilities.facilities]
        url = search.url(datasette, scope=hub.LOCAL_ONLY)
        return {"text": f"Search {facilities.name} only", "url": url, "searched": ", ".join(searched)}
    names = ", ".join(facility.name for facility in facilities.facilities)
    return {"text": f"Also search {names}", "url": search.url(datasette, scope=hub.FAN_OUT), "searched": None}


def tabs_view(datasette, search: SearchRequest, counts: dict) -> list[dict]:
    tabs = []
    for item_type, label in TABS:
        count = sum(counts.values()) if item_type is None else counts.get(item_type, 0)
        # Sessions get a tab only when some match: most searches are for data and its literature.
        if item_type == "session" and not count and search.item_type != "session":
            continue
        tabs.append(
            {
                "label": label,
                "count": count,
                "url": search.url(datasette, item_type=item_type),
                "selected": search.item_type == item_type,
            }
        )
    return tabs


def facets_view(datasette, search: SearchRequest, facets: dict) -> list[dict]:
    """The sidebar's facets; each value labelled as people read it: a proposal by its title (from the engine),
    an instrument by metadata.yml's description, with the id or name kept as its detail."""
    descriptions = {rule.name: rule.description for rule in facility_settings(datasette).instruments}
    shown = []
    for facet, label in FACETS.items():
        entries = []
        for entry in (facets or {}).get(facet) or []:
            value = str(entry.get("value"))
            if value in ("", "None"):
                continue
            selected = (facet, value) in search.filters
            others = [f for f in search.filters if f != (facet, value)]
            shown_as = entry.get("label") or (descriptions.get(value) if facet == "instrument" else None) or value
            entries.append(
                {
                    "category": entry.get("category") or DEFAULT_TAG_CATEGORY,
                    "value": value,
                    "label": shown_as,
                    "detail": value if shown_as != value else None,
                    "count": entry.get("count"),
                    "selected": selected,
                    "url": search.url(datasette, filters=others if selected else [*search.filters, (facet, value)]),
                }
            )
        if entries and facet == "tag":
            shown += _tag_facets(entries)
        elif entries:
            shown.append({"name": facet, "label": label, "entries": entries, "shown": FACET_VALUES_SHOWN})
    return shown


def _tag_facets(entries: list[dict]) -> list[dict]:
    """The tag facet as one list per category (Material, Technique, Instrument settings …), each filtering by
    ``tag:``; a tag of no category (from an older catalog) is under "Other"."""
    groups: dict[str, list[dict]] = {}
    for entry in entries:
        groups.setdefault(entry["category"], []).append(entry)
    return [
        {
            "name": "tag",
            "category": category,
            "label": category_label(category),
            "entries": groups[category],
            "shown": FACET_VALUES_SHOWN,
        }
        for category in sorted(groups, key=category_order)
    ]


def chips_view(datasette, search: SearchRequest, facets: list[dict] | None = None) -> list[dict]:
    """The active filters, each a chip that removes it; a proposal by its title (``facets_view``), since its id
    says nothing, other values as they are (an instrument's name is shorter than its description and as clear)."""
    labels = {
        (facet["name"], entry["value"]): entry["label"]
        for facet in facets or []
        if facet["name"] == "proposal"
        for entry in facet["entries"]
    }
    return [
        {
            "label": f"{FACETS[facet].lower()}: {labels.get((facet, value), value)}",
            "url": search.url(datasette, filters=[f for f in search.filters if f != (facet, value)]),
        }
        for facet, value in search.filters
    ]


def sorts_view(datasette, search: SearchRequest, browsing: bool) -> list[dict]:
    """The orders offered, each a link; browsing with an empty query is already newest first."""
    current = search.sort or ("date" if browsing else "relevance")
    shown = [(name, label) for name, label in SORTS if not (browsing and name == "relevance")]
    return [
        {"name": name, "label": label, "selected": name == current, "url": search.url(datasette, sort=name)}
        for name, label in shown
    ]


def layouts_view(datasette, search: SearchRequest) -> list[dict]:
    """The two ways to show results: previews, or a table of their values."""
    return [
        {"label": label, "selected": search.view == view, "url": search.url(datasette, view=view, page=search.page)}
        for view, label in ((None, "Previews"), ("table", "Table"))
    ]


def pagination_view(datasette, search: SearchRequest, page: int, last_page: int) -> dict | None:
    if last_page <= 1:
        return None
    around = range(max(1, page - PAGE_LINKS_AROUND), min(last_page, page + PAGE_LINKS_AROUND) + 1)
    links, previous = [], 0
    for number in sorted({1, last_page, *around}):
        if number > previous + 1:
            links.append(None)  # a gap, shown as …
        links.append({"number": number, "url": search.url(datasette, page=number), "current": number == page})
        previous = number
    return {
        "links": links,
        "previous_url": search.url(datasette, page=page - 1) if page > 1 else None,
        "next_url": search.url(datasette, page=page + 1) if page < last_page else None,
    }


def warm_up_query_models(conn, settings: Settings) -> None:
    """Load the models that embed queries into this catalog's vector spaces, in a background thread."""
    names = [row[0] for row in conn.execute("select distinct tagger from vector_spaces")]
    embedding.warm_up(names, settings)


def preload_query_models(datasette):
    """At start-up: the query models of every catalog served start loading in a background thread (seconds for
    MiniLM), so that the first hybrid search waits only for what is left of that, tables are served meanwhile,
    and a search page opened before it finishes does not start a second load.  Off with the setting
    ``preload_query_models: false`` (the model then loads when the search page is first opened)."""
    settings = facility_settings(datasette)
    if not settings.preload_query_models:
        return None

    async def start_loading() -> None:
        try:
            catalogs = find_catalogs(datasette, None)
        except WebError:
            return  # nothing to search here
        for db in catalogs:
            try:
                await db.execute_fn(lambda conn: warm_up_query_models(conn, settings))
            except Exception as error:  # an unreadable catalog is reported by its pages, not at start-up
                print(f"note: query models of {db.name!r} not preloaded: {error}", file=sys.stderr)

    return start_loading


async def search_page(request, datasette):
    search = SearchRequest(request)
    context = {
        "scisearch_page": "search",
        "q": search.q,
        "db_param": search.db,
        "scope_param": search.scope if search.scope in (hub.FAN_OUT, hub.LOCAL_ONLY) else None,
        "item_type": search.item_type,
        "kept_filters": search.filters,
        "chips": chips_view(datasette, search),
        "messages": list(search.notes),
        "examples": [(text, meaning, search_url(datasette, [("q", text)])) for text, meaning in EXAMPLES],
    }
    try:
        served = find_catalogs(datasette, search.db)
    except WebError as error:
        return await _render(
            datasette, request, "scisearch_search.html", {**context, "error": str(error)}, error.status
        )
    catalogs, left_out = await searchable_catalogs(datasette, request, served)
    context["messages"] += [_sentence(note) for note in left_out]
    zone = facility_settings(datasette).zone
    facilities, hub_notes = facility_hub(datasette)
    fanned_out = fans_out(request, facilities)
    context["messages"] += [_sentence(note) for note in hub_notes]
    context["facilities_link"] = facilities_view(datasette, search, facilities, fanned_out)
    several = len(served) > 1 or fanned_out
    notices: list[hub.Notice] = []

    def views(hits) -> list[dict]:
        return [
            present.remote_hit_view(hit, zone)
            if isinstance(hit, hub.RemoteHit)
            else present.hit_view(datasette, hit.database, hit, zone, catalog=several)
            for hit in hits
        ]

    async def run(query: str, page: int, per_page: int = PER_PAGE, item_type=None):
        options = {"item_type": item_type, "page": page, "per_page": per_page, "served": len(served)}
        options["sort"] = search.sort
        if fanned_out:
            notices.clear()  # a second run (past the last page) says again what went wrong
            options |= {"facilities": facilities.facilities, "notices": notices}
        return await search_catalogs(datasette, request.actor, catalogs, query, **options)

    browsing = not search.engine_query
    if browsing:
        settings = facility_settings(datasette)
        for db in catalogs:
            await db.execute_fn(lambda conn: warm_up_query_models(conn, settings))
        context["browsing"] = True
    query = BROWSE_EVERYTHING if browsing else search.engine_query
    try:
        # The engine pages up to its MAX_PAGE; past the last page of results the last one is shown.
        results = await run(query, min(search.page, engine.MAX_PAGE), item_type=search.item_type)
        last_page = max(1, min(engine.MAX_PAGE, -(-results.total // PER_PAGE)))
        if search.page > last_page:
            context["messages"].append(
                f"There is no page {search.page:,} of these results; showing the last page, {last_page}."
            )
            search.page = last_page
            results = await run(query, last_page, item_type=search.item_type)
    except engine.QueryError as error:
        return await _render(
            datasette, request, "scisearch_search.html", {**context, "error": _sentence(str(error))}, 400
        )
    hits = views(results.hits)
    facets = facets_view(datasette, search, results.facets)
    # Learning from clicks (web/clicks.py): what was shown is logged in each result's catalog; cards carry positions.
    shown = [(hit.database, view) for hit, view in zip(results.hits, hits) if not isinstance(hit, hub.RemoteHit)]
    first_position = (search.page - 1) * PER_PAGE + 1
    if not browsing:  # what was shown for a query, which a click can then be learned from
        await clicks.log_search(datasette, request, query, search.item_type, shown, first_position)
    context.update(
        {
            "results": results,
            "segments": present.segments(hits),
            "tabs": tabs_view(datasette, search, results.counts),
            "sorts": sorts_view(datasette, search, browsing),
            "layouts": layouts_view(datasette, search),
            "table_view": search.view == "table",
            "table_columns": present.TABLE_COLUMNS,
            "hits": hits,
            "facets": facets,
            "chips": chips_view(datasette, search, facets),
            "pagination": pagination_view(datasette, search, search.page, last_page),
            "first_shown": (search.page - 1) * PER_PAGE + 1,
            "last_shown": (search.page - 1) * PER_PAGE + len(hits),
            "messages": context["messages"] + [_sentence(message) for message in results.messages],
            "notices": [_sentence(notice.sentence()) for notice in notices],
            "facilities_link": facilities_view(datasette, search, facilities, fanned_out, notices),
        }
    )
    return await _render(datasette, request, "scisearch_search.html", context)


def _sentence(message: str) -> str:
    """The engine writes notes in lower case for the CLI and JSON; a page shows them as sentences."""
    return message[:1].upper() + message[1:] if message else message


# -- The item page ----------------------------------------------------------------------------------------


async def item_page(request, datasette):
    item_type = request.url_vars["item_type"]
    context = {"scisearch_page": "item", "q": ""}
    try:
        item_id = url_id(request, "item_id")
        db = find_catalog(datasette, request.url_vars["database"])
        table = item_table(item_type)
        await ensure_may_read(datasette, request.actor, db, table)
        private = await hidden_proposals(datasette, request.actor, db)
        detail = await call_engine(db, item_detail, item_type, item_id, private)
        if detail is None:
            raise WebError(f"There is no {item_type} '{item_id[:200]}' in this catalog.", 404)
    except WebError as error:
        return await _render(datasette, request, "scisearch_item.html", {**context, "error": str(error)}, error.status)
    readable = await readable_item_types(datasette, request.actor, db)
    detail = without_unreadable_links(detail, readable)
    try:
        similar = (await call_engine(db, similar_items, item_type, item_id, SIMILAR_COUNT, private)).hits
        similar = [hit for hit in similar if readable_hit(hit, readable)]
        similar_note = None if similar else "Nothing to compare with yet: similarity needs the taggers' vectors."
    except (engine.QueryError, engine.ItemNotFound) as error:
        similar, similar_note = [], _sentence(str(error))
    zone = facility_settings(datasette).zone
    database = db.name
    row = detail.get("row") or {}
    row_url, row_json_url = await row_urls(datasette, request.actor, database, table, item_id)
    metadata, metadata_cut = present.metadata_text(detail.get("metadata"))
    files = detail.get("files") or []

    def linked(linked_type: str, records) -> list[dict]:
        views = (present.linked_view(datasette, database, linked_type, record, zone) for record in records or [])
        return [view for view in views if view]

    context.update(
        {
            "database": database,
            "table": table,
            "item_type": item_type,
            "type_label": present.TYPE_LABELS[item_type],
            "item_id": item_id,
            "title": detail.get("title") or f"{item_type} {item_id}",
            "text": row.get("abstract") or row.get("notes") or "",
            # A spectrum's preview is a small plot of it: the page draws it larger, with its axes, instead.
            "preview_url": present.preview_url(datasette, database, item_id)
            if detail.get("has_preview") and not (row.get("kind") == "spectrum" and detail.get("spectrum"))
            else None,
            "columns": present.with_beam(present.listed_columns(row, zone), row, detail.get("metadata"), item_type),
            "viewer": present.viewer_view(row),
            "spectrum": present.spectrum_view(detail.get("spectrum")),
            "frames": present.frames_view(datasette, database, item_id, detail.get("frames")),
            "metadata": metadata,
            "metadata_cut": metadata_cut,
            "row_url": row_url,
            "row_json_url": row_json_url,
            "tag_groups": present.tags_view(detail.get("tags")),
            "session": present.linked_view(datasette, database, "session", detail.get("session"), zone),
            "proposals": linked("proposal", detail.get("proposals")),
            "sessions": linked("session", detail.get("sessions")),
            "papers": linked("paper", detail.get("papers")),
            "files": [present.hit_view(datasette, database, present.file_as_hit(f), zone) for f in files],
            "files_total": max(detail.get("files_total") or 0, len(files)),
            "file_kinds": present.file_kinds_view(
                datasette, database, item_type, item_id, detail.get("files_by_kind"), zone
            ),
            "similar": similar,
            "similar_segments": present.segments([present.hit_view(datasette, database, hit, zone) for hit in similar]),
            "similar_note": similar_note,
        }
    )
    if item_type == "file" and row.get("missing_since"):  # gone from its folder: say so, offer no download
        context["missing_since"] = present.format_value("missing_since", row["missing_since"], zone)
    elif item_type == "file" and await readable_item(datasette, request.actor, db, "file", item_id):
        context["downloads"] = downloads.downloads_view(datasette, database, row)
    # Search engines read the page as a schema.org Dataset, where anyone may read it.
    context["json_ld"] = await findable.page_json_ld(datasette, request, db, item_type, detail)
    # Experts' controls: who may edit, each tag's history.
    item_key = detail.get("item_id") or item_id
    context.update(await validation.editing_context(request, datasette, db, item_type, item_key))
    return await _render(datasette, request, "scisearch_item.html", context)


async def _render(datasette, request, template: str, context: dict, status: int = 200) -> Response:
    context.setdefault("search_action", datasette.urls.path("-/scisearch"))
    html = await datasette.render_template(template, context, request=request, view_name="scisearch")
    return Response.html(html, status=status)


ROUTES = [
    (_SEARCH_ROUTE, search_page),
    (_ITEM_ROUTE, item_page),
]
