"""Which items an expert should look at next: the ones the machine is least sure about.

An expert's minute buys the most accuracy on an item the learned head cannot
decide: its two best classes are nearly tied (a small *margin*, top-1 minus
top-2 probability, as stored in ``learned_predictions``).  Items an expert has
already judged for the head's classes are left out, since their label is known.

Before any head is trained there is no doubt to measure, and the first labels
are worth most where they cover the catalog: the queue clusters the image
vectors (k-means, one cluster per place in the queue) and offers from each
cluster the item nearest its centre, biggest cluster first — one typical item of
each kind of image rather than many of the commonest kind (benchmarks/learning.py
measures this against random picks).  After that, and once every prediction has
been judged, the queue falls back to the taggers' own doubt: items whose weakest
machine tag scored lowest, among items no expert has touched yet.

``review_queue`` only reads, with plain ``execute`` calls, so it takes either a
``sqlite_utils.Database`` or the ``sqlite3.Connection`` Datasette hands to
``execute_fn``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..tagging import vectors

EXPERT_STATUSES = ("accepted", "added", "rejected")
# The spaces the diverse picks cluster, best first (as training prefers them), and how many vectors they read:
# a sample, every n-th item, so that the queue page stays quick on a large catalog.
CLUSTER_SPACES = ("clip", "image_texture", "image_features")
CLUSTER_SAMPLE = 5_000


@dataclass(frozen=True)
class QueueEntry:
    """One item to review, and why it is in the queue."""

    item_type: str
    item_id: str
    reason: str  # a sentence the queue page can show as it is
    margin: float | None  # learned head: top-1 minus top-2 probability; None for the other reasons
    label: str | None  # the learned head's class, or the weakest machine tag
    probability: float | None  # the head's probability of ``label``, or that tag's score
    tag_set: str | None = None  # the learned model's tag set; None for the machine-tag fallback
    model_version: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def review_queue(
    db,
    limit: int = 50,
    item_type: str = "file",
    tag_set: str | None = None,
    offset: int = 0,
    leave_out: frozenset[str] = frozenset(),
) -> list[QueueEntry]:
    """Up to ``limit`` items of ``item_type`` to review, least certain first, after the first ``offset`` (pages of
    ``limit`` items: every page is cut from one order, so pages do not overlap).

    First the current learned model's predictions (of ``tag_set``, or of every tag set) by margin ascending,
    skipping items an expert has labelled for that model's classes; an item predicted by several tag sets
    appears once, where it is least certain.  Where there is no such model yet, the typical items of
    ``limit`` clusters of the catalog's images instead (one page's worth, whatever the page).  Then items no
    expert has judged at all, by the score of their lowest-scored machine tag.

    ``leave_out`` are ids of items the reader may not see (another team's, still under its proprietary period):
    they are not in this reader's queue at all, so pages stay full and ``queue_count`` agrees.
    """
    offset = max(0, int(offset))
    limit = max(0, int(limit))
    if limit == 0:
        return []
    wanted = offset + limit
    if _current_models(db, tag_set):
        entries = _uncertain_predictions(db, wanted, item_type, tag_set, leave_out)
    else:
        entries = diverse_picks(db, limit, item_type, leave_out)
    if len(entries) < wanted:
        seen = {entry.item_id for entry in entries}
        for entry in _weakest_machine_tags(db, wanted + len(seen), item_type, leave_out):
            if entry.item_id not in seen:
                entries.append(entry)
                seen.add(entry.item_id)
            if len(entries) == wanted:
                break
    return entries[offset:wanted]


def queue_count(
    db, item_type: str = "file", tag_set: str | None = None, leave_out: frozenset[str] = frozenset()
) -> int:
    """How many items of ``item_type`` await review: those a current learned model predicted and no expert has
    labelled for its classes, and those with a scored machine tag that no expert has judged at all; the queue
    offers them (``review_queue``), least certain first; none of ``leave_out``."""
    expert = ",".join("?" * len(EXPERT_STATUSES))
    models = "m.status = 'current'" + ("" if tag_set is None else " and m.tag_set = ?")
    sql = f"""
        select count(*) from (
            select p.item_id from learned_predictions p join learned_models m on m.id = p.model_id
            where {models} and p.item_type = ?
              and not exists (
                select 1 from tags t
                where t.item_type = p.item_type and t.item_id = p.item_id and t.status in ({expert})
                  and lower(t.tag) in (select lower(value) from json_each(m.classes)))
            union
            select t.item_id from tags t
            where t.item_type = ? and t.status = 'machine' and t.score is not null
              and not exists (
                select 1 from tags e
                where e.item_type = t.item_type and e.item_id = t.item_id and e.status != 'machine')
        ) where cast(item_id as text) not in (select value from json_each(?))"""
    params = [*([] if tag_set is None else [tag_set]), item_type, *EXPERT_STATUSES, item_type, _json(leave_out)]
    return int(db.execute(sql, params).fetchone()[0])


def _current_models(db, tag_set: str | None) -> list[tuple]:
    sql = "select id, tag_set, version from learned_models where status = 'current'"
    if tag_set is None:
        return db.execute(sql).fetchall()
    return db.execute(sql + " and tag_set = ?", [tag_set]).fetchall()


def _uncertain_predictions(
    db, limit: int, item_type: str, tag_set: str | None, leave_out: frozenset[str] = frozenset()
) -> list[QueueEntry]:
    models = _current_models(db, tag_set)
    if not models:
        return []
    expert = ",".join("?" * len(EXPERT_STATUSES))
    rows = []
    for model_id, model_tag_set, version in models:
        # One model at a time, in the order of its (model_id, margin) index: SQLite reads the least certain
        # predictions first and stops at the limit instead of sorting every prediction.
        rows += [
            (*row, model_tag_set, version)
            for row in db.execute(
                f"""
                select p.item_id, p.label, p.probability, p.margin
                from learned_predictions p join learned_models m on m.id = p.model_id
                where p.model_id = ? and p.item_type = ?
                  and not exists (
                    select 1 from tags t
                    where t.item_type = p.item_type and t.item_id = p.item_id and t.status in ({expert})
                      and lower(t.tag) in (select lower(value) from json_each(m.classes)))
                order by p.margin asc
                limit ?
                """,
                [model_id, item_type, *EXPERT_STATUSES, limit + len(leave_out)],  # enough after leaving out
            )
        ]
    rows.sort(key=lambda row: (row[3], row[2], str(row[0])))
    entries, seen = [], set()
    for item_id, label, probability, margin, model_tag_set, version in rows:
        item_id = str(item_id)
        if item_id in seen or item_id in leave_out:  # already queued where another tag set was less sure
            continue
        seen.add(item_id)
        entries.append(
            QueueEntry(
                item_type=item_type,
                item_id=item_id,
                reason=(
                    f"the learned {model_tag_set} tagger (v{version}) is unsure: "
                    f"{label} at p={probability:.2f}, only {margin:.2f} ahead of the next class"
                ),
                margin=float(margin),
                label=label,
                probability=float(probability),
                tag_set=model_tag_set,
                model_version=int(version),
            )
        )
        if len(entries) == limit:
            break
    return entries


def diverse_picks(db, limit: int, item_type: str = "file", leave_out: frozenset[str] = frozenset()) -> list[QueueEntry]:
    """One item from each of ``limit`` clusters of the image vectors no expert has judged (none of
    ``leave_out``): the one nearest its cluster's centre, biggest cluster first.  Empty where the catalog holds no
    image vectors."""
    space = next((name for name in CLUSTER_SPACES if name in _vector_spaces(db)), None)
    if space is None:
        return []
    ids, features = _vector_sample(db, space, item_type)
    if not ids:
        return []
    judged = _judged_items(db, item_type, ids)
    keep = [row for row, item_id in enumerate(ids) if item_id not in judged and item_id not in leave_out]
    ids, features = [ids[row] for row in keep], features[keep]
    clusters = min(limit, len(np.unique(features, axis=0)))  # identical vectors cannot make separate clusters
    if clusters == 0:
        return []
    entries = []
    for typical, size in typical_of_clusters(features, clusters):
        group = f"the most typical of {size} similar images" if size > 1 else "an image unlike others"
        entries.append(
            QueueEntry(
                item_type=item_type,
                item_id=ids[typical],
                reason=f"no learned model yet: {group} (group {len(entries) + 1} of {clusters} by {space} vectors)",
                margin=None,
                label=None,
                probability=None,
            )
        )
    return entries


def typical_of_clusters(features: np.ndarray, clusters: int) -> list[tuple[int, int]]:
    """(row nearest the centre, cluster size) for each k-means cluster of the standardised ``features``, biggest
    cluster first."""
    from sklearn.cluster import KMeans

    scale = features.std(axis=0)
    scale[scale < 1e-12] = 1.0
    standard = (features - features.mean(axis=0)) / scale
    model = KMeans(n_clusters=clusters, n_init=3, random_state=0).fit(standard)
    distance = np.linalg.norm(standard - model.cluster_centers_[model.labels_], axis=1)
    sizes = np.bincount(model.labels_, minlength=clusters)
    picks = []
    for cluster in sorted(range(clusters), key=lambda c: (-sizes[c], c)):
        members = np.flatnonzero(model.labels_ == cluster)
        if len(members):
            picks.append((int(members[np.argmin(distance[members])]), int(sizes[cluster])))
    return picks


def _vector_spaces(db) -> set[str]:
    # Plain execute rather than vectors.spaces: this module also reads through Datasette's bare connection.
    if not db.execute("select 1 from sqlite_master where type = 'table' and name = 'vector_spaces'").fetchone():
        return set()
    return {row[0] for row in db.execute("select name from vector_spaces")}


def _vector_sample(db, space: str, item_type: str) -> tuple[list[str], np.ndarray]:
    """Ids and vectors of up to ``CLUSTER_SAMPLE`` items of ``space``: every n-th, in search-item order."""
    table = vectors.table_for(space)
    (total,) = db.execute(f"select count(*) from [{table}]").fetchone()
    step = max(1, -(-total // CLUSTER_SAMPLE))
    rows = db.execute(
        f"select s.item_id, v.embedding from search_items s join [{table}] v on v.item_rowid = s.id "
        "where s.item_type = ? and v.item_rowid % ? = 0 order by s.id",
        [item_type, step],
    ).fetchall()
    if not rows:
        return [], np.zeros((0, 0))
    return [str(row[0]) for row in rows], np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])


def _weakest_machine_tags(db, limit: int, item_type: str, leave_out: frozenset[str] = frozenset()) -> list[QueueEntry]:
    """Items no expert has judged, by their lowest-scored machine tag.

    Machine tags are read weakest first, a growing slice at a time: a bounded sort over the tags is cheap, where
    asking for every tag whether its item was judged costs seconds on a catalog of a million tags."""
    entries: list[QueueEntry] = []
    seen: set[str] = set()
    offset, window = 0, max(4 * limit, 200)
    while len(entries) < limit:
        rows = db.execute(
            "select item_id, tag, source, score from tags "
            "where item_type = ? and status = 'machine' and score is not null "
            "order by score asc, item_id limit ? offset ?",
            [item_type, window, offset],
        ).fetchall()
        weakest: dict[str, tuple] = {}
        for item_id, tag, source, score in rows:
            item_id = str(item_id)
            if item_id not in seen and item_id not in weakest:
                weakest[item_id] = (tag, source, score)
        seen |= weakest.keys()
        judged = _judged_items(db, item_type, list(weakest))
        for item_id, (tag, source, score) in weakest.items():
            if item_id in judged or item_id in leave_out or len(entries) == limit:
                continue
            entries.append(
                QueueEntry(
                    item_type=item_type,
                    item_id=item_id,
                    reason=f"no expert has checked it; its weakest machine tag '{tag}' ({source}) scored {score:.2f}",
                    margin=None,
                    label=tag,
                    probability=float(score),
                )
            )
        if len(rows) < window:
            break
        offset, window = offset + window, window * 2
    return entries


def _json(ids: frozenset[str]) -> str:
    import json

    return json.dumps(sorted(ids))


def _judged_items(db, item_type: str, item_ids: list[str]) -> set[str]:
    judged: set[str] = set()
    for start in range(0, len(item_ids), 500):
        chunk = item_ids[start : start + 500]
        judged |= {
            str(row[0])
            for row in db.execute(
                f"select distinct item_id from tags where item_type = ? and status != 'machine' "
                f"and item_id in ({','.join('?' * len(chunk))})",
                [item_type, *chunk],
            )
        }
    return judged
