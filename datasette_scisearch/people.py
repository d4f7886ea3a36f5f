"""A proposal's team is people, not log strings.

Staff keep the ``people`` table (name, e-mail, sign-in account id) with ``scisearch people add``; a sign-in
whose account id is a person's makes that visitor that person.  The names the records carry — the user log's
``user`` of each session, a proposal's PI and the people its record lists — are matched to people exactly,
after normalising (case, accents, spacing, punctuation), against a person's name, e-mail and account id.  A name
that matches nobody, or more than one person, is reported by ``scisearch people unmatched`` and never guessed;
``match_people`` rebuilds ``proposal_people`` after every load (``changes.refresh``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

import sqlite_utils

from .catalog import now_utc
from .errors import ScisearchError

# Fields of a proposal record (its `details` JSON) that list its people, besides the PI.
LISTED_PEOPLE_FIELDS = ("team", "people", "members", "users", "co_investigators", "co_pis")


class PeopleError(ScisearchError):
    """A person cannot be added or found as asked; the message says why."""


def normalised(name: str | None) -> str:
    """A name or e-mail as matching compares it: accents, case, punctuation and spacing do not count."""
    text = unicodedata.normalize("NFKD", str(name or "")).encode("ascii", "ignore").decode().casefold().strip()
    if "@" in text:
        return text  # an e-mail: its dots count
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


@dataclass(frozen=True)
class Mention:
    """A name found in the records, for a proposal, in a role (pi, listed, user)."""

    name: str
    proposal_id: str
    role: str
    source: str  # where it was written: "proposals.pi", "sessions.user" …


def add_person(db: sqlite_utils.Database, name: str, email: str | None = None, account_id: str | None = None) -> int:
    """Add a person (staff do, or a sign-in); an e-mail or account id already someone's is refused."""
    if not normalised(name):
        raise PeopleError("a person needs a name", fix="give it as the first argument: scisearch people add 'Ada Li'")
    for column, value in (("email", email), ("account_id", account_id)):
        if value and db.execute(f"select 1 from people where {column} = ?", [value]).fetchone():
            raise PeopleError(
                f"{value!r} is already the {column.replace('_', ' ')} of someone in people",
                fix="see them with 'scisearch people list'",
            )
    with db.atomic():
        person_id = (
            db["people"]
            .insert({"name": name.strip(), "email": email, "account_id": account_id, "added_at": now_utc()})
            .last_pk
        )
    return person_id


def list_people(db: sqlite_utils.Database) -> list[dict]:
    return list(
        db.query(
            """select p.id, p.name, p.email, p.account_id,
                      (select group_concat(proposal_id || ' (' || role || ')', ', ')
                       from proposal_people where person_id = p.id) as proposals
               from people p order by p.name, p.id"""
        )
    )


def mentions(db: sqlite_utils.Database) -> list[Mention]:
    """Every name the records give for a proposal's people."""
    found = []
    for row in db.query("select id, pi, details from proposals"):
        if row["pi"]:
            found.append(Mention(row["pi"], row["id"], "pi", "proposals.pi"))
        try:
            details = json.loads(row["details"] or "{}") or {}
        except ValueError:
            details = {}
        for field in LISTED_PEOPLE_FIELDS:
            listed = details.get(field) if isinstance(details, dict) else None
            for entry in listed if isinstance(listed, list) else [listed] if listed else []:
                name = entry.get("name") or entry.get("email") if isinstance(entry, dict) else entry
                if name:
                    found.append(Mention(str(name), row["id"], "listed", f"proposals.details.{field}"))
    for user, proposal_id in db.execute(
        "select distinct user, proposal_id from sessions "
        "where coalesce(user, '') != '' and coalesce(proposal_id, '') != ''"
    ):
        found.append(Mention(user, proposal_id, "user", "sessions.user"))
    return found


def _people_by_key(db) -> dict[str, set[int]]:
    keys: dict[str, set[int]] = {}
    for person_id, name, email, account_id in db.execute("select id, name, email, account_id from people"):
        for value in (name, email, account_id):
            if normalised(value):
                keys.setdefault(normalised(value), set()).add(person_id)
    return keys


def match_people(db: sqlite_utils.Database) -> list[tuple[Mention, str]]:
    """Rebuild ``proposal_people`` from the records' names; returns the names left unmatched, with why."""
    if "proposal_people" not in db.table_names():
        return []
    keys = _people_by_key(db)
    rows, unmatched = {}, []
    for mention in mentions(db):
        matches = keys.get(normalised(mention.name), set())
        if len(matches) == 1:
            person_id = next(iter(matches))
            rows[(mention.proposal_id, person_id, mention.role)] = mention.source
        else:
            why = "matches nobody in people" if not matches else f"matches {len(matches)} people"
            unmatched.append((mention, why))
    with db.atomic():
        db.execute("delete from proposal_people")
        db["proposal_people"].insert_all(
            [
                {"proposal_id": proposal, "person_id": person, "role": role, "source": source}
                for (proposal, person, role), source in sorted(rows.items())
            ]
        )
    return unmatched


def unmatched_names(db: sqlite_utils.Database) -> list[dict]:
    """The records' names that match nobody (or several people): one row per name and proposal."""
    seen = {}
    for mention, why in match_people(db):
        key = (normalised(mention.name), mention.proposal_id)
        entry = seen.setdefault(
            key, {"name": mention.name, "proposal_id": mention.proposal_id, "roles": set(), "why": why}
        )
        entry["roles"].add(mention.role)
    return [{**entry, "roles": ", ".join(sorted(entry["roles"]))} for entry in seen.values()]


def person_for_account(db: sqlite_utils.Database, account_id: str | None) -> dict | None:
    if not account_id:
        return None
    row = db.execute("select id, name, email from people where account_id = ?", [account_id]).fetchone()
    return {"id": row[0], "name": row[1], "email": row[2]} if row else None
