"""Experts validating tags in the browser: accept, reject, edit, add, undo, bulk changes and the review queue.

Everyone may search and read; only actors allowed ``scisearch-edit`` may change
tags.  Who that is comes from metadata.yml::

    plugins:
      datasette-scisearch:
        edit:
          allow: {id: [root, alice]}     # a Datasette allow block

and defaults to the root actor (``datasette --root``) when the block is absent.
Other permission plugins can grant ``scisearch-edit`` too, through Datasette's
``permission_allowed`` hook.

Every change is a POST through Datasette's CSRF protection (the ``csrftoken``
form field or the ``x-csrftoken`` header) and runs on Datasette's write
connection through ``experts``.  A request that asks for JSON (``Accept:
application/json``, or a JSON body) gets JSON; a plain form post is redirected
back to the page it came from, so everything works without JavaScript.

Routes (``<db>`` is the database's route):

- ``POST /-/scisearch/tags/<db>/<tag id>``: ``action`` = accept | reject | edit (with ``text``)
- ``GET  /-/scisearch/tags/<db>/<tag id>``: the tag and its history, as JSON
- ``POST /-/scisearch/tags/<db>/add``: ``item_type``, ``item_id``, ``text``
- ``POST /-/scisearch/tags/<db>/bulk``: ``action`` = accept | reject | add, ``tag``, ``item`` = type:id (repeated)
- ``POST /-/scisearch/history/<db>/<history id>/undo``
- ``POST /-/scisearch/history/<db>/undo``: ``history`` = history id (repeated): undo a bulk change at once
- ``GET  /-/scisearch/queue/<db>``: items awaiting review, least certain first
"""

from __future__ import annotations

import json
import urllib.parse

import sqlite_utils
from datasette.utils import actor_matches_allow, tilde_decode, tilde_encode
from datasette.utils.asgi import Forbidden, Response
from datasette.utils.sqlite import sqlite3  # the module Datasette's connections come from (pysqlite3 where installed)

from .. import catalog, periods
from ..catalog import ITEM_TABLES
from ..errors import BUSY, ScisearchError
from ..tagging import experts
from . import present
from .base import (
    WebError,
    facility_settings,
    find_catalog,
    hidden_proposals,
    item_url,
    parse_page,
    preview_url,
    readable_item,
)
from .errors import error_response, wants_json
from .privacy import is_staff

PLUGIN_NAME = "datasette-scisearch"
EDIT_PERMISSION = "scisearch-edit"
DEFAULT_EDITORS = {"id": "root"}  # without an allow block, only `datasette --root` may edit
QUEUE_SIZE = 48
MAX_BODY_BYTES = 1_000_000  # a bulk change of thousands of items is far below this
MAX_UNDONE_AT_ONCE = 100_000  # one undo of a bulk change; a longer range is a typing error
# As open_catalog's: a training or tagging run holds the write lock for seconds, and Datasette's write
# connection would otherwise give up after Python's default 5 s and lose the expert's change.
BUSY_TIMEOUT_MS = 30_000

_DB = r"(?P<database>[^/]+)"
_ADD_ROUTE = rf"^/-/scisearch/tags/{_DB}/add$"
_BULK_ROUTE = rf"^/-/scisearch/tags/{_DB}/bulk$"
_TAG_ROUTE = rf"^/-/scisearch/tags/{_DB}/(?P<tag_id>[^/]+?)(?:\.json)?$"
_UNDO_ROUTE = rf"^/-/scisearch/history/{_DB}/(?P<history_id>[^/]+)/undo$"
_QUEUE_ROUTE = rf"^/-/scisearch/queue/{_DB}/?$"
_UNDO_ALL_ROUTE = rf"^/-/scisearch/history/{_DB}/undo$"


class CatalogBusy(experts.ExpertError):
    kind = BUSY


# -- Who may edit ------------------------------------------------------------------------------------------


