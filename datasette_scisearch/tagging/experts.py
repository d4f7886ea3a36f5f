"""Experts' changes to tags: accept, reject, edit, add, undo — each kept as history and searchable at once.

A machine tag an expert accepts keeps its row, source and score and changes its
status; a rejected one stays in the catalog as ``rejected`` so the tagger that
proposed it never writes it again (tagging.py skips texts an expert judged) and
search stops seeing it.  An edit keeps the row and changes its text; an added
tag is a new row with source ``expert``.  Every change writes one
``tag_history`` entry (when, old → new, and the item and text, so the
entry stays readable after the tag is edited or removed) and rebuilds the
item's search document in the same transaction.  Who made it is written to the
private database beside the catalog (``private.py``) once the change commits:
the catalog is readable by anyone who may search it.

Two experts changing the same tag at once: each change runs in its own
``BEGIN IMMEDIATE`` transaction, so the second waits for the first, reads the
first one's result as its "old" value and wins.  Both are in the history.

No web code here: ``web/validation.py`` calls these functions on Datasette's
write connection, and tests call them on any connection to a catalog.
"""

from __future__ import annotations

import contextlib
import contextvars
import unicodedata
from dataclasses import dataclass, field

import sqlite_utils

from .. import changes, private
from ..catalog import ITEM_TABLES, MAX_SQLITE_INTEGER, begin_write, item_key, now_utc
from ..errors import CONFLICT, NOT_FOUND, ScisearchError
from .tagger import DEFAULT_TAG_CATEGORY, category_label

MAX_TAG_CHARS = 200  # as the tagging pipeline's own limit; a longer "tag" is a sentence, not a tag
EXPERT_SOURCE = "expert"
SINGLE_ACTIONS = ("accept", "reject", "edit")
BULK_ACTIONS = ("accept", "reject", "add")
_STATUS_OF_ACTION = {"accept": "accepted", "reject": "rejected"}
TAG_COLUMNS = (
    "id",
    "item_type",
    "item_id",
    "tag",
    "score",
    "source",
    "source_version",
    "status",
    "evidence",
    "via",
    "category",
    "created_at",
    "updated_at",
)
HISTORY_COLUMNS = (
    "id",
    "tag_id",
    "changed_at",
    "actor",
    "action",
    "old_value",
    "new_value",
    "item_type",
    "item_id",
    "tag",
    "source",
)


class ExpertError(ScisearchError):
    """A change that cannot be made; the message says why, in words a person can act on."""


class InvalidChange(ExpertError):
    """Bad input: an empty or over-long tag, an unknown action."""


class NotFound(ExpertError):
    """No such item, tag or history entry."""

    kind = NOT_FOUND


class Conflict(ExpertError):
    """The change no longer applies (an undo of something changed since)."""

    kind = CONFLICT


@dataclass
class Change:
    """One change made: the tag as it is now (None once removed) and the history entry that records it."""

    action: str
    tag: dict | None
    history: dict

    def as_dict(self) -> dict:
        tag = {**self.tag, "category_label": category_label(self.tag.get("category"))} if self.tag else self.tag
        return {"action": self.action, "tag": tag, "history": self.history}


@dataclass
class BulkChange:
    action: str
    tag: str
    changes: list[Change] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # item_type, item_id, reason

    def as_dict(self) -> dict:
        return {
            "action": self.action,
            "tag": self.tag,
            "changed": len(self.changes),
            "changes": [change.as_dict() for change in self.changes],
            "skipped": self.skipped,
        }


# -- Input ---------------------------------------------------------------------------------------------


def clean_tag_text(text) -> str:
    """Tag text as stored: control characters dropped, whitespace collapsed; refused when empty or too long.

    HTML is kept as the characters typed — it is text, and every page escapes it."""
    if not isinstance(text, str):
        raise InvalidChange("a tag must be text")
    visible = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    cleaned = " ".join(visible.split())
    if not cleaned:
        raise InvalidChange("a tag cannot be empty: type a word or a short phrase")
    if len(cleaned) > MAX_TAG_CHARS:
        raise InvalidChange(
            f"a tag is at most {MAX_TAG_CHARS} characters; this one has {len(cleaned):,}. "
            "Shorten it to a word or a short phrase."
        )
    return cleaned


def actor_id(actor) -> str:
    """Who made a change, as history records it: the Datasette actor's id."""
    if isinstance(actor, dict):
        return str(actor.get("id") or "unknown")
    return str(actor) if actor else "unknown"


