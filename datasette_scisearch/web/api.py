"""The JSON API under /-/scisearch: search, one item, and the items like it.

    GET /-/scisearch.json?q=&type=&page=&per_page=&db=&mode=&sort=   search results over every catalog served,
                                                             or db=; mode=keyword|vector|hybrid;
                                                             sort=relevance|date|kv|magnification;
                                                             facilities=all|local: other facilities too (hub:
                                                             in metadata.yml), or not (docs/search-api.md)
    GET /-/scisearch/item/<db>/<type>/<id>.json              everything about one item
    GET /-/scisearch/similar/<db>/<type>/<id>.json           "more like this"

A query or parameter the engine cannot use is a 400 with ``{"ok": false,
"error": "..."}`` saying what to change; an unknown database or item is a
404.  Database names and item ids in paths are tilde-encoded, as Datasette
encodes its own.
"""

from __future__ import annotations

import re

from datasette.utils.asgi import Forbidden, Response

from ..catalog import ITEM_TYPES
from ..errors import NOT_FOUND
from ..search import engine, hub
from ..search.detail import item_detail, similar_items
from .base import (
    WebError,
    call_engine,
    ensure_may_read,
    find_catalog,
    find_catalogs,
    hidden_proposals,
    item_table,
    item_url,
    preview_url,
    readable_hit,
    readable_item_types,
    similar_url,
    url_id,
    without_unreadable_links,
)
from .downloads import downloads_view
from .errors import answers_errors
from .pages import facility_hub, fans_out, search_catalogs, searchable_catalogs

# Filters that may also be given as their own parameters (?tag=HAADF&instrument=Themis); each becomes
# field:"value" in the query, so the query language is the one definition of what they mean.
FILTER_PARAMETERS = (
    "catalog",
    "kind",
    "tag",
    "instrument",
    "mode",
    "detector",
    "format",
    "proposal",
    "user",
    "date",
    "voltage",
    "mag",
    "pixel",
    "cl",
)
MAX_PARAMETER_CHARS = 4000
# ``mode`` is both the instrument-mode filter (mode=STEM) and the search mode: these values, which no instrument
# writes, pick the rankings; any other value filters.
SEARCH_MODES = ("hybrid", "keyword", "vector")


def _integer(request, name: str, default: int) -> int:
    text = request.args.get(name)
    if text in (None, ""):
        return default
    if not re.fullmatch(r"[+-]?\d{1,9}", text.strip()):
        raise WebError(f"{name} must be a whole number (got {text[:40]!r})")
    return int(text)


def _search_mode(request) -> str | None:
    """The search mode asked for (``mode=keyword|vector|hybrid``), or None for the default (hybrid)."""
    modes = {value.strip().lower() for value in request.args.getlist("mode")} & set(SEARCH_MODES)
    if len(modes) > 1:
        raise WebError(f"give one search mode, not {' and '.join(sorted(modes))}")
    return modes.pop() if modes else None


def _query_and_tab(request) -> tuple[str, str | None]:
    """The query text with the filter parameters added, and the tab: ``type`` is a tab when it names an
    item type (file, proposal, paper, session), else a filter (type=image is a kind of file)."""
    parts = [request.args.get("q") or ""]
    tab = (request.args.get("type") or "").strip().lower() or None
    if tab is not None and tab not in ITEM_TYPES and tab != "all":
        parts.append(f'type:"{tab.replace(chr(34), "")}"')
        tab = None
    for name in FILTER_PARAMETERS:
        for value in request.args.getlist(name):
            if name == "mode" and value.strip().lower() in SEARCH_MODES:
                continue
            value = value.replace('"', "").strip()
            if value:
                parts.append(f'{name}:"{value}"' if re.search(r"\s", value) else f"{name}:{value}")
    text = " ".join(part for part in parts if part)
    if len(text) > MAX_PARAMETER_CHARS:
        raise WebError(f"the query is {len(text):,} characters long; send at most {MAX_PARAMETER_CHARS:,}")
    return text, tab


# -- URLs ------------------------------------------------------------------------------------------------


def _hit_json(datasette, database: str, hit) -> dict:
    if isinstance(hit, hub.RemoteHit):  # another facility's: its own database name and links there
        return hit.public_dict()
    data = hit.as_dict()
    data["url"] = item_url(datasette, database, hit.item_type, hit.item_id)
    data["json_url"] = item_url(datasette, database, hit.item_type, hit.item_id, ".json")
    data["similar_url"] = similar_url(datasette, database, hit.item_type, hit.item_id)
    has_preview = hit.item_type == "file" and hit.facts.get("has_preview")
    data["preview_url"] = preview_url(datasette, database, hit.item_id) if has_preview else None
    return data


