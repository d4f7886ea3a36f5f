"""The search engine: one query over every item type, ranked by text and by meaning.

``search`` parses the query (``query``), turns its filters into SQL
(``filters``), ranks documents by BM25 (``fts``) and by vector similarity in
each space a query can be embedded in (``vector_index``, ``embedding``), and
fuses the rankings by reciprocal rank fusion:

    score(d) = Σ_s  w_s / (k + rank_s(d))

(Cormack, Clarke & Büttcher, SIGIR 2009), with per-stage weights ``w_s`` and
``k`` that can be tuned (benchmarks/scifact.py tunes them).  What searchers
opened for the same query (``click_signals``, learned by ``scisearch learn``)
then moves each found item by at most ``w_clicks / (k + 1)`` — what being
first in a ranking of weight ``w_clicks`` is worth — so clicks re-order what
the words and meaning found but never add an item, and no amount of clicks
outweighs the words.  Exact ids, hashes and file names come first.  A document
found only by meaning must reach a similarity floor that adapts to the query
(``similarity_floor``), so nonsense finds nothing while a query whose nearest
documents are all a little further away still finds them.

``mode`` picks the rankings: ``hybrid`` (all of them), ``keyword`` (the words
alone) or ``vector`` (meaning alone, which always shows the nearest documents).
Weights fitted by ``scisearch learn --ranking`` (``learning/fusion.py``) are read
from the catalog (``learned_weights``) and sit between the defaults and the caller's own.

The web pages and the command line call ``search``; an item's page and
"more like this" are ``detail``'s.  The shapes of the results
(``results``) are the JSON API's.
"""

from __future__ import annotations

import json
import time

import sqlite_utils

from .. import periods
from ..catalog import ITEM_TYPES
from ..config import Settings
from ..learning import pretrain
from ..tagging import vectors
from . import click_signals, embedding, fts, fusion, hits, learned_weights, sorting, vector_index
from .expressions import all_terms, fts_any
from .filters import FilterSql, filter_sql
from .filters import allowed as filters_allowed
from .query import ParsedQuery, QueryError, Term, parse_query
from .results import Candidate, Hit, ItemNotFound, SearchResults

__all__ = ["Hit", "ItemNotFound", "MODES", "QueryError", "SearchResults", "search"]

MAX_PAGE = 1000
MAX_PER_PAGE = 100
# How many documents each ranking contributes; results, counts and facets are computed over this pool
# (a query of filters alone is counted exactly).  Hydrating and faceting the pool is most of a query's time.
FTS_POOL = 500
VECTOR_POOL = 100
# With filters, more neighbours are read before filtering, so a selective filter still leaves some.
FILTERED_VECTOR_POOL = 500

DEFAULT_WEIGHTS = fusion.DEFAULT_WEIGHTS
# Vector spaces a text query can search, and the similarity a document found only by meaning must reach
# (see similarity_floor): the floor, lowered to within a band of the query's best neighbour, never below the
# lowest.  The shipped lowest equals the floor, so hybrid search keeps its fixed floor until `scisearch learn
# --ranking` fits the three to a catalog's evidence; vector mode keeps the nearest whatever the floor (a fixed
# 0.35 left 3 of 300 SciFact claims with nothing although the cited abstract was the nearest).
# facility_image is the catalog's own image model (learning/pretrain.py): a query reaches it through MiniLM and
# the model's learned projection, without any downloaded image weights.
QUERY_SPACES = ("text", "clip", "facility_image")
SIMILARITY_FLOOR = {"text": 0.35, "clip": 0.2, "facility_image": 0.2}
SIMILARITY_BAND = {"text": 0.1, "clip": 0.0, "facility_image": 0.0}
LOWEST_SIMILARITY = {"text": 0.35, "clip": 0.2, "facility_image": 0.2}
# Rankings each search mode leaves out; vector mode shows at least this many nearest documents, whatever the floor.
MODES = {"hybrid": (), "keyword": ("text", "clip", "facility_image"), "vector": ("fts",)}
VECTOR_MODE_NEAREST = 10


