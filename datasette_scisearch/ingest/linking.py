"""Context linking: each file to the session that produced it, sessions to proposals, papers to proposals.

Every link row says how it was found (``method``), what the evidence was and
how much to trust it (``confidence``).  Links are derived data: ``link_all``
rebuilds the ones it owns from the current tables, so it can run after every
load; links with other methods (an expert's, a plugin's) are left alone.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import sqlite_utils

from .. import people, periods
from ..catalog import now_utc, write_transaction
from ..config import Settings

# The methods this module derives; anything else in `links` belongs to someone else.
DERIVED_METHODS = (
    "acquisition time in session",
    "file time in session",
    "booked in user log",
    "via session",
    "proposal id in paper",
    "proposal id in path",
)


@dataclass
class LinkSummary:
    files_in_sessions: int = 0
    files_by_modification_time: int = 0
    files_with_proposal: int = 0
    sessions_with_proposal: int = 0
    sessions_with_unknown_proposal: int = 0
    papers_linked: int = 0
    files_without_session: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def link_all(db: sqlite_utils.Database, settings: Settings) -> LinkSummary:
    summary = LinkSummary()
    with write_transaction(db):
        placeholders = ", ".join("?" for _ in DERIVED_METHODS)
        db.execute(f"delete from links where method in ({placeholders})", list(DERIVED_METHODS))
        db.execute("update files set session_id = null, proposal_id = null")
        _files_to_sessions(db, settings, summary)
        _sessions_to_proposals(db, summary)
        _files_to_proposals_via_sessions(db, summary)
        _files_to_proposals_via_path(db, summary)
        _papers_to_proposals(db, summary)
        # A proposal's team and its release date follow from its records and sessions (people.py, periods.py).
        people.match_people(db)
        periods.update_release_dates(db, settings.proprietary_period_days)
    summary.files_without_session = db.execute("select count(*) from files where session_id is null").fetchone()[0]
    return summary


def _files_to_sessions(db, settings: Settings, summary: LinkSummary) -> None:
    """A file belongs to the session on its instrument whose booked time contains its acquisition time.

    The tolerance absorbs clock skew between the instrument PC and the booking
    system.  When windows overlap, a session that contains the time without
    tolerance wins, then the one whose window is nearest.  A time taken from the
    file's modification date is weaker evidence (copies and exports change it).
    """
    tolerance_s = round(settings.link_tolerance_minutes * 60)
    longest_s = db.execute(
        "select coalesce(max((julianday(end) - julianday(start)) * 86400), 0) from sessions"
    ).fetchone()[0]
    # Sessions' times are stored as ISO 8601 UTC text of one fixed form, so they compare as
    # strings and the (instrument, start) index bounds the search: a session that contains
    # the time started at most the longest session's length (plus the tolerance) before it.
    candidates = db.execute(
        """
        select f.id, s.id, f.acquired_at, f.acquired_at_source, s.start, s.end,
               julianday(f.acquired_at) between julianday(s.start) and julianday(s.end) as inside,
               min(abs(julianday(f.acquired_at) - julianday(s.start)),
                   abs(julianday(f.acquired_at) - julianday(s.end))) as distance
        from files f
        join sessions s indexed by idx_sessions_instrument_start
          on s.instrument = f.instrument
         and s.start <= strftime('%Y-%m-%dT%H:%M:%S+00:00', f.acquired_at, :after)
         and s.start >= strftime('%Y-%m-%dT%H:%M:%S+00:00', f.acquired_at, :earliest_start)
         and s.end >= strftime('%Y-%m-%dT%H:%M:%S+00:00', f.acquired_at, :before)
        where f.acquired_at is not null
        order by f.id, inside desc, distance
        """,
        {
            "after": f"+{tolerance_s} seconds",
            "before": f"-{tolerance_s} seconds",
            "earliest_start": f"-{int(longest_s) + tolerance_s + 1} seconds",
        },
    ).fetchall()
    chosen: dict[int, tuple] = {}
    for candidate in candidates:
        chosen.setdefault(candidate[0], candidate)
    created = now_utc()
    rows = []
    for file_id, session_id, acquired_at, time_source, start, end, inside, _ in chosen.values():
        weak = time_source == "file modification time"
        method = "file time in session" if weak else "acquisition time in session"
        confidence = (0.5 if inside else 0.3) if weak else (0.95 if inside else 0.7)
        where = "inside" if inside else f"within {settings.link_tolerance_minutes:g} min of"
        rows.append(
            {
                "from_type": "file",
                "from_id": str(file_id),
                "to_type": "session",
                "to_id": session_id,
                "method": method,
                "evidence": f"{time_source} {acquired_at} is {where} the session {start} – {end}",
                "confidence": confidence,
                "created_at": created,
            }
        )
        if weak:
            summary.files_by_modification_time += 1
        else:
            summary.files_in_sessions += 1
    db["links"].insert_all(rows, ignore=True)
    db.conn.executemany(
        "update files set session_id = ? where id = ?", [(row["to_id"], int(row["from_id"])) for row in rows]
    )


def _sessions_to_proposals(db, summary: LinkSummary) -> None:
    created = now_utc()
    rows = []
    for session_id, proposal_id, known in db.execute(
        """
        select s.id, s.proposal_id, p.id is not null
        from sessions s left join proposals p on p.id = s.proposal_id
        where coalesce(s.proposal_id, '') != ''
        """
    ).fetchall():
        rows.append(
            {
                "from_type": "session",
                "from_id": session_id,
                "to_type": "proposal",
                "to_id": proposal_id,
                "method": "booked in user log",
                "evidence": "the user log books this session under the proposal"
                + ("" if known else " (proposal not loaded in the catalog)"),
                "confidence": 1.0 if known else 0.8,
                "created_at": created,
            }
        )
        summary.sessions_with_proposal += 1
        summary.sessions_with_unknown_proposal += 0 if known else 1
    db["links"].insert_all(rows, ignore=True)


def _files_to_proposals_via_sessions(db, summary: LinkSummary) -> None:
    db.execute(
        """
        update files set proposal_id = (select s.proposal_id from sessions s where s.id = files.session_id)
        where session_id is not null
        """
    )
    db.execute(
        """
        insert or ignore into links (from_type, from_id, to_type, to_id, method, evidence, confidence, created_at)
        select 'file', l.from_id, 'proposal', f.proposal_id, 'via session',
               'taken during session ' || f.session_id || ', booked under this proposal',
               l.confidence, :created
        from links l join files f on f.id = cast(l.from_id as integer)  -- files by rowid, not a scan per link
        where l.from_type = 'file' and l.to_type = 'session' and coalesce(f.proposal_id, '') != ''
        """,
        {"created": now_utc()},
    )
    summary.files_with_proposal = db.execute(
        "select count(*) from files where coalesce(proposal_id, '') != ''"
    ).fetchone()[0]


def _proposal_phrases(db) -> list[tuple[str, str]]:
    """Each proposal id as an FTS5 phrase query (ids like 'P-2021-0042' tokenise into several words)."""
    phrases = []
    for (proposal_id,) in db.execute("select id from proposals").fetchall():
        words = re.findall(r"[A-Za-z0-9]+", proposal_id or "")
        if words and (len(words) > 1 or len(words[0]) >= 5):  # a bare '12' would match anything
            phrases.append((proposal_id, '"' + " ".join(words) + '"'))
    return phrases


def _files_to_proposals_via_path(db, summary: LinkSummary) -> None:
    """A folder or file named after a proposal ('.../P-2021-0042/...') ties files without a session to it."""
    created = now_utc()
    for proposal_id, phrase in _proposal_phrases(db):
        matches = db.execute(
            """
            select f.id, f.path from files_fts join files f on f.id = files_fts.rowid
            where files_fts match :query and f.proposal_id is null
            """,
            {"query": "search_text : " + phrase},
        ).fetchall()
        for file_id, path in matches:
            if proposal_id.lower() not in path.lower():
                continue  # the phrase matched metadata text, not the path
            db.execute("update files set proposal_id = ? where id = ?", [proposal_id, file_id])
            db["links"].insert(
                {
                    "from_type": "file",
                    "from_id": str(file_id),
                    "to_type": "proposal",
                    "to_id": proposal_id,
                    "method": "proposal id in path",
                    "evidence": f"the path names {proposal_id}",
                    "confidence": 0.8,
                    "created_at": created,
                },
                ignore=True,
            )
            summary.files_with_proposal += 1


def _papers_to_proposals(db, summary: LinkSummary) -> None:
    """A paper that names a proposal id (usually in its acknowledgements) came out of that proposal."""
    created = now_utc()
    linked = set()
    for proposal_id, phrase in _proposal_phrases(db):
        for paper_id, excerpt in db.execute(
            """
            select p.id, snippet(papers_fts, -1, '[', ']', '…', 12)
            from papers_fts join papers p on p.rowid = papers_fts.rowid
            where papers_fts match :query
            """,
            {"query": phrase},
        ).fetchall():
            db["links"].insert(
                {
                    "from_type": "paper",
                    "from_id": paper_id,
                    "to_type": "proposal",
                    "to_id": proposal_id,
                    "method": "proposal id in paper",
                    "evidence": excerpt,
                    "confidence": 0.9,
                    "created_at": created,
                },
                ignore=True,
            )
            linked.add(paper_id)
    summary.papers_linked = len(linked)
