"""Learning from clicks: the search log, the click beacon and its limits, the position-debiased signal, the
engine's use of it and ``scisearch learn``.

The catalog is ten real-SQLite papers about graphene whose BM25 order is fixed by how often they say it, so
a test can name the item at each position.  Logs are written through the same functions the page and the
beacon use (web/clicks.py), or through Datasette's test client.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import threading
import time

import pytest
import sqlite_utils
from click.testing import CliRunner
from datasette.app import Datasette

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.learning import clicks as learning
from datasette_scisearch.learning.learn_command import learn as learn_command
from datasette_scisearch.private import open_private, private_path
from datasette_scisearch.search import engine
from datasette_scisearch.search.click_signals import query_key
from datasette_scisearch.search.index import refresh_search_items
from datasette_scisearch.search.query import parse_query
from datasette_scisearch.web.clicks import MAX_CLICKS_PER_SEARCH, record_click, record_search

PAPERS = 10
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def build_catalog(path) -> None:
    """Paper n says 'graphene' 11 - n times: BM25 ranks them G01, G02, … G10 for 'graphene'."""
    db = open_catalog(path)
    db["papers"].insert_all(
        {
            "id": f"G{n:02d}",
            "title": f"Study {n} of a two-dimensional material",
            "abstract": " ".join(["graphene"] * (PAPERS + 1 - n) + ["lattice", "sample", "substrate"] * 4),
            "year": 2020,
        }
        for n in range(1, PAPERS + 1)
    )
    refresh_search_items(db)
    db.close()


@pytest.fixture(scope="module")
def catalog_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("clicks") / "template.db"
    build_catalog(path)
    return path


@pytest.fixture
def catalog_path(catalog_template, tmp_path):
    path = tmp_path / "catalog.db"
    path.write_bytes(catalog_template.read_bytes())
    return path


@pytest.fixture
def db(catalog_path):
    database = open_catalog(catalog_path)
    yield database
    database.close()


@pytest.fixture
def logs(catalog_path):
    """The catalog's private half, where the search log and the click signals live."""
    database = open_private(catalog_path)
    yield database
    database.close()


@pytest.fixture
def ds(catalog_path):
    return Datasette([str(catalog_path)])


def order(db, query: str = "graphene", **weights) -> list[str]:
    return [hit.item_id for hit in engine.search(db, query, per_page=PAPERS, weights=weights or None).hits]


def log(db, item_ids: list[str], clicked: list[str] = (), actor=None, query="graphene", when=NOW) -> int:
    """One search that showed ``item_ids`` in that order, and clicks on ``clicked``, in the catalog's log."""
    logs = open_private(db)
    shown = [(position, "paper", item_id) for position, item_id in enumerate(item_ids, start=1)]
    search_id = record_search(logs.conn, query, query_key(parse_query(query)), None, "catalog", actor, shown, now=when)
    for item_id in clicked:
        outcome = record_click(logs.conn, search_id, item_ids.index(item_id) + 1, "paper", item_id, actor, now=when)
        assert outcome.recorded, outcome.message
    logs.close()
    return search_id


def signal(db, item_id: str, query: str = "graphene") -> dict | None:
    where = "query_key = ? and item_id = ?"
    logs = open_private(db)
    rows = list(logs["click_signals"].rows_where(where, [query_key(parse_query(query)), item_id]))
    logs.close()
    return rows[0] if rows else None


# -- The query key ------------------------------------------------------------------------------------


def test_the_query_key_ignores_case_order_and_spacing_but_not_exclusions():
    assert query_key(parse_query("Gold  HAADF")) == query_key(parse_query("haadf gold"))
    assert query_key(parse_query("gold -HAADF")) != query_key(parse_query("gold HAADF"))


def test_the_query_key_holds_filters_in_the_catalogs_units():
    assert query_key(parse_query("gold voltage>=200kV")) == query_key(parse_query("gold kv>=200"))


# -- Logging through the search page ------------------------------------------------------------------------


async def page(ds, q: str, actor: dict | None = None):
    cookies = {"ds_actor": ds.sign({"a": actor}, "actor")} if actor else {}
    return await ds.client.get(f"/-/scisearch?q={q}", cookies=cookies)


