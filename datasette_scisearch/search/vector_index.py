"""Nearest neighbours in a vector space: exact search over a float32 matrix kept in memory.

Measured here on 100,000 384-d vectors (benchmarks/search.py has the table):
sqlite-vec's vec0 scan takes ~50–80 ms a query, a numpy matrix product 4–10 ms
and exact results; binary codes with re-ranking were no faster at that size and
lost recall.  So each process reads a space's vectors once into a matrix
(0.7 s per 100,000) and reads them again when ``vectors.vectors_version``
says they changed.  While a tagging run keeps writing, the matrix is rebuilt
at most once per ten build-times, so a large catalog is not re-read on every
query; hits are always joined to the current search documents, so a vector
that outlived its item is never shown.

Memory is 1.5 KB per 384-d vector: 150 MB per 100,000 items, 1.5 GB per million.
That is why a catalog of ``mapped_vectors.MIN_VECTORS`` or more keeps its
vectors in files beside it instead, mapped by every process: ``space_matrix``
returns those where they exist.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import sqlite_utils

from ..tagging import vectors
from . import mapped_vectors
from .staleness import fresh_enough


@dataclass
class SpaceMatrix:
    """All vectors of one space: ``matrix[i]`` is the vector of search item ``rowids[i]``."""

    space: str
    rowids: np.ndarray  # int64
    matrix: np.ndarray  # float32, (n, d), rows L2-normalised
    version: tuple
    built_at: float
    build_seconds: float

    def __len__(self) -> int:
        return len(self.rowids)

    def vector_of(self, rowid: int) -> np.ndarray | None:
        found = np.flatnonzero(self.rowids == rowid)
        return self.matrix[found[0]] if len(found) else None

    def nearest(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` most similar items by cosine similarity, best first."""
        if not len(self.rowids) or k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.matrix.shape[1]:
            raise ValueError(
                f"a {query.shape[0]}-d query cannot search the {self.space!r} space of {self.matrix.shape[1]}-d vectors"
            )
        norm = float(np.linalg.norm(query))
        if not np.isfinite(norm) or norm == 0:
            return []
        scores = self.matrix @ (query / norm)
        wanted = min(len(scores), k + (exclude is not None))
        top = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        found = [(int(self.rowids[i]), float(scores[i])) for i in top if self.rowids[i] != exclude]
        return found[:k]


_matrices: dict[tuple[str, str], SpaceMatrix] = {}
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def database_key(db: sqlite_utils.Database) -> str | None:
    """The catalog file this connection reads; None for an in-memory database (never cached: a later
    connection could get the same id)."""
    for _, name, filename in db.execute("pragma database_list").fetchall():
        if name == "main":
            return filename or None
    return None


def space_matrix(db: sqlite_utils.Database, space: str):
    """The space's vectors: mapped from the files beside the catalog where it has them (search/mapped_vectors.py),
    else read once per process and again when they change; None if it has none."""
    known = vectors.spaces(db)
    if space not in known:
        return None
    mapped = mapped_vectors.mapped_space(db, space)
    if mapped is not None:
        return mapped
    dimensions = int(known[space]["dimensions"])
    # A catalog rebuilt at the same path starts its counters again; its creation time tells them apart.
    created = db.execute("select value from catalog_info where key = 'created_at'").fetchone()
    version = (created[0] if created else "", vectors.vectors_version(db, space))
    filename = database_key(db)
    if filename is None:
        return _build(db, space, dimensions, version)
    key = (filename, space)
    cached = _matrices.get(key)
    if cached is not None and (cached.version == version or fresh_enough(cached, version)):
        return cached
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        cached = _matrices.get(key)  # another thread may have just built it
        if cached is not None and cached.version == version:
            return cached
        built = _build(db, space, dimensions, version)
        _matrices[key] = built
        return built


def _build(db: sqlite_utils.Database, space: str, dimensions: int, version: tuple) -> SpaceMatrix:
    started = time.perf_counter()
    table = vectors.table_for(space)
    # Filled in place, so a million vectors need their 1.5 GB once, not twice.
    expected = db.execute(f"select count(*) from [{table}]").fetchone()[0]
    matrix = np.empty((expected, dimensions), dtype=np.float32)
    rowids = np.empty(expected, dtype=np.int64)
    count = 0
    for rowid, embedding in db.execute(f"select item_rowid, embedding from [{table}]"):
        if count == expected:  # written to since it was counted: the next version reads the rest
            break
        matrix[count] = np.frombuffer(embedding, dtype=np.float32)
        rowids[count] = rowid
        count += 1
    return SpaceMatrix(
        space=space,
        rowids=rowids[:count],
        matrix=matrix[:count],
        version=version,
        built_at=time.monotonic(),
        build_seconds=time.perf_counter() - started,
    )


def forget(db: sqlite_utils.Database | None = None) -> None:
    """Drop cached matrices (of one catalog, or all): for tests and for a catalog replaced on disk."""
    if db is None:
        _matrices.clear()
        return
    filename = database_key(db)
    for cached_key in [k for k in _matrices if k[0] == filename]:
        del _matrices[cached_key]
