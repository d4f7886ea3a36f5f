"""scisearch pretrain: the facility's own image model, trained from scratch on a tiny catalog of real demo files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from datasette_scisearch.catalog import now_utc, open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.learning import encoder_switch, pretrain, pretrain_data, projection_refit
from datasette_scisearch.learning.pretrain_command import pretrain_command
from datasette_scisearch.learning.train import train
from datasette_scisearch.search.detail import similar_items
from datasette_scisearch.search.engine import search
from datasette_scisearch.tagging import vectors
from datasette_scisearch.tagging.pipeline import tag_catalog
from tests.conftest import REPO
from tests.learning_support import build_scene_catalog, label_as_expert

pytestmark = pytest.mark.slow  # trains an image model

pytest.importorskip("open_clip")
TINY_SCENES = {"particles": ("particles_haadf",), "diffraction": ("spots",), "columns": ("columns_haadf",)}
# Only the text→image and image-space rankings: the words of the query must not find the files by their names.
IMAGE_VECTORS_ONLY = {"fts": 0.0, "text": 0.0, "clip": 0.0, "facility_image": 1.0, "facility_image_floor": -1.0}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Nine demo files (three scenes), catalogued, and a model trained on them for a few epochs."""
    built = build_scene_catalog(tmp_path_factory.mktemp("pretrain"), 3, scene_classes=TINY_SCENES)
    db = open_catalog(built["path"])
    report = pretrain.pretrain(db, epochs=3, actor="staff-in-test")
    db.close()
    return built["path"], report


@pytest.fixture
def copy_of(pretrained, tmp_path):
    path = tmp_path / "copy.db"
    shutil.copy(pretrained[0], path)
    return path


def test_pretraining_writes_a_facility_image_vector_for_every_file_with_a_preview(pretrained):
    path, report = pretrained
    db = open_catalog(path)
    (previews,) = db.execute("select count(*) from previews").fetchone()
    (written,) = db.execute(f"select count(*) from {vectors.table_for(pretrain.SPACE)}").fetchone()
    assert previews == 9 and written == 9 and report.vectors_written == 9
    space = vectors.spaces(db)[pretrain.SPACE]
    assert space["tagger"] == "pretrain" and space["dimensions"] == pretrain.EMBED_DIM
    assert space["model"] == pretrain.model_name(1)


def test_the_model_is_stored_in_the_catalog_with_its_training_report(pretrained):
    path, report = pretrained
    row = pretrain.current_model(open_catalog(path))
    stored = json.loads(row["report"])
    assert row["version"] == 1 and row["status"] == "current" and row["trained_by"] == "staff-in-test"
    assert stored["images"] == 9 and len(stored["losses"]) == 3 and stored["vectors_written"] == 9
    assert stored["labels"]["kind"] == ["diffraction", "image"]


def test_fine_tuning_makes_a_new_version_and_retires_the_old_one(copy_of):
    db = open_catalog(copy_of)
    report = pretrain.pretrain(db, epochs=1, fine_tune=True)
    versions = dict(db.execute("select version, status from image_models").fetchall())
    assert report.version == 2 and report.fine_tuned_from == 1
    assert versions == {1: "retired", 2: "current"}
    assert vectors.spaces(db)[pretrain.SPACE]["model"] == pretrain.model_name(2)


def test_a_text_query_finds_images_by_their_facility_image_vectors_alone(pretrained):
    db = open_catalog(pretrained[0])
    results = search(db, "diffraction pattern", weights=IMAGE_VECTORS_ONLY)
    assert results.rankers.get(pretrain.SPACE) == "pretrain"
    assert len(results.hits) == 9
    assert all(hit.item_type == "file" for hit in results.hits)
    assert any("facility's image model" in why for why in results.hits[0].why)


def test_the_query_vector_comes_through_minilm_and_the_learned_projection(pretrained):
    db = open_catalog(pretrained[0])
    vector, problem = pretrain.embed_query(db, "atomic resolution HAADF")
    other, _ = pretrain.embed_query(db, "diffraction pattern")
    assert problem is None and vector.shape == (pretrain.EMBED_DIM,)
    assert abs(float((vector**2).sum()) - 1) < 1e-4 and float(vector @ other) < 0.999


