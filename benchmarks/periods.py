"""What proprietary periods cost a search: an anonymous visitor's search against staff's, on the same catalog.

    python benchmarks/periods.py                       # 10,000 items, 200 queries, a tenth of proposals private
    python benchmarks/periods.py --size 100000 --private 0.1 --queries 100

The catalog is benchmarks/search.py's synthetic one (built by it, kept in benchmarks/.cache/), copied, with a
share of its proposals given a release date a year ahead.  Baseline: ``engine.search`` as staff see it (no
proposal hidden, as every search ran before periods).  Against it, in the same run and query by query (so the load
others put on a shared machine falls on both alike): the anonymous visitor's search, which first asks which
proposals are hidden (``periods.hidden_proposals``) and whether a period has ended since the papers' documents
were built (``periods.words_due``), and then searches without them.  Keyword and filtered queries
only (``mode=keyword``): the query model is not what is measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch import periods  # noqa: E402
from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.search import engine  # noqa: E402


def _search_benchmark():
    spec = importlib.util.spec_from_file_location("search_benchmark", REPO / "benchmarks" / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


single = _search_benchmark()


def catalog_with_private_proposals(size: int, share: float) -> Path:
    source = single.CACHE / f"search-{size}.db"
    if not source.exists():
        single.CACHE.mkdir(parents=True, exist_ok=True)
        print(f"building a catalog of {size:,} items", flush=True)
        single.build_catalog(source, size)
    path = single.CACHE / f"periods-{size}.db"
    shutil.copy(source, path)
    shutil.rmtree(path.with_name(path.name + ".indexes"), ignore_errors=True)
    db = open_catalog(path)  # migrates: people, proposal_periods, the public views
    periods.update_release_dates(db)
    ids = [row[0] for row in db.execute("select id from proposals order by id")]
    step = max(1, round(1 / share)) if share > 0 else 0
    ahead = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    for proposal_id in ids[::step] if step else []:
        periods.set_release_date(db, proposal_id, ahead)
    db.conn.commit()
    private = len(periods.hidden_proposals(db, periods.ANONYMOUS))
    files = db.execute(
        "select count(*) from files where proposal_id in (select proposal_id from proposal_periods "
        "where release_date > ?)",
        [periods.now_utc()],
    ).fetchone()[0]
    print(f"{private:,} of {len(ids):,} proposals private, holding {files:,} files", flush=True)
    db.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--private", type=float, default=0.1, help="share of proposals under their period")
    parser.add_argument("--queries", type=int, default=200)
    arguments = parser.parse_args()
    path = catalog_with_private_proposals(arguments.size, arguments.private)
    db = open_catalog(path)
    queries = [q for q in single.make_queries(db, arguments.queries * 2) if len(q) < 80][: arguments.queries]
    for query in queries[:5]:  # warm the indexes and caches for both
        engine.search(db, query, mode="keyword")
    staff, anonymous, lookups, differ = [], [], [], 0
    for query in queries:
        started = time.perf_counter()
        seen_by_staff = engine.search(db, query, mode="keyword")
        staff.append(time.perf_counter() - started)
        started = time.perf_counter()
        hidden = periods.hidden_proposals(db, periods.ANONYMOUS)
        periods.words_due(db)  # what every request also asks (web/base.py): has a period ended since?
        lookups.append(time.perf_counter() - started)
        seen_by_visitor = engine.search(db, query, mode="keyword", hidden_proposals=hidden)
        anonymous.append(time.perf_counter() - started)
        differ += seen_by_staff.total != seen_by_visitor.total
    print(f"\n{len(queries)} queries over {arguments.size:,} items; {differ} of them found fewer items for the visitor")
    print("| ms | p50 | p95 |")
    print("| --- | --- | --- |")
    print(f"| staff (baseline: nothing hidden) | {single.percentiles(staff)} |")
    print(f"| anonymous visitor (hidden set + search) | {single.percentiles(anonymous)} |")
    print(f"| of which the hidden set and the ended-period check | {single.percentiles(lookups)} |")


if __name__ == "__main__":
    main()
