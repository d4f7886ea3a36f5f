"""Several catalogs searched as one: the real EM files of ../shared/data split into two catalogs (Velox EMD files
and the rest), served together through Datasette's test client and given to ``scisearch search``."""

from __future__ import annotations

import datetime as dt
import html
import json
import random
import re
import shutil
import urllib.parse

import pytest
import sqlite_utils
from click.testing import CliRunner
from datasette.app import Datasette

from datasette_scisearch.catalog import (
    CURRENT_SCHEMA_VERSION,
    MIGRATIONS,
    load_sqlite_vec,
    open_catalog,
    schema_version,
)
from datasette_scisearch.cli import cli
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.search import engine, federation, fts
from datasette_scisearch.search.command import search_command
from datasette_scisearch.search.filters import filter_sql
from datasette_scisearch.search.index import refresh_search_items
from datasette_scisearch.search.query import parse_query
from datasette_scisearch.tagging.pipeline import tag_catalog

from .conftest import REPO, shared_data
from .search_support import HashedWordsTagger, registered, settings

SPLIT = {"velox": lambda path: path.suffix == ".emd", "others": lambda path: path.suffix != ".emd"}
LAST_MIGRATION = "m003_experts_learning_and_clicks"


def build(path, files) -> None:
    db = open_catalog(path)
    load_files(db, files, settings(), progress=False)
    tag_catalog(db, settings(), tagger_names=["metadata", "filenames"], progress=False)
    db.close()


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> dict:
    """name -> path of each catalog, in the order Datasette serves them."""
    em = shared_data("em")
    folder = tmp_path_factory.mktemp("multi-catalog")
    paths = {}
    for name, belongs in SPLIT.items():
        paths[name] = folder / f"{name}.db"
        build(paths[name], [path for path in sorted(em.iterdir()) if belongs(path)])
    return paths


@pytest.fixture
def ds(catalogs):
    return Datasette([str(path) for path in catalogs.values()])


@pytest.fixture
def older_catalog(tmp_path):
    """A catalog as the schema was before m003: it has files and catalog_info, and none of the search log."""
    path = tmp_path / "older.db"
    db = sqlite_utils.Database(path)
    load_sqlite_vec(db.conn)
    MIGRATIONS.apply(db, stop_before=LAST_MIGRATION)
    db["catalog_info"].upsert({"key": "schema_version", "value": "2"}, pk="key")
    db.close()
    return path


@pytest.fixture
def newer_catalog(catalogs, tmp_path):
    """A catalog a later version of this code has migrated once more."""
    path = tmp_path / "newer.db"
    shutil.copy(catalogs["velox"], path)
    db = sqlite_utils.Database(path)
    db["_sqlite_migrations"].insert(
        {"migration_set": MIGRATIONS.name, "name": "m999_from_the_future", "applied_at": "2030-01-01"}
    )
    db["catalog_info"].upsert({"key": "schema_version", "value": str(CURRENT_SCHEMA_VERSION + 1)}, pk="key")
    db.close()
    return path


@pytest.fixture
def not_a_catalog(tmp_path):
    path = tmp_path / "inventory.db"
    sqlite_utils.Database(path)["things"].insert({"name": "microscope"})
    return path


async def get_json(ds, **params):
    response = await ds.client.get("/-/scisearch.json?" + urllib.parse.urlencode(params, doseq=True))
    return response.status_code, response.json()


def engine_hits(path, query: str, per_page: int = 100) -> list:
    db = open_catalog(path)
    try:
        return engine.search(db, query, per_page=per_page).hits
    finally:
        db.close()


def notes(text: str) -> list[str]:
    found = re.findall(r'class="scisearch-(?:message|error)"[^>]*>\s*(?:<p>)?(.*?)</p>', text, re.S)
    return [html.unescape(note.strip()) for note in found]


