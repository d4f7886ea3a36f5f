"""A vector space's nearest neighbours from files beside the catalog, memory-mapped, kept in step with it.

Reading a million 384-d vectors out of sqlite-vec takes ~15 s and 1.5 GB per
process.  Here they are written once into the catalog's index folder and
mapped, so every process shares the page cache and starts without reading
them:

- ``vectors.npy``: the L2-normalised float32 vectors, grouped by inverted list
  (the rows of one list are contiguous), for the exact scores and ``vector_of``;
- ``rowids.npy``: each row's search-document id; ``rowid_order.npy`` the rows in
  id order, to find one item's vector;
- ``centroids.npy`` and ``lists.npy``: an inverted file (IVF; Jégou et al.
  2011, as faiss's IndexIVFFlat): about sqrt(n) centroids from a few rounds of
  spherical k-means over a sample, each vector filed under its nearest, and
  where each list's rows begin.

Up to ``EXACT_UP_TO`` vectors a query scores every mapped vector (exact, ~10 ms
per 100,000 on one core, read from the shared page cache).  Beyond, it scores
the centroids, takes the nearest lists until they hold ``PROBE_SHARE`` of the
vectors (and at least ``RERANK_FACTOR`` times as many as asked for), and scores
their rows exactly: contiguous slices of the map, no gather.  Where every true
neighbour is in the probed lists the answer *is* the exact answer, scores
included; benchmarks/search.py measures recall against exact search.  The sign
codes used before (one bit per dimension, Hamming distance, then a re-rank of
10 % gathered from the map) needed ~150 ms per query at a million vectors.

A graph index (usearch HNSW, i8) answers in 0.5 ms but took 49 s to build
100,000 vectors on this 2-core machine (8 minutes per million): the lists
build in seconds.

Generations work as for the text index.  ``vectors.write_vectors`` logs each
changed vector in ``vector_changes`` (sqlite-vec tables take no triggers);
the state file records the generation the files reflect.  A reader takes the
vectors changed since then from sqlite-vec (cached per generation) and ranks
them exactly beside the files, whose copies of them it leaves out.  Writers
fold the changes into new files once ``MERGE_AT`` of them, and a quarter of the
files' size, have gathered (so tagging a large catalog rewrites them a few
times, not per batch); ``scisearch index`` folds them at once.  A reader keeps
its view of the changes and reads only those after it at each new generation.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import sqlite_utils

from ..catalog import write_transaction
from ..tagging import vectors
from . import index_folder

MIN_VECTORS = 20_000  # below this, each process reads the space into memory (vector_index.SpaceMatrix)
# Changed vectors a writer leaves to the readers before it writes new files: at least MERGE_AT, and a share of
# the files' size, so that tagging a large catalog from scratch rewrites them a few times, not once per 10,000.
MERGE_AT = 10_000
MERGE_SHARE = 0.25
# Up to this many vectors a query scores every one (exact: ~10 ms per 100,000 on one core, from the page cache;
# the lists answer 100,000 in ~2 ms).
EXACT_UP_TO = 50_000
# Beyond, the nearest inverted lists are scored until they hold this share of the vectors, and at least
# RERANK_FACTOR times as many as asked for (MIN_CANDIDATES at the least).  On the benchmark's clustered vectors
# (topics plus isotropic noise: neighbours within a topic nearly equidistant, the hardest case for any partition)
# recall@10 against exact search was 0.57 probing 2 % of 30,000, 0.93 at 5 %, 1.0 at 10 % (recall@100 0.998).
PROBE_SHARE = 0.1
RERANK_FACTOR = 10
MIN_CANDIDATES = 1000  # scoring a thousand rows costs nothing next to the query's other work
# The lists: about sqrt(n) of them, centroids trained on SAMPLE_PER_LIST vectors per list at most, TRAIN_ROUNDS rounds.
SAMPLE_PER_LIST = 64
TRAIN_ROUNDS = 8
FORMAT = 2  # files of another layout (sign codes, before the lists) are rebuilt by the next writer
CHUNK = 50_000


def _state_name(space: str) -> str:
    return f"vectors-{space}"


def generation(db: sqlite_utils.Database) -> int:
    row = db.execute("select seq from sqlite_sequence where name = 'vector_changes'").fetchone()
    return int(row[0]) if row else 0


def changed_since(db: sqlite_utils.Database, space: str, since: int) -> list[int]:
    rows = db.execute(
        "select distinct item_rowid from vector_changes where space = ? and seq > ? order by item_rowid", [space, since]
    )
    return [row[0] for row in rows]


# -- Writing -------------------------------------------------------------------------------------------


def build(db: sqlite_utils.Database, space: str, progress: bool = False) -> dict | None:
    """Write the space's vectors into new files and make them current; returns the new state."""
    folder = index_folder.indexes_folder(db)
    if folder is None or space not in vectors.spaces(db):
        return None
    with index_folder.writer_lock(folder, _state_name(space), wait=True):
        return _build(db, folder, space, progress)