@pytest.mark.asyncio
async def test_a_search_page_logs_the_query_and_every_result_shown_with_its_position(ds, db, logs):
    response = await page(ds, "graphene")
    assert response.status_code == 200
    (search,) = logs.execute("select id, query, query_key, tab, catalog, actor from search_log").fetchall()
    assert search[1:] == ("graphene", "graphene", "all", "catalog", None)
    shown = logs.execute("select position, item_id from search_impressions order by position").fetchall()
    assert shown == [(n, f"G{n:02d}") for n in range(1, PAPERS + 1)]
    positions = re.findall(r'data-scisearch-search-id="(\d+)" data-scisearch-position="(\d+)"', response.text)
    assert positions == [(str(search[0]), str(n)) for n in range(1, PAPERS + 1)]


@pytest.mark.asyncio
async def test_the_log_keeps_the_actor_id_and_nothing_else_about_who_searched(ds, db, logs):
    await page(ds, "graphene", actor={"id": "alice", "name": "Alice", "email": "alice@example.org"})
    assert logs.execute("select actor from search_log").fetchall() == [("alice",)]
    assert set(logs["search_log"].columns_dict) == {"id", "query", "query_key", "tab", "catalog", "actor", "created_at"}


@pytest.mark.asyncio
async def test_a_search_that_finds_nothing_is_not_logged(ds, db, logs):
    await page(ds, "qwzxv")
    assert logs["search_log"].count == 0


@pytest.mark.asyncio
async def test_a_catalog_served_immutable_is_searched_without_logging(catalog_path):
    served = Datasette(immutables=[str(catalog_path)])
    response = await page(served, "graphene")
    assert response.status_code == 200
    assert "G01" in response.text
    assert "data-scisearch-search-id" not in response.text


@pytest.mark.asyncio
async def test_a_beacon_to_a_catalog_served_immutable_says_it_keeps_no_clicks(catalog_path):
    served = Datasette(immutables=[str(catalog_path)])
    answer = await served.client.post("/-/scisearch/click/catalog", data={"search_id": 1, "position": 1})
    assert answer.status_code == 403
    assert "read-only" in answer.json()["error"]


def hold_write_lock(path, locked: threading.Event, seconds=5.5):
    """Hold ``path``'s write lock longer than Datasette's write connection would wait by default."""
    writer = sqlite_utils.Database(path)
    writer.execute("BEGIN IMMEDIATE")
    locked.set()
    time.sleep(seconds)
    writer.conn.rollback()
    writer.close()


@pytest.mark.asyncio
async def test_a_search_while_another_program_holds_the_log_is_shown_unlogged(ds, catalog_path, logs):
    locked = threading.Event()
    thread = threading.Thread(target=hold_write_lock, args=(private_path(catalog_path), locked))
    thread.start()
    locked.wait()
    response = await page(ds, "graphene")
    thread.join()
    assert response.status_code == 200
    assert "G01" in response.text
    assert logs["search_log"].count == 0


@pytest.mark.asyncio
async def test_a_search_while_a_tagging_run_holds_the_catalog_is_still_logged(ds, catalog_path, logs):
    locked = threading.Event()
    thread = threading.Thread(target=hold_write_lock, args=(catalog_path, locked, 2.0))
    thread.start()
    locked.wait()
    response = await page(ds, "graphene")
    thread.join()
    assert response.status_code == 200
    assert logs["search_log"].count == 1


# -- The beacon ---------------------------------------------------------------------------------------------


async def beacon(ds, response, **form):
    """POST the beacon as scisearch-clicks.js does: a form with the page's CSRF token and its cookie."""
    token = html.unescape(re.search(r'data-scisearch-csrftoken="([^"]+)"', response.text)[1])
    url = re.search(r'data-scisearch-click-url="([^"]+)"', response.text)[1]
    data = {"csrftoken": token, **{name: str(value) for name, value in form.items()}}
    return await ds.client.post(url, data=data, cookies={"ds_csrftoken": response.cookies["ds_csrftoken"]})


def search_id_in(response) -> int:
    return int(re.search(r'data-scisearch-search-id="(\d+)"', response.text)[1])


