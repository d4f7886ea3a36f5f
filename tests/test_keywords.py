"""The keybert tagger: keywords of real NSF award abstracts, with the shared MiniLM model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scisearch_taggers.keywords import KeywordTagger
from scisearch_taggers.text_vectors import embed_texts, sentence_model
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.records import load_records
from datasette_scisearch.tagging.items import iter_items
from datasette_scisearch.tagging.pipeline import tag_catalog
from datasette_scisearch.tagging.tagger import Item, Result, TaggerUnavailable

from .conftest import REPO, shared_data

pytestmark = pytest.mark.slow  # KeyBERT over MiniLM on real award abstracts

ALUMINIUM_BATTERY = "1706926"  # Molecular Understanding of Ion Intercalation ... Aluminum-Carbon Batteries
SILICON_TELLURIDE = "1709528"  # Silicon Telluride, A 2D Material with Unique Variable Structure
LOW_VOLTAGE_TEM = "1724948"  # MRI: Acquisition of a Low-Voltage Transmission Electron Microscope (TEM)
CRYO_EM = "1738547"  # RII Track-4: ... single particle cryo-electron microscopy (cryo-EM)
GRAPHENE = "1708406"  # Correlated states in graphene heterostructures
CHOSEN = [ALUMINIUM_BATTERY, SILICON_TELLURIDE, LOW_VOLTAGE_TEM, CRYO_EM, GRAPHENE]


@pytest.fixture(scope="module")
def tagger():
    tagger = KeywordTagger()
    tagger.load({}, "cpu")
    yield tagger
    tagger.close()


@pytest.fixture(scope="module")
def keywords(tagger, tmp_path_factory) -> dict[str, list[str]]:
    """The keywords of a few real awards with clear topics, tagged in one batch from a real catalog."""
    db = open_catalog(tmp_path_factory.mktemp("awards") / "catalog.db")
    load_records(
        db,
        "proposals",
        shared_data("proposals", "nsf_awards_2017.jsonl"),
        load_settings(REPO / "metadata.yml"),
        progress=False,
    )
    items = list(iter_items(db, "proposal", ids=CHOSEN))
    db.close()
    return {item.item_id: [tag.text for tag in result.tags] for item, result in tagger.tag_batch(items)}


def tags_of(tagger, text: str, item_type: str = "session"):
    [(_, result)] = tagger.tag_batch([Item(item_type, "1", "", text)])
    return result


def test_the_aluminium_battery_award_is_tagged_with_batteries(keywords):
    assert any("batter" in keyword for keyword in keywords[ALUMINIUM_BATTERY])


def test_the_silicon_telluride_award_is_tagged_as_a_2d_silicon_material(keywords):
    words = " ".join(keywords[SILICON_TELLURIDE])
    assert "2d" in words or "two-dimensional" in words
    assert "silicon" in words


def test_the_tem_acquisition_award_is_tagged_with_electron_microscope(keywords):
    assert "electron microscope" in keywords[LOW_VOLTAGE_TEM]


def test_the_cryo_em_award_is_tagged_with_cryo_electron_microscopy(keywords):
    assert "cryo-electron microscopy" in keywords[CRYO_EM]


def test_no_keyword_contains_a_stop_word_or_a_number(keywords):
    for award, phrases in keywords.items():
        for phrase in phrases:
            for word in phrase.split():
                assert word not in ENGLISH_STOP_WORDS and not word.isdigit(), (award, phrase)


def test_grant_boilerplate_never_makes_a_keyword(keywords):
    every_word = {word for phrases in keywords.values() for phrase in phrases for word in phrase.split()}
    assert not every_word & {"students", "undergraduate", "research", "project", "award", "outreach"}


def test_the_keywords_of_an_award_are_not_near_duplicates_of_each_other(keywords):
    model = sentence_model()
    for award, phrases in keywords.items():
        vectors = embed_texts(model, phrases)
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, 0.0)
        assert similarity.max() < 0.85, (award, phrases)


def test_each_award_gets_between_three_and_eight_keywords(keywords):
    assert all(3 <= len(phrases) <= 8 for phrases in keywords.values()), keywords


def test_keyword_tags_carry_keyberts_score_and_say_they_come_from_the_abstract(tagger):
    result = tags_of(
        tagger, "Aberration-corrected STEM imaging of platinum nanoparticles on ceria supports " * 3, "paper"
    )
    assert result.tags
    for tag in result.tags:
        assert 0.3 <= tag.score <= 1.0
        assert tag.evidence == "keyword of the abstract"


def test_an_empty_text_gives_no_tags_rather_than_an_error(tagger):
    assert tags_of(tagger, "") == Result()


def test_a_two_word_note_is_too_short_for_keywords(tagger):
    assert tags_of(tagger, "beam drift").tags == []


def test_a_short_session_note_gets_one_keyword_from_the_notes(tagger):
    result = tags_of(tagger, "tilt series of Pt particles on amorphous carbon, beam damage after ten minutes")
    assert len(result.tags) == 1
    assert result.tags[0].evidence == "keyword of the notes"


def test_a_text_of_stop_words_only_gives_no_tags(tagger):
    assert tags_of(tagger, "and then it was what it is, as it was before, so it is").tags == []


def test_non_english_notes_are_tagged_without_error(tagger):
    texts = [
        "Goldnanopartikel bei 300 kV im STEM-Modus untersucht, Probe leicht kontaminiert, Strahlschäden sichtbar.",
        "使用透射电子显微镜观察金纳米颗粒的晶格条纹。",
        "Observation des joints de grains dans un alliage d'aluminium par microscopie électronique en transmission.",
    ]
    items = [Item("session", str(n), "", text) for n, text in enumerate(texts)]
    results = {item.item_id: result for item, result in tagger.tag_batch(items)}
    assert len(results) == 3 and all(isinstance(result, Result) for result in results.values())


def test_a_diversity_outside_zero_to_one_is_refused():
    with pytest.raises(TaggerUnavailable, match="'diversity' under taggers: keybert: must be a number from 0 to 1"):
        KeywordTagger().load({"diversity": 3}, "cpu")


def test_keybert_uses_the_same_model_instance_as_the_text_vectors():
    tagger = KeywordTagger()
    tagger.load({}, "cpu")
    assert tagger.keybert.model.embedding_model is sentence_model()


def test_a_proposals_keywords_flow_to_its_session_at_a_lower_score(tmp_path):
    awards = [json.loads(line) for line in shared_data("proposals", "nsf_awards_2017.jsonl").open()]
    subset = tmp_path / "awards.jsonl"
    subset.write_text("".join(json.dumps(a) + "\n" for a in awards if a["award_id"] in {"1700014", GRAPHENE}))
    settings = load_settings(REPO / "metadata.yml")
    db = open_catalog(tmp_path / "catalog.db")
    load_records(db, "proposals", subset, settings, progress=False)
    load_records(db, "userlog", REPO / "tests" / "data" / "records" / "userlog.jsonl", settings, progress=False)
    tag_catalog(db, settings, tagger_names=["keybert"], device="cpu", progress=False)
    own = dict(
        db.execute("select tag, score from tags where item_type = 'proposal' and item_id = '1700014'").fetchall()
    )
    inherited = db.execute(
        "select t.tag, t.score, t.via from tags t join sessions s on s.id = t.item_id "
        "where t.item_type = 'session' and s.proposal_id = '1700014'"
    ).fetchall()
    db.close()
    assert own and {tag for tag, _, _ in inherited} == set(own)
    assert all(via == "proposal 1700014" and score < own[tag] for tag, score, via in inherited)
