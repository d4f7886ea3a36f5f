"""The JSON API through Datasette: search, item and similar-item JSON, their errors, and a fuzz of the search."""

from __future__ import annotations

import json
import random
import re
import urllib.parse

import pytest
from datasette.app import Datasette
from datasette.utils import tilde_encode

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.search.index import refresh_search_items

from .conftest import REPO

DOCS = REPO / "docs" / "search-api.md"


pytestmark = pytest.mark.usefixtures("hashed_words_model")  # the demo is searched by meaning too


async def get_json(ds, path: str, **params):
    url = path + ("?" + urllib.parse.urlencode(params) if params else "")
    response = await ds.client.get(url)
    return response.status_code, response.json()


@pytest.mark.asyncio
async def test_search_json_has_results_counts_facets_and_paging(ds):
    status, data = await get_json(ds, "/-/scisearch.json", q="SrTiO3 HAADF", per_page=5)
    assert status == 200 and data["ok"] is True and data["database"] == "demo"
    assert data["hits"][0]["item_id"] == "P-2021-0057"
    assert data["total"] == sum(data["counts"].values()) and data["last_page"] == -(-data["total"] // 5)
    assert set(data["facets"]) == {"item_type", "instrument", "kind", "mode", "detector", "tag", "year", "proposal"}


@pytest.mark.asyncio
async def test_every_hit_links_to_its_item_page_json_similar_items_and_preview(ds):
    _, data = await get_json(ds, "/-/scisearch.json", q="apoferritin", type="file", per_page=1)
    hit = data["hits"][0]
    assert hit["url"] == f"/-/scisearch/item/demo/file/{hit['item_id']}"
    assert hit["json_url"] == hit["url"] + ".json"
    assert hit["similar_url"] == f"/-/scisearch/similar/demo/file/{hit['item_id']}.json"
    preview = await ds.client.get(hit["preview_url"])
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"


@pytest.mark.asyncio
async def test_type_names_the_tab_and_a_kind_of_file_filters(ds):
    _, papers = await get_json(ds, "/-/scisearch.json", q="gold", type="paper")
    assert papers["item_type"] == "paper" and {h["item_type"] for h in papers["hits"]} == {"paper"}
    assert papers["counts"]["file"] > 0  # the other tabs' counts are still there
    _, images = await get_json(ds, "/-/scisearch.json", q="gold", type="image")
    assert images["filters"]["kinds"] == ["image"] and {h["facts"]["kind"] for h in images["hits"]} == {"image"}


@pytest.mark.asyncio
async def test_filter_parameters_work_like_filters_in_the_query(ds):
    _, as_parameter = await get_json(ds, "/-/scisearch.json", q="gold", instrument="TEAM 0.5", per_page=100)
    _, in_query = await get_json(ds, "/-/scisearch.json", q='gold instrument:"TEAM 0.5"', per_page=100)
    assert [h["item_id"] for h in as_parameter["hits"]] == [h["item_id"] for h in in_query["hits"]]
    assert {h["facts"]["instrument"] for h in as_parameter["hits"]} == {"TEAM 0.5"}


@pytest.mark.asyncio
async def test_a_contradictory_query_is_a_400_saying_what_to_change(ds):
    status, data = await get_json(ds, "/-/scisearch.json", q="voltage>=300kV voltage<100kV")
    assert status == 400 and data["ok"] is False and "exclude each other" in data["error"]


@pytest.mark.asyncio
@pytest.mark.parametrize("page", ["0", "-1", "99999999999", "two", "1.5"])
async def test_a_bad_page_number_is_a_400(ds, page):
    status, data = await get_json(ds, "/-/scisearch.json", q="gold", page=page)
    assert status == 400 and "page" in data["error"]


@pytest.mark.asyncio
async def test_an_unknown_unit_is_a_note_not_an_error(ds):
    status, data = await get_json(ds, "/-/scisearch.json", q="gold voltage>3kg")
    assert status == 200 and "unknown unit 'kg' in 'voltage>3kg' was ignored" in data["messages"][0]


@pytest.mark.asyncio
async def test_an_unknown_database_is_a_404(ds):
    status, data = await get_json(ds, "/-/scisearch.json", q="gold", db="nope")
    assert status == 404 and data == {"ok": False, "error": "There is no database called 'nope' here.", "status": 404}


@pytest.mark.asyncio
async def test_a_database_that_is_not_a_catalog_is_a_404(demo_path, tmp_path):
    other = tmp_path / "other.db"
    import sqlite_utils

    sqlite_utils.Database(other)["t"].insert({"a": 1})
    ds = Datasette([str(other), str(demo_path)])
    status, data = await get_json(ds, "/-/scisearch.json", q="gold", db="other")
    assert status == 404 and "not a scisearch catalog" in data["error"]
    status, data = await get_json(ds, "/-/scisearch.json", q="gold")  # the first catalog is the default
    assert status == 200 and data["database"] == "demo"


@pytest.mark.asyncio
async def test_item_json_of_a_file_has_its_context_tags_and_links(ds, demo_path):
    db = open_catalog(demo_path)
    file_id = db.execute("select id from files where proposal_id = 'P-2021-0042' order by id limit 1").fetchone()[0]
    status, data = await get_json(ds, f"/-/scisearch/item/demo/file/{file_id}.json")
    assert status == 200 and data["ok"] and data["item_type"] == "file" and data["item_id"] == str(file_id)
    assert data["proposal"]["id"] == "P-2021-0042" and data["session"] and data["papers"]
    assert {"metadata", "filenames"} <= set(data["tags"])
    assert data["preview_url"].startswith(f"/-/scisearch/preview/demo/{file_id}.png")
    assert data["similar_url"] == f"/-/scisearch/similar/demo/file/{file_id}.json"


@pytest.mark.asyncio
async def test_item_json_of_a_proposal_lists_its_files_with_links(ds):
    status, data = await get_json(ds, "/-/scisearch/item/demo/proposal/P-2023-0009.json")
    assert status == 200 and data["files_total"] == len(data["files"]) > 0
    assert data["files"][0]["url"] == f"/-/scisearch/item/demo/file/{data['files'][0]['id']}"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path",
    [
        "/-/scisearch/item/demo/file/99999999.json",
        "/-/scisearch/item/demo/banana/1.json",
        "/-/scisearch/item/demo/file/9999999999999999999999.json",
        "/-/scisearch/item/nope/file/1.json",
    ],
)
async def test_unknown_items_are_a_404_with_a_json_error(ds, path):
    status, data = await get_json(ds, path)
    assert status == 404 and data["ok"] is False and data["error"]