@pytest.mark.asyncio
async def test_a_beacon_for_a_result_the_search_showed_records_one_click(ds, db, logs):
    response = await page(ds, "graphene")
    answer = await beacon(ds, response, search_id=search_id_in(response), position=3, item_type="paper", item_id="G03")
    assert (answer.status_code, answer.json()) == (200, {"ok": True, "recorded": True})
    clicks = logs.execute("select search_id, position, item_type, item_id, actor from search_clicks").fetchall()
    assert clicks == [(search_id_in(response), 3, "paper", "G03", None)]


@pytest.mark.asyncio
async def test_a_beacon_without_the_csrf_token_is_refused(ds, db, logs):
    response = await page(ds, "graphene")
    url = re.search(r'data-scisearch-click-url="([^"]+)"', response.text)[1]
    answer = await ds.client.post(
        url, data={"search_id": search_id_in(response), "position": 1}, cookies={"ds_csrftoken": "forged"}
    )
    assert answer.status_code == 403
    assert logs["search_clicks"].count == 0


@pytest.mark.asyncio
async def test_a_beacon_for_an_unknown_search_is_a_404_that_says_so(ds, db):
    response = await page(ds, "graphene")
    answer = await beacon(ds, response, search_id=999999, position=1)
    assert answer.status_code == 404
    assert answer.json() == {"ok": False, "error": "there is no search 999999"}


@pytest.mark.asyncio
async def test_a_beacon_with_words_for_numbers_is_a_400(ds, db):
    response = await page(ds, "graphene")
    answer = await beacon(ds, response, search_id="1; drop table search_log", position=1)
    assert answer.status_code == 400
    assert "whole numbers" in answer.json()["error"]


@pytest.mark.asyncio
async def test_a_beacon_for_a_position_the_search_did_not_show_is_refused(ds, db, logs):
    response = await page(ds, "graphene")
    answer = await beacon(ds, response, search_id=search_id_in(response), position=PAPERS + 1)
    assert answer.status_code == 400
    assert logs["search_clicks"].count == 0


@pytest.mark.asyncio
async def test_a_beacon_naming_another_item_than_the_one_shown_there_is_refused(ds, db):
    response = await page(ds, "graphene")
    answer = await beacon(ds, response, search_id=search_id_in(response), position=1, item_type="paper", item_id="G09")
    assert answer.status_code == 400
    assert "another item" in answer.json()["error"]


@pytest.mark.asyncio
async def test_a_beacon_for_a_catalog_that_is_not_served_is_a_404(ds):
    response = await page(ds, "graphene")
    token = re.search(r'data-scisearch-csrftoken="([^"]+)"', response.text)[1]
    answer = await ds.client.post(
        "/-/scisearch/click/nowhere",
        data={"csrftoken": token, "search_id": 1, "position": 1},
        cookies={"ds_csrftoken": response.cookies["ds_csrftoken"]},
    )
    assert answer.status_code == 404
    assert answer.json()["ok"] is False


@pytest.mark.asyncio
async def test_a_beacon_to_a_catalog_the_visitor_may_not_see_is_a_json_403(catalog_path):
    private = Datasette([str(catalog_path)], metadata={"databases": {"catalog": {"allow": {"id": "root"}}}})
    answer = await private.client.post("/-/scisearch/click/catalog", data={"search_id": 1, "position": 1})
    assert answer.status_code == 403
    assert answer.json()["ok"] is False


@pytest.mark.asyncio
async def test_clicking_the_same_result_again_counts_once(ds, db, logs):
    response = await page(ds, "graphene")
    for _ in range(5):
        answer = await beacon(ds, response, search_id=search_id_in(response), position=2)
    assert answer.json() == {"ok": True, "recorded": False, "note": "already counted for this search"}
    assert logs["search_clicks"].count == 1


def test_a_search_counts_only_a_few_clicks(db, logs):
    search_id = log(db, [f"G{n:02d}" for n in range(1, PAPERS + 1)])
    outcomes = [record_click(logs.conn, search_id, position, None, None, None, now=NOW) for position in range(1, 11)]
    assert sum(outcome.recorded for outcome in outcomes) == MAX_CLICKS_PER_SEARCH
    assert logs["search_clicks"].count == MAX_CLICKS_PER_SEARCH