def search(
    db: sqlite_utils.Database,
    query: str,
    *,
    item_type: str | None = None,
    page: int = 1,
    per_page: int = 20,
    weights: dict | None = None,
    settings: Settings | None = None,
    hidden_item_types: frozenset[str] = frozenset(),
    hidden_proposals: frozenset[str] = frozenset(),
    mode: str | None = None,
    sort: str | None = None,
) -> SearchResults:
    """Search every item of the catalog; ``item_type`` picks the tab, ``page`` and ``per_page`` the page,
    ``mode`` the rankings (hybrid, keyword, vector), ``sort`` the order (``sorting.SORTS``: relevance by default,
    or date, kv, magnification, highest first).

    ``hidden_item_types`` are item types the reader may not see (a table-level rule of the web layer): for
    this search they are not in the catalog, in hits, counts and facets alike.  ``hidden_proposals`` are
    proposals whose data the reader may not see now (``periods.hidden_proposals``): their files, sessions and
    the proposals themselves are left out the same way.
    """
    started = time.perf_counter()
    page, per_page = _check_paging(page, per_page)
    sort = sorting.check(sort)
    if item_type in ("", "all"):
        item_type = None
    if item_type is not None and item_type not in ITEM_TYPES:
        raise QueryError(f"unknown item type {item_type!r}: use one of {', '.join(ITEM_TYPES)}")
    mode = check_mode(mode)
    weights = mode_weights(mode, {**DEFAULT_WEIGHTS, **ranking_weights(db), **(weights or {})})
    parsed = parse_query(query)
    messages = list(parsed.messages)
    results = SearchResults(query, parsed.filters_json(), item_type, page, per_page, 0, {}, [], {}, messages, 0.0)
    results.sort = sort
    if parsed.is_empty:
        if (query or "").strip():
            messages.append("nothing to search for in that query: type some words or a filter such as type:image")
        return _finish(results, started)
    hidden = frozenset(hidden_item_types) & frozenset(ITEM_TYPES)
    if hidden and (item_type in hidden or (parsed.item_types and parsed.item_types <= hidden)):
        messages.append(f"nothing matched {query.strip()!r}")
        return _finish(results, started)
    parsed.excluded_item_types |= hidden
    if not _has_search_index(db):
        messages.append(
            "this catalog has no search index yet: run 'scisearch tag CATALOG' (or load something) to build it"
        )
        return _finish(results, started)
    filters = filter_sql(parsed)
    if hidden_proposals:
        filters.add(
            f"{periods.ITEM_PROPOSAL} in (select value from json_each(?))",
            [json.dumps(sorted(hidden_proposals))],
            {"f", "se", "pr"},
            negated=True,
        )
    candidates, extra_counts = _rank(db, parsed, filters, weights, settings, messages, results.rankers, mode)
    pool = sorted(candidates.values(), key=lambda c: (-c.score, c.rowid))
    attributes = hits.attributes(db, [c.rowid for c in pool])
    pool = [c for c in pool if c.rowid in attributes]  # a vector may outlive its item by a moment
    if hidden_proposals:  # whichever ranking found them: a hidden proposal's items are not in this search at all
        visible = periods.visible_rowids(db, [c.rowid for c in pool], hidden_proposals)
        pool = [c for c in pool if c.rowid in visible]
    counts: dict[str, int] = {}
    for candidate in pool:
        kind = attributes[candidate.rowid]["item_type"]
        counts[kind] = counts.get(kind, 0) + 1
    for kind, count in extra_counts.items():
        counts[kind] = max(counts.get(kind, 0), count)
    tab = [c for c in pool if item_type is None or attributes[c.rowid]["item_type"] == item_type]
    if sort != "relevance":
        by_rowid = {c.rowid: c for c in tab}
        tab = [by_rowid[rowid] for rowid in sorting.sorted_rowids(db, [c.rowid for c in tab], sort)]
    results.counts = {kind: counts[kind] for kind in ITEM_TYPES if counts.get(kind)}
    results.total = sum(results.counts.values()) if item_type is None else results.counts.get(item_type, 0)
    results.facets = hits.facets(db, [c.rowid for c in tab], results.counts)
    first = (page - 1) * per_page
    if tab and first >= len(tab):
        last_page = (len(tab) - 1) // per_page + 1
        messages.append(f"page {page} is past the last page of results ({last_page})")
    shown = tab[first : first + per_page]
    results.hits = hits.hydrate(db, parsed, shown, attributes, _highlight_expression(parsed))
    hits.without_hidden_proposals(results.hits, hidden_proposals)
    _say_why_clicks(results.hits, candidates)
    if not pool:
        messages.append(f"nothing matched {query.strip()!r}")
    return _finish(results, started)


