"""The search engine on real catalogs: the demo facility and the real data in ../shared/data.

Text vectors come from ``HashedWordsTagger`` (tests/search_support.py), a
deterministic stand-in for MiniLM registered only while these tests run;
benchmarks/scifact.py measures the real model.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.search import engine, vector_index
from datasette_scisearch.search.detail import item_detail, similar_items
from datasette_scisearch.search.index import refresh_search_items
from datasette_scisearch.search.query import QueryError
from datasette_scisearch.search.results import ItemNotFound
from datasette_scisearch.tagging import vectors
from datasette_scisearch.tagging.tagger import Tagger, TaggerUnavailable

from .conftest import shared_data
from .search_support import (
    HashedWordsTagger,
    build_shared_data_catalog,
    cached_catalog,
    hashed_words_vector,
    registered,
)


def similar(db, item_type: str, item_id: str, k: int = 12):
    return similar_items(db, item_type, item_id, k).hits


# The demo is searched by meaning too; the real-data catalog (SciFact and the NSF awards) takes a while to build.
pytestmark = [pytest.mark.usefixtures("hashed_words_model"), pytest.mark.slow]


@pytest.fixture(scope="module")
def demo(demo_path):
    db = open_catalog(demo_path)
    yield db
    db.close()


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    shared = shared_data()
    db = open_catalog(cached_catalog(tmp_path_factory, "shared", lambda f: build_shared_data_catalog(f, shared)))
    yield db
    db.close()


def ids(results, item_type=None):
    return [hit.item_id for hit in results.hits if item_type is None or hit.item_type == item_type]


def file_rows(db, results):
    file_ids = [int(hit.item_id) for hit in results.hits if hit.item_type == "file"]
    return [db["files"].get(file_id) for file_id in file_ids]


# -- Queries a researcher would try, on the demo facility -------------------------------------------------


def test_srtio3_haadf_finds_the_strontium_titanate_proposal_first_and_its_files_next(demo):
    results = engine.search(demo, "SrTiO3 HAADF", per_page=10)
    assert (results.hits[0].item_type, results.hits[0].item_id) == ("proposal", "P-2021-0057")
    files = file_rows(demo, results)
    assert "STO" in files[0]["name"]
    assert sum("STO" in row["name"] for row in files) >= 5
    # Every file the words found is a strontium titanate one.  A file found by meaning alone may sit among them:
    # the hashed-words stand-in embeds the file's folders too, and the test run's temporary folder names move a
    # CeO2 HAADF image across the similarity floor from one run to the next.
    by_words = [h for h in results.hits if h.item_type == "file" and h.ranks.get("fts")]
    assert len(by_words) >= 5
    assert all("STO" in demo["files"].get(int(h.item_id))["name"] for h in by_words)


def test_diffraction_300kv_finds_only_diffraction_patterns_taken_at_300_kv(demo):
    results = engine.search(demo, "diffraction 300kV", item_type="file", per_page=50)
    rows = file_rows(demo, results)
    assert len(rows) == results.total >= 10
    # single patterns, and 4D-STEM scans (a diffraction pattern at every probe position)
    assert "diffraction" in {row["kind"] for row in rows} <= {"diffraction", "4D"}
    assert {row["voltage_kv"] for row in rows} == {300.0}


def test_a_voltage_written_in_free_text_finds_proposals_that_mention_it(demo):
    results = engine.search(demo, "diffraction 300kV", item_type="proposal")
    assert "P-2021-0042" in ids(results)  # "... HAADF-STEM at 300 kV ... diffraction ring patterns"


def test_voltage_at_least_200kv_type_image_is_every_image_file_at_200_kv_or_more(demo):
    results = engine.search(demo, "voltage>=200kV type:image", per_page=100)
    expected = demo.execute("select count(*) from files where kind = 'image' and voltage_kv >= 200").fetchone()[0]
    assert results.total == expected == len(results.hits)
    assert all(row["kind"] == "image" and row["voltage_kv"] >= 200 for row in file_rows(demo, results))


def test_a_filter_alone_lists_the_newest_items_first(demo):
    results = engine.search(demo, "instrument:Krios", per_page=100)
    moments = [
        dt.datetime.fromisoformat(hit.facts.get("acquired_local") or hit.facts.get("start")) for hit in results.hits
    ]
    assert len(moments) > 10 and moments == sorted(moments, reverse=True)


def test_gold_nanoparticles_ranks_the_gold_papers_and_the_gold_nanoparticle_files(demo):
    results = engine.search(demo, "gold nanoparticles", per_page=10)
    assert {"PUB-2022-001", "PUB-2022-002"} <= set(ids(results, "paper"))
    assert all(row["name"].startswith("Au_np") for row in file_rows(demo, results))


def test_an_nmc_cathode_query_finds_the_battery_files_by_their_filename_tag(demo):
    results = engine.search(demo, "battery cathode", item_type="file", per_page=5)
    assert all(row["name"].startswith("NMC811") for row in file_rows(demo, results))
    assert {"tag": "battery cathode", "source": "filenames"}.items() <= results.hits[0].matched_tags[0].items()


def test_a_proposal_id_finds_that_proposal_first(demo):
    results = engine.search(demo, "P-2022-0048")
    assert (results.hits[0].item_type, results.hits[0].item_id) == ("proposal", "P-2022-0048")
    assert results.hits[0].why[0] == "exact proposal id"


def test_an_exact_file_name_finds_that_file_first(demo):
    name = demo.execute("select name from files where name like 'Au_np_300kV_HAADF%' order by id limit 1").fetchone()[0]
    results = engine.search(demo, name)
    assert results.hits[0].item_type == "file"
    assert demo["files"].get(int(results.hits[0].item_id))["name"] == name
    assert "exact file name" in results.hits[0].why


def test_the_start_of_a_sha256_finds_the_file(demo):
    file_id, sha256 = demo.execute("select id, sha256 from files order by id desc limit 1").fetchone()
    results = engine.search(demo, sha256[:16])
    assert ids(results)[0] == str(file_id)


def test_tag_filter_returns_only_items_carrying_that_tag(demo):
    results = engine.search(demo, "tag:haadf", per_page=100)
    sql = "select distinct item_id from tags where tag = 'HAADF' and item_type = 'file'"
    tagged = {str(row[0]) for row in demo.execute(sql)}
    assert set(ids(results, "file")) == tagged
    assert all(any(t["tag"] == "HAADF" for t in hit.matched_tags) for hit in results.hits)


def test_instrument_filter_keeps_files_and_sessions_of_that_instrument(demo):
    results = engine.search(demo, 'instrument:"TEAM 0.5" gold', per_page=100)
    assert results.total > 0
    assert {hit.facts["instrument"] for hit in results.hits} == {"TEAM 0.5"}
    assert set(results.counts) <= {"file", "session"}


def test_magnification_range_keeps_only_files_inside_it(demo):
    results = engine.search(demo, "mag:1M-20M STEM", per_page=100)
    assert results.total > 0
    assert all(1e6 <= row["magnification"] <= 2e7 for row in file_rows(demo, results))


def test_pixel_size_in_angstrom_means_the_same_as_in_nanometres(demo):
    in_angstrom = engine.search(demo, "pixel<0.5Å", per_page=100)
    in_nanometres = engine.search(demo, "pixel<0.05nm", per_page=100)
    assert ids(in_angstrom) == ids(in_nanometres) and in_angstrom.total > 0
    assert all(row["pixel_size_nm"] < 0.05 for row in file_rows(demo, in_angstrom))


def test_a_date_range_keeps_items_of_those_months(demo):
    results = engine.search(demo, "type:file date:2022-01..2022-06", per_page=100)
    assert results.total > 0
    assert all("2022-01" <= hit.facts["acquired_local"][:7] <= "2022-06" for hit in results.hits)


def test_excluding_a_word_removes_every_item_that_has_it(demo):
    with_sem = engine.search(demo, "ceria", per_page=100)
    without_sem = engine.search(demo, "ceria -SEM", per_page=100)
    assert 0 < without_sem.total < with_sem.total
    assert all(row["mode"] != "SEM" for row in file_rows(demo, without_sem))


def test_nonsense_finds_nothing_and_says_so(demo):
    results = engine.search(demo, "qwzxv blorft")
    assert results.total == 0 and results.hits == []
    assert any("nothing matched" in message for message in results.messages)


def test_an_item_without_all_the_words_can_still_be_found_by_meaning(demo):
    results = engine.search(demo, "SrTiO3 HAADF", per_page=10)
    by_meaning = [hit for hit in results.hits if hit.ranks["fts"] is None]
    assert by_meaning and all(hit.ranks["text_vector"] for hit in by_meaning)
    assert any(line.startswith("similar meaning (") for line in by_meaning[0].why)


def test_with_no_item_having_all_the_words_any_of_them_will_do(demo):
    results = engine.search(demo, "cathode sintering")
    assert {"PUB-2022-001", "P-2022-0048"} <= set(ids(results))
    assert "no item has all of the words; these have some of them" in results.messages


def test_counts_and_tabs_split_the_results_by_item_type(demo):
    everything = engine.search(demo, "gold")
    papers = engine.search(demo, "gold", item_type="paper")
    assert papers.total == everything.counts["paper"] == len(papers.hits)
    assert {hit.item_type for hit in papers.hits} == {"paper"}
    assert papers.counts == everything.counts


def test_facet_counts_add_up_to_the_results_of_the_tab(demo):
    results = engine.search(demo, "gold", item_type="file", per_page=100)
    assert sum(value["count"] for value in results.facets["instrument"]) == results.total
    assert sum(value["count"] for value in results.facets["kind"]) == results.total
    assert results.facets["item_type"][0]["value"] == "file"
    assert results.facets["tag"] and results.facets["tag"][0]["count"] <= results.total


def test_pages_follow_one_another_without_repeating(demo):
    first = engine.search(demo, "STEM", per_page=5, page=1)
    second = engine.search(demo, "STEM", per_page=5, page=2)
    assert len(first.hits) == len(second.hits) == 5
    assert not set(ids(first)) & set(ids(second))


def test_a_page_past_the_end_is_empty_with_a_note(demo):
    results = engine.search(demo, "apoferritin", page=50)
    assert results.hits == [] and results.total > 0
    assert "past the last page" in results.messages[-1]


def test_every_hit_carries_why_matched_tags_with_their_source_and_its_proposal(demo):
    hit = engine.search(demo, "SrTiO3", item_type="file").hits[0]
    assert hit.matched_tags and all(tag["source"] for tag in hit.matched_tags)
    assert any(line.startswith("tag SrTiO3 (") for line in hit.why)
    assert hit.proposal == {"id": "P-2021-0057", "title": "Grain boundaries and interfaces in SrTiO3"}
    assert f"linked to proposal {hit.proposal['id']}" in hit.why


def test_snippets_mark_the_matched_words(demo):
    hit = engine.search(demo, "apoferritin", item_type="proposal").hits[0]
    assert "<mark>Apoferritin</mark>" in hit.snippet or "<mark>apoferritin</mark>" in hit.snippet


def test_results_are_plain_json(demo):
    results = engine.search(demo, "gold voltage>=200kV")
    assert json.loads(json.dumps(results.as_dict()))["hits"][0]["item_type"]


# -- The real data in ../shared/data ---------------------------------------------------------------------


def test_real_strontium_titanate_files_are_found_by_the_formula(real):
    results = engine.search(real, "SrTiO3")
    names = [real["files"].get(int(i))["name"] for i in ids(results, "file")]
    assert "16_STOimage_1.ser" in names


def test_real_velox_diffraction_at_300kv(real):
    results = engine.search(real, "diffraction 300kV", item_type="file")
    names = {row["name"] for row in file_rows(real, results)}
    assert "Camera Ceta Diffraction Micro.emd" in names
    assert all(row["voltage_kv"] == 300 for row in file_rows(real, results))


def test_an_nsf_award_is_found_by_its_topic(real):
    results = engine.search(real, "antiferroelectric capacitors", item_type="proposal")
    assert ids(results)[0] == "1700014"


def test_an_nsf_award_number_finds_the_award(real):
    assert ids(engine.search(real, "1700014"))[0] == "1700014"


def scifact_claims(limit: int):
    claims = {}
    for line in shared_data("scifact", "queries_train.jsonl").read_text().splitlines():
        claim = json.loads(line)
        claims[claim["_id"]] = claim["text"]
    cited: dict[str, set[str]] = {}
    for line in shared_data("scifact", "qrels", "train.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, _ = line.split("\t")
        cited.setdefault(query_id, set()).add(doc_id)
    return [(claims[q], docs) for q, docs in list(cited.items())[:limit]]


def test_a_scifact_claim_finds_its_cited_abstract_in_the_top_10(real):
    claim = "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors."
    cited = dict(scifact_claims(1000))[claim]
    results = engine.search(real, claim, item_type="paper", per_page=10)
    assert cited & set(ids(results))


def test_most_scifact_claims_find_a_cited_abstract_in_the_top_10(real):
    claims = scifact_claims(100)
    found = 0
    for text, cited in claims:
        found += bool(cited & set(ids(engine.search(real, text, item_type="paper", per_page=10))))
    assert found / len(claims) >= 0.7  # BM25 alone finds about three in four (benchmarks/scifact.py)


def test_more_like_this_for_a_real_image_uses_its_image_features(real):
    (file_id,) = real.execute(
        """select f.id from files f join search_items si on si.item_type = 'file' and si.item_id = cast(f.id as text)
           where f.name = '16_STOimage_1.ser' and si.id in (select item_rowid from vec_image_features)"""
    ).fetchone()
    found = similar(real, "file", str(file_id), k=5)
    assert found and all(hit.item_id != str(file_id) for hit in found)
    assert found[0].why[0].startswith("similar image features")
    scores = [hit.score for hit in found]
    assert scores == sorted(scores, reverse=True)


def test_item_detail_of_a_real_file_has_its_metadata_and_tags_by_source(real):
    file_id = real.execute("select id from files where name = '16_STOimage_1.ser'").fetchone()[0]
    detail = item_detail(real, "file", str(file_id))
    assert detail["row"]["voltage_kv"] == 80 and "metadata" not in detail["row"]
    assert detail["metadata"] and {"metadata", "filenames"} <= set(detail["tags"])
    assert detail["title"].startswith("16_STOimage_1.ser")


# -- Item detail and similar items on the demo ---------------------------------------------------------


def test_item_detail_of_a_demo_file_has_its_session_proposal_and_papers(demo):
    file_id = demo.execute("select id from files where proposal_id = 'P-2021-0042' limit 1").fetchone()[0]
    detail = item_detail(demo, "file", str(file_id))
    assert detail["proposal"]["id"] == "P-2021-0042" and detail["session"]["proposal_id"] == "P-2021-0042"
    assert {"PUB-2022-001", "PUB-2022-002"} <= {paper["id"] for paper in detail["papers"]}


def test_item_detail_of_a_proposal_lists_its_files(demo):
    detail = item_detail(demo, "proposal", "P-2023-0009")
    expected = demo.execute("select count(*) from files where proposal_id = 'P-2023-0009'").fetchone()[0]
    assert detail["files_total"] == expected == len(detail["files"]) > 0


def test_item_detail_of_an_unknown_item_is_none(demo):
    assert item_detail(demo, "file", "999999999") is None
    assert item_detail(demo, "file", "not-a-number") is None
    assert item_detail(demo, "banana", "1") is None


def test_similar_to_an_unknown_item_raises_item_not_found(demo):
    with pytest.raises(ItemNotFound):
        similar(demo, "paper", "no-such-paper")


def test_similar_items_of_a_proposal_come_from_its_text_vector(demo):
    found = similar(demo, "proposal", "P-2021-0042", k=3)
    assert len(found) == 3 and found[0].why[0].startswith("similar text")


# -- Small catalogs for edge cases -----------------------------------------------------------------------


def small_catalog(tmp_path, with_vectors: bool = True):
    db = open_catalog(tmp_path / "small.db")
    db["proposals"].insert_all(
        [
            {"id": "P-1", "title": "Gold catalysts", "abstract": "Gold <script>alert(1)</script> on ceria & more."},
            {"id": "P-2", "title": "Silicon twins", "abstract": "Stacking faults in silicon."},
        ]
    )
    refresh_search_items(db)
    if with_vectors:
        vectors.ensure_space(db, "text", 384, "hashed_words")
        rows = db.execute("select id, title || ' ' || body from search_items").fetchall()
        with db.conn:
            vectors.write_vectors(db, "text", [(rowid, hashed_words_vector(text)) for rowid, text in rows])
    return db


def test_snippets_are_escaped_html_with_the_matched_words_marked(tmp_path):
    hit = engine.search(small_catalog(tmp_path), "ceria").hits[0]
    assert "<script>" not in hit.snippet and "&lt;script&gt;alert(1)&lt;/script&gt;" in hit.snippet
    assert "<mark>ceria</mark> &amp; more" in hit.snippet


def test_a_catalog_without_text_vectors_is_ranked_by_text_and_says_so(tmp_path):
    results = engine.search(small_catalog(tmp_path, with_vectors=False), "gold")
    assert ids(results) == ["P-1"]
    assert "no text vectors yet: ranked by text match only" in results.messages


def test_a_catalog_without_a_search_index_says_how_to_build_one(tmp_path):
    db = open_catalog(tmp_path / "empty.db")
    db["proposals"].insert({"id": "P-1", "title": "Gold"})
    results = engine.search(db, "gold")
    assert results.total == 0 and "scisearch tag" in results.messages[0]


def test_when_the_tagger_of_a_space_is_not_installed_search_goes_on_by_text(tmp_path):
    db = small_catalog(tmp_path)
    db.execute("update vector_spaces set tagger = 'uninstalled_model' where name = 'text'")
    results = engine.search(db, "gold")
    assert ids(results) == ["P-1"]
    assert "text vectors not used: the 'uninstalled_model' tagger that made them is not installed" in results.messages


class UnavailableTagger(Tagger):
    name = "unavailable_model"

    def load(self, options, device="cpu"):
        raise TaggerUnavailable("its checkpoint is missing: set 'checkpoint:' in metadata.yml")


def test_when_the_tagger_cannot_load_the_message_says_why(tmp_path):
    db = small_catalog(tmp_path)
    db.execute("update vector_spaces set tagger = 'unavailable_model' where name = 'text'")
    with registered(UnavailableTagger(), name="unavailable"):
        results = engine.search(db, "gold")
    assert ids(results) == ["P-1"]
    assert any("its checkpoint is missing" in message for message in results.messages)


def test_the_query_model_is_loaded_at_the_first_query_not_before(tmp_path):
    loads = []

    class CountingTagger(HashedWordsTagger):
        name = "counting_model"

        def load(self, options, device="cpu"):
            loads.append(device)

    db = small_catalog(tmp_path)
    db.execute("update vector_spaces set tagger = 'counting_model' where name = 'text'")
    with registered(CountingTagger(), name="counting"):
        assert loads == []
        engine.search(db, "gold")
        engine.search(db, "silicon")
    assert loads == ["cpu"]


def test_new_vectors_are_searched_after_they_are_written(tmp_path):
    db = small_catalog(tmp_path)
    assert "P-2" not in ids(engine.search(db, "germanium"))
    rowid = db.execute("select id from search_items where item_id = 'P-2'").fetchone()[0]
    with db.conn:
        vectors.write_vectors(db, "text", [(rowid, hashed_words_vector("germanium"))])
    assert ids(engine.search(db, "germanium")) == ["P-2"]


def test_the_vector_matrix_of_a_catalog_file_is_kept_until_its_vectors_change(tmp_path):
    db = small_catalog(tmp_path)
    first = vector_index.space_matrix(db, "text")
    assert vector_index.space_matrix(db, "text") is first
    rowid = db.execute("select id from search_items where item_id = 'P-1'").fetchone()[0]
    with db.conn:
        vectors.write_vectors(db, "text", [(rowid, np.ones(384, dtype=np.float32))])
    vector_index.forget()  # a rebuild is rate-limited to ten build times; forget to see it at once
    assert vector_index.space_matrix(db, "text") is not first


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced',
        "gold AND OR NOT",
        "NEAR(gold silver",
        "title:gold",
        "gold*",
        "*",
        '"""',
        "-",
        "🙂🙂 gold",
        "ゴールド 金",
        "gold\x00silver",
        "' OR 1=1; drop table files; --",
        "{gold}",
        "gold:",
        "voltage>=",
        "mag:abc",
        "date:2021-99",
    ],
)
def test_awkward_queries_run_without_error(tmp_path, query):
    results = engine.search(small_catalog(tmp_path, with_vectors=False), query)
    assert isinstance(results.total, int)


