"""What a search finds, in the shapes the pages, the command line and the JSON API share.

The engine (``engine``), the hits it hydrates (``hits``), an item's page
(``detail``) and several catalogs searched as one (``federation``) all depend
on this module and on nothing of each other's for these shapes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import NOT_FOUND, ScisearchError


@dataclass
class Hit:
    item_type: str
    item_id: str
    rowid: int
    title: str
    snippet: str
    score: float
    why: list[str] = field(default_factory=list)
    matched_tags: list[dict] = field(default_factory=list)
    proposal: dict | None = None
    facts: dict = field(default_factory=dict)
    ranks: dict = field(default_factory=dict)
    # Each ranking's raw score: BM25 for "fts", cosine similarity for "text" and "clip" (none for "date").
    scores: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResults:
    query: str
    filters: dict
    item_type: str | None
    page: int
    per_page: int
    total: int
    counts: dict
    hits: list[Hit]
    facets: dict
    messages: list[str]
    took_ms: float
    # What made each ranking's raw scores ("tantivy bm25", "fts5 bm25", a vector space's tagger): raw scores
    # of two catalogs compare only where one ranker made both.
    rankers: dict = field(default_factory=dict)
    # The order of the hits: "relevance", or a column they were sorted by (search/sorting.py).
    sort: str = "relevance"

    def as_dict(self) -> dict:
        return asdict(self)


class ItemNotFound(ScisearchError, LookupError):
    """No such item in this catalog (→ HTTP 404)."""

    kind = NOT_FOUND


@dataclass
class Candidate:
    """A document some ranking found, before it is hydrated into a Hit: its fused score and what made it.

    ``scores`` holds each ranking's raw score (BM25 for ``fts``, cosine similarity for a vector space), so a
    caller that merges rankings from several catalogs compares those, not scores recomputed."""

    rowid: int
    score: float = 0.0
    ranks: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    exact: str | None = None
    exact_position: int | None = None
    click_boost: float = 0.0

    @property
    def similarities(self) -> dict:
        """Cosine similarity to the query in each vector space that found it, rounded as the pages show it."""
        return {space: round(score, 4) for space, score in self.scores.items() if space not in ("fts", "date")}