def test_a_click_on_a_search_older_than_a_day_is_refused(db, logs):
    search_id = log(db, ["G01", "G02"], when=NOW - dt.timedelta(days=2))
    outcome = record_click(logs.conn, search_id, 1, "paper", "G01", None, now=NOW)
    assert (outcome.status, outcome.recorded) == (410, False)


def test_a_click_on_someone_elses_search_is_refused(db, logs):
    search_id = log(db, ["G01", "G02"], actor="alice")
    assert record_click(logs.conn, search_id, 1, "paper", "G01", "mallory", now=NOW).status == 403
    assert record_click(logs.conn, search_id, 1, "paper", "G01", None, now=NOW).status == 403


# -- Learning ------------------------------------------------------------------------------------------------


def test_an_item_opened_as_often_from_position_5_as_another_from_position_1_is_learned_more_attractive(db):
    shown = ["G01", "G02", "G03", "G04", "G05"]
    for n in range(100):
        clicked = ["G01"] * (n % 4 == 0) + ["G05"] * (n % 4 == 1)  # 25 clicks each
        log(db, shown, clicked)
    report = learning.learn(db)
    assert signal(db, "G05")["boost"] > signal(db, "G01")["boost"]
    assert report.propensities[0] > report.propensities[4]


def test_naive_click_rates_rank_the_two_items_alike(db):
    shown = ["G01", "G02", "G03", "G04", "G05"]
    for n in range(100):
        log(db, shown, ["G01"] * (n % 4 == 0) + ["G05"] * (n % 4 == 1))
    learning.learn(db, debias=False)
    assert signal(db, "G05")["attractiveness"] == pytest.approx(signal(db, "G01")["attractiveness"])


@pytest.mark.slow
def test_em_recovers_the_examination_curve_when_items_are_shown_at_several_positions(db):
    import numpy as np

    rng = np.random.default_rng(0)
    true_examination = 1 / np.arange(1, 6) ** 1.5
    attractiveness = {f"G{n:02d}": 0.2 + 0.15 * (n % 5) for n in range(1, 6)}
    for _ in range(3000):
        shown = list(rng.permutation(list(attractiveness)))
        p = true_examination * np.array([attractiveness[item] for item in shown])
        log(db, shown, [item for item, chance in zip(shown, p) if rng.random() < chance])
    report = learning.learn(db)
    estimated = np.array(report.propensities[:5]) / report.propensities[0]
    assert estimated == pytest.approx(true_examination, abs=0.05)


def test_one_click_from_one_impression_is_a_small_boost_not_certainty(db):
    log(db, ["G01", "G02", "G03"], ["G03"])
    learning.learn(db)
    assert 0 < signal(db, "G03")["boost"] < 0.2 * learning.BOOST_CAP


def test_a_thousand_anonymous_forged_clicks_reach_at_most_the_cap(db):
    for _ in range(1000):
        log(db, [f"G{n:02d}" for n in range(1, PAPERS + 1)], ["G10"])
    learning.learn(db)
    assert signal(db, "G10")["boost"] == pytest.approx(learning.BOOST_CAP)


def test_one_signed_in_actor_clicking_a_thousand_times_in_a_day_counts_once(db):
    for _ in range(1000):
        log(db, [f"G{n:02d}" for n in range(1, PAPERS + 1)], ["G10"], actor="mallory")
    report = learning.learn(db)
    assert (report.counted_clicks, signal(db, "G10")["clicks"]) == (1, 1)
    assert signal(db, "G10")["boost"] < 0.2 * learning.BOOST_CAP


def test_learning_only_from_signed_in_actors_ignores_anonymous_clicks(db):
    for _ in range(100):
        log(db, [f"G{n:02d}" for n in range(1, PAPERS + 1)], ["G10"])
    log(db, [f"G{n:02d}" for n in range(1, PAPERS + 1)], ["G02"], actor="alice")
    report = learning.learn(db, signed_in_only=True)
    assert (report.counted_clicks, signal(db, "G10")) == (1, None)
    assert signal(db, "G02")["clicks"] == 1


