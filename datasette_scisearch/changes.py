"""The change functions: what a change to a catalog needs afterwards, in order, in one place.

New instrument files go in this order: load, link, search documents, then tags (whose documents the tagging
refreshes batch by batch) — ``load_files`` then ``tag_new``, or ``take_in_files`` for both at once — whether a
person runs ``load files`` and ``tag`` or a watcher (ingest/watching.py) does it in batches.  Records
(``load_records``) and re-linking (``relink``) bring the links and documents up to date the same way.

The library calls these, never the command line: they are the functions the commands call.  The refresh itself
(refreshing.py's ``refresh``, re-exported here with the kinds of change) sits below every room, so that tagging,
experts' changes and training can call it from inside their own transactions while this module calls them: the
dependency goes one way (changes → tagging → refreshing), and no room imports this one back.
Read-only commands (``search``, ``status``, ``errors``) call nothing here.

The rooms are imported inside the functions, not for cycles (there are none) but so that importing this module
(every command does) does not load the readers and the tagging pipeline: ``scisearch --help`` stays quick.
"""

from __future__ import annotations

from pathlib import Path

from .config import Settings
from .refreshing import (
    EDITS,
    FILES,
    KINDS,
    LEARNING,
    LINKS,
    PERIODS,
    RECORDS,
    TAGS,
    Refreshed,
    refresh,
    release_due_words,
)

__all__ = [
    "EDITS", "FILES", "KINDS", "LEARNING", "LINKS", "PERIODS", "RECORDS", "TAGS", "Refreshed", "refresh",
    "release_due_words",
    "load_files", "load_records", "relink", "tag_new", "take_in_files",
]  # fmt: skip


def load_files(db, paths: list[Path], settings: Settings, *, link: bool = True, **options):
    """Load instrument files (ingest/files.py's ``load_files`` with its ``options``), then refresh the catalog;
    returns (the load's summary, the links rebuilt or None)."""
    from .ingest.files import load_files as read_files

    summary = read_files(db, paths, settings, **options)
    return summary, _refresh_after(db, summary, FILES, settings, link)


def load_records(db, kind: str, path: Path, settings: Settings, options: dict, *, link: bool = True, progress=True):
    """Load sessions, proposals or papers (ingest/records.py), then refresh the catalog; returns (the load's
    summary, the links rebuilt or None)."""
    from .ingest.records import load_records as read_records

    summary = read_records(db, kind, path, settings, options, progress=progress)
    return summary, _refresh_after(db, summary, RECORDS, settings, link)


def tag_new(db, settings: Settings, **options):
    """Run the taggers over what is new or changed (tagging/pipeline.py's ``tag_catalog`` with its ``options``:
    tagger_names, item_types, device, cluster, progress …); each batch's search documents are refreshed with its
    tags.  Returns the tagging's summary."""
    from .tagging.pipeline import tag_catalog

    return tag_catalog(db, settings, **options)


def take_in_files(db, paths: list[Path], settings: Settings, *, tag: bool = True, tag_options=None, **options):
    """New files, the whole way: load (``options`` as ``load_files``'s), link, documents, then — with ``tag`` —
    the taggers over what is new (``tag_options`` as ``tag_new``'s).  Returns (the load's summary, the links
    rebuilt, the tagging's summary or None)."""
    summary, links = load_files(db, paths, settings, **options)
    tagged = tag_new(db, settings, **(tag_options or {})) if tag else None
    return summary, links, tagged


def _refresh_after(db, summary, changed: str, settings: Settings, link: bool):
    """The refresh that completes a load; when it fails, the load's job did not finish and is recorded so."""
    from . import jobs

    try:
        if not link:
            return refresh(db, changed, settings=settings, link=False).links
        # Linking is a job of its own, so a kill while it runs is not hidden behind the load's 'done'.
        with jobs.recorded_job(db, "link", {"after": summary.command, "load_job": summary.job_id}) as linking:
            links = refresh(db, changed, settings=settings, link=True).links
            linking.notes.append(_described(links))
            return links
    except BaseException as error:
        jobs.fail_job(db, summary.job_id, error)
        raise


def relink(db, settings: Settings):
    """Rebuild the derived links and the search documents that carry their words, recorded as a ``link`` job;
    returns the links' summary."""
    from . import jobs
    from .ingest.linking import link_all

    with jobs.recorded_job(db, "link", {}) as linking:
        links = link_all(db, settings)
        refresh(db, LINKS)
        linking.notes.append(_described(links))
    return links


def _described(links) -> str:
    return ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in links.as_dict().items())
