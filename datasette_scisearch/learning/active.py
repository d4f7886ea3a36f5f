"""Which items an expert should look at next: the ones the machine is least sure about.

An expert's minute buys the most accuracy on an item the learned head cannot
decide: its two best classes are nearly tied (a small *margin*, top-1 minus
top-2 probability, as stored in ``learned_predictions``).  Items an expert has
already judged for the head's classes are left out, since their label is known.

Before any head is trained (or once every prediction has been judged) the queue
falls back to the taggers' own doubt: items whose weakest machine tag scored
lowest, among items no expert has touched yet.

``review_queue`` only reads, with plain ``execute`` calls, so it takes either a
``sqlite_utils.Database`` or the ``sqlite3.Connection`` Datasette hands to
``execute_fn``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

EXPERT_STATUSES = ("accepted", "added", "rejected")


@dataclass(frozen=True)
class QueueEntry:
    """One item to review, and why it is in the queue."""

    item_type: str
    item_id: str
    reason: str  # a sentence the queue page can show as it is
    margin: float | None  # learned head: top-1 minus top-2 probability; None for the machine-tag fallback
    label: str | None  # the learned head's class, or the weakest machine tag
    probability: float | None  # the head's probability of ``label``, or that tag's score
    tag_set: str | None = None  # the learned model's tag set; None for the machine-tag fallback
    model_version: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def review_queue(db, limit: int = 50, item_type: str = "file", tag_set: str | None = None) -> list[QueueEntry]:
    """Up to ``limit`` items of ``item_type`` to review, least certain first.

    First the current learned model's predictions (of ``tag_set``, or of every tag set) by margin ascending,
    skipping items an expert has labelled for that model's classes; an item predicted by several tag sets
    appears once, where it is least certain.  If that gives fewer than ``limit`` items, the rest are items no
    expert has judged at all, by the score of their lowest-scored machine tag.
    """
    limit = max(0, int(limit))
    if limit == 0:
        return []
    entries = _uncertain_predictions(db, limit, item_type, tag_set)
    if len(entries) < limit:
        seen = {entry.item_id for entry in entries}
        for entry in _weakest_machine_tags(db, limit + len(seen), item_type):
            if entry.item_id not in seen:
                entries.append(entry)
                seen.add(entry.item_id)
            if len(entries) == limit:
                break
    return entries


def _current_models(db, tag_set: str | None) -> list[tuple]:
    sql = "select id, tag_set, version from learned_models where status = 'current'"
    if tag_set is None:
        return db.execute(sql).fetchall()
    return db.execute(sql + " and tag_set = ?", [tag_set]).fetchall()


def _uncertain_predictions(db, limit: int, item_type: str, tag_set: str | None) -> list[QueueEntry]:
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
                [model_id, item_type, *EXPERT_STATUSES, limit],
            )
        ]
    rows.sort(key=lambda row: (row[3], row[2], str(row[0])))
    entries, seen = [], set()
    for item_id, label, probability, margin, model_tag_set, version in rows:
        item_id = str(item_id)
        if item_id in seen:  # already queued where another tag set was less sure
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


def _weakest_machine_tags(db, limit: int, item_type: str) -> list[QueueEntry]:
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
            if item_id in judged or len(entries) == limit:
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