def _tag_id(tag_id, missing: str = "there is no tag {} in this catalog") -> int:
    text = str(tag_id).strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_SQLITE_INTEGER:
        raise NotFound(missing.format(repr(str(tag_id)[:40])))
    return int(text)


def item_exists(db: sqlite_utils.Database, item_type: str, item_id) -> bool:
    key = item_key(item_type, item_id)
    if key is None:
        return False
    return db.execute(f"select 1 from [{ITEM_TABLES[item_type]}] where id = ?", [key]).fetchone() is not None


def _check_item(db, item_type: str, item_id) -> None:
    if item_type not in ITEM_TABLES:
        raise NotFound(f"{str(item_type)[:40]!r} is not a kind of item: use one of {', '.join(ITEM_TABLES)}")
    if not item_exists(db, item_type, item_id):
        raise NotFound(f"there is no {item_type} {str(item_id)[:200]!r} in this catalog")


def _stored_id(item_type: str, item_id: str) -> str:
    """An existing item's id as tags and search documents hold it: file 1, though it was asked for as '01'."""
    return str(int(item_id)) if item_type == "file" else item_id


# -- Reading ----------------------------------------------------------------------------------------------


def get_tag(db: sqlite_utils.Database, tag_id) -> dict:
    row = db.execute(f"select {', '.join(TAG_COLUMNS)} from tags where id = ?", [_tag_id(tag_id)]).fetchone()
    if row is None:
        raise NotFound(f"there is no tag {tag_id} in this catalog")
    return dict(zip(TAG_COLUMNS, row))


def history(
    db: sqlite_utils.Database,
    item_type: str | None = None,
    item_id=None,
    tag_id=None,
    limit: int = 500,
    with_actors: bool = True,
) -> list[dict]:
    """History entries, newest first: of one tag, of one item's tags, or of the whole catalog.  ``actor`` comes
    from the private database; ``with_actors=False`` leaves it None (for visitors who are not staff)."""
    where, params = [], []
    if tag_id is not None:
        where.append("tag_id = ?")
        params.append(_tag_id(tag_id))
    if item_type is not None:
        where.append("item_type = ? and item_id = ?")
        params += [item_type, str(item_id)]
    sql = f"select {', '.join(HISTORY_COLUMNS)} from tag_history"
    sql += (" where " + " and ".join(where)) if where else ""
    entries = [
        dict(zip(HISTORY_COLUMNS, row)) for row in db.execute(sql + " order by id desc limit ?", [*params, limit])
    ]
    if with_actors:
        names = private.actors(db, [entry["id"] for entry in entries])
        for entry in entries:
            entry["actor"] = names.get(entry["id"], entry["actor"])
    return entries


# -- Writing ----------------------------------------------------------------------------------------------


# The (history id, actor, time) of the changes the open transaction made, written to the private database after it
# commits.  A context variable, because Datasette runs each change on its write thread.
_actors_to_record: contextvars.ContextVar[list | None] = contextvars.ContextVar("actors_to_record", default=None)


@contextlib.contextmanager
def _transaction(db: sqlite_utils.Database, touched: set[tuple[str, str]]):
    """One write transaction that ends by rebuilding the touched items' search documents.

    BEGIN IMMEDIATE takes the write lock before reading, so a concurrent expert's
    change is either wholly before this one (and read as the old value) or after."""
    if db.conn.in_transaction:
        # The caller's own uncommitted writes would be committed with ours.
        raise RuntimeError("commit or roll back the connection's open transaction before changing tags")
    pending: list[tuple[int, str, str]] = []
    token = _actors_to_record.set(pending)
    begin_write(db)
    try:
        yield
        by_type: dict[str, list[str]] = {}
        for item_type, item_id in touched:
            by_type.setdefault(item_type, []).append(item_id)
        # changes.refresh joins this transaction (as a savepoint): the change and every document it touches
        # commit together.
        for item_type, ids in sorted(by_type.items()):
            changes.refresh(db, changes.EDITS, item_types=[item_type], ids=ids)
        if db.conn.in_transaction:
            db.conn.commit()
    except BaseException:
        if db.conn.in_transaction:
            db.conn.rollback()
        raise
    finally:
        _actors_to_record.reset(token)
    private.record_actors(db, pending)