def _build(db: sqlite_utils.Database, folder, space: str, progress: bool) -> dict:
    from tqdm import tqdm

    started = time.perf_counter()
    reflects = generation(db)  # read first: the vectors read after it can only be newer
    previous = index_folder.read_state(folder, _state_name(space))
    dimensions = int(vectors.spaces(db)[space]["dimensions"])
    table = vectors.table_for(space)
    expected = db.execute(f"select count(*) from [{table}]").fetchone()[0]
    build_name = f"{_state_name(space)}-{time.strftime('%Y%m%dT%H%M%S')}-{time.perf_counter_ns() % 10**6:06d}"
    target = folder / build_name
    target.mkdir(parents=True)
    rowids = np.empty(expected, dtype=np.int64)
    # Read in id order into a scratch map, then written grouped by list into the files readers map.
    by_rowid = np.lib.format.open_memmap(
        target / "by-rowid.npy", mode="w+", dtype=np.float32, shape=(max(expected, 1), dimensions)
    )
    count = 0
    bar = tqdm(total=expected, desc=f"writing {space} vectors", unit="vector", disable=not progress, leave=False)
    for rowid, embedding in db.execute(f"select item_rowid, embedding from [{table}] order by item_rowid"):
        if count == expected:  # written to since it was counted: the log has the rest
            break
        by_rowid[count] = np.frombuffer(embedding, dtype=np.float32)
        rowids[count] = rowid
        count += 1
        if count % CHUNK == 0:
            bar.update(CHUNK)
    bar.close()
    lists = _write_lists(target, by_rowid[:count], rowids[:count], progress)
    del by_rowid
    (target / "by-rowid.npy").unlink()
    state = {
        "folder": build_name,
        "format": FORMAT,
        "generation": reflects,
        "catalog": index_folder.catalog_identity(db),
        "vectors": count,
        "dimensions": dimensions,
        "lists": lists,
        "built_seconds": round(time.perf_counter() - started, 3),
    }
    _swap(db, folder, space, state, previous)
    return state


def _write_lists(target, matrix: np.ndarray, rowids: np.ndarray, progress: bool) -> int:
    """Train the centroids, file each vector under its nearest, and write the files grouped by list; returns how
    many lists."""
    from tqdm import tqdm

    count, dimensions = matrix.shape[0], matrix.shape[1]
    n_lists = max(1, min(count, int(round(np.sqrt(count)))))
    centroids = _train_centroids(matrix, n_lists) if count else np.zeros((1, dimensions), np.float32)
    bar = tqdm(total=2 * count, desc=f"filing vectors in {n_lists:,} lists", unit="vector", disable=not progress)
    assigned = np.zeros(count, dtype=np.int64)
    for start in range(0, count, CHUNK):
        assigned[start : start + CHUNK] = _nearest_centroid(matrix[start : start + CHUNK], centroids)
        bar.update(min(CHUNK, count - start))
    order = np.argsort(assigned, kind="stable")  # within a list, in id order
    grouped = np.lib.format.open_memmap(
        target / "vectors.npy", mode="w+", dtype=np.float32, shape=(max(count, 1), dimensions)
    )
    for start in range(0, count, CHUNK):
        rows = order[start : start + CHUNK]
        sorter = np.argsort(rows)  # read the scratch map front to back, write each row to its place
        block = np.empty((len(rows), dimensions), dtype=np.float32)
        block[sorter] = matrix[rows[sorter]]
        grouped[start : start + len(rows)] = block
        bar.update(len(rows))
    bar.close()
    grouped.flush()
    np.save(target / "rowids.npy", rowids[order])
    rowid_order = np.empty(count, dtype=np.int64)
    rowid_order[order] = np.arange(count)  # the row of the i-th smallest id (rowids are read in id order)
    np.save(target / "rowid_order.npy", rowid_order)
    np.save(target / "centroids.npy", centroids)
    np.save(target / "lists.npy", np.searchsorted(assigned[order], np.arange(len(centroids) + 1)).astype(np.int64))
    return len(centroids)


