"""The ``scisearch`` command: a thin layer over the library, in the style of sqlite-utils.

Each command parses options, calls one library function and prints a one-screen
summary (or ``--json``).  What a change to the catalog needs afterwards (linking,
search documents) is the library's business (changes.py), not the command's.
Every command names its catalog the same way and fails the same way
(command_line.py): ``error: …`` and ``hint: …`` on stderr, exit status 1, the
traceback only with ``--debug``; files that fail inside a load are reported and
the load exits 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import sqlite_utils

from . import __version__, changes, jobs
from .catalog import (
    CURRENT_SCHEMA_VERSION,
    ITEM_TYPES,
    catalog_schema_version,
    check_catalog_file,
    item_counts,
    open_catalog,
    schema_version,
)
from .command_line import ScisearchCommandLine, catalog_argument, cluster_of, dask_option, device_option, workers_option
from .config import find_metadata, load_settings
from .errors import ScisearchError
from .plugins import describe_plugins, get_plugin_manager
from .search import index_folder


def _open(catalog: str, create: bool = True):
    return open_catalog(catalog, create=create)


def _settings(ctx: click.Context, timezone: str | None = None, tolerance: float | None = None):
    settings = load_settings(ctx.obj.get("config"))
    index_folder.configure(settings.index_folder)
    if timezone:
        from .config import settings_from_dict

        settings.timezone = settings_from_dict({"timezone": timezone}).timezone
    if tolerance is not None:
        settings.link_tolerance_minutes = tolerance
    return settings


INTERRUPTED_LOAD = "interrupted: what was loaded is kept"
RUN_AGAIN = "run the same command again to finish"


# Commands imported only when run (or listed by --help): what a command needs, not what every command needs.
LAZY_COMMANDS = {
    "search": "datasette_scisearch.search.command:search_command",
    "index": "datasette_scisearch.search.index_command:index_command",
    "train": "datasette_scisearch.learning.train_command:train_command",
    "pretrain": "datasette_scisearch.learning.pretrain_command:pretrain_command",
    "learn": "datasette_scisearch.learning.learn_command:learn",
    "predict-metadata": "datasette_scisearch.learning.metadata_command:predict_metadata_command",
    "watch": "datasette_scisearch.ingest.watch_command:watch_command",
    "people": "datasette_scisearch.people_command:people_command",
    "periods": "datasette_scisearch.people_command:periods_command",
}
LAZY_LOAD_COMMANDS = {"judgments": "datasette_scisearch.learning.learn_command:load_judgments_command"}


@click.group(cls=ScisearchCommandLine, lazy=LAZY_COMMANDS)
@click.version_option(__version__, prog_name="scisearch")
@click.option("--debug", is_flag=True, help="show the traceback when a command fails")
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="SCISEARCH_CONFIG",
    help="metadata.yml with the facility's settings (default: ./metadata.yml, else the packaged one)",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None, debug: bool) -> None:
    """Make a facility's instrument data findable: load, link, tag and search it with Datasette.

    Every command takes the catalog as its first argument, or $SCISEARCH_CATALOG when it is left out, or
    --catalog FILE."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@cli.group(cls=ScisearchCommandLine, lazy=LAZY_LOAD_COMMANDS)
def load() -> None:
    """Load instrument files, user logs, proposals or papers into a catalog."""


json_option = click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
quiet_option = click.option("--quiet", is_flag=True, help="no progress bar")
link_option = click.option("--no-link", is_flag=True, help="do not re-run context linking afterwards")