@pytest.mark.parametrize(
    "arguments",
    [
        {"page": 0},
        {"page": -3},
        {"page": 10**9},
        {"per_page": 0},
        {"per_page": 101},
        {"page": "two"},
        {"item_type": "x"},
    ],
)
def test_bad_paging_or_tab_is_a_query_error(tmp_path, arguments):
    with pytest.raises(QueryError):
        engine.search(small_catalog(tmp_path, with_vectors=False), "gold", **arguments)


def test_an_empty_query_finds_nothing_without_an_error(tmp_path):
    results = engine.search(small_catalog(tmp_path, with_vectors=False), "   ")
    assert results.total == 0 and results.messages == []


# -- CLIP: text to image, and image to image -------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_catalog(tmp_path_factory):
    """The real EM files tagged by the clip tagger with a tiny seeded open_clip model (no real weights here)."""
    pytest.importorskip("open_clip")
    from datasette_scisearch.ingest.files import load_files
    from datasette_scisearch.tagging.pipeline import tag_catalog

    from .clip_fixture import build_tiny_clip
    from .search_support import settings as facility_settings

    folder = tmp_path_factory.mktemp("clip-catalog")
    tiny = build_tiny_clip(folder / "model")
    settings = facility_settings()
    settings.taggers["clip"] = tiny.options(min_score=0.0)
    db = open_catalog(folder / "clip.db")
    load_files(db, [shared_data("em")], settings, progress=False)
    tag_catalog(db, settings, ["clip"], progress=False)
    yield db, settings
    db.close()


