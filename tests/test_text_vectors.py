"""The text_vectors tagger: real NSF awards and real instrument files embedded by all-MiniLM-L6-v2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scisearch_taggers.text_vectors import TextVectorTagger, sentence_model

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.ingest.records import load_records
from datasette_scisearch.plugins import get_taggers
from datasette_scisearch.tagging.items import iter_items
from datasette_scisearch.tagging.pipeline import tag_catalog
from datasette_scisearch.tagging.tagger import Item, ItemError, Result, TaggerUnavailable
from datasette_scisearch.tagging.vectors import spaces

from .conftest import REPO, shared_data

BATTERY_AWARD = "1705321"  # High Resolution 4D In-Operando Imaging of High Energy Density Battery Electrode Cycling
GRAPHENE_AWARD = "1708406"  # Correlated states in graphene heterostructures
CRYO_EM_AWARD = "1738547"  # single particle cryo-electron microscopy


@pytest.fixture(scope="module")
def tagger():
    tagger = TextVectorTagger()
    tagger.load({}, "cpu")
    yield tagger
    tagger.close()


@pytest.fixture(scope="module")
def awards(tmp_path_factory):
    """The real NSF awards as catalog items, keyed by award id."""
    db = open_catalog(tmp_path_factory.mktemp("awards") / "catalog.db")
    settings = load_settings(REPO / "metadata.yml")
    load_records(db, "proposals", shared_data("proposals", "nsf_awards_2017.jsonl"), settings, progress=False)
    items = {item.item_id: item for item in iter_items(db, "proposal")}
    db.close()
    return items


def results_of(tagger, items) -> dict[str, Result | ItemError]:
    return {item.item_id: result for item, result in tagger.tag_batch(items)}


def test_each_award_gets_one_normalised_384_d_text_vector(tagger, awards):
    chosen = [awards[BATTERY_AWARD], awards[GRAPHENE_AWARD], awards[CRYO_EM_AWARD]]
    results = results_of(tagger, chosen)
    assert set(results) == {BATTERY_AWARD, GRAPHENE_AWARD, CRYO_EM_AWARD}
    for result in results.values():
        vector = result.vectors["text"]
        assert vector.shape == (384,) and vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)


def test_a_query_about_batteries_is_nearest_the_battery_award(tagger, awards):
    chosen = [awards[BATTERY_AWARD], awards[GRAPHENE_AWARD], awards[CRYO_EM_AWARD]]
    vectors = {key: result.vectors["text"] for key, result in results_of(tagger, chosen).items()}
    query = tagger.embed_query("lithium-ion battery anodes imaged while charging", "text")
    nearest = max(vectors, key=lambda key: float(vectors[key] @ query))
    assert nearest == BATTERY_AWARD


def test_the_same_text_gives_the_same_vector_in_a_batch_and_alone(tagger, awards):
    batch = [awards[key] for key in sorted(awards)[:20]]
    together = results_of(tagger, batch)
    one = batch[7]
    alone = results_of(tagger, [one])
    np.testing.assert_allclose(alone[one.item_id].vectors["text"], together[one.item_id].vectors["text"], atol=1e-5)


def test_instrument_files_from_a_real_catalog_get_text_vectors(tagger, tmp_path, em_dir):
    db = open_catalog(tmp_path / "catalog.db")
    load_files(db, [em_dir], load_settings(REPO / "metadata.yml"), progress=False)
    files = list(iter_items(db, "file"))
    results = results_of(tagger, files)
    db.close()
    assert files and set(results) == {item.item_id for item in files}
    assert all(result.vectors["text"].shape == (384,) for result in results.values())


def test_non_english_text_is_embedded_like_any_other(tagger):
    items = [
        Item("session", "de", "", "Goldnanopartikel bei 300 kV im STEM-Modus untersucht, Probe leicht kontaminiert."),
        Item("session", "zh", "", "使用透射电子显微镜观察金纳米颗粒的晶格条纹。"),
    ]
    results = results_of(tagger, items)
    assert all(np.isfinite(result.vectors["text"]).all() for result in results.values())


def test_a_session_without_notes_is_not_wanted(tagger):
    assert not tagger.wants(Item("session", "7", "TitanX session of ana on 2017-03-02", "   "))
    assert tagger.wants(Item("session", "8", "TitanX session of ana on 2017-03-02", "tilt series of Pt particles"))


def test_an_item_with_nothing_to_embed_is_an_item_error_and_the_rest_are_tagged(tagger):
    results = results_of(tagger, [Item("paper", "empty", "", ""), Item("paper", "full", "Grain boundaries", "in Cu")])
    assert isinstance(results["empty"], ItemError)
    assert results["full"].vectors["text"].shape == (384,)


def test_queries_for_another_vector_space_get_no_vector(tagger):
    assert tagger.embed_query("gold nanoparticles", "clip") is None


def test_query_embedding_shares_the_taggers_model_instance(tagger):
    assert sentence_model() is tagger.model


def test_a_model_folder_that_does_not_exist_says_how_to_fix_it(tmp_path):
    with pytest.raises(TaggerUnavailable, match="does not exist; set 'model:' under taggers: text_vectors:"):
        TextVectorTagger().load({"model": str(tmp_path / "no-such-model")}, "cpu")


def test_a_folder_without_a_model_cannot_be_loaded_and_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(TaggerUnavailable, match="cannot load a sentence-transformers model from"):
        TextVectorTagger().load({"model": str(tmp_path)}, "cpu")


def test_the_tagger_registers_through_its_entry_point():
    assert "text_vectors" in {tagger.name for tagger in get_taggers()}


def test_tagging_a_real_catalog_stores_one_text_vector_per_file(tmp_path, em_dir):
    settings = load_settings(REPO / "metadata.yml")
    db = open_catalog(tmp_path / "catalog.db")
    load_files(db, [em_dir], settings, progress=False)
    summary = tag_catalog(
        db, settings, tagger_names=["text_vectors"], item_types=["file"], device="cpu", progress=False
    )
    [stats] = summary.taggers
    files = db.execute("select count(*) from files").fetchone()[0]
    assert (stats.unavailable, stats.failed, stats.tagged) == (None, 0, files)
    assert spaces(db)["text"]["dimensions"] == 384
    assert db.execute("select count(*) from vec_text").fetchone()[0] == files
    db.close()


def test_importing_the_model_taggers_imports_no_machine_learning_library():
    """Datasette imports every plugin at start-up; torch and friends must wait until a tagger loads."""
    probe = (
        "import sys, scisearch_taggers.text_vectors, scisearch_taggers.keywords, scisearch_taggers.clip; "
        "print(sorted(m for m in ('torch', 'open_clip', 'sentence_transformers', 'keybert', 'sklearn') "
        "if m in sys.modules))"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"