def _record(db, tag: dict, actor: str, action: str, old_value, new_value, now: str) -> dict:
    entry = {
        "tag_id": tag["id"],
        "changed_at": now,
        "actor": None,  # the name goes to the private database (see _transaction)
        "action": action,
        "old_value": old_value,
        "new_value": new_value,
        "item_type": tag["item_type"],
        "item_id": str(tag["item_id"]),
        "tag": tag["tag"],
        "source": tag["source"],
    }
    cursor = db.execute(
        f"insert into tag_history ({', '.join(entry)}) values ({', '.join('?' * len(entry))})", list(entry.values())
    )
    pending = _actors_to_record.get()
    if pending is not None:
        pending.append((cursor.lastrowid, actor, now))
    return {"id": cursor.lastrowid, **entry, "actor": actor}


def _set_status(db, tag: dict, status: str, actor: str, action: str, now: str) -> Change:
    old = tag["status"] or "machine"
    db.execute("update tags set status = ?, updated_at = ? where id = ?", [status, now, tag["id"]])
    updated = {**tag, "status": status, "updated_at": now}
    return Change(action, updated, _record(db, updated, actor, action, old, status, now))


def _set_text(db, tag: dict, text: str, actor: str, action: str, now: str, status: str | None = None) -> Change:
    # The expert wrote this text, so it is vouched for: a machine tag becomes accepted, an added one stays added.
    status = status or ("added" if tag["status"] == "added" else "accepted")
    db.execute("update tags set tag = ?, status = ?, updated_at = ? where id = ?", [text, status, now, tag["id"]])
    updated = {**tag, "tag": text, "status": status, "updated_at": now}
    return Change(action, updated, _record(db, updated, actor, action, tag["tag"], text, now))


def change_tag(db: sqlite_utils.Database, tag_id, action: str, actor, text: str | None = None) -> Change:
    """Accept, reject or edit one tag (``text`` is the new text of an edit)."""
    if action not in SINGLE_ACTIONS:
        raise InvalidChange(f"unknown action {str(action)[:40]!r}: use one of {', '.join(SINGLE_ACTIONS)}")
    new_text = clean_tag_text(text) if action == "edit" else None
    who = actor_id(actor)
    tag = get_tag(db, tag_id)  # a clear 404 before taking the write lock
    with _transaction(db, {(tag["item_type"], str(tag["item_id"]))}):
        tag = get_tag(db, tag_id)  # read again under the lock: another expert may have changed it
        now = now_utc()
        if action == "edit":
            return _set_text(db, tag, new_text, who, "edit", now)
        return _set_status(db, tag, _STATUS_OF_ACTION[action], who, action, now)


def accept(db: sqlite_utils.Database, tag_id, actor) -> Change:
    return change_tag(db, tag_id, "accept", actor)


def reject(db: sqlite_utils.Database, tag_id, actor) -> Change:
    return change_tag(db, tag_id, "reject", actor)


def edit(db: sqlite_utils.Database, tag_id, text: str, actor) -> Change:
    return change_tag(db, tag_id, "edit", actor, text)


def _add(db, item_type: str, item_id: str, text: str, who: str, now: str) -> Change | None:
    """The expert's tag on one item; None when the item already has it from an expert."""
    found = db.execute(
        f"select {', '.join(TAG_COLUMNS)} from tags where item_type = ? and item_id = ? and source = ? "
        "and tag = ? collate nocase",
        [item_type, item_id, EXPERT_SOURCE, text],
    ).fetchone()
    if found is not None:
        tag = dict(zip(TAG_COLUMNS, found))
        if tag["status"] == "rejected":  # added, then taken back, now wanted again
            return _set_status(db, tag, "added", who, "add", now)
        return None
    row = {
        "item_type": item_type,
        "item_id": item_id,
        "tag": text,
        "score": 1.0,
        "source": EXPERT_SOURCE,
        "source_version": None,
        "status": "added",
        "evidence": f"added by {who}",
        "via": None,
        "category": usual_category(db, text),
        "created_at": now,
        "updated_at": now,
    }
    cursor = db.execute(f"insert into tags ({', '.join(row)}) values ({', '.join('?' * len(row))})", list(row.values()))
    tag = {"id": cursor.lastrowid, **row}
    return Change("add", tag, _record(db, tag, who, "add", None, text, now))


def usual_category(db, text: str) -> str:
    """An expert's tag goes in the group the taggers put the same words in most often ("gold" with the materials);
    words no tagger has used are "other"."""
    found = db.execute(
        "select category from tags where tag = ? and category is not null and category != ? "
        "group by category order by count(*) desc, category limit 1",
        [text, DEFAULT_TAG_CATEGORY],
    ).fetchone()
    return found[0] if found else DEFAULT_TAG_CATEGORY


