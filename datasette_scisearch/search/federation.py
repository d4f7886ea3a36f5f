"""Several catalogs searched as one: the engine runs on each, and their answers merge into one ranked list.

A facility keeps a catalog per instrument, site or year; Datasette serves them
together and a researcher searches them at once.  ``search_catalogs`` (and
``search_catalogs_async`` for the web pages, which reach each catalog through
Datasette's connections) runs ``engine.search`` on every chosen catalog and
merges what comes back: one ranked list, paged across catalogs, with summed
per-type counts and facets and a ``catalog`` facet.  ``catalog:NAME`` in the
query (``-catalog:NAME`` to leave one out) picks catalogs by their database
name.  With one catalog the engine's answer is returned as it is.

How the lists are merged, and why
---------------------------------
The engine fuses its rankings by reciprocal rank fusion, ``Σ w / (k + rank)``,
with ranks counted within each catalog, so the fused scores of two catalogs do
not compare: every catalog's best match scores alike, however well it matches.
Merging by them hands first place to whichever catalog is listed first.  So
the merge fuses again, with ranks counted over all catalogs, as one catalog of
everything would:

- **vector rankings** (MiniLM text, CLIP) compare exactly: a cosine similarity
  means the same in every catalog whose vectors the same tagger made.  Each
  hit's similarity to the query comes with it from the engine, and the hits
  the vectors found are ranked together by it;
- **the text ranking** compares less well: BM25's word weights come from each
  catalog's own counts (a word in most of one catalog's documents weighs next
  to nothing there and much in another).  The engine reports each hit's raw
  BM25 and cosine scores beside its ranks (``Hit.scores``) and what made them
  (``SearchResults.rankers``), so nothing is scored again here.  Hits are
  interleaved by their place in their own catalog's text ranking (every
  catalog's 2nd before any catalog's 3rd), and equal places are ordered by BM25
  score, then text-vector similarity, then catalog order.  Ranking the text
  matches by BM25 alone kept less of the one catalog's ranking than this
  (benchmarks/catalogs.py); interleaving also keeps a small catalog's best text
  match from being buried under a large catalog's hundredth;
- what the engine added beyond its rankings stays with each hit: exact ids and
  names (scored above any fusion, so still first) and boosts learned from clicks;
- a query of filters alone, which each catalog lists newest first, is merged
  newest first by the items' own times.

The merged ranks are counted among the hits fetched from each catalog (its best
hundred, more for deep pages), not over each catalog's whole pool, so deep in
the list they are approximate.  A merged hit's ``score`` is this second fusion's; its
``ranks`` stay those in its own catalog.  ``benchmarks/catalogs.py`` measures
what the merge keeps of one catalog's ranking: on 10,000 items split in four,
merging by the catalogs' own fused scores kept 0.71 of the top 10 and the first
result in 12 % of queries; fusing again keeps 0.78 and 42 % (by BM25 alone:
0.60 and 42 %).

Paging: an item on page ``p`` of the merged list is within the first
``p × per_page`` results of its own catalog, so each catalog is asked for that
many, rounded up to whole engine pages of ``MAX_PER_PAGE`` (100), and the
merged list is cut.  The rounding matters: the merged order depends on the
depth asked, and with one depth for every page up to the hundredth result,
paging never repeats or skips a hit there (past it, a hit can move across the
edge of a hundred).  Deep pages cost more engine calls; each catalog's pool is
bounded, so this ends.

Counts are summed; a facet value's count is summed over the catalogs whose
facet lists it (each catalog names its top ``hits.FACET_SIZE`` values, so a
value rare everywhere can be undercounted).  ``messages`` that every catalog
gives appear once; others are prefixed with the catalog's name.

Which catalogs can be searched: ``schema_problem`` says why a served catalog's
schema (older or newer than this code) keeps it out of search; paths that are
no catalog at all are refused by ``catalog.open_catalog``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields

import sqlite_utils

from ..catalog import CURRENT_SCHEMA_VERSION, catalog_schema_version
from . import engine, fusion, sorting
from .hits import FACET_SIZE, RANK_KEYS, TAG_FACET_BREADTH
from .query import QueryError, parse_query

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "CatalogAnswer",
    "CatalogHit",
    "FederatedResults",
    "catalog_answer",
    "schema_problem",
    "search_catalogs",
    "search_catalogs_async",
]

# The engine adds 1000 to items the query names exactly; no fused score comes near it.
_EXACT_SCORE = 100.0
_NOTHING_MATCHED = "nothing matched "
# The rankings the merge fuses again, by their weight's name (hits' ``ranks`` use RANK_KEYS' names).
_STAGES = ("fts", *engine.QUERY_SPACES)


@dataclass
class CatalogHit(engine.Hit):
    """A hit and the catalog (Datasette database name) it comes from."""

    database: str = ""

    @classmethod
    def of(cls, hit: engine.Hit, database: str, **changes) -> CatalogHit:
        """The hit marked with its catalog; a hit of a kind of CatalogHit (another facility's, search/hub.py)
        stays that kind, with what it carries."""
        kind = type(hit) if isinstance(hit, cls) else cls
        values = {f.name: getattr(hit, f.name) for f in fields(hit)}
        return kind(**(values | changes | {"database": database}))


@dataclass
class FederatedResults(engine.SearchResults):
    """The engine's answer over several catalogs; ``catalogs`` are those searched, in order."""

    catalogs: list[str] = field(default_factory=list)


@dataclass
class CatalogAnswer:
    """One engine page of one catalog, with what the merge compares across catalogs: each hit's raw score in
    each ranking that found it (BM25 for ``fts``, cosine similarity for a vector space; by rowid), and what made
    each ranking's scores (the text ranker, the tagger of the vectors)."""

    results: engine.SearchResults
    scores: dict[int, dict[str, float]] = field(default_factory=dict)
    makers: dict[str, str] = field(default_factory=dict)


def catalog_answer(
    db: sqlite_utils.Database, query: str, *, weights: dict | None = None, settings=None, **options
) -> CatalogAnswer:
    """``engine.search`` on one catalog (the same options), with its hits' raw scores and their makers, which the
    engine reports beside the ranks (nothing is scored again here)."""
    results = engine.search(db, query, weights=weights, settings=settings, **options)
    answer = CatalogAnswer(results, makers=dict(results.rankers))
    for hit in results.hits:
        if hit.scores:
            answer.scores[hit.rowid] = dict(hit.scores)
    return answer


# A catalog's ``catalog_answer`` as the web pages reach it: (query, **options) -> CatalogAnswer, awaited.
AsyncEngine = Callable[..., Awaitable[CatalogAnswer]]


def search_catalogs(
    catalogs: dict[str, sqlite_utils.Database],
    query: str,
    *,
    item_type: str | None = None,
    page: int = 1,
    per_page: int = 20,
    weights: dict | None = None,
    settings=None,
    served: int | None = None,
    mode: str | None = None,
    sort: str | None = None,
) -> FederatedResults:
    """Search these catalogs (name -> open catalog) as one; ``served`` is how many the researcher could
    have searched (the catalog facet is given when more than one); ``mode`` as the engine's."""
    started = time.perf_counter()
    plan = _plan(list(catalogs), query, item_type, page, per_page, served, weights, mode, sort)
    options = {"item_type": item_type, "weights": weights, "settings": settings, "mode": mode, "sort": plan.sort}
    answers = {}
    for name in plan.chosen:
        answers[name] = []
        for engine_page, engine_per_page in plan.engine_pages:
            answer = catalog_answer(catalogs[name], query, page=engine_page, per_page=engine_per_page, **options)
            answers[name].append(answer)
            if _exhausted(answer.results):
                break
    return _merge(plan, answers, started)


async def search_catalogs_async(
    engines: dict[str, AsyncEngine],
    query: str,
    *,
    item_type: str | None = None,
    page: int = 1,
    per_page: int = 20,
    served: int | None = None,
    mode: str | None = None,
    sort: str | None = None,
) -> FederatedResults:
    """As ``search_catalogs``, with each catalog's ``catalog_answer`` an awaitable (name -> (query, **options)
    -> CatalogAnswer, with the engine's default weights); the catalogs are searched concurrently."""
    started = time.perf_counter()
    plan = _plan(list(engines), query, item_type, page, per_page, served, None, mode, sort)

    async def ask(name: str) -> list[CatalogAnswer]:
        found = []
        for engine_page, engine_per_page in plan.engine_pages:
            options = {"item_type": item_type, "page": engine_page, "per_page": engine_per_page}
            answer = await engines[name](query, **options, mode=mode, sort=plan.sort)
            found.append(answer)
            if _exhausted(answer.results):
                break
        return found

    answered = await asyncio.gather(*(ask(name) for name in plan.chosen))
    return _merge(plan, dict(zip(plan.chosen, answered)), started)


# -- Planning: which catalogs, and how much of each --------------------------------------------------------


@dataclass
class _Plan:
    query: str
    item_type: str | None
    page: int
    per_page: int
    names: list[str]  # every catalog that could be searched
    chosen: list[str]  # those the query's catalog: filters leave
    engine_pages: list[tuple[int, int]]  # the engine pages each catalog is asked for
    has_terms: bool
    served: int
    weights: dict  # the engine's fusion weights, with the caller's over them
    sort: str = "relevance"
    messages: list[str] = field(default_factory=list)


def _plan(names: list[str], query: str, item_type, page, per_page, served: int | None, weights, mode, sort) -> _Plan:
    page, per_page = _check_paging(page, per_page)
    mode = engine.check_mode(mode)  # a mode the engine refuses is refused here first, with its sentence
    sort = sorting.check(sort)
    parsed = parse_query(query)  # a query the engine refuses is refused here first, with the engine's sentence
    chosen, messages = _choose(names, parsed)
    # Merged ranks depend on how deep each catalog was asked, so every page is cut from a pool a whole number of
    # engine pages deep: all pages within the first hundred results come from one merged list.
    wanted = -(-(page * per_page) // engine.MAX_PER_PAGE) * engine.MAX_PER_PAGE
    if len(chosen) <= 1:
        engine_pages = [(page, per_page)]  # one catalog: the engine's own paging, exactly as without federation
    else:
        engine_pages = [(number, engine.MAX_PER_PAGE) for number in range(1, -(-wanted // engine.MAX_PER_PAGE) + 1)]
    weights = engine.mode_weights(mode, {**engine.DEFAULT_WEIGHTS, **(weights or {})})
    served = served or len(names)
    return _Plan(
        query, item_type, page, per_page, names, chosen, engine_pages, parsed.has_terms, served, weights, sort, messages
    )


def _check_paging(page, per_page) -> tuple[int, int]:
    try:
        page, per_page = int(page), int(per_page)
    except (TypeError, ValueError):
        raise QueryError("page and per_page must be whole numbers") from None
    if not 1 <= page <= engine.MAX_PAGE:
        raise QueryError(f"page must be between 1 and {engine.MAX_PAGE} (got {page})")
    if not 1 <= per_page <= engine.MAX_PER_PAGE:
        raise QueryError(f"per_page must be between 1 and {engine.MAX_PER_PAGE} (got {per_page})")
    return page, per_page


def _choose(names: list[str], parsed) -> tuple[list[str], list[str]]:
    """The catalogs ``catalog:`` filters leave (case-insensitive names; several values are any of them)."""
    by_lower = {name.lower(): name for name in names}
    chosen, messages = list(names), []
    for text_filter in parsed.text_filters:
        if text_filter.field != "catalog":
            continue
        wanted = {value.lower() for value in text_filter.values}
        unknown = [value for value in text_filter.values if value.lower() not in by_lower]
        if unknown:
            messages.append(
                f"there is no catalog called {', '.join(repr(v) for v in unknown)} here "
                f"(catalogs: {', '.join(names) or 'none'})"
            )
        if text_filter.negated:
            chosen = [name for name in chosen if name.lower() not in wanted]
        else:
            chosen = [name for name in chosen if name.lower() in wanted]
    return chosen, messages


def _exhausted(answer: engine.SearchResults) -> bool:
    shown = (answer.page - 1) * answer.per_page + len(answer.hits)
    return len(answer.hits) < answer.per_page or shown >= answer.total


# -- Merging -----------------------------------------------------------------------------------------------


def _merge(plan: _Plan, answers: dict[str, list[CatalogAnswer]], started: float) -> FederatedResults:
    filters = parse_query(plan.query).filters_json()
    results = FederatedResults(
        plan.query, filters, plan.item_type, plan.page, plan.per_page, 0, {}, [], {}, list(plan.messages), 0.0
    )
    results.catalogs = list(plan.chosen)
    results.sort = plan.sort
    firsts = {name: found[0].results for name, found in answers.items() if found}
    if len(plan.chosen) == 1:  # the engine's answer as it is, its hits marked with their catalog
        (name,) = plan.chosen
        only = firsts[name]
        results = FederatedResults(**{f.name: getattr(only, f.name) for f in fields(only)}, catalogs=[name])
        results.facets = dict(only.facets)
        results.hits = [CatalogHit.of(hit, name) for hit in only.hits]
        results.messages = list(plan.messages) + only.messages
    elif plan.chosen:
        results.filters = firsts[plan.chosen[0]].filters
        results.counts = _summed_counts(firsts.values())
        results.total = sum(answer.total for answer in firsts.values())
        results.facets = _merged_facets(firsts.values())
        ranked = _ranked(plan, answers)
        first = (plan.page - 1) * plan.per_page
        results.hits = ranked[first : first + plan.per_page]
        results.messages += _merged_messages(firsts)
        if ranked and first >= len(ranked):
            last_page = (len(ranked) - 1) // plan.per_page + 1
            results.messages.append(f"page {plan.page} is past the last page of results ({last_page})")
        if not results.total and (plan.query or "").strip():
            results.messages.append(f"{_NOTHING_MATCHED}{plan.query.strip()!r}")
    elif plan.names and not plan.messages:  # with no catalogs at all, the caller says why
        results.messages.append("the catalog filters leave no catalog to search")
    if plan.served > 1:
        counts = [{"value": name, "count": firsts[name].total} for name in plan.chosen if firsts[name].total]
        results.facets["catalog"] = sorted(counts, key=lambda entry: -entry["count"])
    if len(plan.chosen) != 1:  # one catalog's answer keeps the engine's own time
        results.took_ms = round((time.perf_counter() - started) * 1000, 2)
    return results


def _ranked(plan: _Plan, answers: dict[str, list[CatalogAnswer]]) -> list[CatalogHit]:
    """Every fetched hit of every catalog, in the merged order (see the module docstring)."""
    entries = []  # (catalog order, position in its catalog, hit, its raw scores)
    for order, name in enumerate(plan.chosen):
        position = 0
        for answer in answers[name]:
            for hit in answer.results.hits:
                entries.append((order, position, CatalogHit.of(hit, name), answer.scores.get(hit.rowid, {})))
                position += 1
    if plan.sort != "relevance":  # each catalog sorted its own; the merge sorts by the same value
        entries.sort(key=lambda e: (*_sort_value(e[2], plan.sort), e[0], e[1]))
        return [hit for _, _, hit, _ in entries]
    if not plan.has_terms:  # each catalog listed its newest first; so does the merge
        entries.sort(key=lambda e: (e[2].score < _EXACT_SCORE, -_moment(e[2]), e[0], e[1]))
        return [hit for _, _, hit, _ in entries]
    alike = {stage for stage in _STAGES if _made_alike(answers, stage)}
    merged_ranks = {stage: _merged_ranking(entries, stage, alike) for stage in _STAGES}
    rescored = []
    for order, position, hit, _ in entries:
        own = {stage: hit.ranks.get(RANK_KEYS[stage]) for stage in _STAGES}
        local = fusion.rankings_score(own, plan.weights)
        merged = fusion.rankings_score(
            {stage: merged_ranks[stage][(order, position)] for stage, rank in own.items() if rank is not None},
            plan.weights,
        )
        beyond_rankings = hit.score - local  # exact names, clicks; the engine rounds scores to 6 places
        score = round(merged + (beyond_rankings if abs(beyond_rankings) > 1e-5 else 0.0), 6)
        rescored.append(((-score, order, position), CatalogHit.of(hit, hit.database, score=score)))
    rescored.sort(key=lambda pair: pair[0])
    return [hit for _, hit in rescored]


def _made_alike(answers: dict[str, list[CatalogAnswer]], stage: str) -> bool:
    """A ranking's raw scores compare across catalogs only if one ranker (or tagger) made all of them."""
    makers = {answer.makers[stage] for found in answers.values() for answer in found if stage in answer.makers}
    return len(makers) == 1


def _merged_ranking(entries, stage: str, alike: set[str]) -> dict[tuple[int, int], int]:
    """Each fetched hit's place in one ranking over all catalogs.  A vector ranking: by cosine similarity, where
    one tagger made every catalog's vectors.  The text ranking: by place in its own catalog, equal places by
    BM25 score (where one ranker made them), then by text similarity, then catalog order."""
    key = RANK_KEYS[stage]
    found = [(order, position, hit, scores) for order, position, hit, scores in entries if hit.ranks.get(key)]

    def score(scores: dict, name: str) -> float:
        return scores.get(name, float("-inf")) if name in alike else 0.0

    if stage in engine.QUERY_SPACES and stage in alike:
        found.sort(key=lambda e: (-score(e[3], stage), e[2].ranks[key], e[0]))
    else:
        found.sort(key=lambda e: (e[2].ranks[key], -score(e[3], stage), -score(e[3], "text"), e[0]))
    return {(order, position): rank for rank, (order, position, _, _) in enumerate(found, start=1)}


# The time an item belongs to, as the engine orders a query of filters alone (a paper by its year here).
_MOMENT_FACT = {"file": "acquired_local", "session": "start", "proposal": "start_date", "paper": "year"}


def _moment(hit: engine.Hit) -> float:
    value = (hit.facts or {}).get(_MOMENT_FACT.get(hit.item_type, ""))
    if value in (None, ""):
        return float("-inf")
    text = f"{value}-01-01" if isinstance(value, int) or str(value).isdigit() else str(value)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return float("-inf")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _sort_value(hit: engine.Hit, sort: str) -> tuple[bool, float]:
    """A hit's place in a sorted merge: those with the value first, highest (newest) first."""
    if sort == "date":
        moment = _moment(hit)
        return moment == float("-inf"), -moment
    value = (hit.facts or {}).get(sorting.SORT_FACTS[sort])
    return (True, 0.0) if not isinstance(value, (int, float)) else (False, -float(value))


def _summed_counts(answers) -> dict[str, int]:
    counts: Counter = Counter()
    for answer in answers:
        counts.update(answer.counts)
    return {kind: counts[kind] for kind in engine.ITEM_TYPES if counts.get(kind)}


def _merged_facets(answers) -> dict[str, list[dict]]:
    answers = list(answers)
    names = list(dict.fromkeys(name for answer in answers for name in answer.facets))
    merged = {}
    for name in names:
        counts: Counter = Counter()
        described: dict = {}  # what the first catalog to name a value says about it (a tag's category, a label)
        for answer in answers:
            for entry in answer.facets.get(name) or []:
                counts[entry["value"]] += entry["count"]
                described.setdefault(entry["value"], {k: v for k, v in entry.items() if k not in ("value", "count")})
        if name == "item_type":
            ordered = sorted(counts.items(), key=lambda vc: -vc[1])
        else:
            ordered = sorted(counts.items(), key=lambda vc: (-vc[1], str(vc[0])))
            ordered = ordered[: FACET_SIZE * (TAG_FACET_BREADTH if name == "tag" else 1)]
        merged[name] = [{"value": value, "count": count, **described[value]} for value, count in ordered]
    return merged


def _merged_messages(firsts: dict[str, engine.SearchResults]) -> list[str]:
    said: dict[str, list[str]] = {}
    for name, answer in firsts.items():
        for message in answer.messages:
            if message.startswith(_NOTHING_MATCHED):
                continue  # said once for the merged results, if at all
            said.setdefault(message, []).append(name)
    return [
        message if len(names) == len(firsts) else f"{', '.join(names)}: {message}" for message, names in said.items()
    ]


# -- Which catalogs can be searched ----------------------------------------------------------------------


def schema_problem(db: sqlite_utils.Database, name: str) -> str | None:
    """Why this served catalog cannot be searched as it is, or None when its schema is this code's."""
    version, newer = catalog_schema_version(db)
    if newer:
        return (
            f"catalog '{name}' was left out of the search: its schema (version {version}) is newer than this "
            f"datasette-scisearch knows ({CURRENT_SCHEMA_VERSION}); upgrade datasette-scisearch to search it"
        )
    if version < CURRENT_SCHEMA_VERSION:
        return (
            f"catalog '{name}' was left out of the search: its schema is version {version}, older than this "
            f"datasette-scisearch's {CURRENT_SCHEMA_VERSION}; 'scisearch serve' (or 'scisearch status CATALOG') "
            f"brings it up to date"
        )
    return None
