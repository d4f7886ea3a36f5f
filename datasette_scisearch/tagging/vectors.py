"""Vector spaces: where taggers' embeddings are kept, one sqlite-vec table per space.

A vector space is a name ("text", "clip", "image_features"), a dimension and
the tagger that fills it.  Each has a ``vec0`` table keyed by
``search_items.id``, so a vector always belongs to one search document.
Vectors are stored L2-normalised: cosine similarity is then a dot product,
the same in SQL, numpy and any index built on top.
"""

from __future__ import annotations

import re

import numpy as np
import sqlite_utils

from ..catalog import now_utc
from ..errors import ScisearchError

_SPACE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class VectorSpaceError(ScisearchError):
    """A vector does not fit its space (wrong dimension, bad name); the message says which."""


def table_for(space: str) -> str:
    if not _SPACE_NAME.match(space):
        raise VectorSpaceError(f"vector space name {space!r} must be lower-case letters, digits and _")
    return f"vec_{space}"


def ensure_space(db: sqlite_utils.Database, space: str, dimensions: int, tagger: str, model: str = "") -> str:
    """Create the space's table on first use; a later tagger with another dimension is refused."""
    table = table_for(space)
    row = db.execute("select dimensions from vector_spaces where name = ?", [space]).fetchone()
    if row and row[0] != dimensions:
        raise VectorSpaceError(
            f"vector space {space!r} holds {row[0]}-d vectors but {tagger} gives {dimensions}-d ones; "
            f"remove the old vectors with 'scisearch tag --force' after changing the model, or name a new space"
        )
    if not row:
        db.execute(
            f"create virtual table if not exists [{table}] using vec0("
            f"item_rowid integer primary key, embedding float[{int(dimensions)}] distance_metric=cosine)"
        )
        db["vector_spaces"].insert(
            {
                "name": space,
                "dimensions": dimensions,
                "tagger": tagger,
                "model": model,
                "table_name": table,
                "created_at": now_utc(),
            }
        )
    return table


def normalised(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise VectorSpaceError("the vector is zero or not finite")
    return vector / norm


def write_vectors(db: sqlite_utils.Database, space: str, pairs: list[tuple[int, np.ndarray]]) -> None:
    """Replace the vectors of these search items; call inside the caller's transaction."""
    table = table_for(space)
    db.conn.executemany(f"delete from [{table}] where item_rowid = ?", [(rowid,) for rowid, _ in pairs])
    db.conn.executemany(
        f"insert into [{table}](item_rowid, embedding) values (?, ?)",
        [(rowid, normalised(vector).tobytes()) for rowid, vector in pairs],
    )
    log_changes(db, space, [rowid for rowid, _ in pairs])
    count_change(db, space)


def delete_vectors(db: sqlite_utils.Database, space: str, rowids: list[int]) -> None:
    table = table_for(space)
    for rowid in rowids:
        db.execute(f"delete from [{table}] where item_rowid = ?", [rowid])
    log_changes(db, space, rowids)
    count_change(db, space)


def log_changes(db: sqlite_utils.Database, space: str, rowids: list[int]) -> None:
    """Note in the writer's transaction which vectors changed, for the mapped files beside the catalog
    (search/mapped_vectors.py) and the readers that find them behind."""
    db.conn.executemany("insert into vector_changes (space, item_rowid) values (?, ?)", [(space, r) for r in rowids])


# The search engine keeps each space's vectors in memory (exact search over a numpy matrix beats the vec0
# scan fivefold); this counter, bumped in the writer's transaction, tells it when to read them again.
_VERSION_KEY = "vectors_version:{}"


def count_change(db: sqlite_utils.Database, space: str) -> None:
    db.execute(
        "insert into catalog_info(key, value) values (?, '1') "
        "on conflict(key) do update set value = cast(value as integer) + 1",
        [_VERSION_KEY.format(space)],
    )


def vectors_version(db: sqlite_utils.Database, space: str) -> int:
    """A number that changes whenever the vectors of ``space`` change (0 before the first change)."""
    row = db.execute("select value from catalog_info where key = ?", [_VERSION_KEY.format(space)]).fetchone()
    return int(row[0]) if row else 0


def spaces(db: sqlite_utils.Database) -> dict[str, dict]:
    if "vector_spaces" not in db.table_names():
        return {}
    return {row["name"]: row for row in db.query("select * from vector_spaces")}


def pinned_options(db: sqlite_utils.Database, tagger_name: str) -> dict:
    """The options that make ``tagger_name`` use the model folder its space is pinned to (a tuned encoder the
    catalog switched to, learning/encoder_switch.py), else {}."""
    for info in spaces(db).values():
        if info.get("tagger") == tagger_name and info.get("model_path"):
            return {"model": info["model_path"]}
    return {}


def read_vector(db: sqlite_utils.Database, space: str, rowid: int) -> np.ndarray | None:
    row = db.execute(f"select embedding from [{table_for(space)}] where item_rowid = ?", [rowid]).fetchone()
    return None if row is None else np.frombuffer(row[0], dtype=np.float32)
