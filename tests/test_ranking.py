"""Learned ranking: search modes, the adaptive similarity floor, imported judgments and fusion weights fitted
from the catalog's evidence, on the demo facility (hashed-word text vectors, tests/search_support.py)."""

from __future__ import annotations

import json
import shutil
import urllib.parse

import pytest
from click.testing import CliRunner
from datasette.app import Datasette

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.cli import cli
from datasette_scisearch.learning import fusion
from datasette_scisearch.learning.evidence import gather
from datasette_scisearch.learning.judgments import judged_pairs, load_judgments
from datasette_scisearch.search import engine

from .conftest import REPO

NONSENSE = "qwzxv blorft"


pytestmark = pytest.mark.usefixtures("hashed_words_model")  # the demo is searched by meaning too


@pytest.fixture(scope="module")
def demo(demo_path):
    db = open_catalog(demo_path)
    yield db
    db.close()


@pytest.fixture
def own_demo(demo_path, tmp_path):
    """A copy of the demo catalog this test may change."""
    path = tmp_path / "demo.db"
    shutil.copy(demo_path, path)
    db = open_catalog(path)
    yield db
    db.close()


def invoke(*args):
    return CliRunner().invoke(cli, ["--config", str(REPO / "metadata.yml"), *map(str, args)], catch_exceptions=False)


# -- Modes --------------------------------------------------------------------------------------------------


def test_keyword_mode_ranks_by_the_words_alone(demo):
    results = engine.search(demo, "SrTiO3 HAADF", mode="keyword", per_page=50)
    assert results.hits
    assert all(hit.ranks["fts"] is not None and hit.ranks["text_vector"] is None for hit in results.hits)


def test_vector_mode_ranks_by_meaning_alone(demo):
    results = engine.search(demo, "SrTiO3 HAADF", mode="vector", per_page=50)
    assert results.hits
    assert all(hit.ranks["fts"] is None and hit.ranks["text_vector"] for hit in results.hits)


def test_vector_mode_is_never_empty_when_the_catalog_has_vectors(demo):
    assert engine.search(demo, NONSENSE).hits == []
    results = engine.search(demo, NONSENSE, mode="vector")
    assert len(results.hits) == engine.VECTOR_MODE_NEAREST


def test_an_unknown_search_mode_is_refused_saying_which_to_use(demo):
    with pytest.raises(engine.QueryError, match="unknown search mode 'semantic': use one of hybrid, keyword, vector"):
        engine.search(demo, "gold", mode="semantic")


def test_the_floor_comes_down_to_within_its_band_of_the_nearest_but_not_below_the_lowest():
    weights = {"text_floor": 0.35, "text_band": 0.1, "text_lowest": 0.2}
    assert engine.similarity_floor([0.8, 0.5], "text", weights, "hybrid") == 0.35
    assert engine.similarity_floor([0.3, 0.25], "text", weights, "hybrid") == pytest.approx(0.2)
    assert engine.similarity_floor([0.38, 0.3], "text", weights, "hybrid") == pytest.approx(0.28)
    assert engine.similarity_floor([0.1, 0.05], "text", weights, "vector") == 0.05


@pytest.mark.asyncio
async def test_mode_vector_in_the_json_endpoint_ranks_by_meaning_alone(demo_path):
    response = await Datasette([str(demo_path)]).client.get("/-/scisearch.json?q=SrTiO3+HAADF&mode=vector")
    data = response.json()
    assert response.status_code == 200 and data["mode"] == "vector" and data["hits"]
    assert all(hit["ranks"]["fts"] is None for hit in data["hits"])


@pytest.mark.asyncio
async def test_mode_stem_in_the_json_endpoint_is_still_the_instrument_mode_filter(demo_path):
    ds = Datasette([str(demo_path)])
    by_parameter = (await ds.client.get("/-/scisearch.json?q=gold&mode=STEM&per_page=100")).json()
    in_query = (await ds.client.get("/-/scisearch.json?" + urllib.parse.urlencode({"q": "gold mode:STEM"}))).json()
    assert by_parameter["mode"] == "hybrid" and by_parameter["total"] == in_query["total"] > 0


@pytest.mark.asyncio
async def test_two_search_modes_in_the_json_endpoint_are_a_400(demo_path):
    response = await Datasette([str(demo_path)]).client.get("/-/scisearch.json?q=gold&mode=vector&mode=keyword")
    assert response.status_code == 400
    assert response.json()["error"] == "give one search mode, not keyword and vector"


