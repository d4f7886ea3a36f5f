"""What names a person or what they searched is readable by staff only, by every route Datasette offers.

The search log, the click signals and who changed each tag live in the private database beside the catalog
(``lab.private.db``, served as ``lab_private``); anonymous visitors and other signed-in people get a 403 from
every route into it, and the catalog itself holds none of it."""

from __future__ import annotations

import shutil

import pytest
import sqlite_utils
from datasette.app import Datasette

from datasette_scisearch.catalog import MIGRATIONS, open_catalog
from datasette_scisearch.private import open_private, private_path

from .test_validation_api import post, session, signed_in, tag_id

PLUGIN_SETTINGS = {"timezone": "America/Los_Angeles", "edit": {"allow": {"id": ["root", "alice"]}}}
PRIVATE_TABLES = ("search_log", "search_impressions", "search_clicks", "click_signals", "change_actors")


@pytest.fixture
def catalog_path(tagged_em_catalog_file, tmp_path):
    path = tmp_path / "em.db"
    shutil.copy(tagged_em_catalog_file, path)
    return path


def served(catalog_path, **settings) -> Datasette:
    return Datasette(
        [str(catalog_path)], metadata={"plugins": {"datasette-scisearch": {**PLUGIN_SETTINGS, **settings}}}
    )


async def searched_and_edited(ds, catalog_path) -> int:
    """alice searches, opens a result and accepts a tag: the log and the history now name her."""
    alice = signed_in(ds, "alice")
    response = await ds.client.get("/-/scisearch?q=HAADF", cookies=alice)
    assert 'data-scisearch-search-id="' in response.text
    cookies, token = await session(ds, "alice")
    haadf = tag_id(catalog_path, "1", "HAADF")
    accepted = await post(ds, f"/-/scisearch/tags/em/{haadf}", {"action": "accept"}, cookies, token)
    assert accepted.status_code == 200
    return haadf


@pytest.mark.asyncio
async def test_anonymous_sql_over_the_catalog_finds_no_search_log_and_no_names(catalog_path):
    ds = served(catalog_path)
    await searched_and_edited(ds, catalog_path)
    for table in ("search_log", "search_impressions", "search_clicks", "click_signals"):
        response = await ds.client.get("/em.json", params={"sql": f"select * from {table}", "_shape": "objects"})
        assert response.status_code == 400 and "no such table" in response.text
    names = await ds.client.get("/em.json", params={"sql": "select actor from tag_history", "_shape": "array"})
    assert names.status_code == 200
    assert [row for row in names.json() if row["actor"]] == []


@pytest.mark.asyncio
async def test_every_route_into_the_private_database_refuses_anonymous_and_other_people(catalog_path):
    ds = served(catalog_path)
    await searched_and_edited(ds, catalog_path)
    routes = ["/em_private", "/em_private.json", "/em_private.db"]
    routes += ["/em_private.json?sql=select+*+from+search_log", "/em_private.json?sql=select+*+from+change_actors"]
    for table in PRIVATE_TABLES:
        routes += [f"/em_private/{table}", f"/em_private/{table}.json", f"/em_private/{table}.csv"]
        routes += [f"/em_private/{table}.json?_facet=actor", f"/em_private/{table}.json?_where=1"]
    for who in (None, "bob", "alice"):  # alice may edit tags, but she is not staff
        for route in routes:
            response = await ds.client.get(route, cookies=signed_in(ds, who) if who else {})
            assert response.status_code == 403, (route, who, response.status_code)
            assert who == "alice" or "alice" not in response.text


@pytest.mark.asyncio
async def test_the_private_database_is_not_listed_to_anonymous_visitors(catalog_path):
    ds = served(catalog_path)
    listed = (await ds.client.get("/.json")).json()
    assert "em" in listed and "em_private" not in listed


