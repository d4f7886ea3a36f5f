"""A proposal's team is people, not log strings.

Staff keep the ``people`` table (name, e-mail, sign-in account id) with ``scisearch people add``; a sign-in
whose account id is a person's makes that visitor that person.  The names the records carry — the user log's
``user`` of each session, a proposal's PI and the people its record lists — are matched to people exactly,
after normalising (case, accents, spacing, punctuation), against a person's name, e-mail and account id.  A name
that matches nobody, or more than one person, is reported by ``scisearch people unmatched`` and never guessed;
``match_people`` rebuilds ``proposal_people`` after every load (``changes.refresh``).

Signing in fills the table too (``fill_from_sign_in``, web/sign_in.py): an account id not yet anyone's becomes a
person (``added_by = 'sign-in'``) with the name and e-mail the sign-in carries, where it carries them, and the
records' names are matched again — so a user log that books the instrument under that account id puts them on
its team at once.  Nothing else is guessed: a sign-in whose e-mail is already a person's gets a row of its own,
which staff join to that person with ``scisearch people account`` (``set_account``).
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


def add_person(
    db: sqlite_utils.Database,
    name: str,
    email: str | None = None,
    account_id: str | None = None,
    added_by: str = "staff",
) -> int:
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
            .insert(
                {"name": name.strip(), "email": email, "account_id": account_id, "added_at": now_utc()}
                | ({"added_by": added_by} if "added_by" in db["people"].columns_dict else {})
            )
            .last_pk
        )
    return person_id


def list_people(db: sqlite_utils.Database) -> list[dict]:
    return list(
        db.query(
            """select p.id, p.name, p.email, p.account_id, p.added_by,
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


# -- Sign-in ----------------------------------------------------------------------------------------------------

# Where an actor (a Datasette sign-in) may carry a person's name: the first one present is taken.
ACTOR_NAME_KEYS = ("name", "display", "username", "login")


def fill_from_sign_in(db: sqlite_utils.Database, actor: dict) -> int | None:
    """Make a signed-in account a person where it is not one yet; returns the new person's id, or None when the
    account is someone's already (or there is no account id).  Only where a team matters now, in a catalog that
    holds a proposal under its period: elsewhere the catalog's tables stay as open as before anyone signed in."""
    account_id = actor.get("id") if isinstance(actor, dict) else None
    if account_id in (None, "") or "people" not in db.table_names():
        return None
    account_id = str(account_id)
    if db.execute("select 1 from people where account_id = ?", [account_id]).fetchone():
        return None
    if not db.execute("select 1 from proposal_periods where release_date > ?", [now_utc()]).fetchone():
        return None
    name = next((str(actor[key]) for key in ACTOR_NAME_KEYS if normalised(actor.get(key))), account_id)
    email = actor.get("email") if isinstance(actor.get("email"), str) and "@" in actor["email"] else None
    if email and db.execute("select 1 from people where email = ?", [email]).fetchone():
        email = None  # someone's already: staff join the two (set_account), nothing is guessed
    from .catalog import write_transaction

    with write_transaction(db):
        person_id = add_person(db, name, email=email, account_id=account_id, added_by="sign-in")
        match_people(db)
    return person_id


def set_account(db: sqlite_utils.Database, person: int, account_id: str) -> dict:
    """Staff join a sign-in to a person: ``account_id`` becomes theirs, and the row a sign-in made for it alone
    (``added_by = 'sign-in'``) goes; the records are matched again, so the person sees their team's data at their
    next request.  An account that is another staff-added person's is refused."""
    from .catalog import write_transaction

    found = db.execute("select id, name from people where id = ?", [person]).fetchone()
    if found is None:
        raise PeopleError(f"there is no person {person}", fix="see who there is with 'scisearch people list'")
    holder = db.execute("select id, added_by from people where account_id = ? and id != ?", [account_id, person])
    holder = holder.fetchone()
    if holder is not None and holder[1] != "sign-in":
        raise PeopleError(
            f"{account_id!r} is already the account id of person {holder[0]}",
            fix="see them with 'scisearch people list'",
        )
    with write_transaction(db):
        if holder is not None:  # the sign-in's own row: the person it is has been found
            db.execute("delete from proposal_people where person_id = ?", [holder[0]])
            db.execute("delete from people where id = ?", [holder[0]])
        db.execute("update people set account_id = ? where id = ?", [account_id, person])
        match_people(db)
    return {"id": found[0], "name": found[1], "account_id": account_id, "joined": holder[0] if holder else None}


def team_names(db: sqlite_utils.Database, proposal_ids: list[str]) -> list[str]:
    """The names of these proposals' people, PIs first (for a dataset's public ``creator``: names only, never an
    e-mail).  A person a sign-in made with no name but the account id is left out: an account id is no name."""
    if not proposal_ids or "proposal_people" not in db.table_names():
        return []
    rows = db.execute(
        """select p.name, min(case pp.role when 'pi' then 0 when 'listed' then 1 else 2 end) as rank, min(p.id)
           from proposal_people pp join people p on p.id = pp.person_id
           where pp.proposal_id in (select value from json_each(?))
             and p.name is not null and p.name != coalesce(p.account_id, '')
           group by p.id order by rank, min(p.id)""",
        [json.dumps(list(proposal_ids))],
    )
    return list(dict.fromkeys(row[0] for row in rows))