def _train_centroids(matrix: np.ndarray, n_lists: int, seed: int = 0) -> np.ndarray:
    """Spherical k-means over a sample: unit centroids, each the normalised mean of the sample vectors nearest it;
    a centroid left with none is moved onto a random sample vector."""
    rng = np.random.default_rng(seed)
    count = matrix.shape[0]
    picked = np.sort(rng.choice(count, min(count, SAMPLE_PER_LIST * n_lists), replace=False))
    sample = np.asarray(matrix[picked], dtype=np.float32)
    centroids = sample[rng.choice(len(sample), n_lists, replace=False)].copy()
    for _ in range(TRAIN_ROUNDS):
        assigned = np.concatenate(
            [_nearest_centroid(sample[start : start + CHUNK], centroids) for start in range(0, len(sample), CHUNK)]
        )
        order = np.argsort(assigned, kind="stable")
        members = np.bincount(assigned, minlength=n_lists)
        sums = np.zeros_like(centroids)
        filled = members > 0
        sums[filled] = np.add.reduceat(sample[order], np.cumsum(members)[filled] - members[filled])
        norms = np.linalg.norm(sums, axis=1)
        empty = norms == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()), replace=False)]
        norms[empty] = 1.0
        centroids = (sums / norms[:, None]).astype(np.float32)
    return centroids


