"""The tagging pipeline: runs the installed taggers over the catalog and stores what they say.

The core owns everything a tagger should not have to think about, once for all
of them: which items need tagging, batching, loading each model once per run,
reading pixels once per item for all image taggers, storing tags and vectors
with provenance, keeping the search documents in sync, recording errors, and
resuming an interrupted run.

Incremental: ``tag_runs`` remembers, per (tagger, item), the tagger version and
a fingerprint of the item's content; an item is tagged again only when either
changed (or with ``force``).  Each batch commits in one transaction together
with its ``tag_runs`` rows, so a killed run keeps every finished batch and the
next run starts where it stopped.  Experts' tags (accepted, rejected, added)
are never overwritten: a tagger's new run replaces only its own machine tags,
and does not bring back a tag an expert rejected.

On a Dask cluster (``cluster``) only the taggers' work moves: this process
still decides per chunk what each tagger must do (``_items_to_tag``), ships the
item rows and the taggers to ``tag_on_worker`` — which keeps each loaded model
in its worker process for the next tasks and reads pixels there — and stores
the answers with the same ``_store``.  Inheritance and search documents stay
here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import sqlite_utils
from tqdm import tqdm

from .. import jobs, refreshing
from ..catalog import ITEM_TABLES, ITEM_TYPES, now_utc, write_transaction
from ..config import Settings
from ..errors import ScisearchError
from ..plugins import get_taggers
from ..search.index import search_item_ids
from . import vectors
from .items import iter_items, make_item
from .tagger import Item, ItemError, Result, Tagger, TaggerUnavailable, tag_category

if TYPE_CHECKING:
    from ..cluster import Cluster

INHERITED_SCORE_FACTOR = 0.5  # a proposal's keyword says less about one file than the file's own evidence
CHUNK_SIZE = 256  # items read per round; every tagger's batches are cut from it
TASK_ITEMS = 32  # items per cluster task (--batch-size when given): a second or two of work, not minutes
_VOLATILE_FILE_COLUMNS = ("id", "loaded_at", "modified_at", "session_id", "proposal_id", "preview")


class TaggingError(ScisearchError):
    """The run cannot start (an unknown tagger name, say); the message says what to do."""


@dataclass
class TaggerStats:
    """What one tagger did in a run."""

    tagger: str
    version: str
    tagged: int = 0
    current: int = 0  # already tagged by this version, content unchanged
    not_wanted: int = 0
    failed: int = 0
    tags: int = 0
    vectors: int = 0
    seconds: float = 0.0
    unavailable: str | None = None
    errors: list[dict] = field(default_factory=list)


@dataclass
class TagSummary:
    """What ``scisearch tag`` did; stored with its job and printed at the end."""

    command: str = "tag"
    device: str = "cpu"
    taggers: list[TaggerStats] = field(default_factory=list)
    inherited_tags: int = 0  # inherited tags added, changed or removed this run
    documents_updated: int = 0
    seconds: float = 0.0
    writer_seconds: float = 0.0  # storing tags, vectors and search documents: the single writer's share
    job_id: int | None = None

    # The names jobs.finish_job reads.
    @property
    def total(self) -> int:
        return sum(s.tagged + s.current + s.not_wanted + s.failed for s in self.taggers)

    added = property(lambda self: sum(s.tagged for s in self.taggers))
    updated = property(lambda self: 0)
    unchanged = property(lambda self: sum(s.current for s in self.taggers))
    skipped = property(lambda self: sum(s.not_wanted for s in self.taggers))
    failed = property(lambda self: sum(s.failed for s in self.taggers))

    def as_dict(self) -> dict:
        return asdict(self)


def fingerprint(item: Item) -> str:
    """What a tagger's output depends on: the item's content, not when or how it was catalogued."""
    row = item.row
    if item.item_type == "file":
        row = {k: v for k, v in row.items() if k not in _VOLATILE_FILE_COLUMNS}
    else:
        row = {k: v for k, v in row.items() if k not in ("loaded_at",)}
    payload = json.dumps([item.title, item.text, row], sort_keys=True, default=str)
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()


def choose_device(requested: str, taggers: list[Tagger]) -> str:
    """'cuda' where a GPU is present and a tagger can use it; torch is imported only then."""
    if requested != "auto":
        return requested
    if not any(getattr(t, "uses_gpu", False) for t in taggers) or importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def select_taggers(names: list[str] | None) -> list[Tagger]:
    installed = get_taggers()
    if not names:
        return installed
    by_name = {tagger.name: tagger for tagger in installed}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise TaggingError(
            f"no tagger called {', '.join(map(repr, unknown))}; installed: {', '.join(sorted(by_name)) or 'none'} "
            "(see 'scisearch plugins')"
        )
    return [by_name[name] for name in names]


def tag_catalog(
    db: sqlite_utils.Database,
    settings: Settings,
    tagger_names: list[str] | None = None,
    item_types: list[str] | None = None,
    batch_size: int | None = None,
    force: bool = False,
    retry_errors: bool = False,
    device: str = "auto",
    progress: bool = True,
    cluster: Cluster | None = None,
) -> TagSummary:
    """Run the chosen taggers (all installed ones by default) over the chosen item types, here or on a
    ``cluster`` (where device "auto" means each worker's own GPU if it has one)."""
    started = time.perf_counter()
    taggers = select_taggers(tagger_names)
    unknown_types = set(item_types or []) - set(ITEM_TYPES)
    if unknown_types:
        raise TaggingError(f"unknown item type {sorted(unknown_types)[0]!r}: use one of {', '.join(ITEM_TYPES)}")
    types = [t for t in ITEM_TYPES if not item_types or t in item_types]
    on_workers = cluster is not None and device == "auto"
    summary = TagSummary(device="auto (each worker's)" if on_workers else choose_device(device, taggers))
    job_id = jobs.start_job(
        db, "tag", {"taggers": [t.name for t in taggers], "types": types, "force": force, "device": summary.device}
    )
    summary.job_id = job_id
    # sqlite-utils finds out whether SQLite can upsert by creating and dropping a table at the first upsert, and
    # SQLite refuses that drop while the items being tagged are still read from an open cursor: find out now.
    db.supports_on_conflict  # noqa: B018
    refreshing.refresh(
        db, refreshing.TAGS, item_types=types
    )  # vectors are keyed by search documents, so every item needs one first
    stopped_by = None
    device = "auto" if on_workers else summary.device
    # A space pinned to a tuned encoder (learning/encoder_switch.py) has new items embedded by that encoder too.
    options = {
        tagger.name: {**(settings.taggers.get(tagger.name) or {}), **vectors.pinned_options(db, tagger.name)}
        for tagger in taggers
    }
    runners = [_Runner(tagger, options[tagger.name], device) for tagger in taggers]
    summary.taggers = [runner.stats for runner in runners]
    try:
        for item_type in types:
            concerned = [r for r in runners if item_type in r.tagger.applies_to]
            if concerned and db.execute(f"select 1 from [{ITEM_TABLES[item_type]}] limit 1").fetchone():
                tag_items = _tag_items_of_type if cluster is None else _tag_on_cluster
                tag_items(db, item_type, concerned, batch_size, force, retry_errors, job_id, progress, summary, cluster)
        inheriting = [r.tagger for r in runners if r.tagger.inherited and not r.stats.unavailable]
        summary.inherited_tags = _inherit_tags(db, inheriting)
        summary.documents_updated = refreshing.refresh(db, refreshing.TAGS, item_types=types).documents
    except BaseException as error:  # a run that did not finish is never recorded 'done'
        stopped_by = error
        raise
    finally:
        for runner in runners:
            runner.stats.seconds = round(runner.seconds, 3)
            if runner.loaded:
                _close(runner.tagger)
        summary.seconds = round(time.perf_counter() - started, 3)
        summary.writer_seconds = round(summary.writer_seconds, 3)
        jobs.finish_job(db, job_id, summary, status=jobs.ending_of(stopped_by), error=stopped_by)
    return summary


class _Runner:
    """One tagger in a run: loaded on first use, so a run with nothing new loads no model."""

    def __init__(self, tagger: Tagger, options: dict, device: str):
        self.tagger, self.options, self.device = tagger, options, device
        self.stats = TaggerStats(tagger.name, str(tagger.version))
        self.seconds = 0.0
        self.loaded = False

    def ready(self) -> bool:
        if self.loaded or self.stats.unavailable:
            return self.loaded
        began = time.perf_counter()
        try:
            self.tagger.load(self.options, self.device)
            self.loaded = True
        except TaggerUnavailable as reason:
            self.stats.unavailable = str(reason)
        except Exception as error:  # a third-party tagger's own bug must not stop the others
            self.stats.unavailable = f"failed to load: {type(error).__name__}: {error}"
        self.seconds += time.perf_counter() - began
        return self.loaded


def _close(tagger: Tagger) -> None:
    try:
        tagger.close()
    except Exception:  # closing is best effort; the run's results are already stored
        pass


def _tag_items_of_type(db, item_type, runners, batch_size, force, retry_errors, job_id, progress, summary, _) -> None:
    previous = {runner.tagger.name: _previous_runs(db, runner.tagger.name, item_type) for runner in runners}
    bar = _progress_bar(db, item_type, progress)
    for chunk in _chunks(iter_items(db, item_type), CHUNK_SIZE):
        _share_pixels(chunk)
        prints = {item.item_id: fingerprint(item) for item in chunk}
        for runner in runners:
            todo = _items_to_tag(runner, chunk, prints, previous[runner.tagger.name], force, retry_errors)
            if todo and not runner.ready():
                continue
            size = batch_size or runner.tagger.batch_size or 32
            for start in range(0, len(todo), size):
                batch = todo[start : start + size]
                began = time.perf_counter()
                outcomes = list(_run_batch(runner.tagger, batch))
                runner.seconds += time.perf_counter() - began
                _store(db, runner, item_type, outcomes, prints, job_id, summary)
        _refresh(db, summary, item_type, [item.item_id for item in chunk])
        bar.update(len(chunk))
    bar.close()


def _progress_bar(db, item_type: str, progress: bool) -> tqdm:
    total = db.execute(f"select count(*) from [{ITEM_TABLES[item_type]}]").fetchone()[0]
    return tqdm(total=total, desc=f"tagging {item_type}s", unit=item_type, disable=not progress, leave=False)


def _refresh(db, summary: TagSummary, item_type: str, ids: list[str]) -> None:
    began = time.perf_counter()
    refreshing.refresh(db, refreshing.TAGS, item_types=[item_type], ids=ids)
    summary.writer_seconds += time.perf_counter() - began


def _tag_on_cluster(db, item_type, runners, batch_size, force, retry_errors, job_id, progress, summary, cluster):
    """The writer's side of a cluster run: the same decisions and storing as ``_tag_items_of_type``, with
    the taggers' work done by ``tag_on_worker`` tasks, stored as they come back."""
    from ..cluster import TaskFailure

    previous = {runner.tagger.name: _previous_runs(db, runner.tagger.name, item_type) for runner in runners}
    bar = _progress_bar(db, item_type, progress)
    prints: dict[str, str] = {}  # of the items in tasks not yet stored only: a run over 10^8 items keeps few
    to_refresh: list[str] = []

    def task(part: list[Item], work: list[tuple[_Runner, list[Item]]]) -> tuple:
        shipped = [(r.tagger, r.options, r.device, [item.item_id for item in items]) for r, items in work]
        return (work, len(part)), (item_type, [item.row for item in part], shipped, batch_size)

    def tasks():
        for chunk in _chunks(iter_items(db, item_type), CHUNK_SIZE):
            chunk_prints = {item.item_id: fingerprint(item) for item in chunk}
            todo = {
                runner: {
                    item.item_id
                    for item in _items_to_tag(
                        runner, chunk, chunk_prints, previous[runner.tagger.name], force, retry_errors
                    )
                }
                for runner in runners
            }
            size = batch_size or TASK_ITEMS
            for start in range(0, len(chunk), size):
                part = chunk[start : start + size]
                work = [
                    (runner, [item for item in part if item.item_id in todo[runner]])
                    for runner in runners
                    if not runner.stats.unavailable
                ]
                work = [(runner, items) for runner, items in work if items]
                if not work:
                    bar.update(len(part))
                    continue
                needed = {item.item_id for _, items in work for item in items}
                prints.update((item_id, chunk_prints[item_id]) for item_id in needed)
                yield task([item for item in part if item.item_id in needed], work)
                bar.update(len(part) - len(needed))

    stream = cluster.stream(tag_on_worker, tasks())
    for (work, count), answers in stream:
        if isinstance(answers, TaskFailure):
            items = list({item.item_id: item for _, batch in work for item in batch}.values())
            if answers.worker_died and len(items) > 1:  # find the item that kills workers; spare the others
                for item in items:
                    alone = [(runner, [item]) for runner, batch in work if item in batch]
                    stream.push(*task([item], alone))
                continue
            answers = [{"outcomes": [(i.item_id, ItemError(answers.message)) for i in batch]} for _, batch in work]
        for (runner, batch), answer in zip(work, answers):
            if answer.get("unavailable"):
                runner.stats.unavailable = runner.stats.unavailable or answer["unavailable"]
                continue
            runner.seconds += answer.get("seconds", 0.0)
            for attribute in ("vector_spaces", "model_name"):  # what loading the model told the worker
                if attribute in answer:
                    setattr(runner.tagger, attribute, answer[attribute])
            by_id = {item.item_id: item for item in batch}
            outcomes = [(by_id[item_id], outcome) for item_id, outcome in answer["outcomes"]]
            _store(db, runner, item_type, outcomes, prints, job_id, summary)
        stored = {item.item_id for _, batch in work for item in batch}
        for item_id in stored:
            del prints[item_id]
        to_refresh += stored
        if len(to_refresh) >= CHUNK_SIZE:
            _refresh(db, summary, item_type, to_refresh)
            to_refresh = []
        bar.update(count)
    if to_refresh:
        _refresh(db, summary, item_type, to_refresh)
    bar.close()


def tag_on_worker(item_type: str, rows: list[dict], work: list[tuple], batch_size: int | None) -> list[dict]:
    """A Dask task: each tagger's answers for its items of ``rows``, with the models loaded once per worker
    process and each file's pixels read once for all of them."""
    from ..cluster import kept

    items = {item.item_id: item for item in (make_item(item_type, row) for row in rows)}
    _share_pixels(list(items.values()))
    answers = []
    for tagger, options, device, ids in work:
        if device == "auto":
            device = choose_device("auto", [tagger])
        key = (type(tagger).__module__, type(tagger).__qualname__, tagger.name, str(tagger.version), device)
        key += (json.dumps(options, sort_keys=True, default=str),)
        runner = kept(key, _Runner, tagger, options, device)
        if not runner.ready():
            answers.append({"unavailable": runner.stats.unavailable})
            continue
        began, outcomes = time.perf_counter(), []
        size = batch_size or runner.tagger.batch_size or 32
        todo = [items[item_id] for item_id in ids]
        for start in range(0, len(todo), size):
            outcomes += [
                (item.item_id, outcome) for item, outcome in _run_batch(runner.tagger, todo[start : start + size])
            ]
        answers.append(
            {
                "outcomes": outcomes,
                "seconds": time.perf_counter() - began,
                "vector_spaces": dict(runner.tagger.vector_spaces),
                "model_name": getattr(runner.tagger, "model_name", ""),
            }
        )
    return answers


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _share_pixels(chunk: list[Item]) -> None:
    """Each file is decoded once per run, however many image taggers look at it (the costly part on a GPU)."""
    for item in chunk:
        if item.load_pixels is not None:
            item.load_pixels = _PixelCache(item.load_pixels)


class _PixelCache:
    def __init__(self, read):
        self.read = read
        self.frame: np.ndarray | None = None
        self.side = 0

    def __call__(self, max_side: int) -> np.ndarray:
        if self.frame is None or max_side > self.side:
            self.frame, self.side = self.read(max_side), max_side
        step = max(1, -(-max(self.frame.shape) // max_side))
        return self.frame if step == 1 else self.frame[(slice(None, None, step),) * self.frame.ndim]


def _previous_runs(db, tagger: str, item_type: str) -> dict[str, tuple[str, str, str]]:
    return {
        item_id: (version, print_, status)
        for item_id, version, print_, status in db.execute(
            "select item_id, tagger_version, fingerprint, status from tag_runs where tagger = ? and item_type = ?",
            [tagger, item_type],
        )
    }


def _items_to_tag(runner: _Runner, chunk, prints, previous, force, retry_errors) -> list[Item]:
    tagger, stats, todo = runner.tagger, runner.stats, []
    for item in chunk:
        before = previous.get(item.item_id)
        current = before is not None and before[:2] == (str(tagger.version), prints[item.item_id])
        if current and not force and (before[2] == "done" or not retry_errors):
            stats.current += 1
            continue
        try:
            wanted = tagger.wants(item)
        except Exception as error:
            wanted, stats.failed = False, stats.failed + 1
            stats.errors.append({"item": f"{item.item_type} {item.item_id}", "message": f"wants() raised: {error}"})
        if not wanted:
            stats.not_wanted += 1
            continue
        todo.append(item)
    return todo


def _run_batch(tagger: Tagger, batch: list[Item]) -> Iterator[tuple[Item, Result | ItemError]]:
    """The tagger's answer for every item of the batch; a batch that raises is retried item by item,
    so one bad file costs only its own tags."""
    try:
        answered = list(tagger.tag_batch(batch))
    except Exception:
        answered = []
        for item in batch:
            try:
                answered += list(tagger.tag_batch([item]))
            except Exception as error:
                answered.append((item, ItemError(_describe(error))))
    seen = {id(item) for item, _ in answered}
    yield from answered
    for item in batch:  # a tagger that silently drops an item has not tagged it
        if id(item) not in seen:
            yield item, ItemError(f"{tagger.name} gave no answer for this item")


def _describe(error: Exception) -> str:
    message = str(error) or type(error).__name__
    return message if len(message) < 500 else message[:497] + "..."


def _store(db, runner: _Runner, item_type: str, outcomes, prints, job_id, summary: TagSummary) -> None:
    """One transaction per batch, a few statements per batch: tags, vectors and tag_runs rows go in together
    or not at all."""
    began = time.perf_counter()
    _store_batch(db, runner, item_type, outcomes, prints, job_id)
    summary.writer_seconds += time.perf_counter() - began


def _store_batch(db, runner: _Runner, item_type: str, outcomes, prints, job_id) -> None:
    tagger, stats = runner.tagger, runner.stats
    ids = [item.item_id for item, _ in outcomes]
    rowids = search_item_ids(db, item_type, ids)
    judged = _judged_tags(db, tagger.name, item_type, ids)
    now = now_utc()
    runs, tag_rows, tagged_ids = [], [], []
    by_space: dict[str, list[tuple[int, np.ndarray]]] = {}
    for item, outcome in outcomes:
        if not isinstance(outcome, ItemError):
            try:
                checked = _checked_vectors(db, tagger, rowids.get(item.item_id), outcome.vectors)
            except vectors.VectorSpaceError as error:
                outcome = ItemError(str(error))
        if isinstance(outcome, ItemError):
            stats.failed += 1
            stats.errors.append({"item": f"{item_type} {item.item_id} ({item.title})", "message": outcome.message})
            runs.append(_run_row(tagger, item, prints[item.item_id], "error", outcome.message, job_id, now))
            continue
        for space, pair in checked:
            by_space.setdefault(space, []).append(pair)
        rows = _tag_rows(tagger, item, outcome.tags, judged.get(item.item_id, set()), now)
        tag_rows += rows
        tagged_ids.append(item.item_id)
        stats.tags += len(rows)
        stats.vectors += len(checked)
        stats.tagged += 1
        runs.append(_run_row(tagger, item, prints[item.item_id], "done", None, job_id, now))
    # Not `with db.conn`: sqlite-utils' insert_all commits an open implicit transaction per chunk.
    with write_transaction(db):
        for chunk in _slices(tagged_ids, 500):
            db.execute(
                "delete from tags where item_type = ? and source = ? and status = 'machine' and via is null "
                f"and item_id in ({','.join('?' * len(chunk))})",
                [item_type, tagger.name, *chunk],
            )
        if tag_rows:
            db["tags"].insert_all(tag_rows, batch_size=500)
        for space, pairs in by_space.items():
            dimensions = pairs[0][1].size
            vectors.ensure_space(db, space, dimensions, tagger.name, getattr(tagger, "model_name", ""))
            vectors.write_vectors(db, space, pairs)
        db["tag_runs"].upsert_all(runs, pk=("tagger", "item_type", "item_id"))


def _slices(values: list, size: int):
    for start in range(0, len(values), size):
        yield values[start : start + size]


# Tags experts decided on, and the machine's words an expert edited away: a machine run writes neither again.
_JUDGED_SQL = """
    select item_id, tag from tags where item_type = ? and source = ? and status != 'machine' and item_id in ({ids})
    union
    select item_id, old_value from tag_history where item_type = ? and source = ? and action = 'edit'
      and item_id in ({ids})
"""


def _judged_tags(db, tagger: str, item_type: str, ids: list[str]) -> dict[str, set[str]]:
    """Per item, the tags of this tagger experts accepted, rejected, added or edited away."""
    judged: dict[str, set[str]] = {}
    for chunk in _slices(ids, 500):
        sql = _JUDGED_SQL.format(ids=",".join("?" * len(chunk)))
        for item_id, text in db.execute(sql, [item_type, tagger, *chunk, item_type, tagger, *chunk]):
            judged.setdefault(str(item_id), set()).add(text.casefold())
    return judged


def _tag_rows(tagger: Tagger, item: Item, tags, judged: set[str], now: str) -> list[dict]:
    rows, seen = [], set()
    for tag in tags:
        text = " ".join(str(tag.text).split())[:200]
        key = text.casefold()
        if not text or key in judged or key in seen:  # experts have the last word on a tag
            continue
        seen.add(key)
        score = float(tag.score) if tag.score is not None and np.isfinite(tag.score) else None
        rows.append(
            {
                "item_type": item.item_type,
                "item_id": item.item_id,
                "tag": text,
                "score": None if score is None else round(min(max(score, 0.0), 1.0), 4),
                "source": tagger.name,
                "source_version": str(tagger.version),
                "status": "machine",
                "evidence": None if tag.evidence is None else str(tag.evidence)[:1000],
                "category": tag_category(tag.category, tagger.tag_category),
                "via": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def _checked_vectors(db, tagger: Tagger, rowid: int | None, found: dict) -> list[tuple[str, tuple[int, np.ndarray]]]:
    """The item's vectors, normalised and checked against their space, or VectorSpaceError saying what is wrong."""
    if not found:
        return []
    if rowid is None:
        raise vectors.VectorSpaceError("the item has no search document yet; run 'scisearch tag' again")
    known = vectors.spaces(db)
    checked = []
    for space, vector in found.items():
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        expected = tagger.vector_spaces.get(space) or (known.get(space) or {}).get("dimensions") or vector.size
        if vector.size != expected:
            raise vectors.VectorSpaceError(f"{tagger.name} gave a {vector.size}-d vector for {space!r}, not {expected}")
        stored = (known.get(space) or {}).get("dimensions")
        if stored and stored != vector.size:
            raise vectors.VectorSpaceError(
                f"vector space {space!r} holds {stored}-d vectors but {tagger.name} gives {vector.size}-d ones; "
                "after changing the model, name a new space or delete the old vectors"
            )
        vectors.table_for(space)  # refuses a bad space name before anything is written
        checked.append((space, (rowid, vectors.normalised(vector))))
    return checked


def _run_row(tagger, item, print_, status, message, job_id, now) -> dict:
    return {
        "tagger": tagger.name,
        "item_type": item.item_type,
        "item_id": item.item_id,
        "tagger_version": str(tagger.version),
        "fingerprint": print_,
        "status": status,
        "message": message,
        "job_id": job_id,
        "ran_at": now,
    }


# How tags flow along the catalog's links: (from type, to type, SQL giving (target id, source id, label)).
_INHERITANCE = [
    ("proposal", "file", "select f.id, f.proposal_id, p.title from files f join proposals p on p.id = f.proposal_id"),
    (
        "proposal",
        "session",
        "select s.id, s.proposal_id, p.title from sessions s join proposals p on p.id = s.proposal_id",
    ),
    ("session", "file", "select f.id, f.session_id, s.start from files f join sessions s on s.id = f.session_id"),
]


def _inherit_tags(db, taggers: list[Tagger]) -> int:
    """Copy inheriting taggers' tags from proposals and sessions to what is linked to them, at a lower score
    and marked "via proposal …".  Recomputed each run, since links change when logs are reloaded, but written
    as a difference: unchanged inherited tags keep their rows (and ids, which experts' edits refer to).
    Returns how many inherited tags were added, changed or removed."""
    changed = 0
    now = now_utc()
    for tagger in taggers:
        wanted = _wanted_inherited_tags(db, tagger)
        existing = {
            (row[1], row[2], row[3], row[4]): (row[0], row[5], row[6], row[7], row[8])
            for row in db.execute(
                "select id, item_type, item_id, tag, via, score, evidence, source_version, category from tags "
                "where source = ? and via is not null and status = 'machine'",
                [tagger.name],
            )
        }
        stale = [found[0] for key, found in existing.items() if key not in wanted]
        new_rows, updates = [], []
        for key, (score, evidence, category) in wanted.items():
            found = existing.get(key)
            if found is None:
                item_type, item_id, tag, via = key
                new_rows.append(
                    {
                        "item_type": item_type,
                        "item_id": item_id,
                        "tag": tag,
                        "score": score,
                        "source": tagger.name,
                        "source_version": str(tagger.version),
                        "status": "machine",
                        "evidence": evidence,
                        "category": category,
                        "via": via,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            elif found[1:] != (score, evidence, str(tagger.version), category):
                updates.append((score, evidence, str(tagger.version), category, now, found[0]))
        with write_transaction(db):
            for chunk in _slices(stale, 500):
                db.execute(f"delete from tags where id in ({','.join('?' * len(chunk))})", chunk)
            db.conn.executemany(
                "update tags set score = ?, evidence = ?, source_version = ?, category = ?, updated_at = ? "
                "where id = ?",
                updates,
            )
            db["tags"].insert_all(new_rows, batch_size=1000)
        changed += len(stale) + len(updates) + len(new_rows)
    return changed


def _wanted_inherited_tags(db, tagger: Tagger) -> dict[tuple, tuple]:
    """(item type, item id, tag, via) -> (score, evidence, category) for every tag the links should pass on now;
    an inherited tag keeps the category its own tagger gave it."""
    wanted: dict[tuple, tuple] = {}
    for from_type, to_type, sql in _INHERITANCE:
        if from_type not in tagger.applies_to:
            continue
        sources: dict[str, list[tuple]] = {}
        for tag, item_id, score, category in db.execute(
            "select tag, item_id, score, category from tags where source = ? and item_type = ? and via is null "
            "and status != 'rejected'",
            [tagger.name, from_type],
        ):
            sources.setdefault(item_id, []).append((tag, score, category))
        judged = {
            (item_id, tag.casefold())
            for item_id, tag in db.execute(
                """select item_id, tag from tags where source = ? and item_type = ? and status != 'machine'
                   union select item_id, old_value from tag_history
                   where source = ? and item_type = ? and action = 'edit'""",
                [tagger.name, to_type, tagger.name, to_type],
            )
        }
        for target_id, source_id, label in db.execute(sql).fetchall():
            for tag, score, category in sources.get(str(source_id), []):
                if (str(target_id), tag.casefold()) in judged:
                    continue
                via = f"{from_type} {source_id}"
                evidence = f"keyword of {via}" + (f": {label}" if label else "")
                inherited = None if score is None else round(score * INHERITED_SCORE_FACTOR, 4)
                wanted.setdefault((to_type, str(target_id), tag, via), (inherited, evidence, category))
    return wanted
