"""Proprietary periods: a proposal's data is its team's (and staff's) until its release date.

Every proposal id the catalog knows — from the proposals table or only from the user log's sessions — has a row
in ``proposal_periods`` with its release date, in UTC ISO 8601 like every time in the catalog:

- the proposal record's own date when it has one (``release_date``, ``embargo_until`` or ``public_date`` in the
  record's fields), else
- the end of its last session plus the facility's ``proprietary_period_days`` (metadata.yml), else
- the proposal's end date (or, lacking that, its start date) plus the same period.

``update_release_dates`` recomputes the dates after every load (``changes.refresh``); a date staff set by hand
(``source = 'staff'``) is kept.

Who sees what is decided at query time against the clock, so a period that ends needs no reload: the proposals
hidden from a viewer are those whose release date is still ahead and whose team (``people.proposal_people``)
the viewer is not on (``hidden_proposals``).  An item belongs to the proposal in ``ITEM_PROPOSAL``: a file's and a
session's ``proposal_id``, a proposal itself; papers are published, so always public.  Staff see everything.

A public paper's search document borrows the id and title of each proposal it acknowledges, so that the
proposal's words find the paper — but not a proposal's still under its period: those words would let anyone
reach the paper by what only the private proposal says (search/index.py leaves them out, and lists the proposal
in ``proposal_words_withheld``).  When the period ends the words join by a query-time rule (``words_due``, done
by changes.py's ``release_due_words``): the first request after the release date (web/base.py's
``hidden_proposals``, which every route asks before it answers), or the next change to the catalog
(``changes.refresh``), rewrites the documents of the papers that acknowledge it — a handful of rows.  Rather
that than a job or a reload: nothing has to be running, and no visitor waits for one.  The same rule catches a
date staff move by hand (``set_release_date``, ``scisearch periods``), in either direction.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import sqlite_utils

DEFAULT_PERIOD_DAYS = 730
# Fields of a proposal record (its `details` JSON, or a column) that give its release date outright.
RECORD_RELEASE_FIELDS = ("release_date", "embargo_until", "public_date", "proprietary_until")

# The proposal an item's data belongs to, over search_items ``si`` left-joined with files ``f``, sessions ``se``
# and proposals ``pr`` (search/filters.py's joins).
ITEM_PROPOSAL = "coalesce(nullif(f.proposal_id, ''), nullif(se.proposal_id, ''), pr.id)"
# The same for one item named by type and id.
ONE_ITEM_PROPOSAL = {
    "file": "select proposal_id from files where id = ?",
    "session": "select proposal_id from sessions where id = ?",
    "proposal": "select id from proposals where id = ?",
}
# The moment as the catalog writes it, in SQL: what the public views compare release dates with.
SQL_NOW = "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')"


@dataclass(frozen=True)
class Viewer:
    """Who is looking: staff see everything; anyone else sees public data and their own proposals' data, their
    own being found by their sign-in id (``people.account_id``)."""

    account_id: str | None = None
    staff: bool = False


ANONYMOUS = Viewer()
STAFF = Viewer(staff=True)


def now_utc(now: dt.datetime | None = None) -> str:
    moment = now or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def hidden_proposals(db: sqlite_utils.Database, viewer: Viewer, now: dt.datetime | None = None) -> frozenset[str]:
    """The proposal ids whose data this viewer may not see now: still under their period and not their own."""
    if viewer.staff or "proposal_periods" not in db.table_names():
        return frozenset()
    rows = db.execute(
        """
        select proposal_id from proposal_periods
        where release_date > ?
          and proposal_id not in (
            select pp.proposal_id from proposal_people pp join people p on p.id = pp.person_id
            where p.account_id is not null and p.account_id = ?)
        """,
        [now_utc(now), viewer.account_id],
    )
    return frozenset(row[0] for row in rows)


def item_proposal(db: sqlite_utils.Database, item_type: str, item_id) -> str | None:
    """The proposal an item's data belongs to (None for a paper, or an item linked to none)."""
    sql = ONE_ITEM_PROPOSAL.get(item_type)
    row = db.execute(sql, [item_id]).fetchone() if sql else None
    return row[0] if row and row[0] else None


def item_is_hidden(db: sqlite_utils.Database, item_type: str, item_id, hidden: frozenset[str]) -> bool:
    return bool(hidden) and item_proposal(db, item_type, item_id) in hidden


# The items of one type that belong to proposals given as a JSON list (``hidden_item_ids``).
ITEMS_OF_PROPOSALS = {
    "file": "select cast(id as text) from files where proposal_id in (select value from json_each(?))",
    "session": "select id from sessions where proposal_id in (select value from json_each(?))",
    "proposal": "select id from proposals where id in (select value from json_each(?))",
}


