"""``scisearch people`` and ``scisearch periods``: who a proposal's team is, and when its data becomes public.

    scisearch people add catalog.db "Jane Doe" --email jane@lab.org --account jdoe
    scisearch people list catalog.db
    scisearch people unmatched catalog.db        # the records' names that match nobody (never guessed)
    scisearch people account catalog.db 3 jdoe   # person 3 signs in as jdoe (joins the row that sign-in made)
    scisearch periods catalog.db                 # every proposal's release date, and whether it is private now
    scisearch periods catalog.db --proposal P-1 --release 2027-06-30   # set by hand (kept through loads)

The library does the work (people.py, periods.py); these commands print.
"""

from __future__ import annotations

import json

import click

from . import changes, people, periods
from .catalog import open_catalog, write_transaction
from .command_line import ScisearchCommand, catalog_argument
from .config import load_settings
from .errors import ScisearchError

json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


@click.group("people")
def people_command() -> None:
    """The people who are proposals' teams: they see their proposals' data during its proprietary period."""


@people_command.command("add")
@catalog_argument("name", count=1, metavar="NAME")
@click.option("--email", help="their e-mail, as the proposal records may list it")
@click.option("--account", "account_id", help="their sign-in id (the actor id datasette-auth-passwords gives)")
@json_option
def add_command(catalog, name, email, account_id, as_json):
    """Add a person; the records' names are matched to people again at once."""
    db = open_catalog(catalog, create=False)
    try:
        with write_transaction(db):
            person_id = people.add_person(db, name, email=email, account_id=account_id)
            unmatched = people.match_people(db)
        mine = db.execute("select proposal_id, role from proposal_people where person_id = ?", [person_id]).fetchall()
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps({"id": person_id, "proposals": [{"id": p, "role": r} for p, r in mine]}))
        return
    click.echo(f"added {name} (person {person_id})")
    for proposal_id, role in mine:
        click.echo(f"  team of {proposal_id} as {role}")
    if unmatched:
        click.echo(f"{len(unmatched)} names in the records still match nobody: scisearch people unmatched")


@people_command.command("list")
@catalog_argument()
@json_option
def list_command(catalog, as_json):
    """Everyone in people, with the proposals whose team they are."""
    db = open_catalog(catalog, create=False)
    try:
        rows = people.list_people(db)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("nobody yet: add people with 'scisearch people add CATALOG NAME --email … --account …'")
    for row in rows:
        account = f"account {row['account_id']}" if row["account_id"] else None
        added = "added by sign-in" if row.get("added_by") == "sign-in" else None
        contact = ", ".join(value for value in (row["email"], account, added) if value)
        click.echo(f"{row['id']:>4}  {row['name']}" + (f" ({contact})" if contact else ""))
        if row["proposals"]:
            click.echo(f"      {row['proposals']}")


@people_command.command("account")
@catalog_argument("person_and_account", count=2, metavar="PERSON ACCOUNT")
@json_option
def account_command(catalog, person_and_account, as_json):
    """Set a person's sign-in account id: they see their proposals' data at their next request.  A row that
    signing in made for that account alone ('scisearch people list' shows it as added by sign-in) is joined to
    the person and goes."""
    person, account_id = person_and_account
    if not str(person).isdigit():
        raise ScisearchError(f"{person!r} is not a person's number", fix="see the numbers with 'scisearch people list'")
    db = open_catalog(catalog, create=False)
    try:
        joined = people.set_account(db, int(person), account_id)
        mine = db.execute("select proposal_id, role from proposal_people where person_id = ?", [int(person)]).fetchall()
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps({**joined, "proposals": [{"id": p, "role": r} for p, r in mine]}))
        return
    click.echo(f"{joined['name']} (person {joined['id']}) signs in as {account_id}")
    if joined["joined"]:
        click.echo(f"  joined the row signing in made (person {joined['joined']})")
    for proposal_id, role in mine:
        click.echo(f"  team of {proposal_id} as {role}")


@people_command.command("unmatched")
@catalog_argument()
@json_option
def unmatched_command(catalog, as_json):
    """The names in the user log and the proposals that match no person (or several): add them, or fix the
    record; they are never guessed, so until then they are not on any team."""
    db = open_catalog(catalog, create=False)
    try:
        with write_transaction(db):
            rows = people.unmatched_names(db)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("every name in the records matches one person")
        return
    for row in rows:
        click.echo(f"{row['name']!r} ({row['roles']} of {row['proposal_id']}): {row['why']}")
    click.echo(f"{len(rows)} unmatched; add each with 'scisearch people add CATALOG NAME --email … --account …'")


@click.command("periods", cls=ScisearchCommand)
@catalog_argument()
@click.option("--proposal", "proposal_id", help="only this proposal")
@click.option("--release", help="set the proposal's release date by hand (YYYY-MM-DD); kept through later loads")
@click.option("--recompute", is_flag=True, help="recompute every date from the records and the configured period")
@json_option
@click.pass_context
def periods_command(ctx, catalog, proposal_id, release, recompute, as_json):
    """Every proposal's release date (from its record, or its last session's end plus proprietary_period_days of
    metadata.yml), and whether its data is private now."""
    db = open_catalog(catalog, create=False)
    try:
        if release and not proposal_id:
            raise ScisearchError(
                "--release needs the proposal", fix="scisearch periods CATALOG --proposal P-1 --release 2027-06-30"
            )
        with write_transaction(db):
            if release:
                periods.set_release_date(db, proposal_id, release)
            if recompute:
                periods.update_release_dates(db, load_settings((ctx.obj or {}).get("config")).proprietary_period_days)
        if release or recompute:
            changes.release_due_words(db)  # papers take or drop the words of proposals now public or private
        now = periods.now_utc()
        rows = [
            {**row, "private": row["release_date"] > now}
            for row in db.query(
                "select proposal_id, release_date, source from proposal_periods "
                + ("where proposal_id = ? " if proposal_id else "")
                + "order by release_date desc",
                [proposal_id] if proposal_id else [],
            )
        ]
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        state = "private until" if row["private"] else "public since"
        click.echo(f"{row['proposal_id']}: {state} {row['release_date'][:10]} (from {row['source']})")
    if not rows:
        click.echo("no proposal has a release date: load proposals or a user log first")