@pytest.mark.asyncio
async def test_similar_json_gives_the_item_and_its_nearest_neighbours(ds):
    status, data = await get_json(ds, "/-/scisearch/similar/demo/proposal/P-2021-0042.json", k=3)
    assert status == 200 and data["item"]["item_id"] == "P-2021-0042" and data["space"] == "text"
    assert len(data["similar"]) == 3 and all(hit["url"] for hit in data["similar"])


@pytest.mark.asyncio
@pytest.mark.parametrize("k", ["0", "500", "x"])
async def test_similar_json_refuses_a_bad_k(ds, k):
    status, data = await get_json(ds, "/-/scisearch/similar/demo/proposal/P-2021-0042.json", k=k)
    assert status == 400 and "k must" in data["error"]


@pytest.mark.asyncio
async def test_similar_json_of_an_unknown_item_is_a_404(ds):
    status, data = await get_json(ds, "/-/scisearch/similar/demo/paper/no-such-paper.json")
    assert status == 404 and "no paper 'no-such-paper'" in data["error"]


@pytest.mark.asyncio
async def test_ids_with_slashes_and_spaces_travel_tilde_encoded(tmp_path):
    db = open_catalog(tmp_path / "odd.db")
    db["papers"].insert({"id": "10.1000/a b.c", "title": "Gold clusters"})
    refresh_search_items(db)
    ds = Datasette([str(tmp_path / "odd.db")])
    _, found = await get_json(ds, "/-/scisearch.json", q="gold clusters")
    assert found["hits"][0]["json_url"] == f"/-/scisearch/item/odd/paper/{tilde_encode('10.1000/a b.c')}.json"
    status, data = await get_json(ds, found["hits"][0]["json_url"])
    assert status == 200 and data["item_id"] == "10.1000/a b.c"


@pytest.mark.asyncio
async def test_a_catalog_without_vectors_or_index_answers_with_a_message(tmp_path):
    db = open_catalog(tmp_path / "bare.db")
    db["proposals"].insert({"id": "P-1", "title": "Gold"})
    ds = Datasette([str(tmp_path / "bare.db")])
    status, data = await get_json(ds, "/-/scisearch.json", q="gold")
    assert status == 200 and data["total"] == 0 and "no search index yet" in data["messages"][0]


# -- The documented shapes -------------------------------------------------------------------------------


def documented(title: str) -> dict:
    """The JSON example under a heading of docs/search-api.md."""
    text = DOCS.read_text()
    section = text[text.index(title) :]
    block = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)[1]
    return json.loads(block)