@load.command("files")
@catalog_argument("paths", count=-1, metavar="PATH...")
@dask_option
@workers_option
@json_option
@quiet_option
@link_option
@click.option("--retry-errors", is_flag=True, help="read again the files that failed, even if they have not changed")
@click.option(
    "--reader-timeout", type=float, default=300.0, show_default=True, help="seconds a reader may spend on one file"
)
@click.option(
    "--reader-memory", type=float, default=2.0, show_default=True, help="GB of memory a reader may use for one file"
)
@click.pass_context
def load_files_command(
    ctx, catalog, paths, dask, workers, as_json, quiet, no_link, retry_errors, reader_timeout, reader_memory
):
    """Read every instrument file under PATHS (recursively) into CATALOG.

    Each folder in PATHS becomes a data root of the catalog; files are stored
    by their absolute path, and links out of the data roots are not followed.
    Unchanged files are skipped, changed ones updated; files that cannot be
    read are listed in the ingest_errors table and the load goes on, and are
    not read again until they change (or --retry-errors).  Each file is read
    in a worker process: a reader that crashes, runs past --reader-timeout or
    needs more than --reader-memory fails that file only.  With --dask or
    --workers the files are read by a cluster's workers and this process
    writes the catalog.
    """
    settings = _settings(ctx)
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:  # before the catalog is opened, so a typo does not leave an empty catalog behind
        raise ScisearchError(f"'{missing[0]}' does not exist", fix="give a folder or file that does")
    db = _open(catalog)
    from .ingest.sandbox import ReaderPool

    sandbox = ReaderPool(memory_limit_bytes=int(reader_memory * 2**30), timeout_s=reader_timeout)
    try:
        with cluster_of(dask, workers) as cluster, sandbox:
            summary, links = changes.load_files(
                db,
                paths,
                settings,
                link=not no_link,
                progress=not quiet and not as_json,
                cluster=cluster,
                retry_errors=retry_errors,
                sandbox=sandbox,
            )
    except KeyboardInterrupt:
        raise ScisearchError(INTERRUPTED_LOAD, fix=RUN_AGAIN) from None
    _report(summary, links, catalog, as_json)


@load.command("userlog")
@catalog_argument("path", count=1, metavar="FILE")
@click.option("--timezone", help="time zone of the log's times (default: the facility's, from metadata.yml)")
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="FIELD=NAME",
    help="the log's column NAME holds FIELD (instrument, user, start, end, proposal_id, notes); repeatable",
)
@json_option
@quiet_option
@link_option
@click.pass_context
def load_userlog_command(ctx, catalog, path, timezone, columns, as_json, quiet, no_link):
    """Load instrument sessions from a user log / booking export (CSV or JSON lines)."""
    settings = _settings(ctx, timezone=timezone)
    path = Path(path)
    options = {"columns": _parse_columns(columns)}
    if timezone:
        options["timezone"] = timezone
    _load_records(catalog, "userlog", path, settings, options, as_json, quiet, no_link)


@load.command("proposals")
@catalog_argument("path", count=1, metavar="FILE")
@click.option("--column", "columns", multiple=True, metavar="FIELD=NAME", help="map a source column to a field")
@json_option
@quiet_option
@link_option
@click.pass_context
def load_proposals_command(ctx, catalog, path, columns, as_json, quiet, no_link):
    """Load proposals (JSON lines or CSV; NSF award records work as they are)."""
    settings = _settings(ctx)
    _load_records(
        catalog, "proposals", Path(path), settings, {"columns": _parse_columns(columns)}, as_json, quiet, no_link
    )


@load.command("papers")
@catalog_argument("paths", count=-1, metavar="PATH...")
@json_option
@quiet_option
@link_option
@click.pass_context
def load_papers_command(ctx, catalog, paths, as_json, quiet, no_link):
    """Load papers from JSON lines, BibTeX or PDF files (or folders of them)."""
    settings = _settings(ctx)
    for number, path in enumerate(paths, start=1):
        last = number == len(paths)  # link once, after the last source
        _load_records(catalog, "papers", Path(path), settings, {}, as_json, quiet, no_link or not last)


