"""Datasets findable on the web: JSON-LD on item pages, a sitemap, and a DataCite-style export of a proposal.

- The item page of a file, a proposal or a session carries schema.org ``Dataset`` JSON-LD, a paper's page a
  ``ScholarlyArticle`` (``linked_data.py`` builds them), when an anonymous visitor may read that item: what a
  search engine's crawler, which signs in nowhere, can see.
- ``/sitemap.xml`` is a sitemap index (https://www.sitemaps.org/protocol.html): one sitemap per
  ``SITEMAP_PAGE`` items of each catalog, at ``/-/scisearch/sitemap/<database>/<page>.xml``, listing the item pages
  an anonymous visitor may read, with the date each last changed.
- ``/-/scisearch/datacite/<database>/<proposal id>.json``: the proposal and its files as DataCite-style records,
  ``DATACITE_PAGE`` files a page, for the actor who asks (the same read rule as the item page).

Which items anyone may read is asked of ``readable_items`` (web/base.py), item by item, so a rule that hides a
proposal under its proprietary period keeps it out of the JSON-LD, the sitemap and the export alike.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from xml.sax.saxutils import escape

import markupsafe
import sqlite_utils
from datasette.utils import tilde_encode
from datasette.utils.asgi import Forbidden, Response

from .. import people, periods
from ..catalog import MAX_SQLITE_INTEGER
from ..search.detail import item_detail
from .base import (
    WebError,
    call_engine,
    catalog_schema,
    download_url,
    ensure_may_read,
    find_catalog,
    hidden_proposals,
    item_url,
    parse_page,
    readable_item,
    readable_item_types,
    readable_items,
    url_id,
)
from .errors import answers_errors
from .linked_data import Site, datacite_record, item_json_ld

SITEMAP_PAGE = 10_000  # the protocol allows 50,000 URLs a sitemap; smaller pages are quicker to build and fetch
DATACITE_PAGE = 100
ANONYMOUS = None  # the actor a crawler is


def site_for(datasette, request, database: str) -> Site:
    """What this instance says about itself, for the machine-readable descriptions of ``database``'s items."""
    license_url = datasette.metadata("license_url", database=database)
    license_name = datasette.metadata("license", database=database)
    return Site(
        absolute=lambda path: datasette.absolute_url(request, path),
        item_path=lambda item_type, item_id: item_url(datasette, database, item_type, item_id),
        download_path=lambda file_id: download_url(datasette, database, file_id),
        publisher=datasette.metadata("title") or None,
        license=license_url or license_name or None,
        license_name=license_name or None,
    )


def json_for_script(value) -> markupsafe.Markup:
    """JSON safe inside ``<script>``: no ``</script>`` (nor any tag) can be spelled out by a value."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return markupsafe.Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


async def page_json_ld(datasette, request, db, item_type: str, detail: dict) -> markupsafe.Markup | None:
    """The item page's JSON-LD, when the item is public (an anonymous visitor may read it)."""
    if not await _public(datasette, db, item_type, detail["item_id"]):
        return None
    detail = await with_team(db, detail)
    return json_for_script(item_json_ld(detail, site_for(datasette, request, db.name)))


async def with_team(db, detail: dict) -> dict:
    """The detail with ``team``: the names in ``people`` of its proposals' teams, the datasets' creators (names
    only: e-mails and account ids are never public)."""
    if detail["item_type"] == "proposal":
        proposal_ids = [detail["item_id"]]
    else:
        proposal_ids = [p["id"] for p in detail.get("proposals") or [] if p.get("id")]
    names = await db.execute_fn(lambda conn: people.team_names(sqlite_utils.Database(conn), proposal_ids))
    return {**detail, "team": names}


async def _public(datasette, db, item_type: str, item_id) -> bool:
    try:
        await ensure_may_read(datasette, ANONYMOUS, db)
    except Forbidden:
        return False
    return await readable_item(datasette, ANONYMOUS, db, item_type, item_id)


def _offset(page: int, per_page: int, what: str) -> int:
    """Where ``page`` starts; a 404 for a page so far out that no catalog could reach it."""
    offset = (page - 1) * per_page
    if offset > MAX_SQLITE_INTEGER:
        raise WebError(f"{what} has no page {page:.3g}.", 404)
    return offset


# -- Sitemap -----------------------------------------------------------------------------------------------


async def _public_types(datasette, db) -> list[str]:
    try:
        await ensure_may_read(datasette, ANONYMOUS, db)
    except Forbidden:
        return []
    return sorted(await readable_item_types(datasette, ANONYMOUS, db))


async def sitemap_index(request, datasette):
    entries = []
    for name in list(datasette.databases):
        if catalog_schema(datasette, name) is None:
            continue
        db = datasette.get_database(name)
        types = await _public_types(datasette, db)
        if not types:
            continue
        hidden = await hidden_proposals(datasette, ANONYMOUS, db)
        count = await db.execute_fn(lambda conn, types=types, hidden=hidden: _count(conn, types, hidden))
        route = tilde_encode(db.route)
        for page in range(1, max(1, math.ceil(count / SITEMAP_PAGE)) + 1):
            loc = datasette.absolute_url(request, datasette.urls.path(f"-/scisearch/sitemap/{route}/{page}.xml"))
            entries.append(f"<sitemap><loc>{escape(loc)}</loc></sitemap>")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        + "\n".join(entries)
        + "\n</sitemapindex>\n"
    )
    return Response(body, content_type="application/xml; charset=utf-8")