def key_paths(value, prefix="") -> set[str]:
    """Every key path of a JSON value, lists read through their first element."""
    paths = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            paths.add(prefix + key)
            paths |= key_paths(inner, prefix + key + ".")
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        paths |= key_paths(value[0], prefix + "[].")
    return paths


@pytest.mark.asyncio
async def test_search_json_has_the_shape_the_docs_show(ds):
    _, data = await get_json(ds, "/-/scisearch.json", q="SrTiO3 HAADF", per_page=2)
    hit_keys = {p for p in key_paths(data) if p.startswith("hits.[].") and p.count(".") == 2}
    expected = documented("## Search")
    assert {p for p in key_paths(expected) if p.count(".") == 0} == {p for p in key_paths(data) if p.count(".") == 0}
    assert {p for p in key_paths(expected) if p.startswith("hits.[].") and p.count(".") == 2} == hit_keys


@pytest.mark.asyncio
async def test_item_json_has_the_shape_the_docs_show(ds):
    _, data = await get_json(ds, "/-/scisearch/item/demo/proposal/P-2021-0042.json")
    assert set(documented("## One item")) == set(data)


@pytest.mark.asyncio
async def test_similar_json_has_the_shape_the_docs_show(ds):
    _, data = await get_json(ds, "/-/scisearch/similar/demo/proposal/P-2021-0042.json", k=2)
    assert set(documented("## Similar items")) == set(data)


# -- Fuzz ------------------------------------------------------------------------------------------------

PIECES = [
    "gold",
    "SrTiO3",
    "HAADF",
    "300",
    "kV",
    "300kV",
    "13.5Mx",
    "Å",
    "nm",
    "pm",
    "kg",
    "µm",
    "-",
    "--",
    "*",
    "**",
    '"',
    '""',
    "'",
    "(",
    ")",
    "((",
    "))",
    "AND",
    "OR",
    "NOT",
    "NEAR(",
    "NEAR",
    "^",
    ":",
    "::",
    "=",
    ">=",
    "<=",
    "<",
    ">",
    "!=",
    "..",
    "-1",
    "1e308",
    "9" * 40,
    "type:",
    "type:image",
    "type:banana",
    "tag:",
    "tag:HAADF",
    "-tag:x",
    "instrument:",
    'instrument:"TEAM',
    "proposal:P-2021-0042",
    "date:",
    "date:2021-13",
    "date:2021..",
    "date:..2022",
    "after:",
    "before:0000",
    "voltage",
    "voltage>=",
    "voltage>=200kV",
    "voltage<1V",
    "mag:1M-",
    "mag:-20M",
    "mag:x",
    "pixel<0.05nm",
    "pixel:1..",
    "cl:",
    "kv:80",
    "title:",
    "body:",
    "{",
    "}",
    "[",
    "]",
    "\\",
    "/",
    "%",
    "_",
    "&",
    "🙂",
    "💥",
    "ゴールド",
    "金",
    "ü",
    "\u200b",
    "\u202e",
    "\t",
    "\n",
    " ",
    "NULL",
    "null",
    "0x00",
    ";",
    "--",
    "select",
    "drop table files",
    "rank",
    "bm25(",
    "search_items_fts",
    "P-2022-0048",
    "a" * 200,
]


def generated_queries(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    queries = []
    for _ in range(count):
        q = " ".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8)))
        if rng.random() < 0.3:
            q = q.replace(" ", "")
        params = {"q": q}
        if rng.random() < 0.2:
            params["page"] = rng.choice(["1", "2", "0", "-5", "x", "1000", "1001", "9" * 30, ""])
        if rng.random() < 0.2:
            params["per_page"] = rng.choice(["1", "100", "101", "0", "abc", ""])
        if rng.random() < 0.2:
            params["type"] = rng.choice(["file", "paper", "image", "all", "", "💥", "session", "4D"])
        if rng.random() < 0.1:
            params[rng.choice(["tag", "instrument", "voltage", "date", "mag"])] = rng.choice(PIECES)
        queries.append(params)
    queries.append({"q": "x" * 10_000})
    queries.append({"q": "gold " * 2000})
    return queries


@pytest.mark.slow
@pytest.mark.asyncio
async def test_two_thousand_generated_queries_never_get_a_server_error(ds):
    failures = []
    for params in generated_queries(2000):
        response = await ds.client.get("/-/scisearch.json?" + urllib.parse.urlencode(params))
        if response.status_code >= 500 or response.status_code not in (200, 400):
            failures.append((response.status_code, params))
        elif response.status_code == 400:
            assert response.json()["ok"] is False and response.json()["error"]
    assert failures == []


