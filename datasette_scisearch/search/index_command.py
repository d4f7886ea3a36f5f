"""``scisearch index CATALOG``: bring the catalog's on-disk search indexes up to date, rebuild or check them.

    scisearch index catalog.db            # take the changes since the index's generation (build it if missing)
    scisearch index catalog.db --rebuild  # index every document again, with a progress bar
    scisearch index catalog.db --check    # compare the index with the catalog; exit 1 where they disagree

Writers (load, tag, expert edits, learning) keep the index up to date by
themselves; this command is for a catalog that was never indexed, an index
that was damaged or deleted, and for checking.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from .. import jobs
from ..catalog import open_catalog
from ..command_line import ScisearchCommand, catalog_argument
from ..config import load_settings
from ..errors import BUSY, ScisearchError
from ..tagging import vectors
from . import index_folder, mapped_vectors, text_index


@click.command("index", cls=ScisearchCommand)
@catalog_argument()
@click.option("--rebuild", is_flag=True, help="index every search document again")
@click.option("--check", is_flag=True, help="compare the index with the catalog (exit status 1 where they differ)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.pass_context
def index_command(ctx, catalog, rebuild, check, as_json, quiet):
    """Build, update or check the search indexes kept beside CATALOG (in CATALOG.indexes/ by default; the
    index_folder setting of metadata.yml says where)."""
    index_folder.configure(load_settings((ctx.obj or {}).get("config")).index_folder)
    if not text_index.available():
        raise ScisearchError(
            "tantivy is not installed, so there is no text index to build (FTS5 ranks without it)",
            fix="pip install tantivy",
            kind=BUSY,
        )
    db = open_catalog(catalog, create=False)
    try:
        folder = index_folder.indexes_folder(db)
        spaces = list(vectors.spaces(db))
        if check:
            report = text_index.check(db)
            vector_reports = [mapped_vectors.check(db, space) for space in spaces]
            _print_check(report, vector_reports, folder, as_json)
            if not (report.agrees and all(r.agrees for r in vector_reports)):
                raise SystemExit(1)
            return
        with jobs.recorded_job(db, "index --rebuild" if rebuild else "index", {"folder": str(folder)}) as job:
            summary = _rebuild(db, spaces, quiet) if rebuild else _update(db, folder, spaces, quiet)
            job.notes.append(", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in summary.items()))
    finally:
        db.close()
    summary["folder"] = str(folder)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            click.echo(f"{key.replace('_', ' ')}: {value}")


def _rebuild(db, spaces: list[str], quiet: bool) -> dict:
    state = text_index.build(db, progress=not quiet)
    summary = {"action": "rebuilt", "documents": state["documents"], "generation": state["generation"]}
    for space in spaces:
        summary[f"{space}_vectors"] = mapped_vectors.build(db, space, progress=not quiet)["vectors"]
    return summary


def _update(db, folder, spaces: list[str], quiet: bool) -> dict:
    with index_folder.writer_lock(folder, text_index.STATE, wait=True):
        pass  # wait for a writer that is catching up, then catch up ourselves
    updated = _catch_up_or_build(db, quiet)
    state = index_folder.read_state(folder, text_index.STATE) or {}
    summary = {"action": "updated", "documents_reindexed": updated, **_brief(state)}
    for space in spaces:  # built, or the changes folded in, whatever the size
        written = mapped_vectors.catch_up(db, space, force=True, progress=not quiet)
        summary[f"{space}_vectors_written"] = written or 0
    return summary


def _catch_up_or_build(db, quiet: bool) -> int:
    folder = index_folder.indexes_folder(db)
    if index_folder.read_state(folder, text_index.STATE) is None:
        return text_index.build(db, progress=not quiet)["documents"]  # asked for: built whatever the size
    updated = text_index.catch_up(db, progress=not quiet)
    return updated or 0


def _brief(state: dict) -> dict:
    return {"documents": state.get("documents"), "generation": state.get("generation")}


def _print_check(report: text_index.CheckReport, vector_reports: list, folder, as_json: bool) -> None:
    if as_json:
        payload = {**asdict(report), "agrees": report.agrees, "folder": str(folder)}
        payload["vectors"] = [{**asdict(r), "agrees": r.agrees} for r in vector_reports]
        payload["all_agree"] = report.agrees and all(r.agrees for r in vector_reports)
        click.echo(json.dumps(payload, indent=2))
        return
    if not report.exists:
        click.echo(f"no usable text index in {folder}: run 'scisearch index' to build it")
    else:
        click.echo(f"text index: {report.documents_in_index:,} documents, generation {report.index_generation}")
        click.echo(f"catalog:    {report.documents_in_catalog:,} documents, generation {report.catalog_generation}")
        if report.pending:
            click.echo(
                f"{report.pending:,} documents changed since the index's generation (searches read them from the log)"
            )
        _print_differences(report)
    for vector_report in vector_reports:
        if not vector_report.exists:
            click.echo(f"{vector_report.space} vectors: no files in {folder}: run 'scisearch index' to write them")
            continue
        click.echo(
            f"{vector_report.space} vectors: {vector_report.vectors_in_files:,} in files, "
            f"{vector_report.vectors_in_catalog:,} in the catalog, {vector_report.pending:,} changed since"
        )
        _print_differences(vector_report)
    agrees = report.agrees and all(r.agrees for r in vector_reports)
    click.echo("the indexes agree with the catalog" if agrees else "run 'scisearch index --rebuild' to repair them")


def _print_differences(report) -> None:
    for name in ("missing", "extra", "outdated", "different"):
        rowids = getattr(report, name, [])
        if rowids:
            shown = ", ".join(str(r) for r in rowids[:10]) + (" …" if len(rowids) > 10 else "")
            click.echo(f"{name}: {len(rowids):,} ({shown})")
