"""``scisearch learn CATALOG``: turn the search log's clicks into the ranking signal search uses.

Run it from cron, or leave ``--every MINUTES`` running next to the server.  The
web plugin does not learn by itself: ``learn`` reads the whole log, which a
search request should not wait for, and a burst of beacons should not be able
to make the server recompute anything.
"""

from __future__ import annotations

import json
import time

import click

from ..catalog import open_catalog
from ..command_line import ScisearchCommand, catalog_argument
from . import clicks
from .clicks import LearnReport

PROPENSITIES_SHOWN = 10


def describe(report: LearnReport) -> list[str]:
    """The one-screen summary of what was learned."""
    lines = [
        f"learn clicks: {report.searches:,} searches, {report.impressions:,} results shown, "
        f"{report.clicks:,} clicks in {report.seconds:.1f} s",
        f"  counted {report.counted_clicks:,} clicks of {report.counted_impressions:,} impressions "
        "(each actor once per query, item and day)",
        f"  {report.pairs:,} (query, item) signals for {report.queries:,} queries, {report.boosted:,} of them boosts",
    ]
    if not report.searches:
        lines.append("  nothing to learn yet: the search page logs searches and clicks as people use it")
    elif report.debiased:
        shown = ", ".join(f"{k}: {p:.2f}" for k, p in enumerate(report.propensities[:PROPENSITIES_SHOWN], start=1))
        lines.append(f"  examination by position (EM, {report.iterations} iterations): {shown}")
    else:
        lines.append("  not corrected for position bias (--naive)")
    if report.searches:
        lines.append(f"  mean attractiveness once looked at: {report.mean_attractiveness:.3f}")
    return lines


@click.command(name="learn", cls=ScisearchCommand)
@catalog_argument()
@click.option("--every", type=click.FloatRange(min=0.1), metavar="MINUTES", help="learn again every MINUTES, until ^C")
@click.option("--naive", is_flag=True, help="plain click rates, not corrected for position bias (for comparison)")
@click.option("--signed-in-only", is_flag=True, help="learn only from searches by signed-in actors")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def learn(catalog: str, every: float | None, naive: bool, signed_in_only: bool, as_json: bool) -> None:
    """Learn a position-debiased click signal from the search log of CATALOG."""
    db = open_catalog(catalog, create=False)
    try:
        while True:
            report = clicks.learn(db, debias=not naive, signed_in_only=signed_in_only)
            click.echo(json.dumps(report.as_dict()) if as_json else "\n".join(describe(report)))
            if every is None:
                return
            time.sleep(every * 60)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        db.close()