@pytest.mark.asyncio
async def test_generated_item_and_similar_requests_never_get_a_server_error(ds):
    rng = random.Random(1)
    failures = []
    for _ in range(300):
        item_type = rng.choice(["file", "paper", "proposal", "session", "x", "%20", "~2F"])
        item_id = rng.choice(["1", "0", "-1", "99999999999999999999", "P-2021-0042", "~2F~2E~2E", "%00", "🙂", "a.b"])
        route = rng.choice(["item", "similar"])
        response = await ds.client.get(f"/-/scisearch/{route}/demo/{item_type}/{item_id}.json")
        if response.status_code >= 500:
            failures.append((response.status_code, route, item_type, item_id))
    assert failures == []


# -- scisearch search ------------------------------------------------------------------------------------


def run_search(*arguments):
    from click.testing import CliRunner

    from datasette_scisearch.search.command import search_command

    return CliRunner().invoke(search_command, [str(a) for a in arguments], catch_exceptions=False)


def test_search_command_prints_numbered_results_with_why(demo_path):
    result = run_search("SrTiO3 HAADF", "--catalog", demo_path, "--limit", 3)
    assert result.exit_code == 0
    assert "results for 'SrTiO3 HAADF'" in result.output
    assert "  1. [proposal] P-2021-0057  Grain boundaries and interfaces in SrTiO3" in result.output
    assert "why: title matches 'SrTiO3'" in result.output and "<mark>" not in result.output


def test_search_command_json_is_the_search_results(demo_path):
    result = run_search("voltage>=200kV type:image", "--catalog", demo_path, "--json", "--limit", 5)
    data = json.loads(result.output)
    assert len(data["hits"]) == 5 and data["filters"]["kinds"] == ["image"]
    assert all(hit["facts"]["voltage_kv"] >= 200 for hit in data["hits"])


def test_search_command_type_picks_one_item_type(demo_path):
    data = json.loads(run_search("gold", "--catalog", demo_path, "--type", "paper", "--json").output)
    assert {hit["item_type"] for hit in data["hits"]} == {"paper"}


def test_search_command_refuses_a_contradictory_query_with_a_sentence(demo_path):
    result = run_search("voltage>=300kV voltage<100kV", "--catalog", demo_path)
    assert result.exit_code == 1 and result.output.startswith("error: ") and "exclude each other" in result.output


def test_search_command_says_when_there_is_no_catalog(tmp_path):
    result = run_search("gold", "--catalog", tmp_path / "none.db")
    assert result.exit_code == 1 and "no catalog at" in result.output
    assert not (tmp_path / "none.db").exists()


def _catalog_loaded_before_search_existed(path):
    db = open_catalog(path)
    db["proposals"].insert({"id": "P-1", "title": "Gold clusters on ceria"})
    db.close()
    return path


def test_search_command_writes_nothing_and_says_how_to_index_a_catalog_loaded_before_search_existed(tmp_path):
    import sqlite_utils

    path = _catalog_loaded_before_search_existed(tmp_path / "old.db")
    result = run_search("ceria", "--catalog", path)
    assert f"note: old has no search documents yet: 'scisearch link {path}' builds them" in result.output
    assert sqlite_utils.Database(path)["search_items"].count == 0


def test_a_catalog_loaded_before_search_existed_is_found_after_scisearch_link(tmp_path):
    from click.testing import CliRunner

    from datasette_scisearch.cli import cli

    path = _catalog_loaded_before_search_existed(tmp_path / "old.db")
    assert CliRunner().invoke(cli, ["link", str(path)]).exit_code == 0
    assert "[proposal] P-1  Gold clusters on ceria" in run_search("ceria", "--catalog", path).output


# -- Start-up --------------------------------------------------------------------------------------------------


async def query_model_loaded_after_start_up(ds, seconds: float = 10.0) -> bool:
    import asyncio

    from datasette_scisearch.search import embedding

    embedding.forget()
    await ds.invoke_startup()
    for _ in range(int(seconds / 0.05)):
        if embedding.is_loaded("hashed_words"):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.asyncio
async def test_the_server_loads_the_query_model_at_start_up_before_any_search(ds):
    assert await query_model_loaded_after_start_up(ds)


@pytest.mark.asyncio
async def test_a_server_told_not_to_preload_loads_the_query_model_at_the_first_search(demo_path):
    ds = Datasette([str(demo_path)], metadata={"plugins": {"datasette-scisearch": {"preload_query_models": False}}})
    assert not await query_model_loaded_after_start_up(ds, seconds=0.5)
    status, data = await get_json(ds, "/-/scisearch.json", q="gold nanoparticles")
    assert status == 200 and "text" in data["rankers"]
