"""The search log: what a search showed, in order, and the click beacon.

The log lives in the private database beside the catalog (``private.py``), which
Datasette serves to staff only (``web/privacy.py``).  The search page calls
``log_search`` after ranking: one write through that database's write
connection records the query (its canonical ``query_key``),
the tab, the catalog, the Datasette actor's id — nothing else about the person:
no IP address, no user agent — and every result shown with its position.  The
page carries the new search id; ``scisearch-clicks.js`` sends
``navigator.sendBeacon`` to ``POST /-/scisearch/click/<database>`` with the
search id, the position and the item when a result is opened.

CSRF: the beacon keeps Datasette's CSRF protection.  A click is a vote in the
ranking, and a forged cross-site request would let another site vote with its
visitors' browsers under their actor ids, which is exactly what the per-actor
limits below are meant to bound.  ``sendBeacon`` cannot set headers but can
send a form body, so the page gives the script its ``csrftoken`` and the
beacon sends it as the form field Datasette checks (asgi-csrf).

A beacon anyone can forge is bounded here before learning ever sees it: a click
counts only if its (search id, position, item) is an impression that search
logged, the search is less than ``MAX_SEARCH_AGE`` old and was made by the same
actor (anonymous clicks on anonymous searches), each position counts once per
search and at most ``MAX_CLICKS_PER_SEARCH`` per search.  ``learning.clicks``
then counts each actor once per (query, item) and day and caps the boost.
Answers are JSON; none of them is a traceback.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from datasette.utils import tilde_encode
from datasette.utils.asgi import Forbidden, Response
from datasette.utils.sqlite import sqlite3  # the module Datasette's connections come from (pysqlite3 where installed)

from ..search.click_signals import query_key
from ..search.query import QueryError, parse_query
from .base import WebError, find_catalog
from .privacy import private_database

MAX_SEARCH_AGE = dt.timedelta(days=1)
MAX_CLICKS_PER_SEARCH = 5
MAX_ACTOR_CHARS = 200
# The log is worth less than the searcher's time: while `scisearch learn` holds the log's write lock, a search
# waits this long to log what it showed and is then shown unlogged.
LOG_WAIT_MS = 1000

_CLICK_ROUTE = r"^/-/scisearch/click/(?P<database>[^/]+)$"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def actor_id(actor: dict | None) -> str | None:
    """The only thing the log keeps about who searched."""
    if not actor or actor.get("id") in (None, ""):
        return None
    return str(actor["id"])[:MAX_ACTOR_CHARS]


# -- Recording (plain functions of a connection: the page runs them on Datasette's write thread) ---------------


def record_search(conn, query: str, key: str, tab: str | None, catalog: str, actor: str | None, shown, now=None) -> int:
    """Log one search and what it showed; ``shown`` is [(position, item_type, item_id), …].  Returns its id."""
    created_at = (now or _now()).isoformat(timespec="seconds")
    with conn:
        cursor = conn.execute(
            "insert into search_log (query, query_key, tab, catalog, actor, created_at) values (?, ?, ?, ?, ?, ?)",
            [query, key, tab or "all", catalog, actor, created_at],
        )
        search_id = cursor.lastrowid
        conn.executemany(
            "insert into search_impressions (search_id, position, item_type, item_id) values (?, ?, ?, ?)",
            [(search_id, position, item_type, str(item_id)) for position, item_type, item_id in shown],
        )
    return search_id


@dataclass
class ClickOutcome:
    status: int  # the beacon's HTTP status
    recorded: bool = False
    message: str = ""


def record_click(conn, search_id: int, position: int, item_type, item_id, actor: str | None, now=None) -> ClickOutcome:
    """Count one opened result if the log backs it.  Runs on Datasette's single write connection, so two beacons
    for the same search are checked and counted one after the other and cannot both take its last place."""
    now = now or _now()
    search = conn.execute("select actor, created_at from search_log where id = ?", [search_id]).fetchone()
    if search is None:
        return ClickOutcome(404, message=f"there is no search {search_id}")
    searched_by, created_at = search
    if searched_by != actor:
        return ClickOutcome(403, message=f"search {search_id} was made by someone else")
    if now - dt.datetime.fromisoformat(created_at) > MAX_SEARCH_AGE:
        return ClickOutcome(410, message=f"search {search_id} is more than a day old; clicks on it no longer count")
    shown = conn.execute(
        "select item_type, item_id from search_impressions where search_id = ? and position = ?",
        [search_id, position],
    ).fetchone()
    if shown is None:
        return ClickOutcome(400, message=f"search {search_id} showed nothing at position {position}")
    if item_type is not None and (item_type, str(item_id)) != tuple(shown):
        return ClickOutcome(400, message=f"search {search_id} showed another item at position {position}")
    clicked = [row[0] for row in conn.execute("select position from search_clicks where search_id = ?", [search_id])]
    if position in clicked:
        return ClickOutcome(200, message="already counted for this search")
    if len(clicked) >= MAX_CLICKS_PER_SEARCH:
        return ClickOutcome(200, message=f"a search counts at most {MAX_CLICKS_PER_SEARCH} clicks")
    with conn:
        conn.execute(
            """insert into search_clicks (search_id, position, item_type, item_id, actor, clicked_at)
               values (?, ?, ?, ?, ?, ?)""",
            [search_id, position, shown[0], shown[1], actor, now.isoformat(timespec="seconds")],
        )
    return ClickOutcome(200, recorded=True)


# -- The search page's part ------------------------------------------------------------------------------------


async def log_search(
    datasette, request, query: str, tab: str | None, shown: list[tuple[str, dict]], first_position: int
):
    """Log what a search page showed: ``shown`` is its results in order as (database name, hit view), the first
    at ``first_position``.  Each catalog logs its own results with their positions on the page; each hit view
    gets ``click`` (its search id, position and the beacon's URL) for the template.  Returns search ids by
    database."""
    try:
        key = query_key(parse_query(query))
    except QueryError:
        return {}
    if not query.strip():
        return {}
    actor = actor_id(request.actor)
    by_database: dict[str, list[tuple[int, dict]]] = {}
    for offset, (database, hit) in enumerate(shown):
        by_database.setdefault(database, []).append((first_position + offset, hit))
    search_ids = {}
    for database, hits in by_database.items():
        db = datasette.get_database(database)
        log = private_database(datasette, db)
        if log is None:  # a catalog served immutable has no private half to write to
            continue
        logged = [(position, hit["item_type"], hit["item_id"]) for position, hit in hits]
        search_id = await log.execute_write_fn(
            lambda conn, database=database, logged=logged: _unless_busy(
                conn, record_search, conn, query, key, tab, database, actor, logged
            )
        )
        if search_id is None:
            continue
        url = datasette.urls.path(f"-/scisearch/click/{tilde_encode(db.route)}")
        for position, hit in hits:
            hit["click"] = {"search_id": search_id, "position": position, "url": url}
        search_ids[database] = search_id
    return search_ids


def _unless_busy(conn, function, *args):
    """``function(*args)``, or None when another program holds the catalog's write lock for over LOG_WAIT_MS."""
    conn.execute(f"PRAGMA busy_timeout = {LOG_WAIT_MS}")
    try:
        return function(*args)
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
        return None


# -- The beacon ------------------------------------------------------------------------------------------------


def _answer(status: int, **body) -> Response:
    return Response.json({"ok": status < 400, **body}, status=status)


async def click_beacon(request, datasette):
    if request.method != "POST":
        return _answer(405, error="send clicks with POST")
    try:
        db = find_catalog(datasette, request.url_vars["database"])  # a route, tilde-encoded
    except WebError as error:
        return _answer(error.status, error=str(error))
    try:
        await datasette.ensure_permissions(request.actor, [("view-database", db.name), "view-instance"])
    except Forbidden as error:
        return _answer(403, error=str(error) or "you may not see this catalog")
    log = private_database(datasette, db)
    if not db.is_mutable or log is None:
        return _answer(403, error=f"catalog '{db.name}' is served read-only (immutable), so it keeps no clicks")
    form = await request.post_vars()
    try:
        search_id, position = int(form.get("search_id", "")), int(form.get("position", ""))
    except ValueError:
        return _answer(400, error="search_id and position must be whole numbers")
    if not (0 < search_id < 2**63 and 0 < position < 2**31):
        return _answer(400, error="search_id and position must be positive")
    item_type, item_id = form.get("item_type") or None, form.get("item_id")
    actor = actor_id(request.actor)
    outcome = await log.execute_write_fn(
        lambda conn: _unless_busy(conn, record_click, conn, search_id, position, item_type, item_id, actor)
    )
    if outcome is None:
        return _answer(503, error="the catalog is busy with another writer; this click was not counted")
    if outcome.status >= 400:
        return _answer(outcome.status, error=outcome.message)
    return _answer(200, recorded=outcome.recorded, **({"note": outcome.message} if outcome.message else {}))


ROUTES = [(_CLICK_ROUTE, click_beacon)]

__all__ = ["ROUTES", "ClickOutcome", "log_search", "record_click", "record_search"]