def _nearest_centroid(rows: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.argmax(np.asarray(rows, dtype=np.float32) @ centroids.T, axis=1)


def _swap(db, folder, space: str, state: dict, previous: dict | None) -> None:
    index_folder.write_state(folder, _state_name(space), state)
    for old in folder.glob(f"{_state_name(space)}-*"):
        if old.name != state["folder"]:  # readers that mapped them keep the (unlinked) pages
            shutil.rmtree(old, ignore_errors=True)
    if previous is not None and previous.get("catalog") == state["catalog"]:
        # Readers still on the previous files need the changes after its generation; older ones nobody does.
        with write_transaction(db):
            db.execute(
                "delete from vector_changes where space = ? and seq <= ?",
                [space, min(previous["generation"], state["generation"])],
            )


def catch_up(db: sqlite_utils.Database, space: str, force: bool = False, progress: bool = False) -> int | None:
    """After a writer's commit: fold the changed vectors into new files once ``MERGE_AT`` have gathered (at once
    with ``force``), build the files where missing and the space is large enough.  Returns how many vectors were
    written, None where nothing was done."""
    folder = index_folder.indexes_folder(db)
    if folder is None or db.conn.in_transaction or space not in vectors.spaces(db):
        return None
    state = index_folder.read_state(folder, _state_name(space))
    if state is None and not force:
        table = vectors.table_for(space)
        if db.execute(f"select count(*) from [{table}]").fetchone()[0] < MIN_VECTORS:
            return None
    elif (
        state is not None
        and state.get("catalog") == index_folder.catalog_identity(db)
        and state.get("format") == FORMAT
    ):
        pending = db.execute(
            "select count(*) from vector_changes where space = ? and seq > ?", [space, state["generation"]]
        ).fetchone()[0]
        if pending == 0 or (pending < max(MERGE_AT, MERGE_SHARE * state["vectors"]) and not force):
            return None
    with index_folder.writer_lock(folder, _state_name(space), wait=force) as mine:
        if not mine:
            return None
        return _build(db, folder, space, progress)["vectors"]


# -- Reading -------------------------------------------------------------------------------------------


@dataclass
class _Files:
    folder: str
    generation: int
    rowids: np.ndarray  # each row's id, rows grouped by list
    matrix: np.ndarray
    rowid_order: np.ndarray  # the rows in id order
    sorted_rowids: np.ndarray
    centroids: np.ndarray
    lists: np.ndarray  # where each list's rows begin, and the end

    def position(self, rowid: int) -> int | None:
        """The row holding this item's vector, if the files hold one."""
        at = _position(self.sorted_rowids, rowid)
        return None if at is None else int(self.rowid_order[at])


@dataclass
class MappedSpace:
    """One space's vectors as a reader sees them now: the mapped files and the changes they have not taken."""

    space: str
    files: _Files
    changed: np.ndarray  # sorted rowids changed since the files' generation (their copies there are out of date)
    fresh_rowids: np.ndarray  # of those, the ones that have a vector now …
    fresh: np.ndarray  # … and their vectors

    def __len__(self) -> int:
        stale = np.isin(self.changed, self.files.rowids).sum() if len(self.changed) else 0
        return int(len(self.files.rowids) - stale + len(self.fresh_rowids))

    def vector_of(self, rowid: int) -> np.ndarray | None:
        if len(self.changed) and _position(self.changed, rowid) is not None:
            found = _position(self.fresh_rowids, rowid)
            return None if found is None else self.fresh[found]
        found = self.files.position(rowid)
        return None if found is None else np.asarray(self.files.matrix[found])

    def nearest(
        self, query: np.ndarray, k: int, exclude: int | None = None, approximate: bool | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` most similar items by cosine similarity, best first.  Up to ``EXACT_UP_TO`` vectors every
        mapped vector is scored; beyond (or with ``approximate``) those of the inverted lists nearest the query."""
        files = self.files
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != files.matrix.shape[1]:
            raise ValueError(
                f"a {query.shape[0]}-d query cannot search the {self.space!r} space "
                f"of {files.matrix.shape[1]}-d vectors"
            )
        norm = float(np.linalg.norm(query))
        if not np.isfinite(norm) or norm == 0 or k <= 0:
            return []
        query = query / norm
        found: list[tuple[int, float]] = []
        count = len(files.rowids)
        # Changed items' old copies may take places: read as many more as there are changes.
        wanted = k + (exclude is not None) + len(self.changed)
        if count:
            if approximate is None:
                approximate = count > EXACT_UP_TO
            if approximate:
                rows, scores = _probe(files, query, count, wanted)
            else:
                scores = files.matrix @ query  # the mapped pages, read straight from the page cache
                rows = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < count else np.arange(count)
                scores = scores[rows]
            rowids = files.rowids[rows]
            if len(self.changed):
                keep = ~np.isin(rowids, self.changed)
                rowids, scores = rowids[keep], scores[keep]
            found = list(zip(rowids.tolist(), scores.tolist()))
        if len(self.fresh_rowids):
            found += list(zip(self.fresh_rowids.tolist(), (self.fresh @ query).tolist()))
        found.sort(key=lambda pair: (-pair[1], pair[0]))
        return [(rowid, score) for rowid, score in found if rowid != exclude][:k]


def _probe(files: _Files, query: np.ndarray, count: int, wanted: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the lists nearest the query and their exact scores, the lists taken nearest first until they
    hold enough candidates."""
    needed = min(count, max(MIN_CANDIDATES, RERANK_FACTOR * wanted, int(PROBE_SHARE * count)))
    nearest_lists = np.argsort(-(files.centroids @ query))
    sizes = np.diff(files.lists)[nearest_lists]
    taken = nearest_lists[: int(np.searchsorted(np.cumsum(sizes), needed)) + 1]
    taken.sort()  # front to back through the map
    rows = [np.arange(files.lists[i], files.lists[i + 1]) for i in taken]
    scores = [files.matrix[files.lists[i] : files.lists[i + 1]] @ query for i in taken]
    rows, scores = np.concatenate(rows), np.concatenate(scores)
    if len(rows) > wanted:
        best = np.argpartition(-scores, wanted - 1)[:wanted]
        rows, scores = rows[best], scores[best]
    return rows, scores


def _position(sorted_rowids: np.ndarray, rowid: int) -> int | None:
    at = int(np.searchsorted(sorted_rowids, rowid))
    return at if at < len(sorted_rowids) and sorted_rowids[at] == rowid else None


_files: dict[tuple[str, str], _Files] = {}
_deltas: dict[tuple[str, str], tuple[tuple, MappedSpace]] = {}
_lock = threading.Lock()


def mapped_space(db: sqlite_utils.Database, space: str) -> MappedSpace | None:
    """The space as of now from its files beside the catalog, or None where there are none (or they are of
    another catalog, or damaged): the caller then reads the vectors itself."""
    folder = index_folder.indexes_folder(db)
    if folder is None:
        return None
    state = index_folder.read_state(folder, _state_name(space))  # before the catalog's generation, as for text
    if state is None or state.get("catalog") != index_folder.catalog_identity(db):
        return None
    current = generation(db)
    if current < state["generation"]:
        return None  # the catalog was restored from an older copy
    key = (str(folder), space)
    with _lock:
        files = _files.get(key)
        if files is None or files.folder != state["folder"]:
            files = _open(folder / state["folder"], state)
            if files is None:
                _files.pop(key, None)
                return None
            _files[key] = files
        cached = _deltas.get(key)
        if cached is not None and cached[0] == (files.folder, current):
            return cached[1]
        # Read only what changed since this reader last looked (while a tagging run writes, that is one batch).
        earlier = cached[1] if cached is not None and cached[0][0] == files.folder else None
        mapped = _with_changes(db, space, files, earlier, cached[0][1] if earlier is not None else files.generation)
        _deltas[key] = ((files.folder, current), mapped)
        return mapped


def _open(path, state: dict) -> _Files | None:
    if state.get("format") != FORMAT:
        return None  # files of an older layout: the caller reads the vectors itself until a writer rebuilds them
    try:
        rowids = np.load(path / "rowids.npy")
        count = len(rowids)
        matrix = np.load(path / "vectors.npy", mmap_mode="r")[:count]
        rowid_order = np.load(path / "rowid_order.npy")
        centroids = np.load(path / "centroids.npy")
        lists = np.load(path / "lists.npy")
    except (OSError, ValueError):
        return None
    if (
        matrix.shape[0] != count
        or len(rowid_order) != count
        or matrix.shape[1] != state["dimensions"]
        or centroids.shape[1:] != (state["dimensions"],)
        or len(lists) != len(centroids) + 1
        or (count and lists[-1] != count)
    ):
        return None
    return _Files(
        state["folder"], state["generation"], rowids, matrix, rowid_order, rowids[rowid_order], centroids, lists
    )


def _with_changes(
    db: sqlite_utils.Database, space: str, files: _Files, earlier: MappedSpace | None, since: int
) -> MappedSpace:
    """The files and the vectors changed since their generation: ``earlier`` (this reader's view as of generation
    ``since``) and what changed after it, read from sqlite-vec."""
    changed = np.asarray(changed_since(db, space, since), dtype=np.int64)
    fresh_rowids, fresh = [], []
    table = vectors.table_for(space)
    for start in range(0, len(changed), 500):
        chunk = changed[start : start + 500].tolist()
        for rowid, embedding in db.execute(
            f"select item_rowid, embedding from [{table}] where item_rowid in ({','.join('?' * len(chunk))})", chunk
        ):
            fresh_rowids.append(rowid)
            fresh.append(np.frombuffer(embedding, dtype=np.float32))
    dimensions = files.matrix.shape[1]
    fresh_rowids = np.asarray(fresh_rowids, dtype=np.int64)
    fresh = np.asarray(fresh, dtype=np.float32).reshape(-1, dimensions)
    if earlier is not None:  # what changed again replaces what this reader had
        kept = ~np.isin(earlier.fresh_rowids, changed)
        fresh_rowids = np.concatenate([earlier.fresh_rowids[kept], fresh_rowids])
        fresh = np.concatenate([earlier.fresh[kept], fresh])
        changed = np.union1d(earlier.changed, changed)
    order = np.argsort(fresh_rowids, kind="stable")
    return MappedSpace(space, files, np.unique(changed), fresh_rowids[order], fresh[order])


@dataclass
class CheckReport:
    """How a space's files (with the changes a reader takes from the log) compare with sqlite-vec."""

    space: str
    exists: bool
    vectors_in_catalog: int = 0
    vectors_in_files: int = 0
    pending: int = 0
    missing: list[int] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    different: list[int] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return self.exists and not (self.missing or self.extra or self.different)


def check(db: sqlite_utils.Database, space: str) -> CheckReport:
    """Read every vector of the space from sqlite-vec and compare it with what a reader sees now."""
    forget()
    mapped = mapped_space(db, space)
    report = CheckReport(space, exists=mapped is not None)
    table = vectors.table_for(space)
    report.vectors_in_catalog = db.execute(f"select count(*) from [{table}]").fetchone()[0]
    if mapped is None:
        return report
    report.vectors_in_files = len(mapped.files.rowids)
    report.pending = len(mapped.changed)
    seen = set()
    for rowid, embedding in db.execute(f"select item_rowid, embedding from [{table}]"):
        seen.add(rowid)
        mine = mapped.vector_of(rowid)
        if mine is None:
            report.missing.append(rowid)
        elif not np.array_equal(mine, np.frombuffer(embedding, dtype=np.float32)):
            report.different.append(rowid)
    stale = set(mapped.changed.tolist())
    report.extra = [r for r in mapped.files.rowids.tolist() if r not in seen and r not in stale]
    report.extra += [r for r in mapped.fresh_rowids.tolist() if r not in seen]
    return report


def forget() -> None:
    with _lock:
        _files.clear()
        _deltas.clear()