@pytest.mark.asyncio
async def test_root_reads_the_search_log_and_who_changed_each_tag(catalog_path):
    ds = served(catalog_path)
    haadf = await searched_and_edited(ds, catalog_path)
    root = signed_in(ds, "root")
    log = await ds.client.get("/em_private/search_log.json?_shape=array", cookies=root)
    assert log.status_code == 200
    assert [(row["query"], row["actor"]) for row in log.json()] == [("HAADF", "alice")]
    history = (await ds.client.get(f"/-/scisearch/tags/em/{haadf}.json", cookies=root)).json()["history"]
    assert history[0]["actor"] == "alice"


@pytest.mark.asyncio
async def test_staff_named_in_the_settings_read_the_private_database_and_nobody_else_does(catalog_path):
    ds = served(catalog_path, staff={"allow": {"id": ["carol"]}})
    await searched_and_edited(ds, catalog_path)
    assert (await ds.client.get("/em_private/search_log.json", cookies=signed_in(ds, "carol"))).status_code == 200
    assert (await ds.client.get("/em_private/search_log.json", cookies=signed_in(ds, "root"))).status_code == 403


@pytest.mark.asyncio
async def test_anonymous_visitors_see_that_a_tag_changed_but_not_who_changed_it(catalog_path):
    ds = served(catalog_path)
    haadf = await searched_and_edited(ds, catalog_path)
    history = (await ds.client.get(f"/-/scisearch/tags/em/{haadf}.json")).json()["history"]
    assert [(entry["action"], entry["actor"]) for entry in history] == [("accept", None)]
    page = await ds.client.get("/-/scisearch/item/em/file/1")
    assert page.status_code == 200
    assert "an expert" in page.text and "alice" not in page.text


@pytest.mark.asyncio
async def test_search_json_over_the_private_database_is_refused(catalog_path):
    ds = served(catalog_path)
    await searched_and_edited(ds, catalog_path)
    response = await ds.client.get("/-/scisearch.json", params={"q": "alice", "db": "em_private"})
    assert response.status_code in (403, 404)
    assert "alice" not in response.text.replace("'alice'", "")


def test_an_older_catalog_moves_its_log_and_names_out_when_opened(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="m005_private_rows_leave_the_catalog")  # as version 4 left it
    with old.conn:
        old["catalog_info"].insert({"key": "schema_version", "value": "4"}, pk="key", replace=True)
        old["search_log"].insert({"id": 7, "query": "gold", "query_key": "gold", "actor": "alice", "created_at": "x"})
        old["tag_history"].insert({"id": 3, "tag_id": 1, "action": "accept", "actor": "alice", "changed_at": "y"})
    old.close()

    catalog = open_catalog(path)
    assert "search_log" not in catalog.table_names()
    assert [row[0] for row in catalog.execute("select actor from tag_history")] == [None]
    catalog.close()
    logs = open_private(path)
    assert [(row["id"], row["actor"]) for row in logs["search_log"].rows] == [(7, "alice")]
    assert [(row["history_id"], row["actor"]) for row in logs["change_actors"].rows] == [(3, "alice")]
    logs.close()
    assert private_path(path).name == "old.private.db"


@pytest.mark.asyncio
async def test_an_older_catalog_served_as_it_is_keeps_its_log_and_its_sql_for_staff(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="m005_private_rows_leave_the_catalog")  # as version 4 left it
    with old.conn:
        old["search_log"].insert({"id": 7, "query": "gold", "query_key": "gold", "actor": "alice", "created_at": "x"})
    old.close()
    ds = Datasette([str(path)])
    root = signed_in(ds, "root")
    for route in ("/old/search_log.json", "/old.json?sql=select+*+from+search_log", "/old.db"):
        assert (await ds.client.get(route)).status_code == 403, route
    assert (await ds.client.get("/old/search_log.json", cookies=root)).status_code == 200
    assert (await ds.client.get("/old/files.json")).status_code == 200  # the rest of the catalog stays open
    assert "search_log" in sqlite_utils.Database(path).table_names()  # Datasette changed nothing


