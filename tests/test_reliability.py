"""Commands killed with SIGKILL at any moment (a load, a tagging run, a training) leave nothing half-written, and a
re-run completes the work: a load leaves each file wholly catalogued or wholly absent; a tagging run keeps whole
batches (tags, vectors and their tag_runs rows together); a training leaves the old model or the whole new one."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from datasette_scisearch.catalog import open_catalog

from .conftest import shared_data
from .kill_support import kill_after, scisearch, stale_documents
from .learning_support import build_scene_catalog, label_as_expert

pytestmark = pytest.mark.slow  # loads killed with SIGKILL and run again


def half_written(db) -> list[str]:
    """Rows that say they have a preview but have none, and previews of no row: what a torn write leaves."""
    torn = db.execute(
        "select name from files where preview is not null and id not in (select file_id from previews)"
    ).fetchall()
    orphans = db.execute("select file_id from previews where file_id not in (select id from files)").fetchall()
    return [row[0] for row in torn] + [f"preview of {row[0]}" for row in orphans]


@pytest.mark.parametrize("after_s", [0.8, 1.6, 2.4])
def test_a_load_killed_with_sigkill_leaves_nothing_half_written_and_a_rerun_completes(tmp_path, after_s):
    folder = tmp_path / "disk"
    shutil.copytree(shared_data("em"), folder)
    catalog = tmp_path / "catalog.db"
    command = [sys.executable, "-m", "datasette_scisearch", "load", "files", str(catalog), str(folder), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after_s)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    db = open_catalog(catalog)
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert half_written(db) == []
    db.close()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = open_catalog(catalog)
    paths = db.execute("select path, dataset, count(*) from files group by path, dataset having count(*) > 1")
    assert paths.fetchall() == []
    assert db["files"].count == 20 and half_written(db) == []
    db.close()


TAGGERS = ("filenames", "metadata", "image_analysis")


def tag_command(catalog) -> list[str]:
    return scisearch("tag", catalog, *[part for name in TAGGERS for part in ("--tagger", name)], "--quiet")


def machine_tags(db) -> set[tuple]:
    return set(db.execute("select item_type, item_id, tag, source, score, via from tags").fetchall())


@pytest.fixture(scope="module")
def cleanly_tagged(em_catalog_file, tmp_path_factory):
    """The tags a tagging run that nobody killed leaves on the real files."""
    path = tmp_path_factory.mktemp("tagged") / "em.db"
    shutil.copy(em_catalog_file, path)
    subprocess.run(tag_command(path), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = open_catalog(path)
    tags = machine_tags(db)
    db.close()
    return tags


@pytest.mark.parametrize("seed", [1, 2])
def test_a_tagging_run_killed_at_a_random_moment_leaves_whole_batches_and_a_rerun_matches_a_clean_run(
    em_catalog_file, cleanly_tagged, tmp_path, seed
):
    catalog = tmp_path / "em.db"
    shutil.copy(em_catalog_file, catalog)
    kill_after(tag_command(catalog), random.Random(seed).uniform(1.0, 5.0))
    db = open_catalog(catalog)
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    # A batch's tag_runs rows commit with its tags: every item recorded done has its tags.
    done_without_tags = db.execute(
        """select count(*) from tag_runs r where r.status = 'done' and r.tagger = 'metadata' and not exists
           (select 1 from tags t where t.item_type = r.item_type and t.item_id = r.item_id and t.source = r.tagger)"""
    ).fetchone()[0]
    assert done_without_tags == 0
    db.close()
    subprocess.run(tag_command(catalog), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = open_catalog(catalog)
    assert machine_tags(db) == cleanly_tagged
    assert db.execute("select status from jobs order by id desc limit 1").fetchone()[0] == "done"
    assert stale_documents(db) == 0
    db.close()


CLASSES = ("nanoparticles", "lattice")


@pytest.fixture(scope="module")
def labelled_scenes(tmp_path_factory):
    """A demo catalog of two classes, tagged by image analysis, four files of each labelled by an expert."""
    scenes = build_scene_catalog(tmp_path_factory.mktemp("scenes"), per_class=10, classes=list(CLASSES))
    db = open_catalog(scenes["path"])
    for name in CLASSES:
        label_as_expert(db, [i for i, truth in sorted(scenes["truth"].items()) if truth == name][:4], name)
    db.close()
    return scenes["path"]


def train_command(catalog) -> list[str]:
    return scisearch("train", catalog, "--tag-set", "morphology", "--classes", ",".join(CLASSES))


def assert_one_whole_model_or_none(db) -> None:
    current = db.execute("select id, version from learned_models where status = 'current'").fetchall()
    assert len(current) <= 1
    sources = {row[0] for row in db.execute("select distinct source from tags where source like 'learned:%'")}
    predicted = {row[0] for row in db.execute("select distinct model_id from learned_predictions")}
    if current:
        (model_id, version), files = current[0], db["files"].count
        assert sources <= {f"learned:morphology.v{version}"} and predicted == {model_id}
        assert db.execute("select count(*) from learned_predictions").fetchone()[0] == files
    else:
        assert sources == set() and predicted == set()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_training_killed_at_a_random_moment_leaves_the_old_model_or_the_whole_new_one_and_a_rerun_completes(
    labelled_scenes, tmp_path, seed
):
    catalog = tmp_path / "scenes.db"
    shutil.copy(labelled_scenes, catalog)
    subprocess.run(train_command(catalog), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_after(train_command(catalog), random.Random(seed).uniform(1.0, 6.0))
    db = open_catalog(catalog)
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert_one_whole_model_or_none(db)
    assert stale_documents(db) == 0
    db.close()
    subprocess.run(train_command(catalog), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = open_catalog(catalog)
    assert_one_whole_model_or_none(db)
    assert db.execute("select max(version) from learned_models").fetchone()[0] >= 2
    db.close()
