"""One item in full (the item page), and the items most like it ("more like this").

"More like this" compares images where there are images: a file's CLIP
vector if a CLIP checkpoint tagged it, else its image-analysis features.  An
item with neither (a proposal, a paper, an untagged spectrum) is compared by
its text vector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import sqlite_utils

from .. import periods
from ..catalog import ITEM_TABLES, ITEM_TYPES, item_key
from ..tagging.tagger import DEFAULT_TAG_CATEGORY
from . import hits, vector_index
from .query import QueryError
from .results import Candidate, ItemNotFound

FILES_SHOWN = 100
FILES_PER_KIND = 12  # a proposal's page shows this many of each kind of file, and links to the rest
# Which vector space answers "more like this" for an item, in order of preference.
SIMILAR_SPACES = {"file": ("clip", "facility_image", "image_features", "text")}
SIMILAR_DEFAULT = ("text",)
SPACE_WHY = {
    "clip": "looks like this image (CLIP)",
    "facility_image": "looks like this image (the facility's image model)",
    "image_features": "similar image features",
    "text": "similar text",
}
# Row columns the item page shows as they are; the raw metadata blob is given parsed, separately.
_HIDDEN_COLUMNS = {"metadata", "details", "search_text", "full_text"}


def _row(db: sqlite_utils.Database, item_type: str, item_id: str) -> dict | None:
    key = item_key(item_type, item_id)
    if key is None:
        return None
    cursor = db.execute(f"select * from [{ITEM_TABLES[item_type]}] where id = ?", [key])
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row))


def _plain(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {k: v for k, v in row.items() if k not in _HIDDEN_COLUMNS and not isinstance(v, bytes)}


def _parsed_json(text) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _papers_of_proposals(db, proposal_ids: list[str]) -> list[dict]:
    if not proposal_ids:
        return []
    rows = db.execute(
        """select distinct p.id, p.title, p.year, p.authors, p.doi, l.to_id as proposal_id, l.method
           from links l join papers p on p.id = l.from_id
           where l.from_type = 'paper' and l.to_type = 'proposal' and l.to_id in (select value from json_each(?))
           order by p.year desc, p.id""",
        [json.dumps(proposal_ids)],
    )
    return [dict(zip(["id", "title", "year", "authors", "doi", "proposal_id", "method"], r)) for r in rows]


def _files_where(db, column: str, values: list[str]) -> tuple[list[dict], int]:
    """The files whose ``column`` is one of ``values`` (the first FILES_SHOWN, oldest first), and how many."""
    if not values:
        return [], 0
    chosen = f"{column} in (select value from json_each(?))"
    total = db.execute(f"select count(*) from files where {chosen}", [json.dumps(values)]).fetchone()[0]
    rows = db.execute(
        f"""select id, name, kind, instrument, mode, detector, voltage_kv, magnification, camera_length_mm,
                   pixel_size_nm, acquired_local,
                   exists(select 1 from previews p where p.file_id = files.id) as has_preview
            from files where {chosen} order by acquired_at, id limit ?""",
        [json.dumps(values), FILES_SHOWN],
    )
    names = [d[0] for d in rows.description]
    return [{**dict(zip(names, r)), "has_preview": bool(r[-1])} for r in rows], total


def _files_by_kind(db, column: str, values: list[str]) -> list[dict]:
    """The files whose ``column`` is one of ``values``, grouped by kind (commonest kind first): each kind's count
    and its first FILES_PER_KIND files, oldest first."""
    if not values:
        return []
    rows = db.execute(
        f"""select * from (
              select id, name, kind, instrument, mode, detector, voltage_kv, magnification, camera_length_mm,
                     pixel_size_nm, acquired_local,
                     exists(select 1 from previews p where p.file_id = files.id) as has_preview,
                     row_number() over (partition by coalesce(kind, '') order by acquired_at, id) as number,
                     count(*) over (partition by coalesce(kind, '')) as of_kind
              from files where {column} in (select value from json_each(?)))
            where number <= ? order by of_kind desc, kind, number""",
        [json.dumps(values), FILES_PER_KIND],
    )
    names = [d[0] for d in rows.description]
    groups: dict[str, dict] = {}
    for values_ in rows:
        row = dict(zip(names, values_))
        group = groups.setdefault(row["kind"] or "", {"kind": row["kind"], "count": row.pop("of_kind"), "files": []})
        row.pop("of_kind", None), row.pop("number")
        group["files"].append({**row, "has_preview": bool(row["has_preview"])})
    return list(groups.values())


def _sessions_of_proposal(db, proposal_id: str) -> list[dict]:
    rows = db.execute(
        "select id, instrument, user, start, end from sessions where proposal_id = ? order by start, id",
        [proposal_id],
    )
    return [dict(zip(["id", "instrument", "user", "start", "end"], r)) for r in rows]


def _linked_proposal_ids(db, item_type: str, item_id: str, own: str | None = None) -> list[str]:
    """Every proposal an item is linked to: its own column first, then the links table, surest link first (a
    paper may acknowledge several proposals, a file be linked to another by its name)."""
    found = [own] if own else []
    for (proposal_id,) in db.execute(
        "select to_id from links where from_type = ? and from_id = ? and to_type = 'proposal' "
        "order by coalesce(confidence, 0) desc, id",
        [item_type, item_id],
    ):
        if proposal_id not in found:
            found.append(proposal_id)
    return found


def _proposals(db, proposal_ids: list[str], hidden: frozenset[str] = frozenset()) -> list[dict]:
    rows = (_plain(_row(db, "proposal", proposal_id)) for proposal_id in proposal_ids if proposal_id not in hidden)
    return [row for row in rows if row is not None]


def item_detail(
    db: sqlite_utils.Database, item_type: str, item_id: str, hidden_proposals: frozenset[str] = frozenset()
) -> dict | None:
    """Everything about one item; None when there is no such item, or it belongs to one of ``hidden_proposals``
    (the reader may not know it exists), whose records are left out of what it links to as well."""
    row = _row(db, item_type, item_id)
    if row is None or periods.item_is_hidden(db, item_type, row["id"], hidden_proposals):
        return None
    hidden = hidden_proposals
    item_id = str(row["id"])
    tags: dict[str, list[dict]] = {}
    # Each tag's id is what experts' accept, reject and edit requests name.
    for tag_id, tag, score, source, status, evidence, via, category in db.execute(
        """select id, tag, score, source, status, evidence, via, coalesce(category, ?) from tags
           where item_type = ? and item_id = ? order by source, score desc, tag""",
        [DEFAULT_TAG_CATEGORY, item_type, item_id],
    ):
        tags.setdefault(source or "unknown", []).append(
            {
                "id": tag_id,
                "tag": tag,
                "score": score,
                "status": status,
                "evidence": evidence,
                "via": via,
                "category": category,
            }
        )
    session = None
    proposals: list[dict] = []
    sessions: list[dict] = []
    files: list[dict] = []
    files_total = 0
    files_of: tuple[str, list[str]] | None = None  # the files column and values naming this item's files
    if item_type == "file":
        session = _plain(_row(db, "session", row["session_id"])) if row.get("session_id") else None
        if session and session.get("proposal_id") in hidden:
            session = None
        proposals = _proposals(db, _linked_proposal_ids(db, "file", item_id, row.get("proposal_id")), hidden)
    elif item_type == "session":
        proposals = _proposals(db, _linked_proposal_ids(db, "session", item_id, row.get("proposal_id")), hidden)
        files_of = ("session_id", [item_id])
    elif item_type == "proposal":
        sessions = _sessions_of_proposal(db, item_id)
        files_of = ("proposal_id", [item_id])
    elif item_type == "paper":
        proposals = _proposals(db, _linked_proposal_ids(db, "paper", item_id), hidden)
        files_of = ("proposal_id", [p["id"] for p in proposals])
    if files_of:
        files, files_total = _files_where(db, *files_of)
    proposal_ids = [item_id] if item_type == "proposal" else [p["id"] for p in proposals]
    papers = [p for p in _papers_of_proposals(db, proposal_ids) if not (item_type == "paper" and p["id"] == item_id)]
    document = db.execute(
        "select title from search_items where item_type = ? and item_id = ?", [item_type, item_id]
    ).fetchone()
    title = (document[0] if document else None) or row.get("title") or row.get("name") or item_id
    has_preview = item_type == "file" and bool(
        db.execute("select 1 from previews where file_id = ?", [row["id"]]).fetchone()
    )
    return {
        "item_type": item_type,
        "item_id": item_id,
        "title": title,
        "row": _plain(row),
        "metadata": _parsed_json(row.get("metadata") if item_type == "file" else row.get("details")),
        "tags": tags,
        "session": session,
        # The first linked proposal, as before papers could name several; "proposals" has them all.
        "proposal": proposals[0] if proposals else None,
        "proposals": proposals,
        "sessions": sessions,
        "papers": _distinct_papers(papers),
        "files": files,
        "files_total": files_total,
        "files_by_kind": _files_by_kind(db, *files_of) if files_of else [],
        "has_preview": has_preview,
        **(_file_views(db, row["id"]) if item_type == "file" else {"spectrum": None, "frames": []}),
    }


def _file_views(db, file_id: int) -> dict:
    """The file's spectrum to plot and the frames to step through (``ingest/views.py``); a catalog served as it
    is, from before these were kept, has neither."""
    tables = set(db.table_names())
    spectrum, frames = None, []
    if "spectra" in tables:
        found = db.execute(
            "select x, y, x_label, x_unit, y_label, y_unit, summed_over, channels from spectra where file_id = ?",
            [file_id],
        ).fetchone()
        if found:
            names = ("x", "y", "x_label", "x_unit", "y_label", "y_unit", "summed_over", "channels")
            spectrum = dict(zip(names, found))
            spectrum["x"], spectrum["y"] = json.loads(spectrum["x"]), json.loads(spectrum["y"])
    if "frames" in tables:
        frames = [
            {"frame": frame, "label": label, "width": width, "height": height, "frames_total": total}
            for frame, label, width, height, total in db.execute(
                "select frame, label, width, height, frames_total from frames where file_id = ? order by frame",
                [file_id],
            )
        ]
    return {"spectrum": spectrum, "frames": frames}


def _distinct_papers(papers: list[dict]) -> list[dict]:
    """One entry per paper that acknowledges any of the proposals, naming every proposal it acknowledges."""
    by_id: dict[str, dict] = {}
    for paper in papers:
        seen = by_id.setdefault(paper["id"], {**paper, "proposal_ids": []})
        seen["proposal_ids"].append(paper["proposal_id"])
    return list(by_id.values())


@dataclass
class SimilarItems:
    item: dict  # item_type, item_id, title, rowid
    space: str | None
    hits: list = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def similar_items(
    db: sqlite_utils.Database, item_type: str, item_id: str, k: int = 12, hidden_proposals: frozenset[str] = frozenset()
) -> SimilarItems:
    """The items nearest to one by its vectors, none of them of ``hidden_proposals``; an item of one of those is
    not found at all."""

    if item_type not in ITEM_TYPES:
        raise ItemNotFound(f"unknown item type {item_type!r}: use one of {', '.join(ITEM_TYPES)}")
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise QueryError("k must be a whole number") from None
    if not 1 <= k <= 100:
        raise QueryError(f"k must be between 1 and 100 (got {k})")
    document = db.execute(
        "select id, title from search_items where item_type = ? and item_id = ?", [item_type, str(item_id)]
    ).fetchone()
    if periods.item_is_hidden(db, item_type, item_id, hidden_proposals):
        raise ItemNotFound(f"no {item_type} {item_id!r} in this catalog")
    if document is None:
        if _row(db, item_type, str(item_id)) is None:
            raise ItemNotFound(f"no {item_type} {item_id!r} in this catalog")
        return SimilarItems(
            {"item_type": item_type, "item_id": str(item_id), "title": str(item_id), "rowid": None},
            None,
            messages=["this item is not in the search index yet: run 'scisearch tag' to index it"],
        )
    rowid, title = document
    result = SimilarItems({"item_type": item_type, "item_id": str(item_id), "title": title, "rowid": rowid}, None)
    for space in SIMILAR_SPACES.get(item_type, SIMILAR_DEFAULT):
        matrix = vector_index.space_matrix(db, space)
        vector = matrix.vector_of(rowid) if matrix is not None else None
        if vector is None:
            continue
        result.space = space
        # Read more than k: some neighbours may be items that have left the catalog a moment ago.
        neighbours = matrix.nearest(vector, (k + 10) * (4 if hidden_proposals else 1), exclude=rowid)
        attributes = hits.attributes(db, [r for r, _ in neighbours])
        if hidden_proposals:
            visible = periods.visible_rowids(db, list(attributes), hidden_proposals)
            attributes = {r: value for r, value in attributes.items() if r in visible}
        candidates = []
        for r, similarity in neighbours:
            if r in attributes:
                candidate = Candidate(r, similarity, ranks={space: len(candidates) + 1}, scores={space: similarity})
                candidates.append(candidate)
        candidates = candidates[:k]
        found = hits.without_hidden_proposals(hits.hydrate(db, None, candidates, attributes, ""), hidden_proposals)
        for hit, candidate in zip(found, candidates):
            hit.why.insert(0, f"{SPACE_WHY.get(space, space)} ({candidate.score:.2f})")
        result.hits = found
        return result
    wanted = " or ".join(SIMILAR_SPACES.get(item_type, SIMILAR_DEFAULT))
    result.messages.append(f"this item has no {wanted} vectors yet, so nothing can be compared with it")
    return result
