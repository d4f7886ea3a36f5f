"""``scisearch search QUERY``: the search engine on the command line.

    scisearch search 'SrTiO3 HAADF' --catalog demo-facility/demo.db
    scisearch search 'voltage>=200kV type:image' --catalog catalog.db --json --limit 50

The same engine, query language and JSON shape as ``/-/scisearch.json``.
"""

from __future__ import annotations

import html
import json
import re

import click

from ..catalog import ITEM_TYPES, CatalogError, open_catalog
from ..config import ConfigError, Settings, load_settings
from .engine import QueryError, search
from .index import refresh_search_items


class SearchFailure(click.ClickException):
    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.command("search")
@click.argument("query")
@click.option(
    "--catalog",
    envvar="SCISEARCH_CATALOG",
    required=True,
    type=click.Path(dir_okay=False),
    help="the catalog to search (or $SCISEARCH_CATALOG)",
)
@click.option("--type", "item_type", type=click.Choice(ITEM_TYPES), help="only this item type")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 100), help="results to show")
@click.option("--page", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON (the shape of /-/scisearch.json)")
@click.pass_context
def search_command(ctx, query, catalog, item_type, limit, page, as_json):
    """Search a catalog: words, "phrases", -exclusions and filters such as type:image, tag:HAADF,
    instrument:Themis, proposal:P-2021-0042, date:2021-03..2021-06, voltage>=200kV, mag:1M-20M, pixel<0.05nm."""
    try:
        db = open_catalog(catalog, create=False)
    except CatalogError as error:
        raise SearchFailure(str(error)) from None
    notes = []
    if db.execute("select 1 from search_items limit 1").fetchone() is None:
        if refresh_search_items(db):  # a catalog loaded before search existed: index it now
            notes.append("built the search index of this catalog first")
    try:
        results = search(db, query, item_type=item_type, page=page, per_page=limit, settings=_settings(ctx))
    except QueryError as error:
        raise SearchFailure(str(error)) from None
    if as_json:
        payload = results.as_dict()
        payload["messages"] = notes + payload["messages"]
        click.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))
        return
    _print(results, notes)


def _settings(ctx) -> Settings:
    try:
        return load_settings((ctx.obj or {}).get("config"))
    except ConfigError as error:
        raise SearchFailure(str(error)) from None


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
    for number, hit in enumerate(results.hits, start=first + 1):
        click.echo(f"{number:3d}. [{hit.item_type}] {hit.item_id}  {hit.title}")
        facts = ", ".join(f"{k} {v}" for k, v in hit.facts.items() if v not in (None, "", False) and k != "has_preview")
        if facts:
            click.echo(f"     {facts}")
        if hit.snippet:
            click.echo(f"     {_plain(hit.snippet)}")
        if hit.why:
            click.echo(f"     why: {'; '.join(hit.why)}")
