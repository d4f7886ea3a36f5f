"""Learned fusion: the weights between the rankings and the similarity floors, fitted from the catalog's evidence.

The engine fuses BM25 and vector rankings by weighted reciprocal rank fusion
(``search/engine.py``) with constants chosen once on SciFact.  Here they are
fitted to this catalog's own evidence (``evidence.py``: judgments, clicks,
experts' tags, papers and the proposals they acknowledge) by cross-validation:

1. each query's raw rankings are read once — the words' ranking (``fts.search``)
   and the nearest neighbours with their similarities (``vector_index``), the
   same readers the engine uses;
2. coordinate ascent over a small grid (RRF k, the text vectors' weight, the
   similarity floor, its band and the lowest it may go) maximises mean nDCG@10 on K−1 folds, replaying
   the engine's floor and its fusion (``search/fusion.py``) over the cached rankings (``_replayed``),
   which costs microseconds where a search costs milliseconds;
3. the weights fitted without each fold are measured on that fold **through the
   engine** (``engine.search(weights=...)``), against the weights in use on the
   same queries.  Those engine figures decide: weights that do not measure better
   are recorded as refused, with the reason, and change nothing.

Only the weights between rankings and the floors are fitted.  BM25's column weights
(title, tags, context …) stay as shipped: the pages' rule that an item's own tags
outweigh what it inherits from its proposal (``context``) rests on them.  The click
weight is not fitted either: click evidence would teach it to trust the very clicks
it is measured on.  Fitted weights are stored versioned in ``ranking_models`` in the
catalog; the engine reads the current ones (``current_weights``).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import sqlite_utils

from ..catalog import now_utc, write_transaction
from ..errors import ScisearchError
from ..search.learned_weights import FITTED, current_weights
from .evidence import ENCODER_HELD_OUT_SHARE, Evidence, counts, gather, kept_from_encoder

FOLDS = 5
# The weights fitted, and the values coordinate ascent tries for each.  fts stays 1: only ratios matter.
GRID = {
    "rrf_k": [1.0, 2.0, 5.0, 10.0, 20.0, 60.0],
    "text": [0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0],
    "text_floor": [0.2, 0.25, 0.3, 0.35, 0.4, 0.45],
    "text_band": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3],
    "text_lowest": [0.15, 0.2, 0.25, 0.3, 0.35, 0.4],
}
ROUNDS = 3
DEPTH = 100
MIN_EVIDENCE = 10  # fewer queries than this cannot be split into folds that say anything


class FusionError(ScisearchError):
    """Nothing to learn from, or nothing to roll back."""


@dataclass
class FusionReport:
    evidence: dict
    queries: int
    folds: int
    weights_in_use: dict
    fitted: dict
    ndcg_in_use: float  # cross-validated, measured through the engine
    ndcg_fitted: float
    recall_in_use: float
    recall_fitted: float
    seconds: float
    accepted: bool
    reason: str
    version: int | None = None
    per_source: dict = field(default_factory=dict)
    unseen_by_encoder_only: bool = False  # fitted to the queries a tuned text encoder in use never trained on

    def as_dict(self) -> dict:
        return asdict(self)


def _tuned_encoder_in_use(db: sqlite_utils.Database) -> bool:
    from .encoder_switch import BASE_VERSION, current_version

    return current_version(db, "text") != BASE_VERSION


# -- Reading and storing ------------------------------------------------------------------------------------


def shipped_weights() -> dict:
    """The engine's own weights and text floors, before any fitting."""
    from ..search import engine

    floors = {
        "text_floor": engine.SIMILARITY_FLOOR["text"],
        "text_band": engine.SIMILARITY_BAND["text"],
        "text_lowest": engine.LOWEST_SIMILARITY["text"],
    }
    return {**engine.DEFAULT_WEIGHTS, **floors}


def _store(db: sqlite_utils.Database, report: FusionReport) -> int:
    with write_transaction(db):  # the version is read under the write lock: two fits at once get two versions
        version = (db.execute("select max(version) from ranking_models where kind = 'fusion'").fetchone()[0] or 0) + 1
        if report.accepted:
            db.execute("update ranking_models set status = 'retired' where kind = 'fusion' and status = 'current'")
        db["ranking_models"].insert(
            {
                "kind": "fusion",
                "version": version,
                "weights": json.dumps(report.fitted, sort_keys=True),
                "evidence": json.dumps(report.evidence, sort_keys=True),
                "report": json.dumps(report.as_dict(), sort_keys=True),
                "ndcg_before": report.ndcg_in_use,
                "ndcg_after": report.ndcg_fitted,
                "status": "current" if report.accepted else "refused",
                "created_at": now_utc(),
            }
        )
    return version