def editors_allow(datasette) -> dict | bool:
    """The allow block of ``plugins: datasette-scisearch: edit:`` in metadata.yml, else root only."""
    block = (datasette.plugin_config(PLUGIN_NAME) or {}).get("edit") or {}
    allow = block.get("allow") if isinstance(block, dict) else None
    return DEFAULT_EDITORS if allow is None else allow


def permission_allowed(datasette, actor, action, resource):
    """Datasette's permission hook (registered in web/__init__.py) for the scisearch-edit action."""
    # Grants only: an actor the block does not name may still be allowed by another permissions plugin.
    if action == EDIT_PERMISSION and actor_matches_allow(actor, editors_allow(datasette)):
        return True
    return None


async def can_edit(datasette, actor) -> bool:
    if actor is None:
        return False
    # The allow block is read here too, so editing works whether or not this module's hook is registered.
    if actor_matches_allow(actor, editors_allow(datasette)):
        return True
    return await datasette.permission_allowed(actor, EDIT_PERMISSION, default=False)


def sign_in_hint(actor) -> str:
    if actor is None:
        return "Sign in as an expert to accept, reject, edit and add tags."
    name = actor.get("id") or "someone"
    return f"You are signed in as {name}, but only experts with the {EDIT_PERMISSION} permission can change tags."


# -- Requests and responses --------------------------------------------------------------------------------