def _count(conn, types: list[str], hidden: frozenset[str]) -> int:
    """How many items the sitemap lists: those anyone may read (none of a proposal under its period)."""
    unseen, params = periods.search_item_hidden(hidden)
    return conn.execute(
        f"select count(*) from search_items si where item_type in (select value from json_each(?)) and not {unseen}",
        [json.dumps(types), *params],
    ).fetchone()[0]


@answers_errors
async def sitemap_page(request, datasette):
    db = find_catalog(datasette, request.url_vars["database"])
    page, note = parse_page(request.url_vars["page"])
    if note:
        raise WebError(f"'{request.url_vars['page'][:40]}' is not a sitemap page: pages are numbered from 1.", 404)
    _offset(page, SITEMAP_PAGE, "This catalog's sitemap")
    types = await _public_types(datasette, db)
    hidden = await hidden_proposals(datasette, ANONYMOUS, db)
    rows = await db.execute_fn(lambda conn: _page_rows(conn, types, page, hidden)) if types else []
    if page > 1 and not rows:
        raise WebError(f"This catalog's sitemap has no page {page}.", 404)
    entries = []
    for item_type in types:
        chosen = [row for row in rows if row[0] == item_type]
        allowed = set(await readable_items(datasette, ANONYMOUS, db, item_type, [row[1] for row in chosen]))
        for _, item_id, updated_at in chosen:
            if item_id not in allowed:
                continue
            loc = datasette.absolute_url(request, item_url(datasette, db.name, item_type, item_id))
            lastmod = f"<lastmod>{escape(str(updated_at)[:10])}</lastmod>" if updated_at else ""
            entries.append(f"<url><loc>{escape(loc)}</loc>{lastmod}</url>")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + "\n".join(entries) + "\n</urlset>\n"
    )
    return Response(body, content_type="application/xml; charset=utf-8")


def _page_rows(conn, types: list[str], page: int, hidden: frozenset[str]) -> list[tuple]:
    unseen, params = periods.search_item_hidden(hidden)
    return conn.execute(
        f"""select item_type, item_id, updated_at from search_items si
           where item_type in (select value from json_each(?)) and not {unseen} order by id limit ? offset ?""",
        [json.dumps(types), *params, SITEMAP_PAGE, (page - 1) * SITEMAP_PAGE],
    ).fetchall()


# -- DataCite ------------------------------------------------------------------------------------------------


@answers_errors
async def datacite_export(request, datasette):
    db = find_catalog(datasette, request.url_vars["database"])
    proposal_id = url_id(request, "proposal_id")
    absent = WebError(f"There is no proposal '{proposal_id[:200]}' in this catalog.", 404)
    try:  # the catalog's and the table's rules (metadata.yml), the same for every proposal: a 403 says no more
        await ensure_may_read(datasette, request.actor, db, "proposals")
    except Forbidden:
        raise WebError(f"You may not see the proposals of '{db.name}'.", 403) from None
    if not await readable_item(datasette, request.actor, db, "proposal", proposal_id):
        raise absent  # under its period and not the reader's: as if it did not exist, like every other route
    page, _ = parse_page(request.args.get("page"))
    _offset(page, DATACITE_PAGE, "This proposal's export")
    detail = await call_engine(db, item_detail, "proposal", proposal_id)
    if detail is None:
        raise absent
    file_ids, total = await db.execute_fn(lambda conn: _files_of(conn, proposal_id, page))
    if "file" not in await readable_item_types(datasette, request.actor, db):
        file_ids, total = [], 0  # the total is of what the reader may see
    file_ids = await readable_items(datasette, request.actor, db, "file", file_ids)
    site = site_for(datasette, request, db.name)
    records = [_datacite_item(await with_team(db, detail), site)] if page == 1 else []
    for file_id in file_ids:
        file_detail = await call_engine(db, item_detail, "file", str(file_id))
        if file_detail is not None:
            records.append(_datacite_item(await with_team(db, file_detail), site))
    pages = max(1, math.ceil(total / DATACITE_PAGE))
    self_url = datasette.absolute_url(request, request.path)
    links = {"self": f"{self_url}?page={page}"}
    if page < pages:
        links["next"] = f"{self_url}?page={page + 1}"
    return Response.json(
        {"data": records, "meta": {"total": total, "page": page, "totalPages": pages}, "links": links}, default=str
    )


def _files_of(conn, proposal_id: str, page: int) -> tuple[list[int], int]:
    total = conn.execute("select count(*) from files where proposal_id = ?", [proposal_id]).fetchone()[0]
    rows = conn.execute(
        "select id from files where proposal_id = ? order by acquired_at, id limit ? offset ?",
        [proposal_id, DATACITE_PAGE, (page - 1) * DATACITE_PAGE],
    ).fetchall()
    return [row[0] for row in rows], total


def _datacite_item(detail: dict, site) -> dict:
    loaded = str((detail.get("row") or {}).get("loaded_at") or "")
    year = int(loaded[:4]) if loaded[:4].isdigit() else dt.datetime.now(dt.UTC).year
    record = datacite_record(detail, site, year)
    return {"id": record["url"], "type": "dois", "attributes": record}


ROUTES = [
    (r"^/sitemap\.xml$", sitemap_index),
    (r"^/-/scisearch/sitemap/(?P<database>[^/]+)/(?P<page>[^/]+)\.xml$", sitemap_page),
    (r"^/-/scisearch/datacite/(?P<database>[^/]+)/(?P<proposal_id>[^/]+)\.json$", datacite_export),
]