# -- Table-level rules hold for every route, as they do for the HTML pages ----------------------------------------


def restricted(pages_catalog, *tables: str) -> Datasette:
    """The pages' catalog served with an allow block on each of these tables: only `staff` may see them."""
    rules = {table: {"allow": {"id": "staff"}} for table in tables}
    return Datasette(
        [str(pages_catalog)],
        metadata={"databases": {"cat": {"tables": rules}}, "plugins": {"datasette-scisearch": {"timezone": "UTC"}}},
    )


@pytest.fixture
def pages_catalog(tmp_path_factory):
    from .test_pages import build_catalog

    path = tmp_path_factory.mktemp("rules") / "cat.db"
    build_catalog(path)
    return path


@pytest.mark.asyncio
async def test_every_table_rule_holds_for_the_item_json_similar_and_search_hits(pages_catalog):
    from .test_pages import PROPOSAL_ID, SESSION_ID

    ds = restricted(pages_catalog, "sessions", "proposals")
    staff = signed_in(ds, "staff")
    refused = [
        f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}",
        f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}.json",
        f"/-/scisearch/item/cat/session/{SESSION_ID}.json",
        f"/-/scisearch/similar/cat/proposal/{PROPOSAL_ID}.json",
        f"/-/scisearch/similar/cat/session/{SESSION_ID}.json",
    ]
    for route in refused:
        assert (await ds.client.get(route)).status_code == 403, route
        assert (await ds.client.get(route, cookies=staff)).status_code == 200, route
    for query in ("type:session", "type:proposal", "gold", "jdoe", PROPOSAL_ID, SESSION_ID, "type:session jdoe"):
        hits = (await ds.client.get("/-/scisearch.json", params={"q": query})).json()["hits"]
        assert {hit["item_type"] for hit in hits} <= {"file", "paper"}, query
        assert all(hit.get("proposal") is None for hit in hits), query
    seen_by_staff = (await ds.client.get("/-/scisearch.json", params={"q": "type:session"}, cookies=staff)).json()
    assert [hit["item_id"] for hit in seen_by_staff["hits"]] == [SESSION_ID]


@pytest.mark.asyncio
async def test_counts_and_facets_leave_out_a_table_the_reader_may_not_see(pages_catalog):
    ds = restricted(pages_catalog, "sessions", "proposals")
    answer = (await ds.client.get("/-/scisearch.json", params={"q": "gold"})).json()
    assert set(answer["counts"]) <= {"file", "paper"}
    assert answer["total"] == sum(answer["counts"].values())
    page = await ds.client.get("/-/scisearch", params={"q": "gold"})
    assert "Atomic-resolution imaging of gold nanoparticle catalysts" not in page.text


@pytest.mark.asyncio
async def test_a_file_shows_no_session_or_proposal_to_whoever_may_not_see_them(pages_catalog):
    from .test_pages import PROPOSAL_ID, SESSION_ID

    ds = restricted(pages_catalog, "sessions", "proposals")
    detail = (await ds.client.get("/-/scisearch/item/cat/file/1.json")).json()
    assert (detail["session"], detail["proposal"], detail["proposals"]) == (None, None, [])
    page = await ds.client.get("/-/scisearch/item/cat/file/1")
    assert page.status_code == 200
    assert SESSION_ID not in page.text.split("scisearch-tags")[0] and f"/proposal/{PROPOSAL_ID}" not in page.text


@pytest.mark.asyncio
async def test_similar_files_leave_out_files_when_the_files_table_is_not_to_be_seen(pages_catalog):
    ds = restricted(pages_catalog, "files")
    assert (await ds.client.get("/-/scisearch/similar/cat/file/1.json")).status_code == 403
    assert (await ds.client.get("/-/scisearch/preview/cat/1.png")).status_code == 403
    hits = (await ds.client.get("/-/scisearch.json", params={"q": "gold"})).json()["hits"]
    assert hits and all(hit["item_type"] != "file" for hit in hits)