# -- Routes ----------------------------------------------------------------------------------------------


@answers_errors
async def search_json(request, datasette):
    served = find_catalogs(datasette, request.args.get("db"))
    catalogs, left_out = await searchable_catalogs(datasette, request, served)
    query, tab = _query_and_tab(request)
    page = _integer(request, "page", 1)
    per_page = _integer(request, "per_page", 20)
    options = {"item_type": tab, "page": page, "per_page": per_page, "served": len(served)}
    options["mode"] = _search_mode(request)
    options["sort"] = request.args.get("sort")
    facilities, hub_notes = facility_hub(datasette)
    fanned_out = fans_out(request, facilities)
    notices: list[hub.Notice] = []
    if fanned_out:
        options["facilities"], options["notices"] = facilities.facilities, notices
    results = await search_catalogs(datasette, request.actor, catalogs, query, **options)
    payload = results.as_dict()
    # `database` names the catalog when one was searched (as before several could be); `catalogs` lists them.
    searched = payload.pop("catalogs")
    payload = {"ok": True, "database": searched[0] if len(searched) == 1 else None, "catalogs": searched, **payload}
    payload["messages"] = left_out + hub_notes + payload["messages"]
    payload["mode"] = options["mode"] or "hybrid"
    payload["hits"] = [_hit_json(datasette, hit.database, hit) for hit in results.hits]
    if fanned_out:
        facilities.describe(payload, notices)
    last_page = max(1, -(-results.total // results.per_page))
    payload["last_page"] = min(last_page, engine.MAX_PAGE)
    return Response.json(payload, default=str)


async def _readable_item(request, datasette):
    """The catalog, item type and id a JSON route names, once the actor may see that item's table; and
    which item types they may see, for what the answer links to."""
    item_type = request.url_vars["item_type"]
    item_id = url_id(request, "item_id")
    db = find_catalog(datasette, request.url_vars["database"])
    try:
        await ensure_may_read(datasette, request.actor, db, item_table(item_type))
    except Forbidden as error:
        raise WebError(str(error) or f"You may not see the {item_type}s of this catalog.", 403) from None
    return db, item_type, item_id, await readable_item_types(datasette, request.actor, db)


async def _private(request, datasette, db) -> frozenset[str]:
    return await hidden_proposals(datasette, request.actor, db)


@answers_errors
async def item_json(request, datasette):
    db, item_type, item_id, readable = await _readable_item(request, datasette)
    detail = await call_engine(db, item_detail, item_type, item_id, await _private(request, datasette, db))
    if detail is None:
        raise WebError(f"no {item_type[:40]} {item_id[:100]!r} in {db.name!r}", kind=NOT_FOUND)
    detail = {"ok": True, "database": db.name, **without_unreadable_links(detail, readable)}
    detail["url"] = item_url(datasette, db.name, item_type, detail["item_id"])
    detail["similar_url"] = similar_url(datasette, db.name, item_type, detail["item_id"])
    detail["preview_url"] = preview_url(datasette, db.name, detail["item_id"]) if detail["has_preview"] else None
    if item_type == "file":  # the original and each export that fits, as on the item page
        detail["downloads"] = downloads_view(datasette, db.name, detail["row"])
    for linked in detail["files"]:
        linked["url"] = item_url(datasette, db.name, "file", linked["id"])
        linked["preview_url"] = preview_url(datasette, db.name, linked["id"]) if linked["has_preview"] else None
    for linked_type, key in (("paper", "papers"), ("proposal", "proposals"), ("session", "sessions")):
        for linked in detail[key]:
            linked["url"] = item_url(datasette, db.name, linked_type, linked["id"])
    return Response.json(detail, default=str)


@answers_errors
async def similar_json(request, datasette):
    db, item_type, item_id, readable = await _readable_item(request, datasette)
    k = _integer(request, "k", 12)
    found = await call_engine(db, similar_items, item_type, item_id, k, await _private(request, datasette, db))
    item = {**found.item, "url": item_url(datasette, db.name, item_type, found.item["item_id"])}
    hits = [hit for hit in found.hits if readable_hit(hit, readable)]
    return Response.json(
        {
            "ok": True,
            "database": db.name,
            "item": item,
            "space": found.space,
            "similar": [_hit_json(datasette, db.name, hit) for hit in hits],
            "messages": found.messages,
        },
        default=str,
    )


_ITEM_PATH = r"(?P<database>[^/]+)/(?P<item_type>[^/]+)/(?P<item_id>[^/]+)\.json$"
ROUTES = [
    (r"^/-/scisearch\.json$", search_json),
    (rf"^/-/scisearch/item/{_ITEM_PATH}", item_json),
    (rf"^/-/scisearch/similar/{_ITEM_PATH}", similar_json),
]
