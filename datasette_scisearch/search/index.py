"""The search documents: one row of ``search_items`` per file, proposal, paper and session.

A document gathers what full-text search should see for an item: its own
title and text, the text of its own tags (accepted and added tags count twice,
rejected ones not at all), and its context — the session and proposal a file
was linked to, the proposal a paper acknowledges, and the tags it inherits
from them.  Documents are rebuilt from
the catalog tables after every load, link and tag run; only documents whose
content changed are rewritten, so the full-text index stays cheap to keep.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

import sqlite_utils

from ..catalog import now_utc

MAX_BODY_CHARS = 20_000  # a paper's full text is summarised by its abstract; the rest only bloats the index

# Per item type: SQL giving (item_id, title, body, context) for every item, and the alias of the item's table.
_DOCUMENT_SQL = {
    "file": (
        """
        select f.id as item_id,
               f.name || coalesce(' — ' || f.dataset_name, '') as title,
               f.search_text as body,
               concat_ws(' ', s.user, s.notes, p.id, p.title, i.description) as context
        from files f
        left join sessions s on s.id = f.session_id
        left join proposals p on p.id = f.proposal_id
        left join instruments i on i.name = f.instrument
        """,
        "f",
    ),
    "proposal": (
        """
        select p.id as item_id, p.title as title, p.abstract as body,
               concat_ws(' ', p.id, p.pi, p.institution, p.division, p.programs) as context
        from proposals p
        """,
        "p",
    ),
    "paper": (
        """
        select p.id as item_id, p.title as title,
               concat_ws(' ', p.abstract, substr(p.full_text, 1, 20000)) as body,
               concat_ws(' ', p.authors, p.venue, p.year, p.doi, p.funding,
                         (select group_concat(pr.id || ' ' || coalesce(pr.title, ''), ' ')
                          from links l join proposals pr on pr.id = l.to_id
                          where l.from_type = 'paper' and l.from_id = p.id and l.to_type = 'proposal')) as context
        from papers p
        """,
        "p",
    ),
    "session": (
        """
        select s.id as item_id,
               concat_ws(' ', s.instrument, 'session', s.user, substr(s.start, 1, 10)) as title,
               s.notes as body,
               concat_ws(' ', s.proposal_id, p.title) as context
        from sessions s left join proposals p on p.id = s.proposal_id
        """,
        "s",
    ),
}


def tag_text(rows: Iterable[tuple[str, str]]) -> str:
    """The words search sees for an item's tags; experts' tags weigh twice, rejected ones nothing."""
    words: list[str] = []
    for tag, status in rows:
        if status == "rejected":
            continue
        words.append(tag)
        if status in ("accepted", "added"):
            words.append(tag)
    return " ; ".join(words)


def _tags_by_item(db: sqlite_utils.Database, item_type: str, ids: list[str] | None) -> dict[str, tuple[str, str]]:
    """Per item, the text of its own tags and of the tags it inherits (``via`` a proposal or session).

    Inherited tags go into the document's context, not its tags: an item's own tags, metadata and pixels
    outweigh what it shares with every other item of its proposal (the ``context`` weight of the fusion),
    while the inherited words still find it.
    """
    own: dict[str, list[tuple[str, str]]] = defaultdict(list)
    inherited: dict[str, list[tuple[str, str]]] = defaultdict(list)
    sql = "select item_id, tag, status, via from tags where item_type = ?"
    for chunk in _chunks(ids):
        where = "" if chunk is None else f" and item_id in ({','.join('?' * len(chunk))})"
        for item_id, tag, status, via in db.execute(
            sql + where + " order by item_id, score desc", [item_type, *(chunk or [])]
        ):
            (inherited if via else own)[str(item_id)].append((tag, status))
    return {item_id: (tag_text(own[item_id]), tag_text(inherited[item_id])) for item_id in {*own, *inherited}}


def _chunks(ids: list[str] | None, size: int = 500):
    if ids is None:
        yield None
        return
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def refresh_search_items(
    db: sqlite_utils.Database, item_types: Iterable[str] | None = None, ids: Iterable[str] | None = None
) -> int:
    """Bring ``search_items`` up to date with the catalog (all items, or the given ids of the given types);
    returns how many documents changed.  Call it outside a transaction: it commits its own."""
    wanted = None if ids is None else [str(i) for i in ids]
    changed = 0
    for item_type in item_types or _DOCUMENT_SQL:
        sql, alias = _DOCUMENT_SQL[item_type]
        tags = _tags_by_item(db, item_type, wanted)
        now = now_utc()
        with db.conn:
            for chunk in _chunks(wanted):
                marks = None if chunk is None else ",".join("?" * len(chunk))
                existing = {
                    item_id: (rowid, doc_hash)
                    for rowid, item_id, doc_hash in db.execute(
                        "select id, item_id, doc_hash from search_items where item_type = ?"
                        + ("" if chunk is None else f" and item_id in ({marks})"),
                        [item_type, *(chunk or [])],
                    )
                }
                query = sql if chunk is None else f"{sql} where {alias}.id in ({marks})"
                for item_id, title, body, context in db.execute(query, chunk or []).fetchall():
                    item_id = str(item_id)
                    own_tags, inherited_tags = tags.get(item_id, ("", ""))
                    document = {
                        "title": title or "",
                        "body": (body or "")[:MAX_BODY_CHARS],
                        "tags": own_tags,
                        "context": " ; ".join(part for part in (context, inherited_tags) if part),
                    }
                    digest = hashlib.sha1("\x1f".join(document.values()).encode()).hexdigest()
                    found = existing.pop(item_id, None)
                    if found and found[1] == digest:
                        continue
                    changed += 1
                    if found:
                        db["search_items"].update(found[0], {**document, "doc_hash": digest, "updated_at": now})
                    else:
                        db["search_items"].insert(
                            {
                                "item_type": item_type,
                                "item_id": item_id,
                                **document,
                                "doc_hash": digest,
                                "updated_at": now,
                            }
                        )
                gone = [rowid for rowid, _ in existing.values()]
                vector_tables = [row[0] for row in db.execute("select table_name from vector_spaces").fetchall()]
                for rowid in gone:  # items deleted from the catalog leave the index too
                    db.execute("delete from search_items where id = ?", [rowid])
                    for table in vector_tables:
                        db.execute(f"delete from [{table}] where item_rowid = ?", [rowid])
                changed += len(gone)
                if changed:
                    _count_change(db)
    return changed


DOCUMENTS_VERSION_KEY = "search_items_version"


def _count_change(db: sqlite_utils.Database) -> None:
    """Bumped in the writer's transaction whenever documents change, so readers that keep an index of
    them in memory (search/text_index.py) know when to rebuild it."""
    db.execute(
        "insert into catalog_info(key, value) values (?, '1') "
        "on conflict(key) do update set value = cast(value as integer) + 1",
        [DOCUMENTS_VERSION_KEY],
    )


def documents_version(db: sqlite_utils.Database) -> int:
    row = db.execute("select value from catalog_info where key = ?", [DOCUMENTS_VERSION_KEY]).fetchone()
    return int(row[0]) if row else 0


def search_item_ids(db: sqlite_utils.Database, item_type: str, item_ids: Iterable[str]) -> dict[str, int]:
    """The search-document rowid of each item (the key its vectors are stored under)."""
    ids = [str(i) for i in item_ids]
    found: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for rowid, item_id in db.execute(
            f"select id, item_id from search_items where item_type = ? and item_id in ({marks})", [item_type, *chunk]
        ):
            found[item_id] = rowid
    return found