def add(db: sqlite_utils.Database, item_type: str, item_id, text: str, actor) -> Change:
    """Add an expert's tag to an item (status ``added``, source ``expert``); adding it twice changes nothing."""
    text = clean_tag_text(text)
    item_id = str(item_id)
    _check_item(db, item_type, item_id)
    item_id = _stored_id(item_type, item_id)
    who = actor_id(actor)
    with _transaction(db, {(item_type, item_id)}):
        change = _add(db, item_type, item_id, text, who, now_utc())
    if change is None:
        raise Conflict(f"this {item_type} already has the tag {text!r}")
    return change


def undo(db: sqlite_utils.Database, history_id, actor) -> Change:
    """Take back one change, if the tag is still as that change left it; the undo is history too."""
    entry_id = _tag_id(history_id, "there is no change {} in this catalog's history")
    row = db.execute(f"select {', '.join(HISTORY_COLUMNS)} from tag_history where id = ?", [entry_id]).fetchone()
    if row is None:
        raise NotFound(f"there is no change {history_id} in this catalog's history")
    entry = dict(zip(HISTORY_COLUMNS, row))
    if entry["action"].startswith("undo"):
        raise InvalidChange("an undo cannot itself be undone: make the change again instead")
    who = actor_id(actor)
    with _transaction(db, {(entry["item_type"], str(entry["item_id"]))}):
        tag = get_tag(db, entry["tag_id"])
        now = now_utc()
        if entry["action"] == "edit":
            if tag["tag"] != entry["new_value"]:
                raise Conflict(f"the tag has been edited since (it reads {tag['tag']!r} now); edit it instead")
            # The edit also made the tag accepted; taking it back must not leave the machine's text vouched for.
            return _set_text(db, tag, entry["old_value"], who, "undo-edit", now, _status_before(db, tag, entry["id"]))
        if entry["action"] == "add":
            if tag["status"] != "added":
                raise Conflict(f"the tag has changed since (it is {tag['status']} now)")
            # An added tag taken back is kept as rejected rather than deleted: its history keeps pointing at it.
            return _set_status(db, tag, "rejected", who, "undo-add", now)
        if tag["status"] != entry["new_value"]:
            raise Conflict(f"the tag has changed since (it is {tag['status']} now)")
        return _set_status(db, tag, entry["old_value"] or "machine", who, "undo-" + entry["action"], now)


def _status_before(db, tag: dict, history_id: int) -> str:
    """The tag's status just before history entry ``history_id``, replayed from its history: an edit's entry
    keeps only the texts, though the edit also changed the status."""
    status = "added" if tag["source"] == EXPERT_SOURCE else "machine"
    edits: list[tuple[str, str, str]] = []  # (old text, new text, status before) of each edit so far
    for action, old, new in db.execute(
        "select action, old_value, new_value from tag_history where tag_id = ? and id < ? order by id",
        [tag["id"], history_id],
    ):
        if action == "edit":
            edits.append((old, new, status))
            status = "added" if status == "added" else "accepted"
        elif action == "undo-edit":
            undone = [before for was, became, before in edits if (became, was) == (old, new)]
            status = undone[-1] if undone else status
        elif action in ("add", "undo-add"):
            status = "added" if action == "add" else "rejected"
        else:  # accept, reject and their undos record the status itself
            status = new
    return status


