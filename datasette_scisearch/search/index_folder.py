"""Where a catalog's search indexes live on disk, what state they record, and who may write them.

Each catalog has one folder of indexes beside it (``Settings.index_folder``,
by default ``<catalog file>.indexes``).  In it each index keeps a small JSON
state file naming the folder of its current build and the catalog generation
it reflects; the state file is replaced atomically (write, then rename), so a
reader sees either the old or the new state, never half of one.  Readers never
write here.  Writers take ``lock`` (an advisory ``flock``) for the whole of an
update, so two writers never interleave their updates of one index.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
from pathlib import Path

import sqlite_utils


def catalog_path(db: sqlite_utils.Database) -> Path | None:
    """The catalog file this connection reads; None for an in-memory database (it has no indexes on disk)."""
    for _, name, filename in db.execute("pragma database_list").fetchall():
        if name == "main":
            return Path(filename) if filename else None
    return None


def catalog_identity(db: sqlite_utils.Database) -> str:
    """Tells a catalog from another rebuilt at the same path: an index of the old one must not answer for it."""
    rows = dict(db.execute("select key, value from catalog_info where key in ('created_at', 'catalog_uid')").fetchall())
    return f"{rows.get('created_at', '')}/{rows.get('catalog_uid', '')}"


_chosen_pattern: str | None = None


def configure(pattern: str) -> None:
    """Use the ``index_folder`` of the settings a command or the server was started with (``--config``,
    Datasette's metadata) rather than the ones ``load_settings`` finds by itself."""
    global _chosen_pattern
    _chosen_pattern = pattern


def _configured_pattern() -> str:
    return _chosen_pattern or _found_pattern()


@functools.lru_cache(maxsize=1)
def _found_pattern() -> str:
    from ..config import ConfigError, load_settings

    try:
        return load_settings().index_folder
    except ConfigError:
        return "{catalog}.indexes"  # a broken config is reported by the commands that read it; indexes still work


def indexes_folder(db: sqlite_utils.Database, pattern: str | None = None) -> Path | None:
    """The folder of this catalog's indexes (None for an in-memory catalog)."""
    path = catalog_path(db)
    if path is None:
        return None
    folder = Path((pattern or _configured_pattern()).format(catalog=path.name))
    return folder if folder.is_absolute() else path.parent / folder


def read_state(folder: Path, name: str) -> dict | None:
    """An index's recorded state, or None where there is none or it cannot be read (the index is then rebuilt)."""
    try:
        return json.loads((folder / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def write_state(folder: Path, name: str, state: dict) -> None:
    temporary = folder / f".{name}.json.{os.getpid()}"
    temporary.write_text(json.dumps(state))
    os.replace(temporary, folder / f"{name}.json")


@contextlib.contextmanager
def writer_lock(folder: Path, name: str, wait: bool):
    """Yields True while this process alone may update the index ``name``; False (at once) where another
    holds it and ``wait`` is false: that writer will bring the index up to date."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