async def form_fields(request) -> dict[str, list[str]]:
    """The POST body as field -> values (repeated fields kept), from a form or a JSON object."""
    body = await request.post_body()
    if len(body) > MAX_BODY_BYTES:
        raise WebError(f"the request is larger than {MAX_BODY_BYTES:,} bytes", 413)
    text = body.decode("utf-8", "replace")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(text or "{}")
        except ValueError:
            raise WebError("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise WebError("the request body must be a JSON object")
        return {key: [str(v) for v in (value if isinstance(value, list) else [value])] for key, value in data.items()}
    fields: dict[str, list[str]] = {}
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        fields.setdefault(key, []).append(value)
    return fields


def first(fields: dict, name: str, default: str = "") -> str:
    values = fields.get(name) or [default]
    return values[0]


def safe_next(url: str | None) -> str | None:
    """A redirect target that stays on this site: a path, never another host."""
    # Browsers drop tabs and newlines inside a URL and read a backslash as a slash: "/\t/evil" would be "//evil".
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return None
    if any(ch < " " or ch == "\x7f" for ch in url):
        return None
    return url


async def catalog_for_reading(request, datasette):
    """The catalog named in the URL, once the actor may see it (Datasette's own 403 otherwise)."""
    db = find_catalog(datasette, request.url_vars["database"])
    await datasette.ensure_permissions(request.actor, [("view-database", db.name), "view-instance"])
    return db


async def catalog_for_writing(request, datasette):
    """The catalog named in the URL, once the actor may see it and change its tags."""
    try:
        db = await catalog_for_reading(request, datasette)
    except Forbidden as error:
        raise WebError(str(error) or "You may not see this catalog.", 403) from None
    if not await can_edit(datasette, request.actor):
        raise WebError(sign_in_hint(request.actor), 403)
    if not db.is_mutable:
        raise WebError(f"Database '{db.name}' is served read-only (immutable), so its tags cannot change.", 403)
    return db


async def ensure_item_readable(request, datasette, db, item_type: str, item_id) -> None:
    """A 404 for an item the actor may not read (its table's rule, or its proposal's period): a tag of it is as
    out of reach as the item itself, for reading and for changing."""
    if not await readable_item(datasette, request.actor, db, item_type, item_id):
        raise WebError(f"There is no {str(item_type)[:40]} '{str(item_id)[:100]}' in this catalog.", 404)


async def ensure_tag_readable(request, datasette, db, tag_id=None, history_id=None) -> None:
    """``ensure_item_readable`` for the item of a tag, or of a history entry's tag (None: no such tag, which the
    change itself reports)."""

    def item_of(conn):
        if history_id is not None:
            sql = "select t.item_type, t.item_id from tag_history h join tags t on t.id = h.tag_id where h.id = ?"
            key = history_id
        else:
            sql, key = "select item_type, item_id from tags where id = ?", tag_id
        return conn.execute(sql, [key]).fetchone()

    found = await db.execute_fn(item_of)
    if found is not None:
        await ensure_item_readable(request, datasette, db, found[0], found[1])


async def write(db, function, *args):
    """Run an ``experts`` function on Datasette's single write connection."""

    def run(conn):
        # Refusals come back as values: Datasette's write thread would print a raised one as a server error.
        conn.execute(f"PRAGMA busy_timeout = {min(BUSY_TIMEOUT_MS, catalog.BUSY_TIMEOUT_MS)}")
        try:
            with catalog.waiting_at_most(BUSY_TIMEOUT_MS / 1000):  # the busy timeout, then retries with backoff
                return function(sqlite_utils.Database(conn), *args)
        except experts.ExpertError as error:
            return error
        except (sqlite3.OperationalError, catalog.CatalogBusy) as error:
            if not isinstance(error, catalog.CatalogBusy) and not catalog.is_busy(error):
                raise
            return CatalogBusy(
                f"another program has been writing to this catalog for over {BUSY_TIMEOUT_MS // 1000} s "
                "(a training or tagging run?); nothing was changed: try again in a minute"
            )

    result = await db.execute_write_fn(run)
    if isinstance(result, experts.ExpertError):
        raise result
    return result


NOT_MADE = "This change was not made"


def handles_errors(handler):
    """Bad input, missing things and refused permissions end as JSON errors or readable pages (web/errors.py)."""

    async def wrapped(request, datasette):
        try:
            return await handler(request, datasette)
        except ScisearchError as error:
            error.message = error.message[:1].upper() + error.message[1:]  # shown as a sentence on its own
            return await error_response(
                datasette, request, error, page="validation", heading="This change was not made"
            )

    wrapped.__name__ = handler.__name__
    return wrapped


def done(request, datasette, payload: dict, message: str, fallback_url: str) -> Response:
    if wants_json(request):
        zone = facility_settings(datasette).zone
        for entry in [payload.get("history"), *[change.get("history") for change in payload.get("changes") or []]]:
            if isinstance(entry, dict) and entry.get("changed_at"):
                entry["changed_shown"] = present.readable_time(entry["changed_at"], zone)
        return Response.json({"ok": True, **payload})
    datasette.add_message(request, message, datasette.INFO)
    # 303: the browser follows with a GET, so reloading the page does not post the change again.
    return Response("", status=303, headers={"Location": fallback_url})


# -- Changes -------------------------------------------------------------------------------------------------


@handles_errors
async def tag_endpoint(request, datasette):
    if request.method == "GET":
        return await tag_json(request, datasette)
    if request.method != "POST":
        raise WebError("use POST to change a tag", 405)
    db = await catalog_for_writing(request, datasette)
    fields = await form_fields(request)
    action = first(fields, "action")
    tag_id = tilde_decode(request.url_vars["tag_id"])
    if action == "undo":
        raise WebError("to undo, POST to the history entry's /undo URL")
    await ensure_tag_readable(request, datasette, db, tag_id=tag_id)
    change = await write(db, experts.change_tag, tag_id, action, request.actor, first(fields, "text"))
    tag = change.tag
    fallback = safe_next(first(fields, "next")) or item_url(datasette, db.name, tag["item_type"], tag["item_id"])
    verb = {"accept": "Accepted", "reject": "Rejected", "edit": "Changed"}[action]
    shown = f"'{change.history['old_value']}' to '{tag['tag']}'" if action == "edit" else f"'{tag['tag']}'"
    return done(request, datasette, change.as_dict(), f"{verb} {shown}.", fallback)


async def tag_json(request, datasette):
    db = await catalog_for_reading(request, datasette)
    tag_id = tilde_decode(request.url_vars["tag_id"])
    await ensure_tag_readable(request, datasette, db, tag_id=tag_id)
    staff = is_staff(datasette, request.actor)  # who changed a tag is for staff to see (privacy.py)

    def read(conn):
        catalog = sqlite_utils.Database(conn)
        history = experts.history(catalog, tag_id=tag_id, with_actors=staff)
        return {"tag": experts.get_tag(catalog, tag_id), "history": history}

    return Response.json({"ok": True, **await db.execute_fn(read)})


@handles_errors
async def add_endpoint(request, datasette):
    if request.method != "POST":
        raise WebError("use POST to add a tag", 405)
    db = await catalog_for_writing(request, datasette)
    fields = await form_fields(request)
    item_type, item_id = first(fields, "item_type"), first(fields, "item_id")
    if item_type in ITEM_TABLES:
        await ensure_item_readable(request, datasette, db, item_type, item_id)
    change = await write(db, experts.add, item_type, item_id, first(fields, "text"), request.actor)
    fallback = safe_next(first(fields, "next")) or item_url(datasette, db.name, item_type, item_id)
    return done(request, datasette, change.as_dict(), f"Added '{change.tag['tag']}'.", fallback)


def parse_items(values: list[str]) -> list[tuple[str, str]]:
    items = []
    for value in values:
        item_type, _, item_id = value.partition(":")
        if item_type not in ITEM_TABLES or not item_id:
            raise WebError(f"'{value[:60]}' is not an item: write items as type:id, e.g. file:12")
        items.append((item_type, item_id))
    return items


@handles_errors
async def bulk_endpoint(request, datasette):
    if request.method != "POST":
        raise WebError("use POST to change tags", 405)
    db = await catalog_for_writing(request, datasette)
    fields = await form_fields(request)
    items = parse_items(fields.get("item") or [])
    for item_type, item_id in items:
        await ensure_item_readable(request, datasette, db, item_type, item_id)
    action = first(fields, "action")
    result = await write(db, experts.bulk_change, action, first(fields, "tag"), items, request.actor)
    route = tilde_encode(db.route)
    fallback = safe_next(first(fields, "next")) or datasette.urls.path(f"-/scisearch/queue/{route}")
    verb = {"accept": "Accepted", "reject": "Rejected", "add": "Added"}[action]
    message = f"{verb} '{result.tag}' on {len(result.changes)} tag{'s' if len(result.changes) != 1 else ''}"
    if result.skipped:
        message += f"; {len(result.skipped)} item{'s' if len(result.skipped) != 1 else ''} skipped"
    # Without JavaScript the page after the redirect offers the undo: the change's history ids travel in its URL.
    fallback = _with_undo_range(fallback, [change.history["id"] for change in result.changes])
    return done(request, datasette, result.as_dict(), message + ".", fallback)


def _with_undo_range(url: str, history_ids: list[int]) -> str:
    """The URL with ``undo=first-last``: one bulk change writes its history in one transaction, so its entries'
    ids follow one another (checked: otherwise no undo is offered)."""
    if not history_ids or max(history_ids) - min(history_ids) + 1 != len(history_ids):
        return url
    return f"{url}{'&' if '?' in url else '?'}undo={min(history_ids)}-{max(history_ids)}"


def parse_history_range(text: str | None) -> list[str]:
    """'120-245' as the history ids 120 … 245; a bad or too long range is refused with what to write."""
    first_id, _, last_id = (text or "").strip().partition("-")
    if not (first_id.isdigit() and last_id.isdigit()) or int(first_id) > int(last_id):
        raise WebError(f"'{str(text)[:40]}' is not a range of changes: write it as first-last, e.g. 120-245")
    if int(last_id) - int(first_id) >= MAX_UNDONE_AT_ONCE:
        raise WebError(f"at most {MAX_UNDONE_AT_ONCE:,} changes can be undone at once")
    return [str(number) for number in range(int(first_id), int(last_id) + 1)]


def undo_all(db, history_ids: list[str], actor) -> dict:
    """Take back each of these changes (a bulk change, most often), newest first; one that a later change has
    overtaken is skipped and said why, the others are undone."""
    undone, skipped = [], []
    for history_id in sorted(history_ids, key=lambda text: -int(text) if text.isdigit() else 0):
        try:
            undone.append(experts.undo(db, history_id, actor).as_dict())
        except experts.ExpertError as error:
            skipped.append({"history_id": history_id, "reason": error.message})
    return {"undone": undone, "skipped": skipped}


@handles_errors
async def undo_all_endpoint(request, datasette):
    if request.method != "POST":
        raise WebError("use POST to undo changes", 405)
    db = await catalog_for_writing(request, datasette)
    fields = await form_fields(request)
    history_ids = [value.strip() for value in fields.get("history") or [] if value.strip()]
    if first(fields, "history_range"):
        history_ids += parse_history_range(first(fields, "history_range"))
    if not history_ids:
        raise WebError("name the changes to undo: one history field per change")
    for history_id in history_ids:
        await ensure_tag_readable(request, datasette, db, history_id=history_id)
    result = await write(db, undo_all, history_ids, request.actor)
    route = tilde_encode(db.route)
    fallback = safe_next(first(fields, "next")) or datasette.urls.path(f"-/scisearch/queue/{route}")
    count = len(result["undone"])
    message = f"Undid {count} change{'s' if count != 1 else ''}"
    if result["skipped"]:
        message += f"; {len(result['skipped'])} had changed again since and stay as they are"
    return done(request, datasette, result, message + ".", fallback)


@handles_errors
async def undo_endpoint(request, datasette):
    if request.method != "POST":
        raise WebError("use POST to undo a change", 405)
    db = await catalog_for_writing(request, datasette)
    fields = await form_fields(request)
    history_id = tilde_decode(request.url_vars["history_id"])
    await ensure_tag_readable(request, datasette, db, history_id=history_id)
    change = await write(db, experts.undo, history_id, request.actor)
    tag = change.tag
    fallback = safe_next(first(fields, "next")) or item_url(datasette, db.name, tag["item_type"], tag["item_id"])
    return done(request, datasette, change.as_dict(), f"Undone: '{tag['tag']}' is {tag['status']} again.", fallback)


# -- What the pages show -------------------------------------------------------------------------------------


async def editing_context(request, datasette, db, item_type: str, item_id: str) -> dict:
    """For the item page: whether this visitor may edit, and the history of the item's tags by tag id."""
    editor = await can_edit(datasette, request.actor)
    staff = is_staff(datasette, request.actor)  # who changed a tag is for staff to see (privacy.py)
    entries = await db.execute_fn(
        lambda conn: experts.history(sqlite_utils.Database(conn), item_type, item_id, with_actors=staff)
    )
    by_tag: dict[int, list[dict]] = {}
    for entry in entries:
        by_tag.setdefault(entry["tag_id"], []).append(entry)
    route = tilde_encode(db.route)
    return {
        "can_edit": editor and db.is_mutable,
        "sign_in_hint": None if editor else sign_in_hint(request.actor),
        "tag_history": by_tag,
        "tag_action_base": datasette.urls.path(f"-/scisearch/tags/{route}"),
        "undo_base": datasette.urls.path(f"-/scisearch/history/{route}"),
        "queue_url": datasette.urls.path(f"-/scisearch/queue/{route}"),
        "max_tag_chars": experts.MAX_TAG_CHARS,
    }


@handles_errors
async def queue_page(request, datasette):
    db = await catalog_for_reading(request, datasette)
    item_type = request.args.get("type") or "file"
    if item_type not in ITEM_TABLES:
        raise WebError(f"'{item_type[:40]}' is not a kind of item: use one of {', '.join(ITEM_TABLES)}", 400)
    page, page_note = parse_page(request.args.get("page"))
    hidden = await hidden_proposals(datasette, request.actor, db)

    def read_queue(conn):
        db = sqlite_utils.Database(conn)
        # Items still under another team's proprietary period are not this expert's to judge, nor to see, nor to
        # count: the total, the pages and the page links are all of what is left.
        leave_out = periods.hidden_item_ids(db, item_type, hidden)
        total = experts.queue_total(db, item_type, leave_out)
        # Past the last page, the last page (an expert who cleared it comes back to what is left).
        last_page = max(1, -(-total // QUEUE_SIZE))
        shown_page = min(page, last_page)
        entries = experts.review_queue(db, item_type, QUEUE_SIZE, (shown_page - 1) * QUEUE_SIZE, leave_out)
        return total, shown_page, last_page, entries

    total, page, last_page, entries = await db.execute_fn(read_queue)
    try:  # after a bulk change made without JavaScript: its undo, offered on this page
        undo_range = request.args.get("undo")
        undo_count = len(parse_history_range(undo_range)) if undo_range else 0
    except WebError:
        undo_range, undo_count = None, 0
    zone = facility_settings(datasette).zone
    cards = []
    for entry in entries:
        facts = entry["facts"]
        cards.append(
            {
                **entry,
                "url": item_url(datasette, db.name, entry["item_type"], entry["item_id"]),
                "preview_url": preview_url(datasette, db.name, entry["item_id"]) if facts.get("has_preview") else None,
                "fact_line": present.hit_facts(entry["item_type"], facts, zone),
            }
        )
    # The tag texts most often proposed on this page: the likeliest choices for one bulk decision.
    counts: dict[str, int] = {}
    for card in cards:
        for text in {tag["tag"] for tag in card["tags"]}:
            counts[text] = counts.get(text, 0) + 1
    common = sorted(counts, key=lambda text: (-counts[text], text.casefold()))[:40]
    editor = await can_edit(datasette, request.actor)
    route = tilde_encode(db.route)
    context = {
        "scisearch_page": "queue",
        "q": "",
        "database": db.name,
        "item_type": item_type,
        "type_label": present.TYPE_LABELS[item_type],
        "types": list(ITEM_TABLES),
        "queue_url": datasette.urls.path(f"-/scisearch/queue/{route}"),
        "bulk_url": datasette.urls.path(f"-/scisearch/tags/{route}/bulk"),
        "undo_all_url": datasette.urls.path(f"-/scisearch/history/{route}/undo"),
        "tag_action_base": datasette.urls.path(f"-/scisearch/tags/{route}"),
        "cards": cards,
        "total": total,
        "first_shown": (page - 1) * QUEUE_SIZE + 1,
        "last_shown": (page - 1) * QUEUE_SIZE + len(cards),
        "page": page,
        "page_note": page_note,
        "previous_url": _queue_page_url(datasette, route, item_type, page - 1) if page > 1 else None,
        "next_url": _queue_page_url(datasette, route, item_type, page + 1) if page < last_page else None,
        "this_url": _queue_page_url(datasette, route, item_type, page),
        "common_tags": common,
        "undo_range": undo_range if undo_count else None,
        "undo_count": undo_count,
        "can_edit": editor and db.is_mutable,
        "sign_in_hint": None if editor else sign_in_hint(request.actor),
        "search_action": datasette.urls.path("-/scisearch"),
    }
    html = await datasette.render_template("scisearch_queue.html", context, request=request, view_name="scisearch")
    return Response.html(html)


def _queue_page_url(datasette, route: str, item_type: str, page: int) -> str:
    params = [(key, value) for key, value in (("type", item_type if item_type != "file" else ""), ("page", page))]
    query = "&".join(f"{key}={value}" for key, value in params if value and value != 1)
    return datasette.urls.path(f"-/scisearch/queue/{route}") + (f"?{query}" if query else "")


ROUTES = [
    (_UNDO_ALL_ROUTE, undo_all_endpoint),
    (_ADD_ROUTE, add_endpoint),
    (_BULK_ROUTE, bulk_endpoint),
    (_UNDO_ROUTE, undo_endpoint),
    (_TAG_ROUTE, tag_endpoint),
    (_QUEUE_ROUTE, queue_page),
]