def _parse_columns(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        field, sep, name = pair.partition("=")
        if not sep or not field or not name:
            raise ScisearchError(f"--column takes FIELD=NAME (got {pair!r})", fix="e.g. --column start=StartTime")
        mapping[field.strip()] = name.strip()
    return mapping


def _load_records(catalog, kind, path, settings, options, as_json, quiet, no_link):
    db = _open(catalog)
    try:
        summary, links = changes.load_records(
            db, kind, path, settings, options, link=not no_link, progress=not quiet and not as_json
        )
    except KeyboardInterrupt:
        raise ScisearchError(INTERRUPTED_LOAD, fix=RUN_AGAIN) from None
    _report(summary, links, catalog, as_json)


def _report(summary, links, catalog: str, as_json: bool) -> None:
    if as_json:
        payload = summary.as_dict()
        payload["links"] = links.as_dict() if links else None
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    click.echo(
        f"{summary.command}: {summary.total} seen in {summary.seconds:.1f} s — "
        f"{summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.skipped} skipped, {summary.failed} failed"
    )
    for error in summary.errors[:10]:
        where = f"{error['source']}:{error['line']}" if error.get("line") else error["source"]
        click.echo(f"  failed: {where}: {error['message']}")
    if summary.failed > 10:
        click.echo(f"  … and {summary.failed - 10} more")
    for note in summary.notes[:5]:
        click.echo(f"  note: {note}")
    if len(summary.notes) > 5:
        click.echo(f"  … and {len(summary.notes) - 5} more notes (--json lists them)")
    if summary.failed:
        click.echo(f"  all failures: scisearch errors {catalog}  (or the ingest_errors table in Datasette)")
    if links:
        click.echo(
            f"linked: {links.files_in_sessions} files to sessions by acquisition time, "
            f"{links.files_by_modification_time} by file time, {links.files_with_proposal} files and "
            f"{links.sessions_with_proposal} sessions to proposals, {links.papers_linked} papers to proposals"
        )


@cli.command()
@catalog_argument()
@click.option("--tolerance-minutes", type=float, help="clock skew allowed around a session (default from metadata.yml)")
@json_option
@click.pass_context
def link(ctx, catalog, tolerance_minutes, as_json):
    """Link files to sessions, sessions and papers to proposals (runs after every load too)."""
    settings = _settings(ctx, tolerance=tolerance_minutes)
    db = _open(catalog, create=False)
    summary = changes.relink(db, settings)  # a file's document carries its session's and proposal's words
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        for key, value in summary.as_dict().items():
            click.echo(f"{key.replace('_', ' ')}: {value}")


@cli.command()
@catalog_argument()
@click.option("-t", "--tagger", "tagger_names", multiple=True, help="run only this tagger (repeat for several)")
@click.option(
    "--type", "item_types", multiple=True, type=click.Choice(ITEM_TYPES), help="tag only these item types (repeat)"
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), help="items per model call (default: each tagger's)")
@click.option("--force", is_flag=True, help="tag again even what is current (after changing a model's options)")
@click.option("--retry-errors", is_flag=True, help="try again the items a tagger failed on")
@device_option
@dask_option
@workers_option
@click.option("--quiet", is_flag=True, help="no progress bar")
@json_option
@click.pass_context
def tag(ctx, catalog, tagger_names, item_types, batch_size, force, retry_errors, device, dask, workers, as_json, quiet):
    """Run the installed taggers over the catalog: tags and vectors for what is new or changed.

    With --dask or --workers the models run on a cluster's workers (each loads a model once) and this
    process writes the catalog."""
    settings = _settings(ctx)
    db = _open(catalog, create=False)
    try:
        with cluster_of(dask, workers) as cluster:
            summary = changes.tag_new(
                db,
                settings,
                tagger_names=list(tagger_names) or None,
                item_types=list(item_types) or None,
                batch_size=batch_size,
                force=force,
                retry_errors=retry_errors,
                device=device,
                progress=not (quiet or as_json),
                cluster=cluster,
            )
    except KeyboardInterrupt:
        raise ScisearchError(
            "interrupted: finished batches are kept", fix="run the same command again to go on"
        ) from None
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, default=str))
    else:
        _report_tagging(summary)


def _report_tagging(summary) -> None:
    click.echo(f"tag: {summary.total} item checks in {summary.seconds:.1f} s on {summary.device}")
    for stats in summary.taggers:
        if stats.unavailable:
            click.echo(f"  {stats.tagger}: not run — {stats.unavailable}")
            continue
        click.echo(
            f"  {stats.tagger} {stats.version}: {stats.tagged} tagged ({stats.tags} tags, {stats.vectors} vectors), "
            f"{stats.current} current, {stats.not_wanted} not for it, {stats.failed} failed, {stats.seconds:.1f} s"
        )
        for error in stats.errors[:5]:
            click.echo(f"      failed: {error['item']}: {error['message']}")
        if len(stats.errors) > 5:
            click.echo(f"      … and {len(stats.errors) - 5} more (--json lists them)")
    if summary.inherited_tags:
        click.echo(f"  {summary.inherited_tags} inherited tags (from proposals and sessions to their files) changed")


