"""The catalog's evidence of what a query should find, gathered for learning the ranking.

Each piece is a query with the items it should find, and where that came from:

- ``judgment``: judged pairs a facility imported (``scisearch load judgments``);
- ``click``: what searchers opened for a query, from the search log in the private
  database (``private.py``), with the results shown above a click and not opened as
  its skips (hard negatives for the encoder);
- ``tag``: an expert's accepted or added tag, as a query, and the items that carry it;
- ``citation``: a paper's title and the proposals it acknowledges (``links``).

``pairs`` also offers each item's title as a query for its own text, for the text
encoder only: fusion weights fitted on titles would learn that titles match titles.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

import sqlite_utils
from sqlite_utils.utils import sqlite3

from ..private import read_private
from .judgments import judged_pairs

# One query in five (by the hash of its key) is never trained on by the text encoder (learning/encoder.py): its
# held-out check reads them, and once search uses a tuned encoder the fusion weights are fitted to them alone.
# Fitted to the queries the encoder learned, the weights trust vectors that only know those queries (SciFact's
# tune half: cross-validated 0.8176, held-out half 0.720 against 0.736 with the shipped weights).
ENCODER_HELD_OUT_SHARE = 5


def kept_from_encoder(piece) -> bool:
    """Whether the text encoder is never tuned on this piece of evidence."""
    return int(piece.key, 16) % ENCODER_HELD_OUT_SHARE == 0


SOURCES = ("judgment", "click", "tag", "citation")
# A tag on more items than this says little about any one of them as a query's answer.
MAX_ITEMS_PER_TAG = 50
MAX_TAG_QUERIES = 2000


@dataclass
class Evidence:
    query: str
    relevant: set[tuple[str, str]]  # (item type, item id)
    source: str
    skipped: set[tuple[str, str]] = field(default_factory=set)  # shown above a click, not opened

    @property
    def key(self) -> str:
        """A stable id for splitting evidence into folds (the same on every machine and run)."""
        return hashlib.sha1(f"{self.source}\0{self.query.lower()}".encode()).hexdigest()


def gather(db: sqlite_utils.Database, sources=SOURCES) -> list[Evidence]:
    """Every piece of evidence of the given kinds in this catalog and its private database."""
    found: list[Evidence] = []
    if "judgment" in sources:
        found += _judgments(db)
    if "click" in sources:
        found += _clicks(db)
    if "tag" in sources:
        found += _tags(db)
    if "citation" in sources:
        found += _citations(db)
    return found


def counts(evidence: list[Evidence]) -> dict[str, int]:
    tally: dict[str, int] = defaultdict(int)
    for piece in evidence:
        tally[piece.source] += 1
    return dict(tally)


def _judgments(db) -> list[Evidence]:
    by_query: dict[str, Evidence] = {}
    for query_id, query, item_type, item_id, _ in judged_pairs(db):
        by_query.setdefault(query_id, Evidence(query, set(), "judgment")).relevant.add((item_type, item_id))
    return list(by_query.values())


def _clicks(db) -> list[Evidence]:
    """Per query key, the items opened for it and the items shown above an opened one and never opened."""
    conn = read_private(db)
    if conn is None:
        return []
    try:
        shown = conn.execute(
            """select l.query_key, l.query, i.search_id, i.position, i.item_type, i.item_id,
                      exists(select 1 from search_clicks c where c.search_id = i.search_id
                             and c.item_type = i.item_type and c.item_id = i.item_id) as opened
               from search_impressions i join search_log l on l.id = i.search_id
               where l.query_key != '' and i.search_id in (select search_id from search_clicks)
               order by i.search_id, i.position"""
        ).fetchall()
    except sqlite3.OperationalError:  # a private file from before the log existed
        return []
    finally:
        conn.close()
    by_key: dict[str, Evidence] = {}
    searches: dict[int, list] = defaultdict(list)
    for row in shown:
        searches[row[2]].append(row)
    for rows in searches.values():
        key, query = rows[0][0], rows[0][1]
        piece = by_key.setdefault(key, Evidence(query, set(), "click"))
        last_opened = max((row[3] for row in rows if row[6]), default=-1)
        for _, _, _, position, item_type, item_id, opened in rows:
            if opened:
                piece.relevant.add((item_type, str(item_id)))
            elif position < last_opened:
                piece.skipped.add((item_type, str(item_id)))
    for piece in by_key.values():
        piece.skipped -= piece.relevant
    return [piece for piece in by_key.values() if piece.relevant]


def _tags(db) -> list[Evidence]:
    if "tags" not in db.table_names():
        return []
    rows = db.execute(
        """select lower(tag), item_type, item_id from tags where status in ('accepted', 'added')
           and lower(tag) in (select lower(tag) from tags where status in ('accepted', 'added')
                              group by lower(tag) having count(*) <= ?)
           order by lower(tag)""",
        [MAX_ITEMS_PER_TAG],
    ).fetchall()
    by_tag: dict[str, Evidence] = {}
    for tag, item_type, item_id in rows:
        if len(by_tag) >= MAX_TAG_QUERIES and tag not in by_tag:
            break
        by_tag.setdefault(tag, Evidence(tag, set(), "tag")).relevant.add((item_type, str(item_id)))
    return list(by_tag.values())


def _citations(db) -> list[Evidence]:
    if "links" not in db.table_names():
        return []
    rows = db.execute(
        """select p.title, l.to_id from links l join papers p on p.id = l.from_id
           where l.from_type = 'paper' and l.to_type = 'proposal' and coalesce(p.title, '') != ''
           order by p.id"""
    ).fetchall()
    by_title: dict[str, Evidence] = {}
    for title, proposal_id in rows:
        by_title.setdefault(title, Evidence(title, set(), "citation")).relevant.add(("proposal", str(proposal_id)))
    return list(by_title.values())


def title_pairs(db: sqlite_utils.Database, limit: int) -> list[tuple[str, str, str]]:
    """(title, item type, item id) for items whose text says more than their title: the encoder learns that
    a title and the passage it heads mean the same thing."""
    return [
        tuple(row)
        for row in db.execute(
            """select title, item_type, item_id from search_items
               where length(coalesce(title, '')) >= 12 and length(coalesce(body, '')) > length(title) + 40
               order by id limit ?""",
            [limit],
        ).fetchall()
    ]