def test_more_like_this_uses_the_facility_image_space_when_there_is_no_clip(pretrained):
    db = open_catalog(pretrained[0])
    (file_id,) = db.execute("select min(id) from files").fetchone()
    similar = similar_items(db, "file", str(file_id), k=5)
    assert similar.space == pretrain.SPACE and len(similar.hits) == 5


def test_experts_labels_train_a_head_on_the_facility_image_vectors(copy_of):
    db = open_catalog(copy_of)
    ids = [str(i) for (i,) in db.execute("select id from files order by id")]
    kinds = dict(db.execute("select id, kind from files").fetchall())
    label_as_expert(db, [i for i in ids if kinds[int(i)] == "diffraction"][:2], "pattern")
    label_as_expert(db, [i for i in ids if kinds[int(i)] == "image"][:2], "picture")
    report = train(db, "looks", ["pattern", "picture"], feature_space=pretrain.SPACE, write=False)
    assert report.feature_space == pretrain.SPACE and report.labels == 4


def test_the_command_reports_the_training_as_json(copy_of):
    result = CliRunner().invoke(pretrain_command, [str(copy_of), "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["version"] == 2 and report["images"] == 9 and report["seconds_per_1000_images_epoch"] > 0


def test_with_too_few_new_images_the_model_is_kept_and_only_the_new_files_get_vectors(copy_of):
    db = open_catalog(copy_of)
    before = dict(projection_refit._stored_pairs(db))
    gone = sorted(before)[:3]  # as if three files had arrived since the model wrote its vectors
    with db.conn:
        vectors.delete_vectors(db, pretrain.SPACE, gone)
    result = CliRunner().invoke(pretrain_command, [str(copy_of), "--when-new", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"trained": False, "vectors_written": 3}
    assert pretrain.current_model(db)["version"] == 1
    after = dict(projection_refit._stored_pairs(db))
    assert after.keys() == before.keys() and all(np.allclose(after[k], before[k], atol=1e-6) for k in before)


def test_vectors_only_writes_every_image_again(copy_of):
    result = CliRunner().invoke(pretrain_command, [str(copy_of), "--vectors-only", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"trained": False, "vectors_written": 9}


def test_workers_of_a_dask_cluster_make_the_same_vectors(copy_of):
    pytest.importorskip("distributed")
    db = open_catalog(copy_of)
    here = dict(projection_refit._stored_pairs(db))
    with db.conn:
        db.execute(f"delete from [{vectors.table_for(pretrain.SPACE)}]")
    result = CliRunner().invoke(pretrain_command, [str(copy_of), "--vectors-only", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["vectors_written"] == 9
    on_workers = dict(projection_refit._stored_pairs(db))
    assert on_workers.keys() == here.keys()
    assert all(np.allclose(on_workers[k], here[k], atol=1e-5) for k in here)


def test_beyond_max_images_it_trains_on_a_random_sample_and_writes_every_vector(copy_of):
    db = open_catalog(copy_of)
    report = pretrain.pretrain(db, epochs=1, max_images=5)
    assert report.images == 5 and report.sampled_from == 9 and report.vectors_written == 9


def test_enough_new_images_fine_tune_the_current_model(copy_of):
    db = open_catalog(copy_of)
    with db.conn:  # as if five of the nine previews had arrived after the model was trained
        db.execute("update image_models set images = 4")
    result = CliRunner().invoke(pretrain_command, [str(copy_of), "--when-new", "5", "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["fine_tuned_from"] == 1


def test_a_catalog_without_images_is_refused_with_what_to_do(tmp_path):
    empty = tmp_path / "empty.db"
    open_catalog(empty).close()
    result = CliRunner().invoke(pretrain_command, [str(empty), "--quiet"])
    assert result.exit_code == 1
    assert result.output.startswith("error: the catalog has 0 image previews to learn from")
    assert "hint: load instrument files first: scisearch load files CATALOG PATH" in result.output
    assert "Traceback" not in result.output


def test_pretraining_says_where_it_trained(pretrained):
    torch = pytest.importorskip("torch")
    assert pretrained[1].device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pretrained[1].text_model is None  # the catalog reads text with the packaged MiniLM


def test_asking_for_a_gpu_where_there_is_none_is_refused_with_what_to_do(copy_of):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(pretrain_command, [str(copy_of), "--device", "cuda", "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("error: --device cuda was asked for, but torch sees no GPU here")
    assert pretrain.current_model(open_catalog(copy_of))["version"] == 1


def _tuned_text_model(db, folder):
    """A real (short) fine-tune of the packaged MiniLM on this catalog's captions, kept as the catalog's tuned
    encoder version 1 and waiting for its vectors, as 'scisearch learn --encoder' leaves one."""
    encoder = pytest.importorskip("datasette_scisearch.learning.encoder")
    captions = pretrain_data.read_images(db).captions
    model = encoder._base_model()
    model.max_seq_length = 64
    pairs = [(f"what this shows: {c.split(';')[0]}", c, None) for c in captions]
    encoder._train(model, pairs, epochs=1, batch_size=4, progress=None)
    model.save(str(folder))
    db["ranking_models"].insert(
        {
            "kind": "encoder",
            "version": 1,
            "model_path": str(folder),
            "vector_space": "text",
            "status": "trained",
            "created_at": now_utc(),
        }  # fmt: skip
    )


def test_a_new_text_model_refits_the_projection_and_keeps_the_image_vectors(copy_of, tmp_path):
    db = open_catalog(copy_of)
    tag_catalog(db, load_settings(REPO / "metadata.yml"), ["text_vectors"], item_types=["file"], progress=False)
    images_before = dict(projection_refit._stored_pairs(db))
    _tuned_text_model(db, tmp_path / "tuned")

    report = encoder_switch.reembed(db, 1)

    assert report.switched and len(report.notes) == 1 and "projection refitted" in report.notes[0]
    refit = json.loads(pretrain.current_model(db)["report"])
    assert refit["version"] == 2 and refit["fine_tuned_from"] == 1 and refit["projection_only"]
    assert refit["text_model"] == str(tmp_path / "tuned") and refit["images"] == 9
    assert 0 <= refit["caption_match_before"] <= 1 and 0 <= refit["caption_match"] <= 1
    # The tower is the old one: every image vector is as it was, now named for the new version.
    images_after = dict(projection_refit._stored_pairs(db))
    assert images_after.keys() == images_before.keys()
    assert all(np.allclose(images_after[k], images_before[k], atol=1e-6) for k in images_before)
    assert vectors.spaces(db)[pretrain.SPACE]["model"] == pretrain.model_name(2)
    # A query now goes through the tuned model and the refitted projection.
    vector, problem = pretrain.embed_query(db, "diffraction pattern")
    assert problem is None and pretrain._loaded(db).text_model == str(tmp_path / "tuned")
    assert abs(float(vector @ vector) - 1) < 1e-4

    notes: list[str] = []
    assert encoder_switch.rollback(db, notes=notes) == encoder_switch.BASE_VERSION
    back = json.loads(pretrain.current_model(db)["report"])
    assert back["version"] == 3 and back["text_model"] is None and "projection refitted" in notes[0]


def test_no_refit_when_the_text_model_did_not_change(copy_of):
    db = open_catalog(copy_of)
    assert projection_refit.follow_text_model(db) is None
    assert pretrain.current_model(db)["version"] == 1


def test_a_refit_to_the_same_text_model_keeps_the_projection(copy_of):
    db = open_catalog(copy_of)
    old = pretrain.model_of_row(pretrain.current_model(db)).projection.weight.detach().numpy()
    report = projection_refit.refit_projection(db, None)
    new = pretrain.model_of_row(pretrain.current_model(db)).projection.weight.detach().numpy()
    assert report.version == 2 and report.projection_only and report.losses[0] < 1e-6
    assert np.allclose(new, old, atol=1e-4) and report.caption_match == report.caption_match_before