# -- One ranked list ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_served_catalogs_are_searched_as_one_list_in_fused_score_order(ds, catalogs):
    status, data = await get_json(ds, q="HAADF", per_page=100)
    assert status == 200 and data["database"] is None and data["catalogs"] == ["velox", "others"]
    found = [(hit["database"], hit["item_id"]) for hit in data["hits"]]
    each = {name: engine_hits(path, "HAADF") for name, path in catalogs.items()}
    assert sorted(found) == sorted((name, hit.item_id) for name, hits in each.items() for hit in hits)
    scores = [hit["score"] for hit in data["hits"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.asyncio
async def test_each_catalog_keeps_its_own_order_within_the_merged_list(ds, catalogs):
    _, data = await get_json(ds, q="HAADF", per_page=100)
    for name, path in catalogs.items():
        assert [h["item_id"] for h in data["hits"] if h["database"] == name] == [
            hit.item_id for hit in engine_hits(path, "HAADF")
        ]


def bm25_scores(path, query: str) -> dict[str, float]:
    """The text ranking's own scores in one catalog, by item id (the engine reports ranks)."""
    db = open_catalog(path)
    try:
        parsed = parse_query(query)
        found = fts.search(db, parsed.clauses, filter_sql(parsed), engine.DEFAULT_WEIGHTS, engine.FTS_POOL)
        ids = dict(db.execute("select id, item_id from search_items").fetchall())
    finally:
        db.close()
    return {ids[rowid]: score for rowid, score in found.scores.items()}


@pytest.mark.asyncio
async def test_text_matches_interleave_by_place_and_equal_places_go_by_bm25(ds, catalogs):
    _, data = await get_json(ds, q="HAADF", per_page=4)
    assert [hit["ranks"]["fts"] for hit in data["hits"]] == [1, 1, 2, 2]
    bm25 = {name: bm25_scores(path, "HAADF") for name, path in catalogs.items()}
    for first, second in (data["hits"][0:2], data["hits"][2:4]):
        assert first["database"] != second["database"]
        assert bm25[first["database"]][first["item_id"]] >= bm25[second["database"]][second["item_id"]]
    assert [hit["score"] for hit in data["hits"]] == [round(1 / (1 + rank), 6) for rank in (1, 2, 3, 4)]


@pytest.fixture(scope="module")
def catalogs_with_vectors(tmp_path_factory) -> dict:
    """Two catalogs whose only match for 'gold ceria' is first in both rankings of each: in 'near' its
    text is closer to the query (fewer other words) than in 'far'."""
    folder = tmp_path_factory.mktemp("vectors")
    texts = {"far": "heating holder vacuum furnace", "near": "catalyst"}
    opened = {}
    with registered(HashedWordsTagger()):
        for name, abstract in texts.items():
            db = open_catalog(folder / f"{name}.db")
            db["proposals"].insert_all(
                [
                    {"id": f"{name}-1", "title": "Gold ceria", "abstract": abstract},
                    {"id": f"{name}-2", "title": "Silicon lamella", "abstract": "focused ion beam"},
                ]
            )
            tag_catalog(db, settings(), tagger_names=["hashed_words"], progress=False)
            opened[name] = db
    yield opened
    for db in opened.values():
        db.close()


def test_vector_similarities_are_compared_across_catalogs(catalogs_with_vectors):
    with registered(HashedWordsTagger()):
        each = {name: engine.search(db, "gold ceria").hits[0] for name, db in catalogs_with_vectors.items()}
        merged = federation.search_catalogs(catalogs_with_vectors, "gold ceria").hits
    assert each["far"].score == each["near"].score and each["far"].ranks == each["near"].ranks
    assert [(hit.database, hit.item_id) for hit in merged] == [("near", "near-1"), ("far", "far-1")]


def test_an_exact_name_stays_first_across_catalogs(catalogs):
    opened = {name: open_catalog(path) for name, path in catalogs.items()}
    try:
        hits = federation.search_catalogs(opened, "0.bcf").hits
    finally:
        for db in opened.values():
            db.close()
    assert (hits[0].database, hits[0].title) == ("others", "0.bcf — HAADF") and hits[0].score > 100


@pytest.mark.asyncio
async def test_counts_and_facets_are_summed_over_the_catalogs(ds, catalogs):
    _, data = await get_json(ds, q="HAADF")
    totals = {name: len(engine_hits(path, "HAADF")) for name, path in catalogs.items()}
    assert data["total"] == sum(totals.values()) == data["counts"]["file"]
    assert data["facets"]["item_type"] == [{"value": "file", "count": sum(totals.values())}]
    assert sum(entry["count"] for entry in data["facets"]["kind"]) == sum(totals.values())


@pytest.mark.asyncio
async def test_the_catalog_facet_counts_the_results_in_each_catalog(ds, catalogs):
    _, data = await get_json(ds, q="HAADF")
    expected = {name: len(engine_hits(path, "HAADF")) for name, path in catalogs.items()}
    assert {entry["value"]: entry["count"] for entry in data["facets"]["catalog"]} == expected


@pytest.mark.asyncio
async def test_a_query_of_filters_alone_is_merged_newest_first(ds):
    _, data = await get_json(ds, q="type:file", per_page=100)
    assert {hit["database"] for hit in data["hits"]} == {"velox", "others"}
    moments = [dt.datetime.fromisoformat(hit["facts"]["acquired_local"]).timestamp() for hit in data["hits"]]
    assert moments == sorted(moments, reverse=True)


# -- Paging --------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_pages_across_catalogs_are_the_merged_list_cut_in_pieces(ds):
    _, whole = await get_json(ds, q="HAADF", per_page=100)
    _, first = await get_json(ds, q="HAADF", per_page=3)
    pieces = first["hits"]
    for page in range(2, first["last_page"] + 1):
        _, data = await get_json(ds, q="HAADF", per_page=3, page=page)
        pieces += data["hits"]
    assert len(whole["hits"]) > 3
    assert [(h["database"], h["item_id"]) for h in pieces] == [(h["database"], h["item_id"]) for h in whole["hits"]]


@pytest.mark.asyncio
async def test_a_page_past_the_merged_results_says_which_is_the_last(ds):
    _, data = await get_json(ds, q="HAADF", per_page=5, page=9)
    assert data["hits"] == [] and "page 9 is past the last page of results (3)" in data["messages"]


@pytest.fixture(scope="module")
def proposal_catalogs(tmp_path_factory) -> dict:
    """Two catalogs of 150 proposals each that all mention gold, more or less often: more results than one
    engine page holds."""
    folder = tmp_path_factory.mktemp("many-proposals")
    opened = {}
    for name in ("site_a", "site_b"):
        db = open_catalog(folder / f"{name}.db")
        db["proposals"].insert_all(
            {"id": f"{name}-{n}", "title": f"Proposal {n} of {name}", "abstract": "gold " * (1 + n % 7) + "ceria"}
            for n in range(150)
        )
        refresh_search_items(db)
        opened[name] = db
    yield opened
    for db in opened.values():
        db.close()


def federated_list(catalogs: dict, per_page: int) -> list[tuple[str, str]]:
    first = federation.search_catalogs(catalogs, "gold", per_page=per_page)
    hits = list(first.hits)
    for page in range(2, -(-first.total // per_page) + 1):
        hits += federation.search_catalogs(catalogs, "gold", page=page, per_page=per_page).hits
    return [(hit.database, hit.item_id) for hit in hits]


def test_deep_pages_across_catalogs_do_not_depend_on_the_page_size(proposal_catalogs):
    by_40 = federated_list(proposal_catalogs, 40)  # page 3 on asks each catalog for two engine pages of 100
    assert by_40 == federated_list(proposal_catalogs, 100)
    assert len(set(by_40)) == len(by_40) == 300


# -- Choosing catalogs ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_catalog_in_the_query_keeps_that_catalog(ds, catalogs):
    _, data = await get_json(ds, q="HAADF catalog:velox", per_page=100)
    assert data["catalogs"] == ["velox"] and data["database"] == "velox"
    assert [h["item_id"] for h in data["hits"]] == [hit.item_id for hit in engine_hits(catalogs["velox"], "HAADF")]


@pytest.mark.asyncio
async def test_catalog_parameter_is_the_same_filter_as_in_the_query(ds):
    _, as_parameter = await get_json(ds, q="HAADF", catalog="others")
    _, in_query = await get_json(ds, q="HAADF catalog:others")
    assert [h["item_id"] for h in as_parameter["hits"]] == [h["item_id"] for h in in_query["hits"]]
    assert {h["database"] for h in as_parameter["hits"]} == {"others"}


@pytest.mark.asyncio
async def test_a_negated_catalog_filter_leaves_that_catalog_out(ds):
    _, data = await get_json(ds, q="HAADF -catalog:velox")
    assert data["catalogs"] == ["others"] and {h["database"] for h in data["hits"]} == {"others"}


@pytest.mark.asyncio
async def test_an_unknown_catalog_name_is_said_and_finds_nothing(ds):
    status, data = await get_json(ds, q="HAADF catalog:krios")
    assert status == 200 and data["hits"] == [] and data["catalogs"] == []
    assert "there is no catalog called 'krios' here (catalogs: velox, others)" in data["messages"]


@pytest.mark.asyncio
async def test_db_narrows_the_search_to_one_catalog_without_a_catalog_facet(ds):
    _, data = await get_json(ds, q="HAADF", db="others")
    assert data["database"] == "others" and {h["database"] for h in data["hits"]} == {"others"}
    assert "catalog" not in data["facets"]


# -- One catalog is searched exactly as before ----------------------------------------------------------------


@pytest.mark.parametrize("query", ["HAADF", "diffraction STEM", "type:file", "0.bcf"])
def test_one_catalog_through_the_federation_is_the_engines_answer(catalogs, query):
    db = open_catalog(catalogs["others"])
    try:
        alone = engine.search(db, query, per_page=7)
        federated = federation.search_catalogs({"others": db}, query, per_page=7)
    finally:
        db.close()
    assert [hit.as_dict() | {"database": "others"} for hit in alone.hits] == [h.as_dict() for h in federated.hits]
    assert (alone.total, alone.counts, alone.facets, alone.messages) == (
        federated.total,
        federated.counts,
        federated.facets,
        federated.messages,
    )


@pytest.mark.asyncio
async def test_one_served_catalog_has_no_catalog_facet_or_label(catalogs):
    ds = Datasette([str(catalogs["velox"])])
    _, data = await get_json(ds, q="HAADF")
    assert data["database"] == "velox" and "catalog" not in data["facets"]
    page = await ds.client.get("/-/scisearch?q=HAADF")
    assert 'class="scisearch-catalog"' not in page.text and 'data-facet="catalog"' not in page.text


# -- The search page ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_search_page_labels_each_result_with_its_catalog(ds):
    page = await ds.client.get("/-/scisearch?q=HAADF")
    labels = re.findall(r'class="scisearch-catalog" title="catalog">(\w+)<', page.text)
    assert set(labels) == {"velox", "others"}
    assert 'href="/-/scisearch/item/velox/file/' in page.text and 'href="/-/scisearch/item/others/file/' in page.text


@pytest.mark.asyncio
async def test_the_search_page_has_a_catalog_facet_that_filters(ds):
    page = await ds.client.get("/-/scisearch?q=HAADF")
    facet = re.search(r'<section class="scisearch-facet" data-facet="catalog">.*?</section>', page.text, re.S)[0]
    link = html.unescape(re.search(r'href="([^"]*catalog=others[^"]*)"', facet)[1])
    narrowed = await ds.client.get(link)
    labels = set(re.findall(r'class="scisearch-catalog" title="catalog">(\w+)<', narrowed.text))
    assert labels == {"others"} and "catalog: others" in narrowed.text


# -- Schema versions and files that are not catalogs -----------------------------------------------------


@pytest.mark.asyncio
async def test_an_older_catalog_is_left_out_with_a_message(catalogs, older_catalog):
    ds = Datasette([str(catalogs["velox"]), str(older_catalog)])
    status, data = await get_json(ds, q="HAADF")
    assert status == 200 and data["catalogs"] == ["velox"] and data["hits"]
    assert data["messages"][0].startswith("catalog 'older' was left out of the search: its schema is version 2, older")
    page = await ds.client.get("/-/scisearch?q=HAADF")
    assert page.status_code == 200
    assert any(note.startswith("Catalog 'older' was left out of the search") for note in notes(page.text))


@pytest.mark.asyncio
async def test_a_newer_catalog_is_left_out_saying_to_upgrade(catalogs, newer_catalog):
    ds = Datasette([str(catalogs["others"]), str(newer_catalog)])
    status, data = await get_json(ds, q="HAADF")
    assert status == 200 and data["catalogs"] == ["others"]
    newer, current = CURRENT_SCHEMA_VERSION + 1, CURRENT_SCHEMA_VERSION
    message = data["messages"][0]
    assert f"its schema (version {newer}) is newer than this datasette-scisearch knows ({current})" in message


@pytest.mark.asyncio
async def test_an_older_catalog_asked_for_by_name_gives_its_message_not_an_error(older_catalog):
    ds = Datasette([str(older_catalog)])
    status, data = await get_json(ds, q="HAADF", db="older")
    assert status == 200 and data["hits"] == [] and "was left out of the search" in data["messages"][0]


def test_serve_brings_an_older_catalog_up_to_date_with_a_note(older_catalog):
    from datasette_scisearch.cli import _ready_to_serve

    note = _ready_to_serve(str(older_catalog))
    assert note == f"brought '{older_catalog}' up to date: catalog schema version 2 → {CURRENT_SCHEMA_VERSION}"
    assert schema_version(sqlite_utils.Database(older_catalog)) == CURRENT_SCHEMA_VERSION


@pytest.mark.parametrize("problem", ["missing", "not a catalog", "not sqlite", "newer"])
def test_serve_refuses_what_it_cannot_serve_with_a_sentence(tmp_path, not_a_catalog, newer_catalog, problem):
    path = {
        "missing": tmp_path / "none.db",
        "not a catalog": not_a_catalog,
        "not sqlite": REPO / "README.md",
        "newer": newer_catalog,
    }[problem]
    result = CliRunner().invoke(cli, ["serve", str(path)])
    assert result.exit_code == 1 and result.output.startswith("error: ") and "Traceback" not in result.output
    assert str(path) in result.output


def test_search_command_searches_several_catalogs_as_one(catalogs):
    arguments = ["HAADF", "--catalog", catalogs["velox"], "--catalog", catalogs["others"], "--limit", 3]
    result = CliRunner().invoke(search_command, [str(a) for a in arguments])
    assert result.exit_code == 0
    first, second = re.findall(r"^ +[12]\. \[(\w+): file\]", result.output, re.M)
    assert {first, second} == {"velox", "others"}


def test_search_command_json_names_each_hits_catalog(catalogs):
    arguments = ["type:file catalog:others", "--catalog", catalogs["velox"], "--catalog", catalogs["others"], "--json"]
    data = json.loads(CliRunner().invoke(search_command, [str(a) for a in arguments]).output)
    assert data["catalogs"] == ["others"] and {hit["database"] for hit in data["hits"]} == {"others"}


@pytest.mark.parametrize(
    ("problem", "said"),
    [
        ("missing", "no catalog at"),
        ("not a catalog", "is an SQLite database but not a scisearch catalog"),
        ("not sqlite", "is not an SQLite database"),
        ("newer", f"has a newer catalog schema (version {CURRENT_SCHEMA_VERSION + 1})"),
    ],
)
def test_search_command_refuses_what_is_not_a_catalog_it_can_search(
    tmp_path, catalogs, not_a_catalog, newer_catalog, problem, said
):
    path = {
        "missing": tmp_path / "none.db",
        "not a catalog": not_a_catalog,
        "not sqlite": REPO / "README.md",
        "newer": newer_catalog,
    }[problem]
    arguments = ["HAADF", "--catalog", str(catalogs["velox"]), "--catalog", str(path)]
    result = CliRunner().invoke(search_command, arguments)
    assert result.exit_code == 1 and said in result.output and "Traceback" not in result.output


def test_searching_a_file_that_is_not_a_catalog_leaves_it_as_it_was(not_a_catalog):
    before = not_a_catalog.read_bytes()
    CliRunner().invoke(search_command, ["HAADF", "--catalog", str(not_a_catalog)])
    assert not_a_catalog.read_bytes() == before


@pytest.mark.asyncio
async def test_generated_queries_over_two_catalogs_never_fail_or_repeat_a_hit(ds):
    words = [
        "HAADF",
        "STEM",
        "diffraction",
        "0.bcf",
        "catalog:velox",
        "-catalog:others",
        "catalog:",
        'catalog:"',
        "catalog:velox,others",
        "catalog:nope",
        "type:file",
        "voltage>=200kV",
        "OR",
        '"',
        "-HAADF",
        "tag:HAADF",
    ]
    rng = random.Random(6)
    for _ in range(150):
        query = " ".join(rng.choice(words) for _ in range(rng.randint(0, 4)))
        params = {"q": query, "page": rng.randint(1, 4), "per_page": rng.randint(1, 7)}
        status, data = await get_json(ds, **params)
        assert status in (200, 400), (params, data)
        if status == 200:
            found = [(hit["database"], hit["item_id"]) for hit in data["hits"]]
            assert len(found) == len(set(found)) <= params["per_page"], params
            assert {database for database, _ in found} <= set(data["catalogs"]) <= {"velox", "others"}


@pytest.mark.asyncio
async def test_an_instance_hidden_from_the_actor_refuses_a_search_over_several_catalogs(catalogs):
    private = Datasette([str(path) for path in catalogs.values()], metadata={"allow": False})
    response = await private.client.get("/-/scisearch.json?q=HAADF")
    assert response.status_code == 403


@pytest.fixture(scope="module")
def hybrid_catalogs(tmp_path_factory) -> dict:
    """Two catalogs of 40 proposals with text vectors, worded at random so that the words' ranking and the
    vectors' disagree: the merged order then depends on how deep each catalog is asked."""
    folder = tmp_path_factory.mktemp("hybrid")
    rng = random.Random(7)
    query_words = ["gold", "ceria", "catalyst"]
    noise = ["oxide", "particle", "support", "heating", "lamella", "vacuum", "beam", "silicon", "holder", "furnace"]
    opened = {}
    with registered(HashedWordsTagger()):
        for name in ("a", "b"):
            db = open_catalog(folder / f"{name}.db")
            rows = []
            for n in range(40):
                words = rng.sample(query_words, rng.randint(1, 3)) * rng.randint(1, 4)
                words += rng.choices(noise, k=rng.randint(0, 20))
                rng.shuffle(words)
                rows.append({"id": f"{name}-{n}", "title": f"P {n}", "abstract": " ".join(words)})
            db["proposals"].insert_all(rows)
            tag_catalog(db, settings(), tagger_names=["hashed_words"], progress=False)
            opened[name] = db
    yield opened
    for db in opened.values():
        db.close()


@pytest.mark.parametrize("per_page", [3, 5, 7])
def test_paging_through_catalogs_with_vectors_never_repeats_or_skips_a_hit(hybrid_catalogs, per_page):
    with registered(HashedWordsTagger()):
        first = federation.search_catalogs(hybrid_catalogs, "gold ceria catalyst", per_page=per_page)
        hits = list(first.hits)
        for page in range(2, -(-first.total // per_page) + 1):
            more = federation.search_catalogs(hybrid_catalogs, "gold ceria catalyst", page=page, per_page=per_page)
            hits += more.hits
    keys = [(hit.database, hit.item_id) for hit in hits]
    assert first.total > 2 * per_page and len(set(keys)) == len(keys) == first.total
