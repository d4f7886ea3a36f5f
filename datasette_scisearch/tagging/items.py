"""Catalog items as taggers see them: one ``Item`` per file, proposal, paper and session.

A file's pixels are read again, on demand, through the loader that catalogued
it (the ``loader`` column), so a tagger never parses file formats and the
catalog does not keep full-resolution data.  Huge arrays are strided down
before any copy: a 30,000 x 30,000 image costs what a 2,048 one does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import sqlite_utils

from ..catalog import ITEM_TABLES
from ..errors import NOT_FOUND, ScisearchError
from ..ingest.loader import FileLoader
from ..ingest.preview import representative_frame
from .tagger import Item

# The prose each item type offers text taggers.
_TEXT_COLUMNS = {
    "file": ("name", "search_text"),
    "proposal": ("title", "abstract"),
    "paper": ("title", "abstract"),
    "session": ("notes",),
}


class PixelsUnavailable(ScisearchError):
    """A file's pixels cannot be read any more; the message says why."""

    kind = NOT_FOUND


@functools.cache
def _file_loaders() -> dict[str, FileLoader]:
    from ..plugins import get_loaders

    return {loader.name: loader for loader in get_loaders() if isinstance(loader, FileLoader)}


def strided(frame: np.ndarray, max_side: int) -> np.ndarray:
    """Every n-th pixel so the longer side is at most ``max_side`` (a view: nothing is copied)."""
    if frame.ndim == 0:
        return frame.reshape(1)
    step = max(1, -(-max(frame.shape) // max_side))
    return frame[(slice(None, None, step),) * frame.ndim] if step > 1 else frame


def why_missing(path: Path) -> str:
    """What really happened to a catalogued file that cannot be found, and what to do about it."""
    if not path.is_absolute():
        return (
            f"'{path}' is no longer there from here: it was catalogued by a path relative to the folder a load ran "
            f"in, and this runs in '{Path.cwd()}'; load its folder again (paths are now stored absolute)"
        )
    folder = next((p for p in path.parents if p.exists()), None)
    if folder != path.parent:
        return (
            f"'{path}' is no longer there: its folder '{path.parent}' does not exist (only '{folder}' does); "
            "if it is on a disk that is not mounted, mount it, else reload the folder it moved to"
        )
    return f"'{path}' is no longer there: its folder holds no such file any more; reload the folder it moved to"


def file_pixels(row: dict, max_side: int = 2048) -> np.ndarray:
    """The representative frame (2-D) or spectrum (1-D) of a catalogued dataset, as float32."""
    path = Path(row["path"])
    loader = _file_loaders().get((row.get("loader") or "").split(":")[0])
    if loader is None:
        raise PixelsUnavailable(f"the loader {row.get('loader')!r} that read '{path}' is not installed any more")
    if not path.exists():
        raise PixelsUnavailable(why_missing(path))
    wanted = int(row.get("dataset") or 0)
    for dataset in loader.read(path):
        if dataset.index == wanted:
            frame = representative_frame(dataset.data, row.get("kind") or "image")
            return np.asarray(strided(frame, max_side), dtype=np.float32)
    raise PixelsUnavailable(f"'{path}' no longer holds dataset #{wanted}")


def _file_item(row: dict) -> Item:
    title = row["name"] + (f" — {row['dataset_name']}" if row.get("dataset_name") else "")
    return Item(
        item_type="file",
        item_id=str(row["id"]),
        title=title,
        text=" ".join(str(row[c]) for c in _TEXT_COLUMNS["file"] if row.get(c)),
        row=row,
        load_pixels=functools.partial(_pixels_of, row),
    )


def _pixels_of(row: dict, max_side: int) -> np.ndarray:
    return file_pixels(row, max_side)


def _text_item(item_type: str, row: dict) -> Item:
    columns = _TEXT_COLUMNS[item_type]
    text = "\n".join(str(row[c]) for c in columns if row.get(c))
    title = row.get("title") or (
        f"{row.get('instrument')} session of {row.get('user')} on {(row.get('start') or '')[:10]}"
        if item_type == "session"
        else str(row.get("id"))
    )
    return Item(item_type=item_type, item_id=str(row["id"]), title=title, text=text, row=row)


def make_item(item_type: str, row: dict) -> Item:
    return _file_item(row) if item_type == "file" else _text_item(item_type, row)


def iter_items(db: sqlite_utils.Database, item_type: str, ids: list[str] | None = None) -> Iterator[Item]:
    """Items of one type in id order (all of them, or the given ids).

    Read a page at a time with no statement left open between pages: the caller writes between them, and an open
    read would pin this connection to an old snapshot of the catalog, which in WAL mode cannot become a write
    transaction once another writer has committed (SQLite refuses it at once, whatever the busy timeout)."""
    table = ITEM_TABLES[item_type]
    if ids is None:
        rows = _all_rows(db, table)
    else:
        rows = (row for start in range(0, len(ids), 500) for row in _rows_with_ids(db, table, ids[start : start + 500]))
    for row in rows:
        yield make_item(item_type, row)


ITEMS_PER_PAGE = 500


def _all_rows(db, table: str):
    page = db.execute(f"select * from [{table}] order by id limit ?", [ITEMS_PER_PAGE])
    while True:
        columns = [column[0] for column in page.description]
        rows = [dict(zip(columns, row)) for row in page.fetchall()]
        yield from rows
        if len(rows) < ITEMS_PER_PAGE:
            return
        page = db.execute(f"select * from [{table}] where id > ? order by id limit ?", [rows[-1]["id"], ITEMS_PER_PAGE])


def _rows_with_ids(db, table: str, ids: list[str]):
    marks = ",".join("?" * len(ids))
    return list(db.query(f"select * from [{table}] where id in ({marks}) order by id", ids))


def file_metadata(row: dict) -> dict:
    """A file row's raw metadata as a dict (empty when absent or unreadable)."""
    try:
        return json.loads(row.get("metadata") or "{}")
    except ValueError:
        return {}
