"""Putting a tuned text encoder to work: every item's vector made again, one switch, and the way back.

A tuned encoder (``encoder.py``) is of no use until the items' vectors come from
it: a query embedded by one model and documents embedded by another compare as
noise.  So a kept encoder waits as 'trained'.  ``reembed`` computes each item's
vector with it into ``encoder_vectors``, a batch at a time, each batch committed,
so a run that is stopped or killed resumes where it was; search meanwhile goes on
with the vectors in use.  When every item of the space has its new vector,
``switch`` replaces the space's vectors in one transaction and pins the space to
the new model (``vector_spaces.model_path``), so that query embedding and later
tagging use it too.  The vectors it replaces are kept under the version that made
them (0: the tagger's own model), so ``rollback`` is the same switch backwards
and needs no model run.

Versions and their ``ranking_models.status``: 'trained' (kept, vectors not made
yet), 'embedding' (vectors being made), 'current' (in use), 'retired' (replaced,
kept for rollback), 'rolled back', 'refused' (measured worse, never used).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import sqlite_utils

from ..catalog import now_utc, write_transaction
from ..config import ConfigError, Settings, load_settings
from ..errors import NOT_FOUND, ScisearchError
from ..tagging import vectors
from ..tagging.items import iter_items
from ..tagging.tagger import ItemError

BATCH = 256
BASE_VERSION = 0  # the vectors the space's own tagger made, with the model its settings name


class EncoderSwitchError(ScisearchError):
    """No such encoder, its folder is gone, or its vectors are not all made."""


@dataclass
class ReembedReport:
    version: int
    space: str
    items: int  # items of the space
    embedded: int  # vectors made by this run
    already: int  # made by an earlier run that was stopped
    refused: int  # items the tuned model gave no vector
    seconds: float
    switched: bool
    notes: list[str] = field(default_factory=list)  # what followed the switch (the image model's refit)

    def as_dict(self) -> dict:
        return asdict(self)


def encoder_row(db: sqlite_utils.Database, version: int | None = None) -> dict:
    """The encoder ``version``, or the newest one waiting for its vectors when ``version`` is None."""
    if version is None:
        rows = list(
            db.query(
                "select * from ranking_models where kind = 'encoder' and status in ('trained', 'embedding') "
                "order by version desc limit 1"
            )
        )
        if not rows:
            raise EncoderSwitchError(
                "no tuned text encoder is waiting for its vectors",
                fix="tune one first: scisearch learn CATALOG --encoder",
                kind=NOT_FOUND,
            )
        return rows[0]
    rows = list(db.query("select * from ranking_models where kind = 'encoder' and version = ?", [version]))
    if not rows:
        raise EncoderSwitchError(f"there is no text encoder version {version}", kind=NOT_FOUND)
    return rows[0]


def current_version(db: sqlite_utils.Database, space: str) -> int:
    row = db.execute(
        "select version from ranking_models where kind = 'encoder' and status = 'current' and vector_space = ?",
        [space],
    ).fetchone()
    return row[0] if row else BASE_VERSION


def reembed(
    db: sqlite_utils.Database,
    version: int | None = None,
    *,
    switch_when_done: bool = True,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReembedReport:
    """Make every item's vector of the encoder's space with the encoder; switch search over when all are made."""
    row = encoder_row(db, version)
    version, space = row["version"], row["vector_space"] or "text"
    if row["status"] not in ("trained", "embedding"):
        raise EncoderSwitchError(
            f"text encoder version {version} is '{row['status']}', not waiting for vectors",
            fix="scisearch learn CATALOG --encoder-rollback brings back a retired one"
            if row["status"] == "retired"
            else None,
        )
    folder = _model_folder(row)
    info = vectors.spaces(db).get(space)
    if info is None:
        raise EncoderSwitchError(f"this catalog has no '{space}' vectors to replace", fix="scisearch tag CATALOG")
    with write_transaction(db):
        db.execute("update ranking_models set status = 'embedding' where id = ?", [row["id"]])
    tagger = _tagger(info["tagger"], folder, settings)
    started = time.perf_counter()
    embedded = refused = 0
    try:
        already = _staged_count(db, space, version)
        # Items tagged while this runs get vectors from the model in use; the next pass makes theirs too.  A
        # refusal is stored (as no vector), so every pass has fewer to do and the loop ends.
        while todo := _missing(db, space, version):
            for start in range(0, len(todo), BATCH):
                made, gave_nothing = _embed(db, tagger, space, version, todo[start : start + BATCH])
                embedded, refused = embedded + made, refused + gave_nothing
                if progress:
                    progress(already + embedded + refused, _space_size(db, space))
    finally:
        _close(tagger)
    report = ReembedReport(
        version,
        space,
        _space_size(db, space),
        embedded,
        already,
        refused,
        round(time.perf_counter() - started, 1),
        False,
    )
    if switch_when_done:
        switch(db, version, notes=report.notes)
        report.switched = True
    return report


def switch(db: sqlite_utils.Database, version: int, notes: list[str] | None = None) -> None:
    """Replace the space's vectors by those of ``version`` in one transaction (the ones replaced are kept), then
    bring what reads the text model up to date (``notes`` gets a line on what was done)."""
    row = encoder_row(db, version) if version != BASE_VERSION else None
    space = row["vector_space"] if row else "text"
    with write_transaction(db):
        _switch_in_transaction(db, space, version, row)
    _catch_up(db)
    _follow(db, notes)


def rollback(db: sqlite_utils.Database, space: str = "text", notes: list[str] | None = None) -> int:
    """Go back to the encoder in use before the current one (the tagger's own model before the first);
    returns the version now in use (``notes`` as ``switch``'s)."""
    now = current_version(db, space)
    if now == BASE_VERSION:
        raise EncoderSwitchError(
            f"the '{space}' vectors come from the tagger's own model: there is no tuned encoder to roll back",
            kind=NOT_FOUND,
        )
    earlier = db.execute(
        "select max(version) from ranking_models where kind = 'encoder' and status = 'retired' "
        "and vector_space = ? and version < ?",
        [space, now],
    ).fetchone()[0]
    target = earlier if earlier is not None else BASE_VERSION
    with write_transaction(db):
        _switch_in_transaction(db, space, target, encoder_row(db, target) if target != BASE_VERSION else None)
        db.execute("update ranking_models set status = 'rolled back' where kind = 'encoder' and version = ?", [now])
    _catch_up(db)
    _follow(db, notes)
    return target


def _catch_up(db) -> None:
    # The mapped vector files beside the catalog take the replaced vectors now rather than at the next search.
    from ..search.index import catch_up_indexes

    catch_up_indexes(db)


def _follow(db, notes: list[str] | None) -> None:
    """The facility image model reads the text model: its projection is refitted to the one now in use.  A refit
    that cannot run leaves it reading the one it was fitted to, which stays on disk: search keeps working."""
    from .projection_refit import follow_text_model

    try:
        refit = follow_text_model(db)
    except ScisearchError as error:
        line = f"the facility image model still reads the text model it was fitted to: {error.message}"
    else:
        if refit is None:
            return
        line = (
            f"facility image model v{refit.version}: projection refitted to the text model now in use on "
            f"{refit.images:,} image vectors in {refit.seconds:.0f} s (image → own caption "
            f"{refit.caption_match_before:.2f} before, {refit.caption_match:.2f} after)"
        )
    if notes is not None:
        notes.append(line)


def _switch_in_transaction(db, space: str, version: int, row: dict | None) -> None:
    table = vectors.table_for(space)
    now = current_version(db, space)
    in_space = [r for (r,) in db.execute(f"select item_rowid from [{table}]")]
    missing = _missing(db, space, version)
    if missing:
        raise EncoderSwitchError(
            f"{len(missing):,} of {len(in_space):,} items have no vector from encoder version {version} yet",
            fix="make them first: scisearch learn CATALOG --reembed",
        )
    # What is in use now stays, under the version that made it, for the way back.
    db.execute(
        "insert or replace into encoder_vectors (space, version, item_rowid, embedding) "
        f"select ?, ?, item_rowid, embedding from [{table}]",
        [space, now],
    )
    db.execute(f"delete from [{table}]")
    wanted = set(in_space)
    staged = db.execute(
        "select item_rowid, embedding from encoder_vectors where space = ? and version = ?", [space, version]
    )
    db.conn.executemany(
        f"insert into [{table}](item_rowid, embedding) values (?, ?)",
        ((rowid, blob) for rowid, blob in staged if rowid in wanted and blob is not None),
    )
    vectors.log_changes(db, space, in_space)
    vectors.count_change(db, space)
    previous_model = db.execute("select model, model_path from vector_spaces where name = ?", [space]).fetchone()
    if row is None:
        base = json.loads(_base_record(db, space) or "{}")
        db.execute(
            "update vector_spaces set model = ?, model_path = null where name = ?",
            [base.get("model", previous_model[0]), space],
        )
    else:
        if now == BASE_VERSION and not _base_record(db, space):
            db.execute(
                "insert or replace into catalog_info (key, value) values (?, ?)",
                [_BASE_KEY.format(space), json.dumps({"model": previous_model[0]})],
            )
        db.execute(
            "update vector_spaces set model = ?, model_path = ? where name = ?",
            [f"{Path(row['model_path']).name} (tuned)", row["model_path"], space],
        )
        db.execute("update ranking_models set status = 'current' where id = ?", [row["id"]])
    if now != BASE_VERSION and now != version:
        db.execute(
            "update ranking_models set status = 'retired' where kind = 'encoder' and version = ? "
            "and status = 'current'",
            [now],
        )
    db.execute(
        "insert or replace into catalog_info (key, value) values (?, ?)",
        [f"encoder_switched:{space}", json.dumps({"version": version, "at": now_utc()})],
    )


_BASE_KEY = "encoder_base_model:{}"


def _base_record(db, space: str) -> str | None:
    row = db.execute("select value from catalog_info where key = ?", [_BASE_KEY.format(space)]).fetchone()
    return row[0] if row else None


def _model_folder(row: dict) -> str:
    folder = row.get("model_path")
    if not folder or not Path(folder).is_dir():
        raise EncoderSwitchError(
            f"text encoder version {row['version']} has no model folder here ({folder!r})",
            fix="tune it again: scisearch learn CATALOG --encoder",
            kind=NOT_FOUND,
        )
    return folder


def _tagger(name: str, folder: str, settings: Settings | None):
    """A fresh instance of the tagger that made the space, loaded with the tuned model (the registered one
    may be serving queries with the model in use)."""
    from ..plugins import get_taggers

    registered = next((tagger for tagger in get_taggers() if tagger.name == name), None)
    if registered is None:
        raise EncoderSwitchError(f"the '{name}' tagger that made these vectors is not installed")
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError:
            settings = Settings()
    tagger = type(registered)()
    tagger.load({**(settings.taggers.get(name) or {}), "model": folder}, "cpu")
    return tagger


def _close(tagger) -> None:
    try:
        tagger.close()
    except Exception:  # closing is best effort; the vectors are stored
        pass


def _space_size(db, space: str) -> int:
    return db.execute(f"select count(*) from [{vectors.table_for(space)}]").fetchone()[0]


def _staged_count(db, space: str, version: int) -> int:
    return db.execute(
        "select count(*) from encoder_vectors where space = ? and version = ?", [space, version]
    ).fetchone()[0]


def _missing(db, space: str, version: int) -> list[int]:
    """Items with a vector in use and none (not even a refusal) from ``version``, in rowid order."""
    return [
        rowid
        for (rowid,) in db.execute(
            f"select item_rowid from [{vectors.table_for(space)}] where item_rowid not in "
            "(select item_rowid from encoder_vectors where space = ? and version = ?) order by item_rowid",
            [space, version],
        )
    ]


def _embed(db, tagger, space: str, version: int, rowids: list[int]) -> tuple[int, int]:
    """Embed these items with the tuned model and store the vectors in one transaction."""
    keys = {}
    for rowid, item_type, item_id in db.execute(
        f"select id, item_type, item_id from search_items where id in ({','.join('?' * len(rowids))})", rowids
    ):
        keys[(item_type, str(item_id))] = rowid
    by_type: dict[str, list[str]] = {}
    for item_type, item_id in keys:
        by_type.setdefault(item_type, []).append(item_id)
    made: dict[int, bytes | None] = {rowid: None for rowid in rowids}  # None: the model gave it nothing
    for item_type, ids in by_type.items():
        items = list(iter_items(db, item_type, ids))
        for item, outcome in tagger.tag_batch(items):
            if isinstance(outcome, ItemError) or space not in (outcome.vectors or {}):
                continue
            rowid = keys.get((item.item_type, str(item.item_id)))
            if rowid is not None:
                made[rowid] = vectors.normalised(np.asarray(outcome.vectors[space])).tobytes()
    with write_transaction(db):
        db.conn.executemany(
            "insert or replace into encoder_vectors (space, version, item_rowid, embedding) values (?, ?, ?, ?)",
            [(space, version, rowid, blob) for rowid, blob in made.items()],
        )
    gave_nothing = sum(1 for blob in made.values() if blob is None)
    return len(made) - gave_nothing, gave_nothing