def test_words_search_images_through_the_clip_text_tower(clip_catalog):
    db, settings = clip_catalog
    # The tiny model's similarities are random: lower the floor to see that the space is searched at all.
    results = engine.search(db, "atomic lattice", settings=settings, weights={"clip_floor": -1.0})
    assert any(hit.ranks["clip"] for hit in results.hits)
    assert any(line.startswith("looks like the words (CLIP") for hit in results.hits for line in hit.why)


def test_more_like_this_for_a_file_prefers_its_clip_vector(clip_catalog):
    db, _ = clip_catalog
    rowid, file_id = db.execute(
        "select si.id, si.item_id from search_items si where si.item_type = 'file' "
        "and si.id in (select item_rowid from vec_clip) order by si.id limit 1"
    ).fetchone()
    found = similar(db, "file", file_id, k=3)
    assert len(found) == 3 and found[0].why[0].startswith("looks like this image (CLIP)")
    assert all(hit.ranks["clip"] for hit in found)


# -- Large catalogs: BM25 by tantivy ---------------------------------------------------------------------

BY_TANTIVY = {"tantivy_from": 1}  # rank with tantivy whatever the catalog's size


@pytest.fixture(scope="module")
def demo_indexed(demo):
    """The demo catalog with its on-disk tantivy index built (a catalog this small keeps none by itself)."""
    pytest.importorskip("tantivy")
    from datasette_scisearch.search import text_index

    text_index.build(demo)
    assert text_index.text_index(demo, 1) is not None
    return demo