# A search document ``si`` of an item that belongs to one of the proposals given as a JSON list (three times).
SEARCH_ITEM_HIDDEN = """(
    (si.item_type = 'file' and cast(si.item_id as integer) in
        (select id from files where proposal_id in (select value from json_each(?))))
    or (si.item_type = 'session' and si.item_id in
        (select id from sessions where proposal_id in (select value from json_each(?))))
    or (si.item_type = 'proposal' and si.item_id in (select value from json_each(?))))"""


def search_item_hidden(hidden: frozenset[str]) -> tuple[str, list]:
    """SQL true for a search document ``si`` the reader may not see, and its parameters: for lists and counts
    that page in SQL (the sitemap), so each page is full and the count is of what is listed."""
    listed = json.dumps(sorted(hidden))
    return SEARCH_ITEM_HIDDEN, [listed, listed, listed]


def hidden_item_ids(db: sqlite_utils.Database, item_type: str, hidden: frozenset[str]) -> frozenset[str]:
    """The ids (as text) of the items of this type that belong to a hidden proposal: what a list or a count
    leaves out before it pages (papers are public, so never any)."""
    sql = ITEMS_OF_PROPOSALS.get(item_type)
    if not hidden or sql is None:
        return frozenset()
    return frozenset(str(row[0]) for row in db.execute(sql, [json.dumps(sorted(hidden))]))


def visible_rowids(db: sqlite_utils.Database, rowids: list[int], hidden: frozenset[str]) -> set[int]:
    """Which of these search documents belong to no hidden proposal."""
    if not hidden:
        return set(rowids)
    sql = f"""
        select si.id from search_items si
        left join files f on si.item_type = 'file' and f.id = cast(si.item_id as integer)
        left join sessions se on si.item_type = 'session' and se.id = si.item_id
        left join proposals pr on si.item_type = 'proposal' and pr.id = si.item_id
        where si.id in (select value from json_each(?))
          and coalesce({ITEM_PROPOSAL} not in (select value from json_each(?)), 1)
    """
    return {row[0] for row in db.execute(sql, [json.dumps(list(rowids)), json.dumps(sorted(hidden))])}


# -- Release dates -----------------------------------------------------------------------------------


def _plus_days(moment: str | None, days: int) -> str | None:
    """A catalog time or date plus ``days``, in UTC ISO 8601; None for nothing or something unreadable."""
    if not moment:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(moment).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return now_utc(parsed + dt.timedelta(days=days))


def record_release_date(proposal: dict) -> str | None:
    """The release date a proposal record states itself, if any."""
    details = {}
    try:
        details = json.loads(proposal.get("details") or "{}") or {}
    except (TypeError, ValueError):
        pass
    for name in RECORD_RELEASE_FIELDS:
        value = proposal.get(name) or (details.get(name) if isinstance(details, dict) else None)
        stated = _plus_days(value, 0)
        if stated:
            return stated
    return None


def update_release_dates(db: sqlite_utils.Database, period_days: int = DEFAULT_PERIOD_DAYS) -> int:
    """Set every known proposal's release date (see the module's docstring); dates set by staff are kept.
    Returns how many proposals have one."""
    if "proposal_periods" not in db.table_names():
        return 0
    last_session_end = dict(
        db.execute(
            "select proposal_id, max(coalesce(end, start)) from sessions "
            "where coalesce(proposal_id, '') != '' group by proposal_id"
        ).fetchall()
    )
    proposals = {row["id"]: row for row in db.query("select * from proposals")}
    kept = {row[0] for row in db.execute("select proposal_id from proposal_periods where source = 'staff'")}
    rows = []
    for proposal_id in sorted(set(proposals) | set(last_session_end)):
        if proposal_id in kept:
            continue
        record = proposals.get(proposal_id, {})
        release, source = record_release_date(record), "record"
        if release is None and last_session_end.get(proposal_id):
            release, source = _plus_days(last_session_end[proposal_id], period_days), "sessions"
        if release is None:
            release, source = _plus_days(record.get("end_date") or record.get("start_date"), period_days), "proposal"
        if release is None:
            continue  # nothing dates it: its data is public, as before periods were kept
        rows.append({"proposal_id": proposal_id, "release_date": release, "source": source})
    with db.atomic():
        db.execute("delete from proposal_periods where source != 'staff'")
        db["proposal_periods"].insert_all(rows, replace=True)
    return len(rows) + len(kept)


def set_release_date(db: sqlite_utils.Database, proposal_id: str, release_date: str) -> str:
    """Staff set a proposal's release date by hand; it is kept through later loads."""
    stated = _plus_days(release_date, 0)
    if stated is None:
        from .errors import ScisearchError

        raise ScisearchError(
            f"{release_date!r} is not a date", fix="give it as YYYY-MM-DD or an ISO 8601 time, e.g. 2027-01-31"
        )
    db["proposal_periods"].insert({"proposal_id": proposal_id, "release_date": stated, "source": "staff"}, replace=True)
    return stated  # its papers' documents take or drop its words at the next request or change (``words_due``)


