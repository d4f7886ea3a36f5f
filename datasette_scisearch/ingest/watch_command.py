"""``scisearch watch CATALOG FOLDER…``: the command over ingest/watching.py's Watcher."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
from pathlib import Path

import click

from ..catalog import open_catalog
from ..command_line import ScisearchCommand, catalog_argument, device_option
from ..config import load_settings
from ..errors import ScisearchError
from ..search import index_folder

_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


class Duration(click.ParamType):
    """A time such as 2s, 500ms, 5m or 1h (a bare number is seconds)."""

    name = "duration"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|min|m|h)?\s*", str(value))
        if not match:
            self.fail(f"{value!r} is not a duration: write e.g. 2s, 500ms, 5m or 1h", param, ctx)
        return float(match.group(1)) * _UNITS_S[match.group(2) or "s"]


@click.command("watch", cls=ScisearchCommand)
@catalog_argument("folders", count=-1, metavar="FOLDER...")
@click.option(
    "--settle", type=Duration(), default="2s", show_default=True, help="a file unchanged this long is complete"
)
@click.option(
    "--partner-timeout",
    type=Duration(),
    default="5m",
    show_default=True,
    help="how long a file waits for its partners (.emi/.ser, HDF5 master/data) before it is read without them",
)
@click.option("--batch", "batch_files", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option(
    "--max-waiting",
    type=click.IntRange(100, 10_000_000),
    default=20_000,
    show_default=True,
    help="files held in memory at most; more are found by a scan once these are loaded",
)
@click.option("--tag/--no-tag", default=True, show_default=True, help="run the taggers on what was loaded")
@click.option("-t", "--tagger", "tagger_names", multiple=True, help="run only this tagger (repeat for several)")
@click.option("--tag-every", type=Duration(), default="60s", show_default=True, help="tag this often while busy")
@device_option
@click.option(
    "--dask",
    metavar="ADDRESS|FILE.yml",
    help="read and tag on a Dask cluster: a scheduler address or a cluster file (examples/watch-slurm.sh)",
)
@click.option("--workers", type=click.IntRange(1, 1024), help="read and tag on N local worker processes")
@click.option("--once", is_flag=True, help="catch up (scan, load what is new, tag) and exit instead of watching")
@click.option("--reader-timeout", type=float, default=300.0, show_default=True, help="seconds a reader may take")
@click.option("--reader-memory", type=float, default=2.0, show_default=True, help="GB of memory a reader may use")
@click.option("--json", "as_json", is_flag=True, help="print the final summary as JSON")
@click.pass_context
def watch_command(
    ctx,
    catalog,
    folders,
    settle,
    partner_timeout,
    batch_files,
    max_waiting,
    tag,
    tagger_names,
    tag_every,
    device,
    dask,
    workers,
    once,
    reader_timeout,
    reader_memory,
    as_json,
):
    """Watch FOLDERS and load, link and tag files into CATALOG as the instruments write them.

    The folders become data roots.  A file is read once its size and time have stayed the same for --settle,
    and its partner files are there (or --partner-timeout has passed: it is read without them, with a note).
    At start a scan reads what changed while no watcher ran, so a restart loses nothing; files already
    catalogued as they are are not read again.  Stop it with Ctrl-C or SIGTERM (it finishes the file it is
    on); 'scisearch status' shows what it is doing.  A folder that disappears (an unmounted share) is waited
    for and read again when it is back."""
    missing = [f for f in folders if not Path(f).is_dir()]
    if missing:
        raise ScisearchError(f"'{missing[0]}' is not a folder", fix="give the folders the instruments write to")
    from .sandbox import ReaderPool
    from .watching import Watcher, WatchOptions  # the tagging pipeline with it: not for --help

    settings = load_settings((ctx.obj or {}).get("config"))
    index_folder.configure(settings.index_folder)
    options = WatchOptions(
        settle_s=settle,
        partner_timeout_s=partner_timeout,
        batch_files=batch_files,
        max_pending=max_waiting,
        tag=tag,
        tag_interval_s=tag_every,
        tag_options={"tagger_names": list(tagger_names) or None, "device": device},
    )
    db = open_catalog(catalog, create=True)
    sandbox = ReaderPool(memory_limit_bytes=int(reader_memory * 2**30), timeout_s=reader_timeout)
    quiet = as_json

    def report(line: str) -> None:
        if not quiet:
            click.echo(f"{dt.datetime.now().strftime('%H:%M:%S')} {line}")

    from ..cluster import open_cluster

    with open_cluster(dask, workers) as cluster, sandbox:
        if cluster is not None:
            options.tag_options["cluster"] = cluster
        watcher = Watcher(
            db, [Path(f) for f in folders], settings, options, report=report, sandbox=sandbox, cluster=cluster
        )
        previous = signal.signal(signal.SIGTERM, lambda *_: watcher.stop.set())
        try:
            summary = watcher.catch_up() if once else watcher.run()
        finally:
            signal.signal(signal.SIGTERM, previous)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, default=str))
        return
    click.echo(
        f"watch: {summary.total} files seen in {summary.seconds:.1f} s — {summary.added} added, "
        f"{summary.updated} updated, {summary.unchanged} unchanged, {summary.skipped} skipped, {summary.failed} "
        f"failed (job {summary.job_id}; scisearch errors {catalog} lists the failures)"
    )
