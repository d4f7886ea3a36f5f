"""Fusion: how the rankings of one query become one order.  The only place that turns ranks into scores.

Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009):

    score(d) = Σ_s  w_s / (k + rank_s(d))

over the rankings ``s`` that found ``d`` — BM25 (``fts``), each vector space a
query is embedded in (``text``, ``clip``), or for a query of filters alone the
items' dates (``date``) — with weights ``w_s`` and ``k`` that can be tuned
(benchmarks/scifact.py tunes them; the learned-ranking work tunes them from
clicks).  Then:

- what searchers opened for the same query moves an item by at most
  ``w_clicks / (k + 1)`` (``click_share``): clicks re-order what the words and
  meaning found, never add an item, and no amount of them outweighs the words;
- items the query names exactly (an id, a hash, a file name) score above any
  fusion (``EXACT_SCORE``), in the order they were named.

The engine keeps each ranking's raw score beside its rank (BM25, cosine
similarity: ``Candidate.scores``, ``Hit.scores``), so a caller that merges the
rankings of several catalogs (federation) fuses their ranks again here with
ranks counted over all of them, comparing those raw scores rather than asking
the rankers again.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_WEIGHTS = {
    # Reciprocal rank fusion: one weight per ranking, and k.  Chosen on half of SciFact's training claims
    # (benchmarks/scifact.py): a small k lets each ranking's first few results lead, and the vectors weigh a
    # little less than the words, so a tie goes to the document that has them.  CLIP is weighed like the
    # text vectors, untuned (no checkpoint to tune it with here).
    "fts": 1.0,
    "text": 0.8,
    "clip": 0.8,
    # The facility's own image model (learning/pretrain.py), weighed like CLIP, whose place it takes without weights.
    "facility_image": 0.8,
    # A query of filters alone is one ranking, newest first.
    "date": 1.0,
    # Learned from clicks: a boost in [-0.5, 0.5] (learning/clicks.py) times this weight, over k + 1.  At 1.0 the
    # largest boost is worth half a first place in the words' ranking; chosen with benchmarks/clicks.py.
    "clicks": 1.0,
    "rrf_k": 1.0,
    # BM25 weight of each full-text column
    "title": 2.0,
    "body": 1.0,
    "tags": 2.0,
    "context": 0.5,
}
RANKINGS = ("fts", "text", "clip", "facility_image", "date")
EXACT_SCORE = 1000.0


def rank_share(stage: str, rank: int, weights: Mapping) -> float:
    """What being ``rank``-th (from 1) in ranking ``stage`` is worth."""
    weight = float(weights.get(stage, 0))
    return weight / (float(weights["rrf_k"]) + rank) if weight > 0 else 0.0


def rankings_score(ranks: Mapping[str, int | None], weights: Mapping) -> float:
    """The fused score of an item's places in the rankings (stage -> rank; None or absent: not found there)."""
    return sum(rank_share(stage, rank, weights) for stage, rank in ranks.items() if rank is not None)


def click_share(boost: float, weights: Mapping) -> float:
    """A learned click boost in [-0.5, 0.5] as a share of the fused score."""
    return float(weights.get("clicks", 0)) * boost / (float(weights["rrf_k"]) + 1)


def exact_share(position: int) -> float:
    """The ``position``-th item the query names exactly (from 0) comes before every fused score."""
    return EXACT_SCORE - position


def score(
    ranks: Mapping[str, int], weights: Mapping, click_boost: float = 0.0, exact_position: int | None = None
) -> float:
    """An item's whole score: exact naming, then its rankings, then clicks (which never apply to exact items)."""
    if exact_position is not None:
        return exact_share(exact_position) + rankings_score(ranks, weights)
    return rankings_score(ranks, weights) + click_share(click_boost, weights)