# -- A public paper's document and a private proposal's words ------------------------------------------------

# The proposals whose words some paper's document leaves out are listed in ``proposal_words_withheld`` (staff's).
# What search/index.py leaves out of a paper's document: the proposals under their period at the build's moment.
UNDER_PERIOD_AT = "(select proposal_id from proposal_periods where release_date > ?)"


def acknowledging_papers(db: sqlite_utils.Database, proposal_ids: list[str] | None = None) -> list[str]:
    """The papers that acknowledge any of these proposals (of any proposal, when None)."""
    sql = "select distinct from_id from links where from_type = 'paper' and to_type = 'proposal'"
    params: list = []
    if proposal_ids is not None:
        sql += " and to_id in (select value from json_each(?))"
        params = [json.dumps(list(proposal_ids))]
    return [row[0] for row in db.execute(sql + " order by from_id", params)]


def words_due(db: sqlite_utils.Database, now: dt.datetime | None = None) -> list[str]:
    """The acknowledged proposals whose papers' documents do not match their period now: left out while the
    period is over (it ended, or staff moved the date back), or not left out while one runs (staff moved a public
    proposal's date ahead).  Their papers' documents are rebuilt (``changes.release_due_words``).  Two short
    reads; empty nearly always."""
    if "proposal_words_withheld" not in db.table_names():
        return []
    moment = now_utc(now)
    ended = f"select proposal_id from proposal_words_withheld where proposal_id not in {UNDER_PERIOD_AT}"
    begun = """select proposal_id from proposal_periods where release_date > ?
                and proposal_id not in (select proposal_id from proposal_words_withheld)
                and exists (select 1 from links where to_type = 'proposal' and to_id = proposal_id
                            and from_type = 'paper')"""
    return [row[0] for row in db.execute(f"{ended} union {begun}", [moment, moment])]


def note_withheld(db: sqlite_utils.Database, paper_ids: list[str] | None, moment: str) -> None:
    """After these papers' documents were built at ``moment`` (every paper's, when None): list the acknowledged
    proposals they leave out, so that their words join when the period ends (``words_due``)."""
    if "proposal_words_withheld" not in db.table_names():
        return
    sql = f"""insert or ignore into proposal_words_withheld (proposal_id)
              select distinct to_id from links where from_type = 'paper' and to_type = 'proposal'
              and to_id in {UNDER_PERIOD_AT}"""
    params: list = [moment]
    if paper_ids is None:
        db.execute("delete from proposal_words_withheld")
    else:
        sql += " and from_id in (select value from json_each(?))"
        params.append(json.dumps(list(paper_ids)))
    db.execute(sql, params)


# -- The public views Datasette's own pages and SQL read ----------------------------------------------------

# Each view holds the rows of its table that belong to no proposal under its period, decided by SQLite's clock
# at query time.  Datasette shows visitors who are not staff these views, never the tables (web/periods.py).
UNDER_PERIOD = f"""(select proposal_id from proposal_periods where release_date > {SQL_NOW})"""
PUBLIC_VIEWS = {
    "files_public": f"select * from files where coalesce(proposal_id, '') not in {UNDER_PERIOD}",
    "sessions_public": f"select * from sessions where coalesce(proposal_id, '') not in {UNDER_PERIOD}",
    "proposals_public": f"select * from proposals where id not in {UNDER_PERIOD}",
    "tags_public": f"""select * from tags where not (
        (item_type = 'file' and cast(item_id as integer) in (select id from files where proposal_id in {UNDER_PERIOD}))
        or (item_type = 'session' and item_id in (select id from sessions where proposal_id in {UNDER_PERIOD}))
        or (item_type = 'proposal' and item_id in {UNDER_PERIOD}))""",
    "links_public": f"""select * from links where not (
        (from_type = 'file' and cast(from_id as integer) in (select id from files where proposal_id in {UNDER_PERIOD}))
        or (from_type = 'session' and from_id in (select id from sessions where proposal_id in {UNDER_PERIOD}))
        or (to_type = 'file' and cast(to_id as integer) in (select id from files where proposal_id in {UNDER_PERIOD}))
        or (to_type = 'session' and to_id in (select id from sessions where proposal_id in {UNDER_PERIOD}))
        or (to_type = 'proposal' and to_id in {UNDER_PERIOD})
        or (from_type = 'proposal' and from_id in {UNDER_PERIOD}))""",
}


def create_public_views(db: sqlite_utils.Database) -> None:
    for name, sql in PUBLIC_VIEWS.items():
        db.execute(f"drop view if exists [{name}]")
        db.execute(f"create view [{name}] as {sql}")