def rollback(db: sqlite_utils.Database) -> int | None:
    """Retire the current fitted weights and bring back the ones before them (None: back to the defaults).
    Returns the version now in use."""
    rows = db.execute(
        "select id, version, status from ranking_models where kind = 'fusion' and status in ('current', 'retired') "
        "order by version desc"
    ).fetchall()
    current = next((row for row in rows if row[2] == "current"), None)
    if current is None:
        raise FusionError(
            "no fitted weights are in use: search already uses the shipped defaults",
            fix="'scisearch learn CATALOG --ranking' fits them",
        )
    previous = next((row for row in rows if row[2] == "retired" and row[1] < current[1]), None)
    with write_transaction(db):
        db.execute("update ranking_models set status = 'rolled back' where id = ?", [current[0]])
        if previous is not None:
            db.execute("update ranking_models set status = 'current' where id = ?", [previous[0]])
    return previous[1] if previous else None


# -- Fitting -------------------------------------------------------------------------------------------------


@dataclass
class _Rankings:
    """One query's raw rankings: rowids best first, the vectors' with their similarities."""

    relevant: set[int]
    words: list[int]
    nearest: list[tuple[int, float]]


def learn_fusion(
    db: sqlite_utils.Database,
    *,
    settings=None,
    folds: int = FOLDS,
    store: bool = True,
    evidence: list[Evidence] | None = None,
    progress=None,
) -> FusionReport:
    """Fit the fusion weights to the evidence by cross-validation, and keep them if they measure better."""
    started = time.perf_counter()
    evidence = gather(db) if evidence is None else evidence
    unseen_only = _tuned_encoder_in_use(db)
    if unseen_only:  # the queries the encoder learned would overrate its vectors (evidence.kept_from_encoder)
        evidence = [piece for piece in evidence if kept_from_encoder(piece)]
    rowids = _rowids(db, evidence)
    usable = [piece for piece in evidence if any(item in rowids for item in piece.relevant)]
    if len(usable) < MIN_EVIDENCE:
        among = " that the tuned text encoder never trained on" if unseen_only else ""
        raise FusionError(
            f"{len(usable)} queries with an answer in the catalog{among}; fitting the ranking needs at least "
            f"{MIN_EVIDENCE}",
            fix="import judged queries (scisearch load judgments CATALOG FILE) or let people search a while",
        )
    in_use = {**shipped_weights(), **current_weights(db)}
    rankings = [_rankings(db, piece, rowids, settings) for piece in _tick(usable, progress, "reading rankings")]
    # By the key's hash with the encoder's one-in-five taken out first: the queries kept from the encoder all share
    # that remainder, and fitted to them alone, folds by the bare hash put every one in the same fold.
    fold_of = [int(piece.key, 16) // ENCODER_HELD_OUT_SHARE % folds for piece in usable]
    ndcg_used, ndcg_fit, recall_used, recall_fit, per_source = [], [], [], [], {}
    for fold in range(folds):
        training = [r for r, f in zip(rankings, fold_of) if f != fold]
        fitted = _coordinate_ascent(training, in_use)
        for piece, ranking, f in zip(usable, rankings, fold_of):
            if f != fold:
                continue
            before = _measured(db, piece.query, ranking.relevant, in_use, settings)
            after = _measured(db, piece.query, ranking.relevant, {**in_use, **fitted}, settings)
            ndcg_used.append(before[0])
            ndcg_fit.append(after[0])
            recall_used.append(before[1])
            recall_fit.append(after[1])
            gained = per_source.setdefault(piece.source, [0, 0.0, 0.0])
            gained[0] += 1
            gained[1] += before[0]
            gained[2] += after[0]
        if progress:
            progress(f"fold {fold + 1}/{folds}: fitted {fitted}")
    fitted = _coordinate_ascent(rankings, in_use)
    before, after = statistics.mean(ndcg_used), statistics.mean(ndcg_fit)
    accepted = after > before
    if accepted:
        reason = f"cross-validated nDCG@10 {after:.4f} against {before:.4f} with the weights in use"
    else:
        reason = (
            f"refused: the fitted weights measured nDCG@10 {after:.4f} on held-out folds, not better than "
            f"{before:.4f} with the weights in use, which stay"
        )
    report = FusionReport(
        evidence=counts(usable),
        queries=len(usable),
        folds=folds,
        weights_in_use={name: in_use[name] for name in FITTED},
        fitted=fitted,
        ndcg_in_use=round(before, 4),
        ndcg_fitted=round(after, 4),
        recall_in_use=round(statistics.mean(recall_used), 4),
        recall_fitted=round(statistics.mean(recall_fit), 4),
        seconds=0.0,
        accepted=accepted,
        reason=reason,
        unseen_by_encoder_only=unseen_only,
        per_source={
            source: {"queries": n, "ndcg_in_use": round(b / n, 4), "ndcg_fitted": round(a / n, 4)}
            for source, (n, b, a) in per_source.items()
        },
    )
    report.seconds = round(time.perf_counter() - started, 1)
    if store:
        report.version = _store(db, report)
    return report


def _tick(items, progress, label):
    for number, item in enumerate(items, start=1):
        if progress and number % 100 == 0:
            progress(f"{label}: {number}/{len(items)}")
        yield item


def _rowids(db, evidence: list[Evidence]) -> dict[tuple[str, str], int]:
    wanted = {item for piece in evidence for item in piece.relevant}
    found = {}
    for item_type, item_id, rowid in db.execute("select item_type, item_id, id from search_items"):
        if (item_type, str(item_id)) in wanted:
            found[(item_type, str(item_id))] = rowid
    return found


def _rankings(db, piece: Evidence, rowids: dict, settings) -> _Rankings:
    from ..search import embedding, engine, fts, vector_index
    from ..search.filters import filter_sql
    from ..search.query import parse_query
    from ..tagging import vectors

    parsed = parse_query(piece.query)
    relevant = {rowids[item] for item in piece.relevant if item in rowids}
    words = []
    if parsed.has_terms:
        words = fts.search(db, parsed.clauses, filter_sql(parsed), engine.DEFAULT_WEIGHTS, DEPTH).ranked[:DEPTH]
    nearest = []
    spaces = vectors.spaces(db)
    if parsed.semantic_text and "text" in spaces:
        vector, _ = embedding.embed_query(
            parsed.semantic_text, "text", spaces["text"]["tagger"], settings, spaces["text"].get("model_path")
        )
        matrix = vector_index.space_matrix(db, "text")
        if vector is not None and matrix is not None and len(matrix):
            nearest = matrix.nearest(vector, engine.VECTOR_POOL)
    return _Rankings(relevant, list(words), [(int(r), float(s)) for r, s in nearest])


def _replayed(ranking: _Rankings, weights: dict) -> list[int]:
    """The engine's order for these cached rankings: its floor (``similarity_floor``) and its fusion
    (``search/fusion.py``).  Used for the search over the grid only: what is kept is measured through the
    engine itself."""
    from ..search import fusion as engine_fusion
    from ..search.engine import similarity_floor

    ranks: dict[int, dict[str, int]] = {}
    for rank, rowid in enumerate(ranking.words, start=1):
        ranks.setdefault(rowid, {})["fts"] = rank
    floor = similarity_floor([s for _, s in ranking.nearest], "text", weights, "hybrid")
    kept = [rowid for rowid, similarity in ranking.nearest if similarity >= floor]
    for rank, rowid in enumerate(kept, start=1):
        ranks.setdefault(rowid, {})["text"] = rank
    scores = {rowid: engine_fusion.rankings_score(places, weights) for rowid, places in ranks.items()}
    return [rowid for rowid, _ in sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))]