def check_mode(mode: str | None) -> str:
    """The search mode, checked: hybrid when none is given."""
    mode = (mode or "hybrid").strip().lower()
    if mode not in MODES:
        raise QueryError(f"unknown search mode {mode[:40]!r}: use one of {', '.join(MODES)}")
    return mode


def mode_weights(mode: str, weights: dict) -> dict:
    """The fusion weights with the rankings this mode leaves out set to zero."""
    return {**weights, **{stage: 0.0 for stage in MODES[check_mode(mode)]}}


def ranking_weights(db: sqlite_utils.Database) -> dict:
    """The fusion weights and floors ``scisearch learn --ranking`` fitted for this catalog (empty if none)."""
    return learned_weights.current_weights(db)


def _finish(results: SearchResults, started: float) -> SearchResults:
    results.took_ms = round((time.perf_counter() - started) * 1000, 2)
    return results


def _check_paging(page, per_page) -> tuple[int, int]:
    try:
        page, per_page = int(page), int(per_page)
    except (TypeError, ValueError):
        raise QueryError("page and per_page must be whole numbers") from None
    if not 1 <= page <= MAX_PAGE:
        raise QueryError(f"page must be between 1 and {MAX_PAGE} (got {page})")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise QueryError(f"per_page must be between 1 and {MAX_PER_PAGE} (got {per_page})")
    return page, per_page


def _has_search_index(db: sqlite_utils.Database) -> bool:
    return "search_items" in db.table_names() and db.execute("select 1 from search_items limit 1").fetchone()


def _highlight_expression(parsed: ParsedQuery) -> str:
    terms = all_terms(parsed.clauses)
    for number_filter in parsed.numbers:
        if number_filter.soft:
            terms += [Term(p, "phrase") for p in number_filter.phrase_alternatives]
    return fts_any(terms)


# -- Ranking -----------------------------------------------------------------------------------------


def _rank(
    db, parsed: ParsedQuery, filters: FilterSql, weights: dict, settings, messages, rankers, mode
) -> tuple[dict, dict]:
    """The pool of candidates with each ranking's rank and raw score and their fused score, and exact per-type
    counts for a query of filters alone that has more results than the pool; ``rankers`` is told what made
    each ranking's raw scores."""
    candidates: dict[int, Candidate] = {}
    extra_counts: dict[str, int] = {}

    def add(rowid: int, stage: str, rank: int, raw_score: float | None = None) -> Candidate:
        candidate = candidates.setdefault(rowid, Candidate(rowid))
        candidate.ranks[stage] = rank
        if raw_score is not None:
            candidate.scores[stage] = raw_score
        return candidate

    for position, (rowid, reason) in enumerate(hits.exact_matches(db, parsed, filters)):
        candidate = candidates.setdefault(rowid, Candidate(rowid))
        candidate.exact, candidate.exact_position = reason, position
    if not parsed.has_terms:
        for rank, rowid in enumerate(hits.by_date(db, filters, FTS_POOL), start=1):
            add(rowid, "date", rank)
        if len(candidates) >= FTS_POOL:
            extra_counts = hits.count_by_type(db, filters)
            total = sum(extra_counts.values())
            messages.append(f"showing the newest {FTS_POOL:,} of the {total:,} items these filters allow")
        _fuse(candidates, weights)
        return candidates, extra_counts
    if weights["fts"] > 0:
        found = fts.search(db, parsed.clauses, filters, weights, FTS_POOL)
        rankers["fts"] = f"{found.ranker} bm25"
        for rank, rowid in enumerate(found.ranked, start=1):
            add(rowid, "fts", rank, found.scores.get(rowid))
        if found.mode == "any" and found.ranked and len(parsed.clauses) <= fts.KEYWORD_CLAUSES:
            messages.append("no item has all of the words; these have some of them")
        if len(found.ranked) >= FTS_POOL or not found.complete:
            # Counting every match by type would cost as much as ranking them; the plain count is cheap.
            if filters.is_empty:
                matches = found.matches if found.matches is not None else fts.count(db, found.expression)
                messages.append(f"showing the best {FTS_POOL:,} of the {matches:,} items that match the words")
            else:
                messages.append(f"showing the best {FTS_POOL:,} of the items that match; there are more")
    _rank_by_vectors(db, parsed, filters, weights, settings, messages, add, rankers, mode)
    _boost_by_clicks(db, parsed, weights, candidates)
    _fuse(candidates, weights)
    return candidates, extra_counts


