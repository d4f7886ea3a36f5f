"""Which files on disk make up a catalogued file, and whether they may be served.

A download names a file by its catalog id, never by a path: the path comes from the ``files`` row, so a URL can
hold no ``..``, no absolute path and no encoded trick that reaches a path the catalog does not hold.  Even so the
row's path is checked again at the moment of serving, because the disk may have changed since the load: each file
(and each partner read with it: a TIA ``.ser`` with its ``.emi``, a Direct Electron movie with its ``_info.txt``)
is resolved with every link followed and must lie inside one of the catalog's data roots (``data_roots``, written
by each load, m007) — a file swapped for a link to ``/etc/passwd`` after the load is refused, as is a root removed
from the table.  Partners are found by the same readers that read them together at load time
(``reading.companions_of``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import sqlite_utils

from ..errors import FORBIDDEN, GONE, NOT_FOUND, ScisearchError
from ..ingest.files import file_loaders
from ..ingest.reading import companions_of, loaders_for


class NotServed(ScisearchError):
    """A file the catalog will not hand out; ``kind`` says whether it is missing (404), gone from its folder as a
    load or watcher found (410), or refused (403)."""


@dataclass(frozen=True)
class Original:
    """One file on disk to be served: its resolved path, the name it gets in a download, its size."""

    path: Path
    name: str
    size_bytes: int


@dataclass(frozen=True)
class Originals:
    """A catalogued file's originals: the file itself first, then its partners."""

    file_id: int
    name: str  # the catalogued file's own name
    dataset: int
    loader: str | None
    files: tuple[Original, ...]
    roots: tuple[Path, ...]

    @property
    def main(self) -> Original:
        return self.files[0]

    def open(self, original: Original) -> BinaryIO:
        """``original`` opened for reading, checked once more on the open file itself: a folder swapped for a link
        between the check and the open is caught (Linux's /proc/self/fd names the file that was opened)."""
        handle = open(original.path, "rb")  # noqa: SIM115  the caller closes it
        try:
            opened = Path(os.readlink(f"/proc/self/fd/{handle.fileno()}"))
        except OSError:
            return handle  # no /proc here: the check made before the open stands
        if not any(opened.is_relative_to(root) for root in self.roots):
            handle.close()
            raise NotServed(
                f"'{original.name}' moved out of this catalog's data roots, so it is not served", kind=FORBIDDEN
            )
        return handle


def data_roots(db: sqlite_utils.Database) -> list[Path]:
    """The catalog's data roots, resolved again now (a root may itself be a link that was moved)."""
    if not db["data_roots"].exists():
        return []
    return [Path(os.path.realpath(path)) for (path,) in db.execute("select path from data_roots")]


def inside_roots(path: Path, roots: list[Path]) -> Original:
    """``path`` resolved, when it is a regular file inside one of ``roots``; else NotServed saying why."""
    resolved = Path(os.path.realpath(path))
    if not any(resolved.is_relative_to(root) for root in roots):
        link = " (a link leads out of them)" if resolved != Path(os.path.abspath(path)) else ""
        raise NotServed(
            f"'{path.name}' is not inside this catalog's data roots{link}, so it is not served",
            fix="ask the facility's staff to load its folder, or to check the link",
            kind=FORBIDDEN,
        )
    try:
        info = resolved.stat()
    except OSError:
        raise NotServed(
            f"'{path.name}' is in the catalog but no longer on disk at {path.parent}",
            fix="it was moved or deleted after it was loaded; ask the facility's staff to load its new folder",
            kind=NOT_FOUND,
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise NotServed(f"'{path.name}' is not a plain file, so it is not served", kind=FORBIDDEN)
    return Original(resolved, path.name, info.st_size)


def originals_of(db: sqlite_utils.Database, file_id: int) -> Originals:
    """The files to serve for catalogued file ``file_id``: NotServed (404) when the catalog has no such file,
    (403) when one of them lies outside the data roots now."""
    row = db.execute("select path, name, dataset, loader, missing_since from files where id = ?", [file_id]).fetchone()
    if row is None:
        raise NotServed(f"there is no file {file_id} in this catalog", kind=NOT_FOUND)
    path_text, name, dataset, loader, missing_since = row
    if not path_text:
        raise NotServed(f"file {file_id} has no path recorded, so there is nothing to download", kind=NOT_FOUND)
    roots = data_roots(db)
    path = Path(path_text)
    try:
        main = inside_roots(path, roots)
    except NotServed as refused:
        if refused.kind == NOT_FOUND and missing_since:  # a file put back since is served: the mark is only news
            raise NotServed(
                f"'{path.name}' was removed from {path.parent} (found gone {missing_since[:16].replace('T', ' ')} "
                "UTC); its catalog entry, preview and tags are kept, but the original is no longer there",
                fix="ask the facility's staff whether it was archived; once it is back in its folder it can be "
                "downloaded again",
                kind=GONE,
            ) from None
        raise
    partners = [inside_roots(p, roots) for p in companions_of(path, loaders_for(path, file_loaders()))]
    return Originals(file_id, name or path.name, dataset or 0, loader, (main, *partners), tuple(roots))