def bulk_change(db: sqlite_utils.Database, action: str, text: str, items: list[tuple[str, str]], actor) -> BulkChange:
    """The same change of one tag text on many items: accept or reject every row of that text (any source) on
    each item, or add it to each.  Items without the tag, or unknown items, are listed as skipped."""
    if action not in BULK_ACTIONS:
        raise InvalidChange(f"unknown bulk action {str(action)[:40]!r}: use one of {', '.join(BULK_ACTIONS)}")
    text = clean_tag_text(text)
    if not items:
        raise InvalidChange("choose at least one item")
    who = actor_id(actor)
    result = BulkChange(action, text)
    wanted = []
    for item_type, item_id in dict.fromkeys((str(t), str(i)) for t, i in items):
        if not item_exists(db, item_type, item_id):
            result.skipped.append({"item_type": item_type, "item_id": item_id, "reason": "no such item"})
        else:
            wanted.append((item_type, _stored_id(item_type, item_id)))
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return result
    with _transaction(db, set(wanted)):
        now = now_utc()
        for item_type, item_id in wanted:
            if action == "add":
                change = _add(db, item_type, item_id, text, who, now)
                if change is None:
                    result.skipped.append({"item_type": item_type, "item_id": item_id, "reason": "already tagged"})
                else:
                    result.changes.append(change)
                continue
            status = _STATUS_OF_ACTION[action]
            rows = db.execute(
                f"select {', '.join(TAG_COLUMNS)} from tags where item_type = ? and item_id = ? "
                "and tag = ? collate nocase order by id",
                [item_type, item_id, text],
            ).fetchall()
            tags = [dict(zip(TAG_COLUMNS, row)) for row in rows]
            if not tags:
                result.skipped.append({"item_type": item_type, "item_id": item_id, "reason": f"no tag {text!r}"})
                continue
            pending = [tag for tag in tags if tag["status"] != status]
            if not pending:
                result.skipped.append({"item_type": item_type, "item_id": item_id, "reason": f"already {status}"})
            result.changes += [_set_status(db, tag, status, who, action, now) for tag in pending]
    return result


# -- The review queue --------------------------------------------------------------------------------------

QUEUE_FILE_FACTS = ("name", "kind", "instrument", "mode", "detector", "voltage_kv", "magnification", "acquired_local")


def queue_total(db: sqlite_utils.Database, item_type: str = "file", leave_out: frozenset[str] = frozenset()) -> int:
    """How many items of this type await an expert (``learning.active.queue_count``), none of ``leave_out`` (ids
    the reader may not see)."""
    from ..learning.active import queue_count

    if item_type not in ITEM_TABLES:
        raise InvalidChange(f"{str(item_type)[:40]!r} is not a kind of item: use one of {', '.join(ITEM_TABLES)}")
    return queue_count(db, item_type, leave_out=leave_out)


def review_queue(
    db: sqlite_utils.Database,
    item_type: str = "file",
    limit: int = 48,
    offset: int = 0,
    leave_out: frozenset[str] = frozenset(),
) -> list[dict]:
    """Items awaiting an expert, in the order the learning package proposes (the learned tagger's least certain
    first; where no model is trained, a typical image of each cluster, then the weakest machine tags), each with
    why it is queued, its title, facts and the machine tags to judge."""
    from ..learning.active import review_queue as ordered_queue

    if item_type not in ITEM_TABLES:
        raise InvalidChange(f"{str(item_type)[:40]!r} is not a kind of item: use one of {', '.join(ITEM_TABLES)}")
    entries = ordered_queue(db, limit=limit, item_type=item_type, offset=offset, leave_out=leave_out)
    if not entries:
        return []
    ids = [entry.item_id for entry in entries]
    marks = ",".join("?" * len(ids))
    titles = dict(
        db.execute(
            f"select item_id, title from search_items where item_type = ? and item_id in ({marks})", [item_type, *ids]
        ).fetchall()
    )
    tags: dict[str, list[dict]] = {}
    for row in db.execute(
        f"select {', '.join(TAG_COLUMNS)} from tags where item_type = ? and item_id in ({marks}) "
        "and status = 'machine' order by score, tag",  # the most doubtful first: those are what to judge
        [item_type, *ids],
    ):
        tag = dict(zip(TAG_COLUMNS, row))
        tags.setdefault(str(tag["item_id"]), []).append(tag)
    facts: dict[str, dict] = {}
    file_ids = [int(i) for i in ids if i.isascii() and i.isdigit()] if item_type == "file" else []
    if file_ids:
        for row in db.execute(
            f"select id, {', '.join(QUEUE_FILE_FACTS)}, exists(select 1 from previews p where p.file_id = files.id) "
            f"from files where id in ({','.join('?' * len(file_ids))})",
            file_ids,
        ):
            facts[str(row[0])] = {**dict(zip(QUEUE_FILE_FACTS, row[1:-1])), "has_preview": bool(row[-1])}
    return [
        {
            **entry.as_dict(),
            "title": titles.get(entry.item_id) or facts.get(entry.item_id, {}).get("name") or entry.item_id,
            "facts": facts.get(entry.item_id, {}),
            # The tag the queue's reason names leads, then the rest, most doubtful first.
            "tags": sorted(tags.get(entry.item_id, []), key=lambda tag: tag["tag"] != entry.label),
        }
        for entry in entries
    ]