def test_tantivy_ranks_a_query_with_the_same_best_result_as_fts5(demo_indexed):
    demo = demo_indexed
    for query in ("SrTiO3 HAADF", "P-2022-0048", "apoferritin"):
        by_fts5 = engine.search(demo, query, per_page=1)
        by_tantivy = engine.search(demo, query, per_page=1, weights=BY_TANTIVY)
        assert ids(by_tantivy) == ids(by_fts5)


def test_tantivy_ranking_keeps_the_filters(demo_indexed):
    demo = demo_indexed
    by_fts5 = engine.search(demo, "diffraction 300kV", item_type="file", per_page=100)
    by_tantivy = engine.search(demo, "diffraction 300kV", item_type="file", per_page=100, weights=BY_TANTIVY)
    assert set(ids(by_tantivy)) == set(ids(by_fts5))


def test_tantivy_falls_back_to_any_word_as_fts5_does(demo_indexed):
    demo = demo_indexed
    results = engine.search(demo, "cathode sintering", weights=BY_TANTIVY)
    assert {"PUB-2022-001", "P-2022-0048"} <= set(ids(results))
    assert "no item has all of the words; these have some of them" in results.messages


def test_the_tantivy_index_takes_changed_documents_without_a_rebuild(tmp_path):
    pytest.importorskip("tantivy")
    from datasette_scisearch.search import text_index

    db = small_catalog(tmp_path, with_vectors=False)
    built = text_index.build(db)
    assert ids(engine.search(db, "germanium", weights=BY_TANTIVY)) == []
    db["proposals"].insert({"id": "P-3", "title": "Germanium nanowires"})
    refresh_search_items(db)
    assert ids(engine.search(db, "germanium", weights=BY_TANTIVY)) == ["P-3"]
    assert text_index.text_index(db, 1).behind == 0
    assert built["folder"] == json.loads((tmp_path / "small.db.indexes" / "text.json").read_text())["folder"]


def test_snippets_made_from_the_page_alone_are_those_of_the_catalogs_full_text_index(demo):
    from datasette_scisearch.search import fts
    from datasette_scisearch.search.expressions import all_terms, fts_any

    for query in ("SrTiO3 HAADF", "gold nanoparticles on ceria", "cathode cracking in NMC811 after cycling"):
        expression = fts_any(all_terms(engine.parse_query(query).clauses))
        rowids = [hit.rowid for hit in engine.search(demo, query, per_page=20).hits]
        from_the_page = fts.highlights(demo, expression, rowids)
        assert not demo.conn.in_transaction  # the page's table is written and committed in the temp database
        demo.execute("begin")  # inside a transaction the catalog's own index makes them
        try:
            from_the_catalog = fts.highlights(demo, expression, rowids)
        finally:
            demo.conn.rollback()
        assert from_the_page == from_the_catalog and from_the_page
