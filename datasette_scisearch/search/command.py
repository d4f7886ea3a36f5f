"""``scisearch search QUERY``: the search engine on the command line.

    scisearch search 'SrTiO3 HAADF' --catalog demo-facility/demo.db
    scisearch search 'voltage>=200kV type:image' --catalog catalog.db --json --limit 50
    scisearch search 'gold nanoparticles' --catalog team05.db --catalog themis.db
    scisearch search 'strain mapping of interfaces' --catalog catalog.db --mode vector

The same engine, query language and JSON shape as ``/-/scisearch.json``; several
catalogs are searched as one (``search/federation.py``), each named by its file's
stem, as Datasette names the databases it serves.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import click

from ..catalog import ITEM_TYPES, item_counts, open_catalog
from ..command_line import ScisearchCommand, catalog_argument
from ..config import ConfigError, Settings, load_settings, plugin_config
from . import hub, index_folder
from .federation import catalog_answer, search_catalogs


@click.command("search", cls=ScisearchCommand)
@catalog_argument("query", count=1, several=True, metavar="QUERY")
@click.option("--type", "item_type", type=click.Choice(ITEM_TYPES), help="only this item type")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 100), help="results to show")
@click.option("--page", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "keyword", "vector"]),
    default="hybrid",
    show_default=True,
    help="rank by words and meaning (hybrid), by the words alone (keyword) or by meaning alone (vector)",
)
@click.option(
    "--facilities",
    "scope",
    type=click.Choice([hub.FAN_OUT, hub.LOCAL_ONLY]),
    help="all: also ask the other facilities listed under 'hub:' in metadata.yml over HTTP, as the search page "
    "does with facilities=all; local: these catalogs only (the default unless the hub says search_by_default)",
)
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON (the shape of /-/scisearch.json)")
@click.pass_context
def search_command(ctx, query, catalog, item_type, limit, page, mode, scope, as_json):
    """Search catalogs: words, "phrases", -exclusions and filters such as type:image, tag:HAADF,
    instrument:Themis, proposal:P-2021-0042, date:2021-03..2021-06, voltage>=200kV, mag:1M-20M, pixel<0.05nm,
    and catalog:NAME when several are given (--catalog again for each; $SCISEARCH_CATALOG may list several,
    separated by ':').  Searching writes nothing."""
    catalogs = catalog
    notes = []
    opened = {}
    for path in catalogs:
        name = _unique_name(Path(path).stem, opened)
        opened[name] = _open_for_search(path)
        counts = item_counts(opened[name])
        unsearchable = not opened[name].execute("select 1 from search_items limit 1").fetchone()
        if unsearchable and any(counts[table] for table in ("files", "sessions", "proposals", "papers")):
            # A catalog loaded before search existed: building its documents is a change, not a search's job.
            notes.append(f"{name} has no search documents yet: 'scisearch link {path}' builds them")
    settings = _settings(ctx)
    facilities = _hub(ctx, notes)
    fans_out = facilities.fans_out(scope, forwarded=False)
    if fans_out and scope is None:
        notes.append(f"other facilities asked too (hub: search_by_default); --facilities {hub.LOCAL_ONLY} to not")
    paths = {name: catalogs[number] for number, name in enumerate(opened)}
    notices: list[hub.Notice] = []
    try:
        if fans_out:
            for db in opened.values():
                db.close()  # each catalog is searched on a connection of the thread that searches it
            answers = {name: _answer_of(path, settings) for name, path in paths.items()}
            options = {"item_type": item_type, "page": page, "per_page": limit, "mode": mode}
            results, notices = hub.search_with_facilities(answers, facilities, query, **options)
        else:
            results = search_catalogs(
                opened, query, item_type=item_type, page=page, per_page=limit, settings=settings, mode=mode
            )
    finally:
        for db in opened.values():
            db.close()
    if as_json:
        payload = results.as_dict()
        payload["messages"] = notes + payload["messages"]
        if fans_out:  # another facility's hits keep their database there, and link to their pages there
            payload["hits"] = [
                hit.public_dict() if isinstance(hit, hub.RemoteHit) else data
                for hit, data in zip(results.hits, payload["hits"], strict=True)
            ]
            facilities.describe(payload, notices)
        click.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))
        return
    _print(results, notes + [notice.sentence() for notice in notices])


def _unique_name(stem: str, taken: dict) -> str:
    """A catalog's name as Datasette would give it: the file's stem, numbered when two files share one."""
    name, number = stem, 2
    while name in taken:
        name, number = f"{stem}_{number}", number + 1
    return name


def _hub(ctx, notes: list[str]) -> hub.Hub:
    """The other facilities of metadata.yml's ``hub:`` block; none, with a note, when the block cannot be used."""
    try:
        return hub.hub_from_config(plugin_config((ctx.obj or {}).get("config")).get("hub"))
    except ConfigError as error:
        notes.append(f"other facilities were not searched: {error.message}")
        return hub.Hub()


def _answer_of(path: str, settings: Settings):
    """One catalog's ``catalog_answer``, opening the catalog on the thread that calls it."""

    def answer(text: str, **options):
        db = _open_for_search(path)
        try:
            return catalog_answer(db, text, settings=settings, **options)
        finally:
            db.close()

    return answer


def _open_for_search(path: str):
    """Open a catalog to search: an older one is brought up to date, as every command does; a missing or empty
    file, a database that is not a catalog and a catalog newer than this code are refused."""
    return open_catalog(path, create=False)


def _settings(ctx) -> Settings:
    settings = load_settings((ctx.obj or {}).get("config"))
    index_folder.configure(settings.index_folder)  # where this catalog's indexes live, as --config says
    return settings


def _plain(snippet: str) -> str:
    """A hit's HTML snippet for a terminal: matched words bold, entities decoded."""
    marked = re.sub(r"<mark>(.*?)</mark>", lambda m: click.style(m[1], bold=True), snippet)
    return html.unescape(marked)


def _print(results, notes: list[str]) -> None:
    for message in notes + results.messages:
        click.echo(f"note: {message}")
    per_type = ", ".join(f"{kind}s {count}" for kind, count in results.counts.items())
    click.echo(
        f"{results.total} result{'s' if results.total != 1 else ''} for {results.query!r}"
        + (f" ({per_type})" if per_type else "")
        + f" in {results.took_ms:.0f} ms"
    )
    first = (results.page - 1) * results.per_page
    several = len(results.catalogs) > 1
    for number, hit in enumerate(results.hits, start=first + 1):
        where = f"{hit.database}: " if several else ""
        if isinstance(hit, hub.RemoteHit):
            where = f"{hit.facility}/{hit.remote_database}: " if hit.remote_database else f"{hit.facility}: "
        click.echo(f"{number:3d}. [{where}{hit.item_type}] {hit.item_id}  {hit.title}")
        facts = ", ".join(f"{k} {v}" for k, v in hit.facts.items() if v not in (None, "", False) and k != "has_preview")
        if facts:
            click.echo(f"     {facts}")
        if hit.snippet:
            click.echo(f"     {_plain(hit.snippet)}")
        if hit.why:
            click.echo(f"     why: {'; '.join(hit.why)}")
