"""Search latency: the hybrid query and each of its stages, against the obvious alternatives, in one run.

    python benchmarks/search.py                 # 10,000 and 100,000 items
    python benchmarks/search.py --million       # and 1,000,000 (the catalog builds in ~4 minutes)
    python benchmarks/search.py --sizes 10000 --queries 100 --cache /tmp/bench

A synthetic catalog of each size is built (benchmarks/synthetic_catalog.py,
kept in benchmarks/.cache/ or --cache): files (85 %) named in facility
shorthand with their metadata, tags and linked proposal, proposals (5 %) and
papers (10 %) written from the real NSF and SciFact abstracts in
../shared/data, and a 384-d text vector per item clustered around the
all-MiniLM-L6-v2 vector of the item's topic, so that a query embedded by the
real model has real neighbours.  Queries mix keyword
queries ("gold nanoparticles"), keywords with filters ("diffraction 300kV",
"STEM voltage>=200kV") and claims (SciFact sentences).

The indexes beside the catalog (search/text_index.py, search/mapped_vectors.py)
are built in full and timed, with their size on disk; a new process is timed
from its start to its first keyword, vector and hybrid answers (the query
embedder's load apart), with its resident memory; 1,000 items are changed and
timed until a search finds them.  Stages, each timed on the same queries:
parse, embed (MiniLM, one thread), text ranking (tantivy on disk; FTS5 alone),
vector KNN (the mapped files, both ways, with recall@10 against exact) and the
whole ``search()`` call (hybrid, keyword-only, vector-only, filtered); and,
over the same data, what each process did before (the vectors read from
sqlite-vec into memory), FTS5 ``order by rank`` (any word), sqlite-vec's vec0
exact KNN, numpy brute force, faiss-cpu IndexFlatIP and tantivy by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.search import engine, fts, text_index, vector_index  # noqa: E402
from datasette_scisearch.search.expressions import all_terms, fts_any  # noqa: E402
from datasette_scisearch.search.filters import filter_sql  # noqa: E402
from datasette_scisearch.search.index import refresh_search_items  # noqa: E402
from datasette_scisearch.search.query import parse_query  # noqa: E402
from datasette_scisearch.tagging import vectors  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
import synthetic_catalog  # noqa: E402
from synthetic_catalog import DIMENSIONS  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
CACHE = REPO / "benchmarks" / ".cache"
KEYWORD_QUERIES = [
    "gold nanoparticles",
    "SrTiO3 HAADF",
    "ceria cubes",
    "MoS2 defects",
    "graphene",
    "battery cathode cracking",
    "apoferritin",
    "GaAs nanowires SEM",
    "grain boundary",
    "perovskite film",
    "zeolite",
    "platinum catalyst",
    "diffraction pattern",
    "lattice strain",
    "titania",
    "silicon twins",
    "steel precipitates",
    "oxygen vacancies",
]
FILTERED_QUERIES = [
    "diffraction 300kV",
    "STEM voltage>=200kV",
    "gold type:image",
    "SrTiO3 mag:1M-20M",
    "instrument:Themis HAADF",
    "ceria date:2021..2022",
    "MoS2 pixel<0.05nm",
    "tag:HAADF gold",
    "cathode type:file",
    "graphene 80 kV",
]


def build_catalog(path: Path, n_items: int) -> None:
    """The synthetic catalog, written in bulk (benchmarks/synthetic_catalog.py: a million items in minutes)."""
    print(f"  built: {synthetic_catalog.build(path, n_items)}", flush=True)


# -- The query model for the benchmark ------------------------------------------------------------------


def register_query_model():
    """The engine embeds queries with the tagger named in vector_spaces: here the real MiniLM."""
    import types

    from datasette_scisearch.hookspecs import hookimpl
    from datasette_scisearch.plugins import get_plugin_manager
    from datasette_scisearch.tagging.tagger import Tagger

    class BenchmarkText(Tagger):
        name = "benchmark_text"
        vector_spaces = {"text": DIMENSIONS}

        def load(self, options, device="cpu"):
            from scisearch_taggers.text_vectors import sentence_model

            self.model = sentence_model()

        def embed_query(self, text, space):
            from scisearch_taggers.text_vectors import embed_texts

            return embed_texts(self.model, [text])[0]

    plugin = types.SimpleNamespace(register_taggers=hookimpl(lambda register: register(BenchmarkText())))
    get_plugin_manager().register(plugin, name="benchmark-query-model")


# -- Timing ----------------------------------------------------------------------------------------------


def percentiles(times: list[float]) -> str:
    ordered = sorted(times)
    p50 = statistics.median(ordered) * 1000
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] * 1000
    return f"{p50:.1f} | {p95:.1f}"


def timed(function, inputs) -> tuple[list[float], list]:
    times, outputs = [], []
    for value in inputs:
        started = time.perf_counter()
        outputs.append(function(value))
        times.append(time.perf_counter() - started)
    return times, outputs


def make_queries(db, count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    claims = [
        json.loads(line)["text"] for line in (SHARED / "scifact" / "queries_train.jsonl").read_text().splitlines()
    ]
    queries = []
    for number in range(count):
        pick = number % 10
        if pick < 5:
            queries.append(rng.choice(KEYWORD_QUERIES))
        elif pick < 8:
            queries.append(rng.choice(FILTERED_QUERIES))
        else:
            queries.append(rng.choice(claims))
    return queries


COLD_START = """
import sys, time
started = time.perf_counter()
import numpy as np
sys.path.insert(0, sys.argv[2])
from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.search import engine, vector_index