def test_learning_twice_from_the_same_log_gives_the_same_signals(db, logs):
    for n in range(30):
        log(db, ["G01", "G02", "G03", "G04"], ["G03"] if n % 2 else ["G01", "G04"])
    learning.learn(db, now=NOW)
    first = logs.execute("select * from click_signals order by item_id").fetchall()
    learning.learn(db, now=NOW)
    assert logs.execute("select * from click_signals order by item_id").fetchall() == first


def test_learning_from_an_empty_log_writes_nothing(db, logs):
    report = learning.learn(db)
    assert (report.searches, report.pairs, logs["click_signals"].count) == (0, 0, 0)


# -- Search uses it ------------------------------------------------------------------------------------------


def test_search_results_are_unchanged_without_click_signals(db):
    with_stage = engine.search(db, "graphene", per_page=PAPERS)
    without_stage = engine.search(db, "graphene", per_page=PAPERS, weights={"clicks": 0})
    assert [(h.item_id, h.score, h.why) for h in with_stage.hits] == [
        (h.item_id, h.score, h.why) for h in without_stage.hits
    ]


def test_an_item_people_keep_opening_moves_up_and_says_why(db):
    shown = order(db)
    assert shown.index("G06") == 5
    for n in range(200):
        log(db, shown, ["G06"] + (["G01"] if n % 5 == 0 else []), when=NOW - dt.timedelta(hours=n))
    learning.learn(db)
    results = engine.search(db, "graphene", per_page=PAPERS)
    moved = [hit.item_id for hit in results.hits]
    assert moved.index("G06") < 5
    assert "often opened for this search" in results.hits[moved.index("G06")].why


def test_clicks_on_one_query_leave_other_queries_alone(db):
    before = order(db, "graphene lattice")
    for _ in range(200):
        log(db, order(db), ["G06"])
    learning.learn(db)
    assert order(db, "graphene lattice") == before


def test_the_largest_boost_cannot_lift_the_last_result_above_the_first(db):
    shown = order(db)
    for _ in range(1000):
        log(db, shown, ["G10"])
    learning.learn(db)
    assert order(db)[0] == "G01"


# -- The command ---------------------------------------------------------------------------------------------


def test_the_learn_command_prints_searches_clicks_pairs_and_propensities(db, catalog_path):
    for n in range(40):
        log(db, ["G01", "G02", "G03"], ["G02"] if n % 2 else ["G01"])
    result = CliRunner().invoke(learn_command, [str(catalog_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("learn clicks: 40 searches, 120 results shown, 40 clicks")
    assert "3 (query, item) signals for 1 queries" in lines[2]
    assert re.search(r"examination by position \(EM, \d+ iterations\): 1: [\d.]+, 2: [\d.]+, 3: [\d.]+", lines[3])


def test_the_learn_command_on_a_missing_catalog_says_so(tmp_path):
    result = CliRunner().invoke(learn_command, [str(tmp_path / "nope.db")])
    assert result.exit_code == 1
    assert "no catalog at" in result.output
    assert "Traceback" not in result.output


@pytest.mark.asyncio
async def test_a_search_over_two_catalogs_logs_in_each_the_results_it_gave_at_their_page_positions(
    catalog_path, tmp_path
):
    other = tmp_path / "other.db"
    other.write_bytes(catalog_path.read_bytes())
    ds = Datasette([str(catalog_path), str(other)])
    response = await page(ds, "graphene")
    assert response.status_code == 200
    positions = {}
    for path in (catalog_path, other):
        logs = open_private(path)
        assert logs["search_log"].count == 1
        positions[path.stem] = [row[0] for row in logs.execute("select position from search_impressions")]
        logs.close()
    assert sorted(positions["catalog"] + positions["other"]) == list(range(1, 2 * PAPERS + 1))
    assert len(positions["catalog"]) == len(positions["other"]) == PAPERS
    urls = set(re.findall(r'data-scisearch-click-url="([^"]+)"', response.text))
    assert urls == {"/-/scisearch/click/catalog", "/-/scisearch/click/other"}
