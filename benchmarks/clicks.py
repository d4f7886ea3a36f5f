"""Learning from clicks on SciFact: nDCG@10 before and after N simulated search sessions.

    python benchmarks/clicks.py [--sessions 100 1000 10000] [--popular 100] [--rounds 5] [--quick] [--scale]
    python benchmarks/clicks.py --ranking [--sessions 1000]

The SciFact catalog of benchmarks/scifact.py (5,183 abstracts with MiniLM
vectors, cached in benchmarks/.cache) is copied once per run, so every
variant starts from an empty search log.  Simulated researchers issue claims
from a *popular* set (``--popular`` claims of the tune half of
benchmarks/scifact.py's split), see the engine's first page (24 results, as
the search page shows), and click by a **position-based click model**: a
result at position k is looked at with probability 1/k^1.3 (steeper than the
learner's 1/k prior, so the learner has to measure it), and opened if looked
at with probability 0.9 if SciFact judges it relevant, 0.1 if not (the noisy
variant: 0.7 and 0.2).  Every session is logged through web/clicks.py's
``record_search``/``record_click`` — the beacon's own checks — and
``learning.clicks.learn`` runs after each of ``--rounds`` equal batches of
sessions, as ``scisearch learn --every`` would, so later sessions see the
re-ranked results.

Printed per N: nDCG@10 of the popular claims before and after (the case click
learning serves), of as many held-out claims (never searched: expected
unchanged), for the debiased learner, the naive one (plain click rates) and
the noisy click model; the propensities EM estimated against the simulated
ones; and a forged-click attack: one irrelevant result of one claim clicked
1,000 times by one signed-in actor, then in 1,000 anonymous searches.  The
sessions are signed-in researchers (300 of them), as at a facility where
people log in; learning counts each one once per claim, result and day.
``--scale`` only times ``learn`` over a synthetic log of a million impressions.

``--ranking`` asks whether a facility without judgments gains from its clicks on
queries nobody clicked: after N clean sessions (debiased), ``learn_fusion`` fits
the fusion weights and floors to the click evidence alone (``scisearch learn
--ranking``), and the held-out claims, never searched, are scored before the
sessions, after click learning, and after the fitted weights are in use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scifact  # noqa: E402  (benchmarks/scifact.py: the catalog, the claims, their split and nDCG@10)

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.learning import clicks as learning  # noqa: E402
from datasette_scisearch.learning.learn_command import describe  # noqa: E402
from datasette_scisearch.private import open_private, private_path  # noqa: E402
from datasette_scisearch.search import engine  # noqa: E402
from datasette_scisearch.search.click_signals import query_key  # noqa: E402
from datasette_scisearch.search.query import parse_query  # noqa: E402
from datasette_scisearch.web.clicks import record_click, record_search  # noqa: E402

PAGE = 24  # results on the search page's first page
EXAMINATION_EXPONENT = 1.3
RESEARCHERS = 300  # signed-in actors the sessions are spread over
WEIGHTS: dict = {}  # the engine's weights (--weight sets the click stage's)


@dataclass(frozen=True)
class ClickModel:
    name: str
    relevant: float  # P(open | looked at, relevant)
    irrelevant: float  # P(open | looked at, not relevant)

    def examination(self, positions: np.ndarray) -> np.ndarray:
        return 1.0 / positions**EXAMINATION_EXPONENT


CLEAN = ClickModel("clean", 0.9, 0.1)
NOISY = ClickModel("noisy", 0.7, 0.2)
START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def ranking(db, text: str, depth: int = PAGE) -> list[str]:
    return [hit.item_id for hit in engine.search(db, text, item_type="paper", per_page=depth, weights=WEIGHTS).hits]


def mean_ndcg(db, claims: dict) -> float:
    return statistics.mean(scifact.ndcg_at_10(ranking(db, text, 10), relevant) for text, relevant in claims.values())


def simulate(db, claims: dict, sessions: int, rounds: int, model: ClickModel, debias: bool, seed: int):
    """``sessions`` searches over the popular claims in ``rounds`` batches, learning after each."""
    rng = np.random.default_rng(seed)
    logs = open_private(db)  # the search log lives beside the catalog
    ids = list(claims)
    positions = np.arange(1, PAGE + 1)
    report = None
    for batch in np.array_split(np.arange(sessions), rounds):
        shown_now = {query_id: ranking(db, claims[query_id][0]) for query_id in ids}
        for session in batch:
            query_id = ids[rng.integers(len(ids))]
            text, relevant = claims[query_id]
            shown = shown_now[query_id]
            when = START + dt.timedelta(minutes=int(session))
            actor = f"researcher-{rng.integers(RESEARCHERS)}"
            logged = [(position, "paper", item_id) for position, item_id in enumerate(shown, start=1)]
            key = query_key(parse_query(text))
            search_id = record_search(logs.conn, text, key, "paper", "scifact", actor, logged, now=when)
            chance = model.examination(positions[: len(shown)]) * np.array(
                [model.relevant if item_id in relevant else model.irrelevant for item_id in shown]
            )
            for position in np.flatnonzero(rng.random(len(shown)) < chance) + 1:
                record_click(logs.conn, search_id, int(position), "paper", shown[position - 1], actor, now=when)
        report = learning.learn(db, debias=debias)
    return report


def fresh_catalog(source: Path, work: Path):
    shutil.copyfile(source, work)
    private_path(work).unlink(missing_ok=True)
    return open_catalog(work)


def attack(db, claims: dict) -> list[str]:
    """Forge 1,000 clicks on one irrelevant result of a claim whose first result is relevant: by one signed-in
    actor, then anonymously."""
    query_id = next(q for q in sorted(claims) if ranking(db, claims[q][0], 1)[0] in claims[q][1])
    text, relevant = claims[query_id]
    shown = ranking(db, text)
    target = next(item_id for item_id in shown[9:] if item_id not in relevant)
    before = shown.index(target) + 1
    lines = [f"attack on claim {query_id}: irrelevant result {target} at position {before}, nDCG@10 "]
    base_ndcg = scifact.ndcg_at_10(shown[:10], relevant)
    key = query_key(parse_query(text))
    logs = open_private(db)
    for actor in ("mallory", None):
        for n in range(1000):
            when = START + dt.timedelta(days=30, seconds=n)
            logged = [(position, "paper", item_id) for position, item_id in enumerate(shown, start=1)]
            search_id = record_search(logs.conn, text, key, "paper", "scifact", actor, logged, now=when)
            record_click(logs.conn, search_id, before, "paper", target, actor, now=when)
        learning.learn(db)
        after = ranking(db, text)
        boost = logs.execute(
            "select boost from click_signals where query_key = ? and item_id = ?", [key, target]
        ).fetchone()
        who = "one signed-in actor, 1,000 clicks in a day" if actor else "+ 1,000 anonymous forged searches and clicks"
        position = after.index(target) + 1 if target in after else f">{PAGE}"
        lines.append(
            f"  {who}: boost {boost[0] if boost else 0:+.3f} (cap {learning.BOOST_CAP}), now at position {position}, "
            f"claim nDCG@10 {base_ndcg:.3f} -> {scifact.ndcg_at_10(after[:10], relevant):.3f}"
        )
    lines[0] += f"{base_ndcg:.3f}"
    return lines


def time_learning_at_scale(work: Path, searches: int = 42_000, queries: int = 2_000) -> str:
    """How long ``learn`` takes over a log of a million impressions (synthetic: 24 results per search drawn
    from 50 per query, clicks falling off as 0.3/position, 500 signed-in actors)."""
    work.unlink(missing_ok=True)
    private_path(work).unlink(missing_ok=True)
    db = open_catalog(work)
    logs = open_private(db)
    rng = np.random.default_rng(0)
    items = rng.integers(0, 50, size=(searches, PAGE))
    with logs.conn:
        logs.conn.executemany(
            "insert into search_log (id, query, query_key, tab, catalog, actor, created_at) values (?,?,?,?,?,?,?)",
            [
                (
                    n,
                    f"q{n % queries}",
                    f"q{n % queries}",
                    "all",
                    "c",
                    f"u{rng.integers(500)}",
                    (START + dt.timedelta(minutes=n)).isoformat(),
                )
                for n in range(1, searches + 1)
            ],
        )
        shown = [
            (n, p + 1, "paper", f"d{n % queries}-{items[n - 1, p]}")
            for n in range(1, searches + 1)
            for p in range(PAGE)
        ]
        logs.conn.executemany("insert into search_impressions values (?, ?, ?, ?)", shown)
        clicked = [row for row in shown if rng.random() < 0.3 / row[1]]
        logs.conn.executemany(
            "insert into search_clicks (search_id, position, item_type, item_id, clicked_at) values (?, ?, ?, ?, '')",
            clicked,
        )
    started = time.perf_counter()
    report = learning.learn(db)
    seconds = time.perf_counter() - started
    logs.close()
    db.close()
    work.unlink(missing_ok=True)
    private_path(work).unlink(missing_ok=True)
    return (
        f"learn over {len(shown):,} logged impressions and {len(clicked):,} clicks: {seconds:.1f} s "
        f"({report.pairs:,} signals)"
    )


def ranking_from_clicks(catalog: Path, popular: dict, unseen: dict, sessions: int, rounds: int) -> None:
    from datasette_scisearch.learning.evidence import gather
    from datasette_scisearch.learning.fusion import learn_fusion

    work = scifact.CACHE / "clicks-ranking.db"
    db = fresh_catalog(catalog, work)
    before = mean_ndcg(db, unseen), mean_ndcg(db, popular)
    started = time.perf_counter()
    report = simulate(db, popular, sessions, rounds, CLEAN, True, seed=sessions)
    print(
        f"{sessions:,} sessions over {len(popular)} popular claims, {report.clicks:,} clicks "
        f"({time.perf_counter() - started:.0f} s)"
    )
    after_clicks = mean_ndcg(db, unseen), mean_ndcg(db, popular)
    fitted = learn_fusion(db, evidence=gather(db, ["click"]), progress=lambda line: print(f"  {line}", flush=True))
    print(f"learn --ranking on {fitted.queries} clicked queries in {fitted.seconds:.0f} s: {fitted.reason}")
    print(f"  fitted {fitted.fitted}")
    after_fusion = mean_ndcg(db, unseen), mean_ndcg(db, popular)
    print("\n| | held-out claims (never searched) nDCG@10 | popular claims nDCG@10 |")
    print("| --- | --- | --- |")
    for label, (on_unseen, on_popular) in (
        ("before any session", before),
        ("after click learning", after_clicks),
        ("after learn --ranking", after_fusion),
    ):
        print(f"| {label} | {on_unseen:.3f} | {on_popular:.3f} |")
    db.close()
    work.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--popular", type=int, default=100, help="how many claims the simulated users search")
    parser.add_argument("--rounds", type=int, default=5, help="learn after each of this many batches of sessions")
    parser.add_argument("--quick", action="store_true", help="N = 100 and 1,000 only, 50 popular claims")
    parser.add_argument("--scale", action="store_true", help="only time learn over a million logged impressions")
    parser.add_argument("--weight", type=float, help="the click stage's weight (default: the engine's)")
    parser.add_argument("--catalog", type=Path, default=scifact.CACHE / "scifact.db")
    parser.add_argument("--ranking", action="store_true", help="fit fusion weights to the clicks; score unseen claims")
    arguments = parser.parse_args()
    if arguments.weight is not None:
        WEIGHTS["clicks"] = arguments.weight
    if arguments.quick:
        arguments.sessions, arguments.popular = [100, 1000], 50
    if not scifact.SCIFACT.exists():
        sys.exit(f"SciFact is not at {scifact.SCIFACT} (see ../shared/data/README.md)")
    if not arguments.catalog.exists():
        arguments.catalog.parent.mkdir(parents=True, exist_ok=True)
        scifact.build_catalog(arguments.catalog, "auto")
    if arguments.scale:
        print(time_learning_at_scale(scifact.CACHE / "clicks-scale.db"))
        return
    tune, held_out = scifact.split(scifact.claims_with_judgements())
    popular = dict(sorted(tune.items())[: arguments.popular])
    unseen = dict(sorted(held_out.items())[: arguments.popular])
    if arguments.ranking:
        ranking_from_clicks(arguments.catalog, popular, unseen, arguments.sessions[0], arguments.rounds)
        return
    work = scifact.CACHE / "clicks-work.db"
    started = time.perf_counter()
    db = fresh_catalog(arguments.catalog, work)
    before_popular, before_unseen = mean_ndcg(db, popular), mean_ndcg(db, unseen)
    db.close()
    print(f"{len(popular)} popular claims searched, {len(unseen)} held-out claims never searched")
    print(f"click model: looked at with 1/k^{EXAMINATION_EXPONENT}; opened if looked at with 0.9 (relevant) / 0.1 ")
    print("(noisy: 0.7 / 0.2); learning after each of", arguments.rounds, "batches\n")
    print("| sessions N | learner | clicks | popular nDCG@10 before | after | lift | held-out before | after |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    final = None
    for sessions in arguments.sessions:
        for label, model, debias in (("debiased (EM)", CLEAN, True), ("naive CTR", CLEAN, False)) + (
            (("debiased, noisy clicks", NOISY, True),)
        ):
            db = fresh_catalog(arguments.catalog, work)
            report = simulate(db, popular, sessions, arguments.rounds, model, debias, seed=sessions)
            after_popular, after_unseen = mean_ndcg(db, popular), mean_ndcg(db, unseen)
            print(
                f"| {sessions:,} | {label} | {report.clicks:,} | {before_popular:.3f} | {after_popular:.3f} | "
                f"{after_popular - before_popular:+.3f} | {before_unseen:.3f} | {after_unseen:.3f} |",
                flush=True,
            )
            if debias and model is CLEAN:
                final = (sessions, report)
                attack_db = db
            else:
                db.close()
        if sessions != arguments.sessions[-1]:
            attack_db.close()
    sessions, report = final
    print(f"\nwhat 'scisearch learn' said after the last batch of N={sessions:,}:")
    print("\n".join(describe(report)))
    simulated = 1 / np.arange(1, 11) ** EXAMINATION_EXPONENT
    estimated = np.array(report.propensities[:10]) / report.propensities[0]
    print(f"\nexamination by position after N={sessions:,}, relative to position 1:")
    print("  simulated: " + " ".join(f"{p:.2f}" for p in simulated))
    print("  EM:        " + " ".join(f"{p:.2f}" for p in estimated))
    print("  prior 1/k: " + " ".join(f"{1 / k:.2f}" for k in range(1, 11)))
    print()
    for line in attack(attack_db, popular):
        print(line)
    attack_db.close()
    work.unlink(missing_ok=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