def memory():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return " ".join(f"{k}={int(fields[k].split()[0]) // 1024}" for k in ("VmRSS", "RssAnon", "RssFile"))

db = open_catalog(sys.argv[1])
engine.search(db, "gold nanoparticles", weights={"text": 0, "clip": 0})
print(f"keyword {time.perf_counter() - started:.3f}", flush=True)
space = vector_index.space_matrix(db, "text")
space.nearest(np.ones(space.matrix.shape[1] if hasattr(space, "matrix") else space.files.matrix.shape[1]), 100)
print(f"vector {time.perf_counter() - started:.3f} {memory()}", flush=True)
sys.path.insert(0, sys.argv[3])
import search as benchmark
benchmark.register_query_model()
from datasette_scisearch.search import embedding
loading = time.perf_counter()
embedding.embed_query("warm up", "text", "benchmark_text")
print(f"embedder {time.perf_counter() - loading:.3f}", flush=True)
engine.search(db, "gold nanoparticles on ceria")
print(f"hybrid {time.perf_counter() - started:.3f} {memory()}", flush=True)
"""


def cold_start(path: Path) -> dict:
    """A new process: start → first keyword answer, → first vector answer (memory then), the query embedder's own
    load time, → first hybrid answer.  The page cache is warm (the machine is shared: it is not dropped)."""
    import subprocess

    output = subprocess.run(
        [sys.executable, "-c", COLD_START, str(path), str(REPO), str(REPO / "benchmarks")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for line in output.splitlines():
        name, seconds, *memory = line.split()
        found[name] = float(seconds)
        if memory:
            found[f"{name}_memory"] = dict(pair.split("=") for pair in memory)
    return found


def folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def run(path: Path, n_queries: int) -> list[tuple[str, str]]:
    from datasette_scisearch.search import embedding, index_folder, mapped_vectors
    from datasette_scisearch.search.index import catch_up_indexes

    db = open_catalog(path)
    n_items = db["search_items"].count
    queries = make_queries(db, n_queries)
    rows: list[tuple[str, str]] = []
    load_at_start = os.getloadavg()[0]  # the machine is shared: latencies are read against this
    register_query_model()
    # -- Before: what every process did at its first query
    started = time.perf_counter()
    matrix = vector_index._build(db, "text", DIMENSIONS, ("benchmark", 0))
    rows.append(("before: vector matrix read from vec0 (each process)", f"{(time.perf_counter() - started):.1f} s"))
    # -- Full builds of the indexes beside the catalog (what 'scisearch index --rebuild' does)
    started = time.perf_counter()
    text_index.build(db)
    rows.append(
        (
            "full build: tantivy index on disk (before: the same, in each process)",
            f"{time.perf_counter() - started:.1f} s",
        )
    )
    started = time.perf_counter()
    mapped_vectors.build(db, "text")
    rows.append(("full build: mapped vector files", f"{time.perf_counter() - started:.1f} s"))
    folder = index_folder.indexes_folder(db)
    sizes = {
        name: folder_mib(p)
        for name, p in (("text", next(folder.glob("text-*"))), ("vectors", next(folder.glob("vectors-text-*"))))
    }
    rows.append(("index size on disk", f"text {sizes['text']:.0f} MiB, vectors {sizes['vectors']:.0f} MiB"))
    cold = cold_start(path)
    rows.append(("cold start: process start → first keyword answer", f"{cold['keyword']:.2f} s"))
    rows.append(("cold start: query embedder's own load (MiniLM)", f"{cold['embedder']:.2f} s"))
    rows.append(("cold start: process start → first hybrid answer", f"{cold['hybrid']:.2f} s"))
    memory = cold["vector_memory"]
    rows.append(
        (
            "resident memory after keyword + vector answers, before the model (MiB)",
            f"{memory['VmRSS']} (anonymous {memory['RssAnon']}, mapped files {memory['RssFile']})",
        )
    )
    mapped = vector_index.space_matrix(db, "text")
    engine.search(db, "warm up the model")  # loads MiniLM: seconds, once per process
    parsed = [parse_query(q) for q in queries]
    times, _ = timed(parse_query, queries)
    rows.append(("parse", percentiles(times)))

    def embed(query):
        embedding.forget_query_vectors()
        return embedding.embed_query(query.semantic_text or query.text, "text", "benchmark_text")[0]

    times, query_vectors = timed(embed, parsed)
    rows.append(("embed the query (MiniLM, 1 thread)", percentiles(times)))
    weights = engine.DEFAULT_WEIGHTS

    def text_stage(query, weights=weights):
        return fts.search(db, query.clauses, filter_sql(query), weights, engine.FTS_POOL) if query.clauses else None

    times, _ = timed(text_stage, parsed)
    rows.append(("text ranking, all words then any (engine: tantivy on disk from 20,000 items)", percentiles(times)))
    fts5_only = {**weights, "tantivy_from": 10**12}
    times, _ = timed(lambda query: text_stage(query, fts5_only), parsed)
    rows.append(("text ranking by FTS5 alone (the engine below 20,000 items)", percentiles(times)))
    by_default = (
        "every vector scored" if len(mapped) <= mapped_vectors.EXACT_UP_TO else "nearest inverted lists, scored exactly"
    )
    times, _ = timed(lambda v: mapped.nearest(v, engine.VECTOR_POOL), query_vectors)
    rows.append((f"vector KNN k=100, mapped files, {by_default} (engine)", percentiles(times)))
    times, _ = timed(lambda v: mapped.nearest(v, engine.VECTOR_POOL, approximate=True), query_vectors)
    rows.append(("vector KNN k=100, mapped files, nearest inverted lists (forced)", percentiles(times)))
    times, _ = timed(lambda v: matrix.nearest(v, engine.VECTOR_POOL), query_vectors)
    rows.append(("vector KNN k=100, numpy matrix in memory (before)", percentiles(times)))
    for label, approximate in ((by_default, None), ("nearest inverted lists (forced)", True)):
        recalls = []
        for vector in query_vectors:
            truth = {r for r, _ in matrix.nearest(vector, 10)}
            recalls.append(len(truth & {r for r, _ in mapped.nearest(vector, 10, approximate=approximate)}) / 10)
        rows.append((f"recall@10 against exact search: {label}", f"{np.mean(recalls):.3f} (min {min(recalls):.1f})"))
    times, _ = timed(lambda q: engine.search(db, q, per_page=20), queries)
    rows.append(("**hybrid search(), query vector cached**", percentiles(times)))
    keyword_only = {"text": 0, "clip": 0}
    times, _ = timed(lambda q: engine.search(db, q, per_page=20, weights=keyword_only), queries)
    rows.append(("keyword-only search()", percentiles(times)))
    times, _ = timed(lambda q: engine.search(db, q, per_page=20, weights={"fts": 0}), queries)
    rows.append(("vector-only search(), query vector cached", percentiles(times)))
    filtered = [q for q in queries if q in FILTERED_QUERIES]
    times, _ = timed(lambda q: engine.search(db, q, per_page=20), filtered)
    rows.append((f"filtered hybrid search() ({len(filtered)} queries)", percentiles(times)))

    def uncached(query):
        embedding.forget_query_vectors()
        return engine.search(db, query, per_page=20)

    times, _ = timed(uncached, queries)
    rows.append(("**hybrid search(), query embedded anew**", percentiles(times)))
    rows.append(incremental_update(db, catch_up_indexes))
    # -- alternatives over the same data
    any_word = [fts_any(all_terms(q.clauses)) for q in parsed if q.clauses]
    sql = "select rowid from search_items_fts where search_items_fts match ? order by rank limit 1000"
    times, _ = timed(lambda e: db.execute(sql, [e]).fetchall(), any_word)
    rows.append(("FTS5 any word, order by rank (no weights)", percentiles(times)))
    knn = f"select item_rowid, distance from {vectors.table_for('text')} where embedding match ? and k = 100"
    times, _ = timed(lambda v: db.execute(knn, [v.tobytes()]).fetchall(), query_vectors[:30])
    rows.append(("sqlite-vec vec0 exact KNN k=100 (30 queries)", percentiles(times)))

    def numpy_brute(vector):
        scores = matrix.matrix @ vector
        top = np.argpartition(-scores, 100)[:100]
        return top[np.argsort(-scores[top])]

    times, _ = timed(numpy_brute, query_vectors)
    rows.append(("numpy brute force k=100", percentiles(times)))
    try:
        import faiss

        index = faiss.IndexFlatIP(DIMENSIONS)
        index.add(matrix.matrix)
        times, _ = timed(lambda v: index.search(v.reshape(1, -1), 100), query_vectors)
        rows.append((f"faiss-cpu IndexFlatIP k=100 ({faiss.omp_get_max_threads()} threads)", percentiles(times)))
    except ImportError:
        rows.append(("faiss-cpu", "not installed"))
    rows += tantivy_rows(db, parsed)
    rows.append(
        (
            "before: vector matrix in each process's memory",
            f"{matrix.matrix.nbytes / 2**20:.0f} MiB for {len(matrix):,} vectors",
        )
    )
    rows.append(("load average (1 min) at start / end of this size", f"{load_at_start:.1f} / {os.getloadavg()[0]:.1f}"))
    db.close()
    vector_index.forget()
    mapped_vectors.forget()
    text_index.forget()
    embedding.forget()
    from datasette_scisearch.plugins import get_plugin_manager

    get_plugin_manager().unregister(name="benchmark-query-model")
    print(f"\n{path.name}: {n_items:,} items")
    return rows


def incremental_update(db, catch_up_indexes) -> tuple[str, str]:
    """1,000 files change (new words in their text, new vectors already computed): the time from the catalog
    write until a search finds all of them, with the indexes on disk taking just those changes."""
    rng = np.random.default_rng(7)
    word = f"changed{int(time.time())}"
    ids = [row[0] for row in db.execute("select id from files order by random() limit 1000")]
    marks = ",".join("?" * len(ids))
    rowids = [
        row[0]
        for row in db.execute(
            f"select id from search_items where item_type = 'file' and item_id in ({marks})", [str(i) for i in ids]
        )
    ]
    new_vectors = [(rowid, rng.standard_normal(DIMENSIONS).astype(np.float32)) for rowid in rowids]
    started = time.perf_counter()
    with db.conn:
        db.execute(f"update files set search_text = search_text || ' ' || ? where id in ({marks})", [word, *ids])
        vectors.write_vectors(db, "text", new_vectors)
    refresh_search_items(db, ["file"], [str(i) for i in ids])  # the writer's hook catches the indexes up
    catch_up_indexes(db)
    query = parse_query(word)
    found = fts.search(db, query.clauses, filter_sql(query), engine.DEFAULT_WEIGHTS, 2000)
    seconds = time.perf_counter() - started
    return (
        "1,000 changed items: write → searchable (no rebuild)",
        f"{seconds:.2f} s, {len(found.ranked):,} found by {found.ranker}",
    )


def tantivy_rows(db, parsed) -> list[tuple[str, str]]:
    """tantivy by itself, on the index the engine built: its query parser, no filters, no fusion."""
    built = text_index.text_index(db, min_documents=0)
    if built is None:
        return [("tantivy BM25 any word, k=100, by itself", "not installed")]

    def search(query):
        words = [re.sub(r"[^\w]", " ", t.text) for t in all_terms(query.clauses)]
        text = " ".join(w for w in words if w.strip())
        parsed_query = built.index.parse_query(text, ["title", "body", "tags", "context"])
        return built.searcher.search(parsed_query, 100).hits

    times, _ = timed(search, [q for q in parsed if q.clauses])
    return [("tantivy BM25 any word, k=100, by itself (same 4 fields, stemmed)", percentiles(times))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also 1,000,000 items")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the catalogs are kept")
    arguments = parser.parse_args()
    sizes = arguments.sizes + ([1_000_000] if arguments.million else [])
    arguments.cache.mkdir(parents=True, exist_ok=True)
    tables = {}
    for size in sizes:
        path = arguments.cache / f"search-{size}.db"
        if arguments.rebuild or not path.exists():
            print(f"building a catalog of {size:,} items", flush=True)
            build_catalog(path, size)
        tables[size] = run(path, arguments.queries)
        for label, value in tables[size]:
            print(f"  {label}: {value}", flush=True)
    labels = [label for label, _ in tables[sizes[0]]]
    print("\n| ms | " + " | ".join(f"{size:,} items p50 | p95" for size in sizes) + " |")
    print("| --- | " + " | ".join("--- | ---" for _ in sizes) + " |")
    for number, label in enumerate(labels):
        cells = [tables[size][number][1] for size in sizes]
        print(f"| {label} | " + " | ".join(c if " | " in c else f"{c} | " for c in cells) + " |")


if __name__ == "__main__":
    main()
