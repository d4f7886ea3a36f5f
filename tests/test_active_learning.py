"""The review queue on a real catalog: the real EM files, tagged by the image-analysis tagger."""

from __future__ import annotations

import json
import shutil

import pytest

from datasette_scisearch.catalog import now_utc, open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.learning.active import queue_count, review_queue
from datasette_scisearch.tagging import experts
from datasette_scisearch.tagging.pipeline import tag_catalog

from .conftest import REPO


@pytest.fixture(scope="module")
def tagged_em_catalog(em_catalog_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("active") / "em.db"
    shutil.copy(em_catalog_file, path)
    db = open_catalog(path)
    tag_catalog(db, load_settings(REPO / "metadata.yml"), ["image_analysis"], progress=False)
    db.close()
    return path


@pytest.fixture
def db(tagged_em_catalog, tmp_path):
    path = tmp_path / "em.db"
    shutil.copy(tagged_em_catalog, path)
    db = open_catalog(path)
    yield db
    db.close()


def weakest_machine_score(db, item_id: str) -> float:
    return db.execute(
        "select min(score) from tags where item_type = 'file' and item_id = ? and status = 'machine'", [item_id]
    ).fetchone()[0]


def add_model(db, tag_set: str, classes: list[str], predictions: dict[str, tuple[str, float, float]]) -> int:
    """A current learned model of ``tag_set`` with (label, probability, margin) per file id, as train writes it."""
    with db.conn:
        model_id = (
            db["learned_models"]
            .insert(
                {
                    "tag_set": tag_set,
                    "version": 1,
                    "classes": json.dumps(classes),
                    "feature_space": "image_features",
                    "status": "current",
                    "trained_at": now_utc(),
                }
            )
            .last_pk
        )
        db["learned_predictions"].insert_all(
            {"model_id": model_id, "item_type": "file", "item_id": item_id, "label": label}
            | {"probability": probability, "margin": margin}
            for item_id, (label, probability, margin) in predictions.items()
        )
    return model_id


def file_ids(db) -> list[str]:
    return [str(row[0]) for row in db.execute("select id from files order by id")]


def test_without_a_learned_model_the_queue_offers_one_typical_image_of_each_cluster_first(db):
    queue = review_queue(db, limit=6)
    assert len(queue) == 6 and len({entry.item_id for entry in queue}) == 6
    assert all(entry.reason.startswith("no learned model yet") and entry.margin is None for entry in queue)
    names = dict(db.execute("select cast(id as text), name from files").fetchall())
    picked = {names[entry.item_id] for entry in queue}
    # The two SrTiO3 lattice images are one kind; the three views of one STEM diffraction acquisition another.
    assert len(picked & {"16_STOimage_1.ser", "Acquisition_18.emd"}) <= 1
    assert len([name for name in picked if name == "STEM HAADF-DF4-DF2-BF Diffraction Micro.emd"]) <= 1


def test_without_image_vectors_the_queue_offers_the_weakest_machine_tags_first(db):
    with db.conn:
        db.execute("delete from vector_spaces")
    queue = review_queue(db, limit=10)
    assert queue, "the image-analysis tagger tags the real EM files"
    scores = [entry.probability for entry in queue]
    assert scores == sorted(scores)
    assert all(entry.probability == pytest.approx(weakest_machine_score(db, entry.item_id)) for entry in queue)
    assert "weakest machine tag" in queue[0].reason and queue[0].margin is None


def test_an_item_an_expert_has_judged_leaves_the_queue(db):
    first = review_queue(db, limit=1)[0]
    (tag_id,) = db.execute(
        "select id from tags where item_type = 'file' and item_id = ? and status = 'machine' limit 1", [first.item_id]
    ).fetchone()
    experts.reject(db, tag_id, "expert-in-test")
    assert first.item_id not in {entry.item_id for entry in review_queue(db, limit=50)}


def test_with_a_learned_model_the_least_certain_prediction_comes_first(db):
    ids = file_ids(db)[:4]
    margins = {ids[0]: 0.8, ids[1]: 0.05, ids[2]: 0.4, ids[3]: 0.2}
    add_model(db, "morphology", ["particles", "lattice"], {i: ("lattice", 0.5 + m / 2, m) for i, m in margins.items()})
    queue = review_queue(db, limit=4, tag_set="morphology")
    assert [entry.item_id for entry in queue] == [ids[1], ids[3], ids[2], ids[0]]
    assert queue[0].tag_set == "morphology" and queue[0].model_version == 1
    assert "unsure" in queue[0].reason


def test_items_an_expert_labelled_for_the_models_classes_are_not_offered_again(db):
    ids = file_ids(db)[:3]
    add_model(db, "morphology", ["particles", "Lattice"], {i: ("particles", 0.6, 0.2 + n) for n, i in enumerate(ids)})
    experts.add(db, "file", ids[0], "LATTICE", "expert-in-test")  # the class's name in any case
    queued = [entry.item_id for entry in review_queue(db, limit=3, tag_set="morphology")]
    assert ids[0] not in queued and queued[:2] == ids[1:]


def test_the_queue_fills_up_with_machine_tag_doubts_once_predictions_run_out(db):
    predicted = file_ids(db)[0]
    add_model(db, "morphology", ["particles", "lattice"], {predicted: ("particles", 0.7, 0.4)})
    queue = review_queue(db, limit=5)
    assert queue[0].item_id == predicted and queue[0].margin == pytest.approx(0.4)
    assert len(queue) == 5 and all(entry.margin is None for entry in queue[1:])
    assert len({entry.item_id for entry in queue}) == 5


def test_an_item_predicted_by_two_tag_sets_appears_once_where_it_is_least_certain(db):
    shared, other = file_ids(db)[:2]
    add_model(
        db, "morphology", ["particles", "lattice"], {shared: ("particles", 0.9, 0.8), other: ("lattice", 0.7, 0.5)}
    )
    add_model(db, "quality", ["sharp", "blurred"], {shared: ("sharp", 0.55, 0.1)})
    queue = review_queue(db, limit=2)
    assert [(entry.item_id, entry.tag_set) for entry in queue] == [(shared, "quality"), (other, "morphology")]


def test_a_retired_model_no_longer_orders_the_queue(db):
    ids = file_ids(db)[:2]
    model_id = add_model(db, "morphology", ["particles", "lattice"], {ids[0]: ("lattice", 0.55, 0.1)})
    with db.conn:
        db["learned_models"].update(model_id, {"status": "retired"})
    assert all(entry.tag_set is None for entry in review_queue(db, limit=5))


def test_the_queue_works_on_the_plain_sqlite_connection_datasette_hands_out(db):
    assert [entry.as_dict() for entry in review_queue(db.conn, limit=3)] == [
        entry.as_dict() for entry in review_queue(db, limit=3)
    ]


# -- Counting and paging the queue -------------------------------------------------------------------------


def unjudged_machine_tagged(db) -> set[str]:
    rows = db.execute(
        """select distinct item_id from tags t where item_type = 'file' and status = 'machine' and score is not null
           and not exists (select 1 from tags e where e.item_type = 'file' and e.item_id = t.item_id
                           and e.status != 'machine')"""
    )
    return {str(row[0]) for row in rows}


def test_the_queue_counts_every_machine_tagged_item_no_expert_has_judged(db):
    assert queue_count(db) == len(unjudged_machine_tagged(db)) > 3


def test_an_item_an_expert_judged_leaves_the_count(db):
    before = queue_count(db)
    item_id = sorted(unjudged_machine_tagged(db))[0]
    (tag_id,) = db.execute(
        "select id from tags where item_type = 'file' and item_id = ? and status = 'machine' limit 1", [item_id]
    ).fetchone()
    experts.accept(db, tag_id, "expert-in-test")
    assert queue_count(db) == before - 1


def test_pages_of_the_queue_do_not_overlap_and_together_hold_every_queued_item(db):
    size = 3
    pages = [review_queue(db, limit=size, offset=offset) for offset in range(0, queue_count(db) + size, size)]
    ids = [entry.item_id for page in pages for entry in page]
    assert all(len(page) <= size for page in pages) and len(ids) == len(set(ids))
    assert set(ids) >= unjudged_machine_tagged(db) and len(ids) == queue_count(db)


def test_a_page_of_the_queue_counts_predictions_the_learned_model_is_unsure_of(db):
    ids = file_ids(db)[:2]
    predictions = {ids[0]: ("particles", 0.55, 0.1), ids[1]: ("lattice", 0.6, 0.2)}
    add_model(db, "morphology", ["particles", "lattice"], predictions)
    queued = [entry.item_id for entry in review_queue(db, limit=2)]
    assert queued == ids and queue_count(db) >= 2
