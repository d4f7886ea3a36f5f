"""Several catalogs searched as one, against one catalog of the same items: latency and what the merge changes.

    python benchmarks/catalogs.py                     # 100,000 items: 1 catalog, then 2 and 4 that share them
    python benchmarks/catalogs.py --size 10000 --catalogs 2 4 8 --queries 100

The one catalog is benchmarks/search.py's synthetic catalog (built by it, kept in
benchmarks/.cache/).  The N catalogs are that catalog split by search-document
id (id mod N, as a split by hash or by year would be): copies with the other
items deleted, so every item keeps its ids and vector and the N catalogs hold
exactly the items of the one.  Both are searched with the same 200 queries
(keywords, keywords with filters, SciFact claims; the real MiniLM embeds them):
the one catalog by ``engine.search``, the N by ``federation.search_catalogs``,
one catalog after the other in this thread, as ``scisearch search`` does (the
web pages ask the catalogs concurrently on Datasette's threads).  Each query
goes through every configuration in turn, so the load others put on a shared
machine falls on all of them alike.

Quality, against the one catalog's ranking: the share of its top 10 that the
merged top 10 keeps (by item); how often the first result is the same; and the
share of its top 10's fused score that the merged top 10 holds, each item
counted at its score in the one catalog (its best 100; 0 below).  The last does
not mind which of several equally good items comes first: the synthetic
catalog has many files of identical text, which one catalog orders by id and
several catalogs by catalog.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.search import embedding, engine, federation  # noqa: E402
from datasette_scisearch.tagging import vectors  # noqa: E402


def _single_catalog_benchmark():
    """benchmarks/search.py, for its catalog builder, queries, query model and percentiles."""
    spec = importlib.util.spec_from_file_location("search_benchmark", REPO / "benchmarks" / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


single = _single_catalog_benchmark()


def split_catalog(source: Path, parts: int) -> list[Path]:
    """``parts`` catalogs that share the items of ``source`` by search-document id; kept in the cache."""
    paths = [source.with_name(f"{source.stem}-part{part + 1}of{parts}.db") for part in range(parts)]
    if all(path.exists() for path in paths):
        return paths
    for part, path in enumerate(paths):
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        shutil.copyfile(source, partial)
        db = open_catalog(partial)
        with db.conn:
            db.execute(
                "create temp table gone as select id, item_type, item_id from search_items where id % ? != ?",
                [parts, part],
            )
            db.execute(
                "delete from tags where item_type || ':' || item_id in (select item_type || ':' || item_id from gone)"
            )
            db.execute(
                "delete from files where id in (select cast(item_id as integer) from gone where item_type = 'file')"
            )
            for table, item_type in (("proposals", "proposal"), ("papers", "paper"), ("sessions", "session")):
                db.execute(
                    f"delete from {table} where id in (select item_id from gone where item_type = ?)", [item_type]
                )
            db.execute("delete from search_items where id in (select id from gone)")
            gone = db.execute("select id from gone").fetchall()  # vec0 deletes one row at a time
            db.conn.executemany(f"delete from [{vectors.table_for('text')}] where item_rowid = ?", gone)
        db.execute("insert into search_items_fts(search_items_fts) values('optimize')")
        db.execute("analyze")
        db.conn.commit()
        count = db["search_items"].count
        db.close()
        partial.rename(path)
        print(f"  {path.name}: {count:,} items ({time.perf_counter() - started:.0f} s)", flush=True)
    return paths


def searcher(paths: list[Path]):
    """A search function over these catalogs: the engine for one, the federation for several."""
    opened = {path.stem: open_catalog(path) for path in paths}
    if len(opened) == 1:
        (db,) = opened.values()
        return lambda query: engine.search(db, query, per_page=20)
    return lambda query: federation.search_catalogs(opened, query, per_page=20)


def top_items(results, k: int = 10) -> list[tuple[str, str]]:
    return [(hit.item_type, hit.item_id) for hit in results.hits[:k]]


def one_catalog_scores(path: Path, queries: list[str]) -> list[dict]:
    """Each query's fused score of the one catalog's best 100 items, by item."""
    db = open_catalog(path)
    scores = []
    for query in queries:
        hits = engine.search(db, query, per_page=100).hits
        # Exact names score 1000 above the fusion: cap them, so one exact item does not outweigh the rest.
        scores.append({(hit.item_type, hit.item_id): min(hit.score, 2.0) for hit in hits})
    db.close()
    return scores


def measure(configurations: dict[int, list[Path]], queries: list[str]) -> dict[int, dict]:
    """Each query through every configuration in turn (the load others put on the machine falls on all of
    them alike), first with the query embedded anew, then with its vector cached."""
    searches = {parts: searcher(paths) for parts, paths in configurations.items()}
    measured = {parts: {"fresh": [], "cached": [], "answers": []} for parts in configurations}
    for parts, search in searches.items():
        started = time.perf_counter()
        search("warm up: read the vectors, build the tantivy indexes, load MiniLM")
        measured[parts]["warm_up"] = time.perf_counter() - started
    for mode in ("fresh", "cached"):
        for number, query in enumerate(queries):
            order = list(searches)[number % len(searches) :] + list(searches)[: number % len(searches)]
            for parts in order:
                if mode == "fresh":
                    embedding.forget_query_vectors()
                started = time.perf_counter()
                answer = searches[parts](query)
                measured[parts][mode].append(time.perf_counter() - started)
                if mode == "cached":
                    measured[parts]["answers"].append(answer)
    return measured


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered) * 1000, ordered[round(0.95 * (len(ordered) - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="items in all (the one catalog's size)")
    parser.add_argument("--catalogs", type=int, nargs="*", default=[2, 4], help="how many catalogs share them")
    parser.add_argument("--queries", type=int, default=200)
    arguments = parser.parse_args()
    single.CACHE.mkdir(parents=True, exist_ok=True)
    source = single.CACHE / f"search-{arguments.size}.db"
    if not source.exists():
        print(f"building a catalog of {arguments.size:,} items (benchmarks/search.py's)", flush=True)
        single.build_catalog(source, arguments.size)
    configurations = {1: [source]}
    for parts in arguments.catalogs:
        print(f"splitting it into {parts} catalogs", flush=True)
        configurations[parts] = split_catalog(source, parts)
    db = open_catalog(source)
    queries = single.make_queries(db, arguments.queries)
    db.close()
    single.register_query_model()
    measured = measure(configurations, queries)
    baseline = measured[1]["answers"]
    graded = one_catalog_scores(source, queries)
    print(f"\n{arguments.size:,} items, {len(queries)} queries, 20 results a page")
    print(
        "| catalogs | p50 ms | p95 ms | p50 ms, query vector cached | p95 | warm-up s | top-10 kept | same first "
        "| top-10 score kept |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for parts, result in measured.items():
        fresh, cached = percentiles(result["fresh"]), percentiles(result["cached"])
        kept, same_first, score_kept = [], 0, []
        for one, merged, scores in zip(baseline, result["answers"], graded):
            expected = top_items(one)
            if not expected:
                continue
            kept.append(len(set(expected) & set(top_items(merged))) / len(expected))
            same_first += top_items(one, 1) == top_items(merged, 1)
            best = sum(scores.get(item, 0.0) for item in expected)
            score_kept.append(sum(scores.get(item, 0.0) for item in top_items(merged)) / best if best else 1.0)
        print(
            f"| {parts} | {fresh[0]:.1f} | {fresh[1]:.1f} | {cached[0]:.1f} | {cached[1]:.1f} | "
            f"{result['warm_up']:.1f} | {statistics.mean(kept):.2f} | {same_first / len(kept):.2f} "
            f"| {statistics.mean(score_kept):.2f} |"
        )


if __name__ == "__main__":
    main()
