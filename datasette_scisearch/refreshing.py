"""Bringing what a change leaves stale up to date: links, then the search documents.

Every kind of change — a load, a re-link, tagging, an expert's edit, a learned head's predictions — leaves the
derived data behind it stale: links, and the search documents that carry an item's tags and its session's and
proposal's words.  ``refresh(db, changed=…)`` brings them up to date, in the order they depend on each other
(links first, then documents).  The search indexes on disk beside the catalog (tantivy, the mapped vectors)
then take just the changed documents and vectors, once the change has committed (search/index.py's
``catch_up_indexes``); a search that finds them behind reads the rest from the catalog's change log.

This is the bottom of the change functions: the rooms that change the catalog from inside their own
transactions (tagging/pipeline.py per batch, tagging/experts.py, learning/train.py) call it, and changes.py —
which strings the rooms together in their order (load, link, tag) — calls them.  It imports none of those
rooms, so the order can live in changes.py without an import cycle (tests/test_architecture.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlite_utils

from .config import Settings
from .errors import ScisearchError

# The kinds of change.
FILES = "files"  # instrument files loaded
RECORDS = "records"  # sessions, proposals or papers loaded
LINKS = "links"  # links rebuilt (or edited)
TAGS = "tags"  # a tagging run
EDITS = "edits"  # experts' changes to tags
LEARNING = "learning"  # a learned head's tags
PERIODS = "periods"  # proposals' release dates (``ids``: the proposals) set, or passed
KINDS = (FILES, RECORDS, LINKS, TAGS, EDITS, LEARNING, PERIODS)


@dataclass
class Refreshed:
    """What a refresh did: the links it rebuilt (None when it did not link) and how many documents changed."""

    links: object | None = None
    documents: int = 0


def refresh(
    db: sqlite_utils.Database,
    changed: str,
    *,
    settings: Settings | None = None,
    link: bool = True,
    item_types: Iterable[str] | None = None,
    ids: Iterable[str] | None = None,
) -> Refreshed:
    """Everything a change of kind ``changed`` needs, in order.

    - after loads (``FILES``, ``RECORDS``): re-link context (unless ``link`` is False; needs ``settings``), then
      every search document, since a new session or proposal changes the words of the files linked to it;
    - after ``LINKS``: every search document;
    - after ``TAGS``, ``EDITS``, ``LEARNING``: the documents of ``ids`` of ``item_types`` (all, when not given);
    - after ``PERIODS``: the documents of the papers acknowledging the proposals ``ids`` (every proposal, when not
      given), which carry an acknowledged proposal's words only once its period is over (periods.py).
    Any change also brings in (or leaves out) the words of proposals whose period ended (or began) since
    (``release_due_words``).

    Commits its own work; call it outside a transaction, or at the end of one whose writes should commit with it.
    """
    from .search.index import refresh_search_items

    if changed not in KINDS:
        raise ScisearchError(f"unknown kind of change {changed!r}", fix=f"use one of {', '.join(KINDS)}")
    done = Refreshed()
    if changed in (FILES, RECORDS) and link:
        if settings is None:
            raise ScisearchError("linking after a load needs the facility's settings", fix="pass settings=")
        from .ingest.linking import link_all

        done.links = link_all(db, settings)
    if changed in (FILES, RECORDS, LINKS):
        if changed in (FILES, RECORDS) and not link:  # linking matches people and dates periods; else here
            from . import people, periods

            people.match_people(db)
            periods.update_release_dates(db, (settings or Settings()).proprietary_period_days)
        done.documents = refresh_search_items(db)
    elif changed == PERIODS:
        from . import periods

        papers = periods.acknowledging_papers(db, None if ids is None else list(ids))
        done.documents = refresh_search_items(db, ["paper"], papers) if papers else 0
        return done
    else:
        done.documents = refresh_search_items(db, item_types, ids)
    done.documents += release_due_words(db)
    return done


def release_due_words(db: sqlite_utils.Database) -> int:
    """Rewrite the documents of the papers acknowledging a proposal whose period ended (or began, by a date staff
    moved) since they were built (``periods.words_due``), so that they carry its words exactly when it is public;
    returns how many documents changed.  Needs a writable connection; cheap when nothing is due."""
    import json

    from . import periods
    from .catalog import write_transaction

    due = periods.words_due(db)
    if not due:
        return 0
    with write_transaction(db):
        # Off the list first: the rebuild lists again those its papers still leave out (search/index.py).
        db.execute(
            "delete from proposal_words_withheld where proposal_id in (select value from json_each(?))",
            [json.dumps(due)],
        )
        return refresh(db, PERIODS, ids=due).documents