def _fuse(candidates: dict[int, Candidate], weights: dict) -> None:
    for candidate in candidates.values():
        candidate.score = fusion.score(candidate.ranks, weights, candidate.click_boost, candidate.exact_position)


def _boost_by_clicks(db, parsed: ParsedQuery, weights: dict, candidates: dict[int, Candidate]) -> None:
    """Note what was learned from clicks on this query for the items the rankings found (never new ones)."""
    if float(weights.get("clicks", 0)) <= 0:
        return
    for rowid, boost in click_signals.boosts(db, click_signals.query_key(parsed)).items():
        candidate = candidates.get(rowid)
        if candidate is not None and candidate.exact is None:
            candidate.click_boost = boost


def _say_why_clicks(shown: list[Hit], candidates: dict[int, Candidate]) -> None:
    for hit in shown:
        if candidates[hit.rowid].click_boost > 0:
            hit.why.append("often opened for this search")


def similarity_floor(similarities: list[float], space: str, weights: dict, mode: str) -> float:
    """The similarity a document found only by meaning must reach for this query, given its neighbours'
    similarities, nearest first.  The floor comes down to within a band of the nearest neighbour, so a query
    whose documents are all a little further (a long, specific claim) still finds its nearest, but never
    below the lowest, so nonsense finds nothing.  In vector mode meaning is all there is: the nearest
    ``VECTOR_MODE_NEAREST`` are always kept."""
    floor = float(weights.get(f"{space}_floor", SIMILARITY_FLOOR.get(space, 0.0)))
    lowest = min(floor, float(weights.get(f"{space}_lowest", LOWEST_SIMILARITY.get(space, floor))))
    band = float(weights.get(f"{space}_band", SIMILARITY_BAND.get(space, 0.0)))
    if not similarities:
        return floor
    adapted = max(lowest, min(floor, similarities[0] - band))
    if mode == "vector":
        return min(adapted, similarities[min(len(similarities), VECTOR_MODE_NEAREST) - 1])
    return adapted


def _rank_by_vectors(db, parsed, filters: FilterSql, weights, settings, messages, add, rankers, mode) -> None:
    spaces = vectors.spaces(db)
    text = parsed.semantic_text
    if not text:
        return
    if mode == "vector" and not spaces:
        messages.append("vector search needs vectors and this catalog has none yet: run 'scisearch tag CATALOG'")
    elif "text" not in spaces and weights.get("text", 0) > 0:
        messages.append("no text vectors yet: ranked by text match only")
    for space in QUERY_SPACES:
        weight = float(weights.get(space, 0))
        if space not in spaces or weight <= 0:
            continue
        matrix = vector_index.space_matrix(db, space)
        if matrix is None or not len(matrix):
            if space == "text":
                messages.append("no text vectors yet: ranked by text match only")
            continue
        if space == pretrain.SPACE:  # the model lives in the catalog, not among the installed taggers
            vector, problem = pretrain.embed_query(db, text)
        else:
            tagger, pinned = spaces[space]["tagger"], spaces[space].get("model_path")
            vector, problem = embedding.embed_query(text, space, tagger, settings, pinned)
        if vector is None:
            if problem:
                messages.append(f"{space} vectors not used: {problem}")
            continue
        pool = FILTERED_VECTOR_POOL if not filters.is_empty else VECTOR_POOL
        try:
            neighbours = matrix.nearest(vector, pool)
        except ValueError as error:
            messages.append(f"{space} vectors not used: {error}")
            continue
        floor = similarity_floor([similarity for _, similarity in neighbours], space, weights, mode)
        neighbours = [(rowid, similarity) for rowid, similarity in neighbours if similarity >= floor]
        if not filters.is_empty and neighbours:
            mentioned = fts.mention_check(db, filters, weights)
            allowed = filters_allowed(db, [rowid for rowid, _ in neighbours], filters, mentioned)
            neighbours = [(rowid, s) for rowid, s in neighbours if rowid in allowed]
        rankers[space] = spaces[space]["tagger"]
        for rank, (rowid, similarity) in enumerate(neighbours[:VECTOR_POOL], start=1):
            add(rowid, space, rank, similarity)