def _mean_ndcg(rankings: list[_Rankings], weights: dict) -> float:
    return float(np.mean([ndcg_at_10(_replayed(r, weights), r.relevant) for r in rankings]))


def _coordinate_ascent(rankings: list[_Rankings], start: dict) -> dict:
    """Each fitted weight in turn set to the grid value that scores best with the others held, for a few rounds."""
    weights = {name: float(value) for name, value in start.items()}
    best = _mean_ndcg(rankings, weights)
    for _ in range(ROUNDS):
        moved = False
        for name in FITTED:
            for value in GRID[name]:
                trial = {**weights, name: value}
                score = _mean_ndcg(rankings, trial)
                if score > best + 1e-9:
                    weights, best, moved = trial, score, True
        if not moved:
            break
    return {name: weights[name] for name in FITTED}


def _measured(db, query: str, relevant: set[int], weights: dict, settings) -> tuple[float, float]:
    """nDCG@10 and recall@100 of one query through the engine itself, with these weights."""
    from ..search import engine

    try:
        results = engine.search(db, query, per_page=engine.MAX_PER_PAGE, weights=weights, settings=settings)
    except engine.QueryError:
        return 0.0, 0.0
    ranked = [hit.rowid for hit in results.hits]
    return ndcg_at_10(ranked, relevant), recall_at(ranked, relevant, DEPTH)


def ndcg_at_10(ranked: list, relevant: set) -> float:
    """Binary-relevance nDCG@10 (Järvelin & Kekäläinen 2002), as BEIR reports it."""
    if not relevant:
        return 0.0
    gain = sum(1 / math.log2(i + 2) for i, item in enumerate(ranked[:10]) if item in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return gain / ideal


def recall_at(ranked: list, relevant: set, depth: int) -> float:
    return len(set(ranked[:depth]) & relevant) / len(relevant) if relevant else 0.0
