"""The search documents: one row of ``search_items`` per file, proposal, paper and session.

A document gathers what full-text search should see for an item: its own
title and text, the text of its own tags (accepted and added tags count twice,
rejected ones not at all), and its context — the session and proposal a file
was linked to, the proposal a paper acknowledges (unless it is still under its proprietary period:
periods.py), and the tags it inherits from them.  Documents are rebuilt from
the catalog tables after every load, link and tag run; only documents whose
content changed are rewritten, so the full-text indexes stay cheap to keep:
FTS5 by its triggers, the on-disk tantivy index by ``text_index.catch_up``
once the change is committed.
"""

from __future__ import annotations

import hashlib
import sys
from collections import defaultdict
from collections.abc import Iterable

import sqlite_utils

from .. import periods
from ..catalog import now_utc, write_transaction
from ..tagging import vectors

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
        f"""
        select p.id as item_id, p.title as title,
               concat_ws(' ', p.abstract, substr(p.full_text, 1, 20000)) as body,
               concat_ws(' ', p.authors, p.venue, p.year, p.doi, p.funding,
                         (select group_concat(pr.id || ' ' || coalesce(pr.title, ''), ' ')
                          from links l join proposals pr on pr.id = l.to_id
                          where l.from_type = 'paper' and l.from_id = p.id and l.to_type = 'proposal'
                            and pr.id not in {periods.UNDER_PERIOD_AT})) as context
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
# Document SQL whose first parameter is the build's moment: a paper leaves out the words of each proposal still
# under its period then (periods.UNDER_PERIOD_AT).
_CLOCKED = frozenset({"paper"})


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
    while the inherited words still find it.  So do the feature tags (particles, grain boundary …) of a file
    that cannot show a feature, a diffraction pattern or a spectrum: read from its name or its sample's, they
    describe the specimen it was taken from, not what it shows ('Au_np_DP_480mm' is a pattern of gold
    nanoparticles, but "gold nanoparticles" wants the images that show them first).
    """
    own: dict[str, list[tuple[str, str]]] = defaultdict(list)
    inherited: dict[str, list[tuple[str, str]]] = defaultdict(list)
    sql = "select item_id, tag, status, via, category from tags where item_type = ?"
    for chunk in _chunks(ids):
        where = "" if chunk is None else f" and item_id in ({','.join('?' * len(chunk))})"
        shows_no_features = _files_showing_no_features(db, chunk) if item_type == "file" else set()
        for item_id, tag, status, via, category in db.execute(
            sql + where + " order by item_id, score desc", [item_type, *(chunk or [])]
        ):
            of_the_specimen = category == "feature" and str(item_id) in shows_no_features
            (inherited if via or of_the_specimen else own)[str(item_id)].append((tag, status))
    return {item_id: (tag_text(own[item_id]), tag_text(inherited[item_id])) for item_id in {*own, *inherited}}


# Kinds of file whose data is not an image of the specimen: a feature named on one is the specimen's.
KINDS_SHOWING_NO_FEATURES = ("diffraction", "spectrum")


def _files_showing_no_features(db: sqlite_utils.Database, ids: list[str] | None) -> set[str]:
    marks = ",".join("?" * len(KINDS_SHOWING_NO_FEATURES))
    sql = f"select id from files where kind in ({marks})"
    if ids is not None:
        sql += f" and id in ({','.join('?' * len(ids))})"
    return {str(row[0]) for row in db.execute(sql, [*KINDS_SHOWING_NO_FEATURES, *(ids or [])])}


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
    returns how many documents changed.  Commits its own work, one transaction per item type; inside the caller's
    transaction it joins that one (as a savepoint) and the caller commits."""
    wanted = None if ids is None else [str(i) for i in ids]
    changed = 0
    for item_type in item_types or _DOCUMENT_SQL:
        sql, alias = _DOCUMENT_SQL[item_type]
        now = now_utc()
        # Read under the write lock: tags another writer commits meanwhile cannot be left out of the document.
        with write_transaction(db):
            tags = _tags_by_item(db, item_type, wanted)
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
                clock = [now] if item_type in _CLOCKED else []
                updates, inserts = [], []
                for item_id, title, body, context in db.execute(query, [*clock, *(chunk or [])]).fetchall():
                    item_id = str(item_id)
                    own_tags, inherited_tags = tags.get(item_id, ("", ""))
                    joined_context = " ; ".join(part for part in (context, inherited_tags) if part)
                    document = (title or "", (body or "")[:MAX_BODY_CHARS], own_tags, joined_context)
                    digest = hashlib.sha1("\x1f".join(document).encode()).hexdigest()
                    found = existing.pop(item_id, None)
                    if found and found[1] == digest:
                        continue
                    if found:
                        updates.append((*document, digest, now, found[0]))
                    else:
                        inserts.append((item_type, item_id, *document, digest, now))
                # Plain statements, not sqlite-utils' update() and insert(): those open a savepoint per row, and
                # FTS5 writes its pending terms out as a new segment at every savepoint (5 ms a document at 100k).
                db.conn.executemany(
                    "update search_items set title = ?, body = ?, tags = ?, context = ?, doc_hash = ?, updated_at = ? "
                    "where id = ?",
                    updates,
                )
                db.conn.executemany(
                    "insert into search_items (item_type, item_id, title, body, tags, context, doc_hash, updated_at) "
                    "values (?, ?, ?, ?, ?, ?, ?, ?)",
                    inserts,
                )
                changed += len(updates) + len(inserts)
                gone = [rowid for rowid, _ in existing.values()]
                for rowid in gone:  # items deleted from the catalog leave the index too
                    db.execute("delete from search_items where id = ?", [rowid])
                for space in vectors.spaces(db) if gone else ():
                    vectors.delete_vectors(db, space, gone)
                changed += len(gone)
            if item_type in _CLOCKED:  # which proposals' words wait for their period to end
                periods.note_withheld(db, wanted, now)
    catch_up_indexes(db)
    return changed


def catch_up_indexes(db: sqlite_utils.Database) -> None:
    """After a writer's commit: the indexes on disk beside the catalog take what changed (text at once, vectors
    when enough have gathered).  Cheap where nothing did; does nothing inside an open transaction."""
    from . import mapped_vectors, text_index

    if db.conn.in_transaction:
        return
    try:
        text_index.catch_up(db)
        for space in vectors.spaces(db):
            mapped_vectors.catch_up(db, space)
    except OSError as error:
        # The catalog has committed; searches take what the indexes lack from its change log meanwhile.
        print(
            f"warning: could not update the search indexes beside the catalog ({error}); searches stay right "
            "but slower until 'scisearch index CATALOG' can write them",
            file=sys.stderr,
        )


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