@cli.command()
@json_option
def plugins(as_json):
    """List installed plugins: name, package, version, hooks and what they provide."""
    infos = describe_plugins()
    if as_json:
        click.echo(json.dumps([info.__dict__ for info in infos], indent=2))
        return
    for info in infos:
        package = f"{info.distribution} {info.version}" if info.distribution else "(registered in code)"
        click.echo(f"{info.name}  [{package}]  hooks: {', '.join(info.hooks)}")
        for item in info.provides:
            click.echo(f"    {item}")


@cli.command()
@catalog_argument()
@json_option
def status(catalog, as_json):
    """What a catalog holds: counts, schema version, the last jobs."""
    db = _open(catalog, create=False)
    report = {
        "catalog": catalog,
        "schema_version": schema_version(db),
        "counts": item_counts(db),
        # Kept with their previews and tags (the data may be archived), but not in their folders any more.
        "missing_files": db.execute("select count(*) from files where missing_since is not null").fetchone()[0],
        "jobs": _last_jobs(db),
        "watching": _watchers(db),
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{catalog}: schema version {report['schema_version']}")
    for table, count in report["counts"].items():
        click.echo(f"  {table}: {count}")
    if report["missing_files"]:
        click.echo(f"  files gone from their folders: {report['missing_files']} (search is:missing to list them)")
    for job in report["jobs"]:
        click.echo(
            f"  job {job['id']} {job['command']}: {job['status']} at {job['started_at']}, {job['failed'] or 0} failed"
            + (f" — {job['error']}" if job["error"] else "")
        )
    for watcher in report["watching"]:
        progress = watcher["progress"]
        folders = ", ".join(f"{path} ({state})" for path, state in progress.get("folders", {}).items())
        click.echo(
            f"  watching {folders} (job {watcher['id']}, since {watcher['started_at']}): {watcher['loaded']} loaded, "
            f"{watcher['failed']} failed, {progress.get('waiting', 0)} waiting"
            f" ({progress.get('waiting_for_partners', 0)} for partners), last batch {progress.get('last_batch_at')}"
        )


def _watchers(db) -> list[dict]:
    """The watchers running on this catalog, with what their job rows say they are doing."""
    found = []
    for row in db.query("select * from jobs where command = 'watch' and status = 'running' order by id"):
        if jobs.shown_status(row)[0] != "running":
            continue  # killed (kill -9, a crash): `scisearch status` lists it among the jobs as interrupted
        summary = json.loads(row["summary"] or "{}")
        found.append(
            {
                "id": row["id"],
                "started_at": row["started_at"],
                "loaded": (row["succeeded"] or 0),
                "failed": row["failed"] or 0,
                "progress": summary.get("progress", {}),
            }
        )
    return found


def _last_jobs(db, limit: int = 5) -> list[dict]:
    """The last jobs as they really are: one left 'running' by a process that died shows as interrupted, with why."""
    shown = []
    for row in db.query("select * from jobs order by id desc limit ?", [limit]):
        status, why = jobs.shown_status(row)
        shown.append(
            {
                **{key: row[key] for key in ("id", "command", "started_at", "finished_at", "total", "failed")},
                "status": status,
                "error": why,
            }
        )
    return shown


@cli.command()
@catalog_argument()
@json_option
def errors(catalog, as_json):
    """List what could not be loaded or tagged, and why."""
    db = _open(catalog, create=False)
    rows = list(
        db.query("select source, line, loader, message, attempts, last_seen from ingest_errors order by source, line")
    )
    tagging = list(
        db.query(
            "select tagger, item_type, item_id, message, ran_at from tag_runs where status = 'error' "
            "order by tagger, item_type, item_id"
        )
    )
    if as_json:
        click.echo(json.dumps({"loading": rows, "tagging": tagging}, indent=2))
        return
    for row in rows:
        where = f"{row['source']}:{row['line']}" if row["line"] else row["source"]
        click.echo(f"{where}\n    {row['message']}")
    for row in tagging:
        click.echo(f"{row['tagger']} on {row['item_type']} {row['item_id']}\n    {row['message']}")
    click.echo(f"{len(rows)} loading errors, {len(tagging)} tagging errors")


@cli.command()
@catalog_argument(several=True)
@click.option("-h", "--host", default="127.0.0.1", show_default=True)
@click.option("-p", "--port", default=8001, show_default=True, type=int)
@click.option("--root", is_flag=True, help="print a link that signs you in as root, an expert who may validate tags")
@click.pass_context
def serve(ctx, catalog, host, port, root):
    """Serve catalogs with Datasette, sqlite-vec loaded and the facility's metadata.yml; several are searched as
    one. Each is brought up to the current schema first."""
    for path in catalog:
        note = _ready_to_serve(path)
        if note:
            click.echo(f"note: {note}")
    _serve(list(catalog), host, port, root, ctx.obj.get("config"))


def _ready_to_serve(catalog: str) -> str | None:
    """Check that ``catalog`` is one this code can serve and migrate it if it is older; a note when it was."""
    check_catalog_file(catalog, allow_empty=True)  # an empty file becomes an empty catalog
    before = sqlite_utils.Database(catalog)
    try:
        version, _ = catalog_schema_version(before)
    finally:
        before.close()
    _open(catalog).close()
    if version and version < CURRENT_SCHEMA_VERSION:
        return f"brought '{catalog}' up to date: catalog schema version {version} → {CURRENT_SCHEMA_VERSION}"
    return None


def _serve(catalogs: list[str], host: str, port: int, root: bool, config: str | None) -> None:
    from datasette.cli import cli as datasette_cli

    arguments = ["serve", *catalogs, "--host", host, "--port", str(port)]
    metadata = find_metadata(config)
    if metadata is not None:
        arguments += ["--metadata", str(metadata)]
    if root:
        arguments.append("--root")
        # Datasette prints the link itself, once it knows its one-time token.
        click.echo("to validate tags, sign in as root (allowed scisearch-edit in metadata.yml) with this link:")
    datasette_cli.main(arguments, prog_name="datasette")


@cli.command()
@click.option("--folder", default="demo-facility", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--files", "n_files", default=240, show_default=True, help="number of instrument files to write")
@click.option("--seed", default=0, show_default=True)
@click.option("--serve/--no-serve", "serve_after", default=True, show_default=True)
@click.option("-p", "--port", default=8001, show_default=True, type=int)
@click.option("--rebuild", is_flag=True, help="write the facility again even if the folder exists")
@click.option("--tag/--no-tag", "tag_after", default=True, show_default=True, help="run the installed taggers")
@click.option(
    "--root/--no-root", default=True, show_default=True, help="print a link that signs you in to validate tags"
)
@click.pass_context
def demo(ctx, folder, n_files, seed, serve_after, port, rebuild, tag_after, root):
    """Build a synthetic facility (files, user log, proposals, papers), catalog it and serve it."""
    from .demo import build_facility

    settings = _settings(ctx)
    catalog = folder / "demo.db"
    if rebuild or not (folder / "data").exists():
        click.echo(f"writing a synthetic facility of {n_files} files to {folder}/")
        facility = build_facility(folder, n_files=n_files, seed=seed)
        paths = dict(
            data=facility.data_dir, userlog=facility.userlog, proposals=facility.proposals, papers=facility.papers
        )
    else:
        paths = dict(
            data=folder / "data",
            userlog=folder / "userlog.csv",
            proposals=folder / "proposals.jsonl",
            papers=folder / "papers.jsonl",
        )
    db = _open(str(catalog))
    for kind in ("proposals", "papers", "userlog"):
        summary, _ = changes.load_records(db, kind, paths[kind], settings, {}, link=False, progress=True)
        _report(summary, None, str(catalog), False)
    summary, links, tagged = changes.take_in_files(
        db, [paths["data"]], settings, tag=tag_after, tag_options={"progress": True}, progress=True
    )
    _report(summary, links, str(catalog), False)
    if tagged is not None:
        _report_tagging(tagged)
    db.close()
    if serve_after:
        click.echo(f"serving {catalog} at http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        _serve([str(catalog)], "127.0.0.1", port, root, ctx.obj.get("config"))
    else:
        click.echo(
            f"catalog ready: scisearch serve {catalog}"
            + (" --root  (--root: a link to sign in and validate tags)" if root else "")
        )


def _register_plugin_commands() -> None:
    try:
        get_plugin_manager().hook.register_commands(cli=cli)
    except Exception as error:  # a plugin's broken command must not break the tool
        print(f"warning: a plugin failed to add its commands: {error}", file=sys.stderr)


cli.more_commands = _register_plugin_commands  # when a name is not a built-in one, or --help lists them all
