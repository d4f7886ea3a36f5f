"""The learned tagger on a demo catalog whose classes are known, and on the real SEM and TEM images.

The demo catalog holds 25 files of each of four scenes (nanoparticles, nanowires, lattice, amorphous), tagged by
the image-analysis tagger only; a simulated expert labels some of them with their true class, as
datasette_scisearch.tagging.experts leaves labels (tags with status 'added' and source 'expert').
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.learning import train as training
from datasette_scisearch.learning.active import review_queue
from datasette_scisearch.learning.heads import HEADS
from datasette_scisearch.learning.train import TrainingError, predict, train
from datasette_scisearch.learning.train_command import train as train_command
from datasette_scisearch.search.index import search_item_ids
from datasette_scisearch.tagging import experts, vectors
from datasette_scisearch.tagging.pipeline import tag_catalog

from .clip_fixture import build_tiny_clip
from .conftest import REPO, shared_data
from .learning_support import build_scene_catalog, label_as_expert, reject_as_expert

pytestmark = pytest.mark.slow  # scene catalogs tagged by image analysis, and training: the longest file of the suite

CLASSES = ["nanoparticles", "nanowires", "lattice", "amorphous"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return build_scene_catalog(tmp_path_factory.mktemp("scenes"), per_class=25, held_back=3)


@pytest.fixture
def db_path(scenes, tmp_path) -> str:
    path = tmp_path / "scenes.db"
    shutil.copy(scenes["path"], path)
    return str(path)


@pytest.fixture
def db(db_path):
    db = open_catalog(db_path)
    yield db
    db.close()


def label(db, scenes, per_class: dict[str, int]) -> set[str]:
    """The expert labels the first n files of each class with their true class; returns the labelled ids."""
    labelled = set()
    for name, count in per_class.items():
        ids = sorted((i for i, c in scenes["truth"].items() if c == name), key=int)[:count]
        label_as_expert(db, ids, name)
        labelled |= set(ids)
    return labelled


def learned_tags(db, version: int = 1) -> list[dict]:
    return list(db.query("select * from tags where source = ?", [f"learned:morphology.v{version}"]))


def test_cross_validated_accuracy_beats_the_machine_tags_on_the_same_items(db, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    report = train(db, "morphology", CLASSES)
    assert report.labels == 80 and report.counts == dict.fromkeys(CLASSES, 20) and report.folds == 5
    assert report.feature_space in ("image_texture", "image_features")
    assert report.cv_accuracy >= 0.9
    # image analysis has no tag for amorphous carbon and calls some wires particles
    assert report.cv_accuracy > report.baseline_accuracy
    assert sum(map(sum, report.confusion)) == 80 and report.baseline_confusion[3][4] == 20


def test_the_train_command_prints_accuracy_against_the_baseline_and_the_version_written(db, db_path, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    result = CliRunner().invoke(
        train_command, [db_path, "--tag-set", "morphology", "--classes", ",".join(CLASSES)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    model = next(db.query("select * from learned_models"))
    assert "trained learned:morphology.v1 on 80 labelled items" in result.output
    assert f"cross-validated accuracy: {model['cv_accuracy']:.3f}" in result.output
    assert f"baseline (machine tags):  {model['baseline_accuracy']:.3f}" in result.output
    assert f"wrote {len(learned_tags(db))} tags" in result.output


def test_the_train_command_reports_json(db, db_path, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    result = CliRunner().invoke(
        train_command, [db_path, "--tag-set", "morphology", "--classes", ",".join(CLASSES), "--json"]
    )
    report = json.loads(result.output)
    assert report["version"] == 1 and report["counts"]["lattice"] == 20 and report["cv_accuracy"] > 0.9


def test_a_dry_run_reports_the_accuracy_and_writes_nothing(db, db_path, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    tags_before = db.execute("select count(*) from tags").fetchone()[0]
    result = CliRunner().invoke(
        train_command, [db_path, "--tag-set", "morphology", "--classes", ",".join(CLASSES), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "trained morphology (dry run: nothing written) on 80 labelled items" in result.output
    assert "cross-validated accuracy: " in result.output and "wrote" not in result.output
    assert db.execute("select count(*) from tags").fetchone()[0] == tags_before
    assert db.execute("select count(*) from learned_models").fetchone()[0] == 0


def test_learned_tags_carry_the_versioned_source_a_probability_and_evidence(db, scenes):
    labelled = label(db, scenes, dict.fromkeys(CLASSES, 20))
    report = train(db, "morphology", CLASSES)
    tags = learned_tags(db)
    assert {tag["item_id"] for tag in tags} <= set(scenes["truth"]) - labelled  # labelled items keep the expert's
    assert len(tags) == 20  # every unlabelled file is sure enough to tag
    assert all(tag["status"] == "machine" and tag["source_version"] == "1" for tag in tags)
    assert all(0.5 <= tag["score"] <= 1 for tag in tags)
    assert f"learned head morphology v1 ({report.head}) on {report.feature_space}, calibrated p=" in tags[0]["evidence"]
    assert "from 80 labels" in tags[0]["evidence"]
    # 80 labels fit a temperature to the cross-validation's out-of-fold scores; it is stored with the weights.
    assert report.temperature is not None and report.log_loss[1] <= report.log_loss[0]
    stored = training.load_weights(training.current_model(db, "morphology")["weights"])
    assert float(stored["temperature"]) == pytest.approx(report.temperature)
    right = sum(tag["tag"] == scenes["truth"][tag["item_id"]] for tag in tags)
    assert right >= 18


def test_search_finds_unlabelled_amorphous_files_by_their_learned_tag(db, scenes):
    labelled = label(db, scenes, dict.fromkeys(CLASSES, 20))
    train(db, "morphology", CLASSES)
    found = {
        row[0]
        for row in db.execute(
            "select item_id from search_items where id in "
            "(select rowid from search_items_fts where search_items_fts match 'tags:amorphous')"
        )
    }
    unlabelled_amorphous = {i for i, c in scenes["truth"].items() if c == "amorphous"} - labelled
    assert unlabelled_amorphous and unlabelled_amorphous <= found  # no machine tagger says "amorphous"


def test_every_file_with_features_gets_a_prediction_with_its_margin(db, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    train(db, "morphology", CLASSES)
    rows = list(db.query("select * from learned_predictions"))
    assert len(rows) == 100
    assert all(0 <= row["margin"] <= row["probability"] <= 1 for row in rows)


def test_predictions_read_in_batches_cover_every_file_once(db, scenes, monkeypatch):
    monkeypatch.setattr(training, "_READ_BATCH", 7)  # a large catalog's vectors are read a batch at a time
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    report = train(db, "morphology", CLASSES)
    assert report.predictions == 100 and len(learned_tags(db)) == 20


@pytest.mark.parametrize("classes", [CLASSES, ["nanowires", "lattice"]], ids=["four classes", "two classes"])
def test_the_stored_weights_give_the_probabilities_scikit_learn_gives(db, scenes, classes):
    ids = [i for i, c in scenes["truth"].items() if c in classes]
    ids, features = training.read_features(db, "image_features", "file", ids)
    target = np.array([classes.index(scenes["truth"][i]) for i in ids])
    head = training.new_head().fit(features, target)
    weights = training.load_weights(training.dump_weights(training.fit_weights(features, target, classes)))
    assert training.probabilities(weights, features) == pytest.approx(head.predict_proba(features), abs=1e-9)


def test_retraining_replaces_the_old_versions_tags_and_keeps_the_experts(db, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    train(db, "morphology", CLASSES)
    expert_tags = db.execute("select count(*) from tags where source = 'expert'").fetchone()[0]
    report = train(db, "morphology", CLASSES)
    assert report.version == 2 and report.tags_removed == 20
    assert learned_tags(db, version=1) == [] and len(learned_tags(db, version=2)) == 20
    assert db.execute("select count(*) from tags where source = 'expert'").fetchone()[0] == expert_tags == 80
    statuses = dict(db.execute("select version, status from learned_models").fetchall())
    assert statuses == {1: "retired", 2: "current"}
    assert db.execute("select distinct model_id from learned_predictions").fetchall() == [(report.model_id,)]


def test_an_accepted_learned_tag_stays_and_becomes_a_label(db, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    train(db, "morphology", CLASSES)
    accepted = learned_tags(db)[0]
    experts.accept(db, accepted["id"], "expert-in-test")
    report = train(db, "morphology", CLASSES)
    assert next(db.query("select status from tags where id = ?", [accepted["id"]]))["status"] == "accepted"
    assert report.labels == 81


def test_a_learned_tag_the_expert_rejected_is_not_written_again(db, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    train(db, "morphology", CLASSES)
    rejected = learned_tags(db)[0]
    experts.reject(db, rejected["id"], "expert-in-test")
    train(db, "morphology", CLASSES)
    again = [tag for tag in learned_tags(db, version=2) if tag["item_id"] == rejected["item_id"]]
    assert all(tag["tag"] != rejected["tag"] for tag in again)


def test_a_learned_tag_an_expert_rejects_while_training_reads_the_vectors_is_not_written_again(
    db, db_path, scenes, monkeypatch
):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    train(db, "morphology", CLASSES)
    rejected = learned_tags(db)[0]
    read_vectors = training._predict_all

    def an_expert_rejects_meanwhile(*args, **kwargs):
        predicted = read_vectors(*args, **kwargs)
        other = open_catalog(db_path)  # the expert's own connection, as the web server's
        experts.reject(other, rejected["id"], "expert-in-test")
        other.close()
        return predicted

    monkeypatch.setattr(training, "_predict_all", an_expert_rejects_meanwhile)
    train(db, "morphology", CLASSES)
    again = [tag for tag in learned_tags(db, version=2) if tag["item_id"] == rejected["item_id"]]
    assert all(tag["tag"] != rejected["tag"] for tag in again)


def test_labels_match_class_names_in_any_case(db, scenes):
    label(db, scenes, {"nanoparticles": 5, "lattice": 5})
    wires = sorted((i for i, c in scenes["truth"].items() if c == "nanowires"), key=int)[:5]
    label_as_expert(db, wires, "NANOWIRES")
    assert train(db, "morphology", ["Nanoparticles", "nanowires", "Lattice"]).counts == {
        "Nanoparticles": 5,
        "nanowires": 5,
        "Lattice": 5,
    }


def test_rejections_that_leave_one_class_are_labels(db, scenes):
    label(db, scenes, {"nanowires": 5, "lattice": 5})
    wire = sorted((i for i, c in scenes["truth"].items() if c == "nanowires"), key=int)[-1]
    reject_as_expert(db, wire, "lattice")
    report = train(db, "wires", ["nanowires", "lattice"])
    assert report.labels_from_rejections == 1 and report.counts == {"nanowires": 6, "lattice": 5}


def test_two_labels_per_class_train_a_head_that_tags_the_rest_mostly_right(db, scenes):
    labelled = label(db, scenes, dict.fromkeys(CLASSES, 2))
    report = train(db, "morphology", CLASSES)
    assert report.counts == dict.fromkeys(CLASSES, 2) and report.folds == 2 and report.version == 1
    assert any("fewer than 20 labels" in warning for warning in report.warnings)
    assert any("cross-validation trains on one label a class" in warning for warning in report.warnings)
    assert report.temperature is None  # 8 out-of-fold scores do not pin a temperature down
    tags = learned_tags(db)
    assert all("calibrated" not in tag["evidence"] for tag in tags)
    assert not {tag["item_id"] for tag in tags} & labelled
    right = sum(tag["tag"] == scenes["truth"][tag["item_id"]] for tag in tags)
    assert len(tags) >= 60 and right >= 0.8 * len(tags)


def test_the_head_written_is_the_one_cross_validation_found_most_accurate(db, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 5))
    report = train(db, "morphology", CLASSES)
    assert len(report.heads_compared) == 2 * len(HEADS)
    best = max(report.heads_compared.values())
    assert report.heads_compared[f"{report.feature_space}: {report.head}"] == best == report.cv_accuracy
    model = training.current_model(db, "morphology")
    assert str(training.load_weights(model["weights"])["head"]) == report.head


@pytest.mark.parametrize("head", HEADS)
def test_each_head_predicts_from_its_stored_weights_as_when_it_was_fitted(db, scenes, head):
    ids, features = training.read_features(db, "image_features", "file", list(scenes["truth"]))
    target = np.array([CLASSES.index(scenes["truth"][i]) for i in ids])
    labelled = np.concatenate([np.flatnonzero(target == c)[:3] for c in range(len(CLASSES))])
    fitted = training.fit_weights(features[labelled], target[labelled], CLASSES, head, features)
    stored = training.load_weights(training.dump_weights(fitted))
    predicted = training.probabilities(stored, features).argmax(axis=1)
    assert np.array_equal(predicted, heads_scores_argmax(fitted, features))
    assert (predicted == target).mean() >= 0.8


def heads_scores_argmax(weights, features):
    from datasette_scisearch.learning.heads import scores

    return scores(weights, features).argmax(axis=1)


def test_nearest_class_mean_puts_an_item_in_the_class_whose_labels_it_is_closest_to(db, scenes):
    from datasette_scisearch.learning.heads import fit, scores

    ids, features = training.read_features(db, "image_features", "file", list(scenes["truth"]))
    target = np.array([CLASSES.index(scenes["truth"][i]) for i in ids])
    labelled = np.concatenate([np.flatnonzero(target == c)[:2] for c in range(len(CLASSES))])
    weights = fit("nearest class mean", features[labelled], target[labelled], features)
    standard = (features - weights["mean"]) / weights["scale"]
    centres = np.stack([standard[labelled][target[labelled] == c].mean(axis=0) for c in range(len(CLASSES))])
    nearest = np.linalg.norm(standard[:, None, :] - centres[None], axis=2).argmin(axis=1)
    assert np.array_equal(scores(weights, features).argmax(axis=1), nearest)


def test_the_report_prints_no_baseline_where_no_machine_tag_names_a_class(db, db_path, scenes):
    for name, alias in (("nanowires", "threads"), ("lattice", "checkerboard")):
        ids = sorted((i for i, c in scenes["truth"].items() if c == name), key=int)[:3]
        label_as_expert(db, ids, alias)
    result = CliRunner().invoke(train_command, [db_path, "--tag-set", "looks", "--classes", "threads,checkerboard"])
    assert result.exit_code == 0, result.output
    assert "baseline: none — no machine tag on the labelled items names a class" in result.output
    assert "baseline (machine tags)" not in result.output and "baseline right" not in result.output


def test_too_few_labels_says_how_many_each_class_has_and_which_to_label(db, scenes):
    label(db, scenes, {"nanoparticles": 20, "nanowires": 20, "lattice": 1})
    with pytest.raises(TrainingError) as raised:
        train(db, "morphology", CLASSES)
    message = str(raised.value)
    assert "nanoparticles 20, nanowires 20, lattice 1, amorphous 0" in message
    assert "at least 2 labelled items per class" in message and "20 per class give a reliable accuracy" in message
    assert "lattice (1 more), amorphous (2 more)" in message
    assert db.execute("select count(*) from learned_models").fetchone()[0] == 0


def test_too_few_labels_on_the_command_line_is_a_message_not_a_traceback(db, db_path, scenes):
    result = CliRunner().invoke(train_command, [db_path, "--tag-set", "morphology", "--classes", ",".join(CLASSES)])
    assert result.exit_code == 1
    assert result.output.startswith("error: too few labels to train 'morphology': nanoparticles 0")
    assert "Traceback" not in result.output


def test_a_catalog_without_image_features_says_which_tagger_to_run(em_catalog_file, tmp_path):
    path = tmp_path / "em.db"
    shutil.copy(em_catalog_file, path)
    db = open_catalog(path)
    label_as_expert(db, ["1", "2"], "lattice")
    with pytest.raises(TrainingError, match="--tagger image_analysis"):
        train(db, "morphology", ["lattice", "amorphous"])


def test_predict_only_tags_files_catalogued_after_training_and_nothing_else(db, db_path, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 20))
    train(db, "morphology", CLASSES)
    before = {tag["id"] for tag in learned_tags(db)}
    settings = load_settings(REPO / "metadata.yml")
    load_files(db, [scenes["later"]], settings, progress=False)
    tag_catalog(db, settings, ["image_analysis"], progress=False)
    result = CliRunner().invoke(train_command, [db_path, "--tag-set", "morphology", "--predict-only", "--json"])
    report = json.loads(result.output)
    assert report["predictions"] == 12 and report["version"] == 1
    new = [tag for tag in learned_tags(db) if tag["id"] not in before]
    paths = dict(db.execute("select id, path from files").fetchall())
    assert len(new) == report["tags_written"] >= 10
    assert sum(tag["tag"] == scenes["later_truth"][paths[int(tag["item_id"])]] for tag in new) >= len(new) - 1
    assert predict(db, "morphology").predictions == 0  # a second run has nothing new


def test_predict_only_before_any_training_says_to_train_first(db):
    with pytest.raises(TrainingError, match="train one first"):
        predict(db, "morphology")


def test_the_review_queue_offers_the_least_certain_unlabelled_files_first(db, scenes):
    labelled = label(db, scenes, dict.fromkeys(CLASSES, 5))
    train(db, "morphology", CLASSES)
    queue = review_queue(db, limit=10, tag_set="morphology")
    margins = [entry.margin for entry in queue]
    assert margins == sorted(margins)
    assert not {entry.item_id for entry in queue} & labelled
    lowest = db.execute(
        "select min(margin) from learned_predictions where item_id not in ({})".format(",".join("?" * len(labelled))),
        sorted(labelled),
    ).fetchone()[0]
    assert margins[0] == pytest.approx(lowest)


# ---------------------------------------------------------------- which vectors


@pytest.fixture(scope="module")
def scenes_with_clip(scenes, tmp_path_factory):
    """The demo scene catalog with CLIP vectors too, from a tiny random-weight open_clip model (no real weights
    can be had here: the point is which space training reads, not how good random CLIP features are)."""
    path = tmp_path_factory.mktemp("clip") / "scenes.db"
    shutil.copy(scenes["path"], path)
    settings = load_settings(REPO / "metadata.yml")
    settings.taggers["clip"] = build_tiny_clip(tmp_path_factory.mktemp("tiny_clip")).options()
    db = open_catalog(path)
    tag_catalog(db, settings, ["clip"], progress=False)
    db.close()
    return path


@pytest.fixture
def clip_db(scenes_with_clip, tmp_path):
    path = tmp_path / "scenes.db"
    shutil.copy(scenes_with_clip, path)
    db = open_catalog(path)
    yield db
    db.close()


def test_auto_features_are_clip_where_clip_vectors_cover_the_labelled_files(clip_db, scenes):
    label(clip_db, scenes, dict.fromkeys(CLASSES, 5))
    report = train(clip_db, "morphology", CLASSES)
    assert report.feature_space == "clip"
    assert "on clip, calibrated p=" in learned_tags(clip_db)[0]["evidence"]  # 20 labels: calibrated


def test_auto_features_fall_back_to_the_image_analysis_vectors_where_clip_covers_fewer_labelled_files(clip_db, scenes):
    labelled = label(clip_db, scenes, dict.fromkeys(CLASSES, 5))
    rowids = search_item_ids(clip_db, "file", sorted(labelled)[:3])
    with clip_db.conn:  # CLIP ran over part of the catalog only
        vectors.delete_vectors(clip_db, "clip", list(rowids.values()))
    report = train(clip_db, "morphology", CLASSES)
    assert report.feature_space in ("image_texture", "image_features")
    analysis_spaces = ("image_features", "image_texture")  # the catalog has no facility_image vectors
    assert set(report.heads_compared) == {f"{space}: {head}" for space in analysis_spaces for head in HEADS}


def test_features_named_on_the_command_line_must_exist(db, db_path, scenes):
    label(db, scenes, dict.fromkeys(CLASSES, 5))
    result = CliRunner().invoke(
        train_command, [db_path, "--tag-set", "morphology", "--classes", ",".join(CLASSES), "--features", "clip"]
    )
    assert result.exit_code == 1
    assert "the catalog has no 'clip' vectors (it has: image_features, image_texture)" in result.output


# ---------------------------------------------------------------- real images


@pytest.fixture(scope="module")
def sem_and_tem(tmp_path_factory):
    """The 15 real SEM nanowire PNGs and the real EM files, tagged by the image-analysis tagger alone (its rules
    are the untrained baseline; the filename tagger would read the class off the folder name 'sem_images')."""
    path = tmp_path_factory.mktemp("real") / "real.db"
    db = open_catalog(path)
    settings = load_settings(REPO / "metadata.yml")
    load_files(db, [shared_data("sem_images", "nanowires_fullres"), shared_data("em")], settings, progress=False)
    tag_catalog(db, settings, ["image_analysis"], progress=False)
    db.close()
    return path


def test_on_real_images_the_head_tells_sem_nanowires_from_tem_better_than_the_image_rules(sem_and_tem, tmp_path):
    path = tmp_path / "real.db"
    shutil.copy(sem_and_tem, path)
    db = open_catalog(path)
    with_features = "select s.item_id from search_items s join vec_image_features v on v.item_rowid = s.id"
    featured = {row[0] for row in db.execute(with_features)}
    files = dict(db.execute("select cast(id as text), path from files").fetchall())
    sem = [i for i in featured if "sem_images" in files[i]]
    # Every EM file with pixels to learn from, but ncempy's dmTest reader fixtures, which are not micrographs.
    tem = [i for i in featured if "/em/" in files[i] and "dmTest" not in files[i]]
    label_as_expert(db, sem, "nanowires")
    label_as_expert(db, tem, "TEM")
    result = CliRunner().invoke(
        train_command,
        [str(path), "--tag-set", "microscope", "--classes", "nanowires,TEM", "--json"]
        + ["--baseline-tag", "nanowires=nanowires", "--baseline-tag", "nanowires=elongated objects"]
        + ["--baseline-tag", "TEM=atomic resolution", "--baseline-tag", "TEM=lattice fringes"],
    )
    report = json.loads(result.output)
    print(
        f"SEM vs TEM: {report['counts']}, {report['folds']} folds, CV accuracy {report['cv_accuracy']:.3f}, "
        f"baseline {report['baseline_accuracy']:.3f}"
    )
    assert report["counts"] == {"nanowires": len(sem), "TEM": len(tem)} and len(sem) == 14 and len(tem) >= 5
    assert report["cv_accuracy"] > report["baseline_accuracy"]


def test_temperature_scaling_finds_how_overconfident_the_scores_are():
    """Classes drawn from known probabilities (softmax of known scores): the temperature fitted to those scores
    made four times as sharp is about 4, and to the true scores about 1."""
    from datasette_scisearch.learning.heads import fit_temperature, with_temperature

    rng = np.random.default_rng(0)
    scores = rng.normal(0, 2, size=(3000, 3))
    truth = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    target = np.array([rng.choice(3, p=row) for row in truth])
    temperature, (before, after) = fit_temperature(scores * 4, target)
    assert 3.4 < temperature < 4.7 and after < 0.8 * before
    assert 0.85 < fit_temperature(scores, target)[0] < 1.18
    # Out-of-fold scores that are all right do not make the head surer than it is: 20 labels cannot show that.
    separated = np.where(np.eye(3)[target] > 0, 3.0, -3.0)[:20]
    assert 0.6 < fit_temperature(separated, target[:20])[0] <= 1.0
    weights = {"coef": np.eye(3) * 4, "intercept": np.zeros(3)}
    assert with_temperature(weights, 4.0)["coef"] == pytest.approx(np.eye(3))