def test_search_command_takes_a_mode(demo_path):
    result = invoke("search", "SrTiO3 HAADF", "--catalog", demo_path, "--mode", "keyword", "--json", "--limit", "20")
    hits = json.loads(result.output)["hits"]
    assert result.exit_code == 0 and hits
    assert all(hit["ranks"]["text_vector"] is None for hit in hits)


# -- Judgments ----------------------------------------------------------------------------------------------


def test_trec_qrels_with_their_query_texts_are_imported_into_the_private_database(own_demo, tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 P-2021-0057 1\nq1 0 P-2022-0048 0\nq2 0 PUB-2022-001 2\n")
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\tstrontium titanate interfaces\nq2\tcathode sintering\n")
    report = load_judgments(own_demo, qrels, queries=queries)
    assert (report.imported, report.queries, report.skipped) == (3, 2, 0)
    assert judged_pairs(own_demo) == [
        ("q1", "strontium titanate interfaces", "proposal", "P-2021-0057", 1),
        ("q2", "cathode sintering", "paper", "PUB-2022-001", 2),
    ]
    assert "judgments" not in own_demo.table_names()


def test_a_judgment_of_an_item_the_catalog_lacks_is_skipped_and_said(own_demo, tmp_path):
    judged = tmp_path / "judged.jsonl"
    judged.write_text(
        json.dumps({"query": "gold", "item_id": "P-2021-0057"})
        + "\n"
        + json.dumps({"query": "gold", "item_id": "NO-SUCH-ITEM"})
        + "\nnot json\n"
    )
    report = load_judgments(own_demo, judged)
    assert (report.imported, report.skipped) == (1, 2)
    assert report.problems == [
        "judged.jsonl line 2: no item 'NO-SUCH-ITEM' in this catalog",
        "judged.jsonl line 3: expected a JSON object with query and item_id",
    ]


def test_load_judgments_names_the_missing_query_texts(own_demo, tmp_path):
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq9\tP-2021-0057\t1\n")
    result = invoke("load", "judgments", own_demo.conn.execute("pragma database_list").fetchone()[2], qrels)
    assert result.exit_code == 0
    assert "0 pairs for 0 queries" in result.output
    assert "no text for query 'q9': give the queries file with --queries" in result.output


# -- Fitted fusion weights ----------------------------------------------------------------------------------


def test_learning_the_ranking_without_evidence_says_what_to_provide(own_demo):
    with pytest.raises(fusion.FusionError, match="fitting the ranking needs at least 10") as raised:
        fusion.learn_fusion(own_demo, evidence=[])
    assert raised.value.fix.startswith("import judged queries")


def test_weights_that_do_not_measure_better_are_refused_and_say_why(own_demo, tmp_path):
    # Every query is an item's id, which exact matching puts first whatever the weights: nothing to gain.
    items = own_demo.execute("select 'proposal', id from proposals union all select 'paper', id from papers").fetchall()
    assert len(items) >= fusion.MIN_EVIDENCE
    judged = tmp_path / "judged.jsonl"
    lines = [json.dumps({"query": item_id, "item_id": item_id, "item_type": kind}) for kind, item_id in items]
    judged.write_text("\n".join(lines) + "\n")
    load_judgments(own_demo, judged)
    report = fusion.learn_fusion(own_demo, evidence=gather(own_demo, ["judgment"]), folds=3)
    assert not report.accepted and report.ndcg_in_use == report.ndcg_fitted == 1.0
    assert report.reason.startswith("refused: the fitted weights measured nDCG@10 1.0000 on held-out folds")
    assert fusion.current_weights(own_demo) == {}
    status = own_demo.execute("select status from ranking_models where kind = 'fusion'").fetchall()
    assert status == [("refused",)]


def test_the_engine_uses_the_fitted_weights_in_use_until_they_are_rolled_back(own_demo):
    def found_by_meaning_alone():
        hits = engine.search(own_demo, "SrTiO3 HAADF", per_page=50).hits
        return [hit for hit in hits if hit.ranks["fts"] is None]

    assert found_by_meaning_alone()
    strict = {"rrf_k": 1.0, "text": 0.8, "text_floor": 0.99, "text_band": 0.0, "text_lowest": 0.99}
    own_demo["ranking_models"].insert(
        {"kind": "fusion", "version": 1, "weights": json.dumps(strict), "status": "current"}
    )
    assert fusion.current_weights(own_demo) == strict
    assert found_by_meaning_alone() == []
    assert fusion.rollback(own_demo) is None
    assert found_by_meaning_alone()


# -- The text encoder ---------------------------------------------------------------------------------------


def test_tuning_the_encoder_without_evidence_says_what_to_provide(own_demo):
    from datasette_scisearch.learning import encoder

    with pytest.raises(encoder.EncoderError, match="tuning the encoder needs at least") as raised:
        encoder.learn_encoder(own_demo, evidence=[], max_pairs=0)
    assert raised.value.fix.startswith("import judged queries")


def test_a_judged_query_gets_a_hard_negative_from_what_search_finds_and_not_one_it_should_find(own_demo):
    from datasette_scisearch.learning import encoder
    from datasette_scisearch.learning.evidence import Evidence

    top = engine.search(own_demo, "SrTiO3 HAADF", per_page=encoder.MINED_FROM).hits
    answer = (top[0].item_type, str(top[0].item_id))
    [mined] = encoder._with_mined_negatives(own_demo, [Evidence("SrTiO3 HAADF", {answer}, "judgment")])
    assert len(mined.skipped) == 1 and answer not in mined.skipped
    assert mined.skipped <= {(hit.item_type, str(hit.item_id)) for hit in top}


def test_a_clicked_querys_skipped_results_stay_its_hard_negatives(own_demo):
    from datasette_scisearch.learning import encoder
    from datasette_scisearch.learning.evidence import Evidence

    clicked = Evidence("SrTiO3 HAADF", {("paper", "1")}, "click", {("proposal", "2")})
    assert encoder._with_mined_negatives(own_demo, [clicked])[0].skipped == {("proposal", "2")}


def test_a_title_is_paired_with_the_text_it_heads_not_with_a_passage_that_begins_with_it(own_demo):
    from datasette_scisearch.learning import encoder

    pairs = encoder._training_pairs(own_demo, [], max_pairs=20)
    assert len(pairs) == 20
    for title, passage, negative in pairs:
        assert negative is None and passage.strip()
        assert not passage.startswith(title)  # else the pair is solved by reading its first words
        bodies = [body for (body,) in own_demo.execute("select body from search_items where title = ?", [title])]
        assert any(passage in body for body in bodies)  # the item's own text


def test_pairs_with_a_hard_negative_are_batched_together_so_none_is_wasted():
    from datasette_scisearch.learning import encoder

    pairs = [(f"q{i}", f"p{i}", f"n{i}") for i in range(32)] + [(f"t{i}", f"p{i}", None) for i in range(16)]
    batches = encoder._batches(pairs, 16, seed=0)
    assert len(batches) == 3
    assert all(len({negative is None for _, _, negative in batch}) == 1 for batch in batches)


# -- The pages' rule under any fitted weights ---------------------------------------------------------------

from .test_own_evidence import PINNED, pinned_catalog  # noqa: E402, F401, F811  (the pinned catalog, built once here)

# The corners of the grid learn --ranking searches: whatever it fits lies within them.
FITTED_CORNERS = [{name: values[index] for name, values in fusion.GRID.items()} for index in (0, -1)] + [
    {"rrf_k": 60.0, "text": 2.0, "text_floor": 0.2, "text_band": 0.3, "text_lowest": 0.15},
    {"rrf_k": 1.0, "text": 0.4, "text_floor": 0.45, "text_band": 0.0, "text_lowest": 0.4},
]


@pytest.mark.parametrize("weights", FITTED_CORNERS, ids=["low", "high", "vectors-heavy", "words-heavy"])
def test_an_items_own_evidence_outweighs_what_it_inherits_under_any_weights_learn_may_fit(pinned_catalog, weights):  # noqa: F811
    for number, (query, *_) in enumerate(PINNED):
        shows, inherits = str(100 * (number + 1) + 1), str(100 * (number + 1) + 2)
        hits = engine.search(pinned_catalog, query, item_type="file", per_page=50, weights=weights).hits
        order = [hit.item_id for hit in hits]
        assert shows in order and inherits in order, (query, order)
        assert order.index(shows) < order.index(inherits), (query, order)
