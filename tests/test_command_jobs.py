"""Every long command leaves a job row saying how it ended: training, learning in each of its modes, pretraining,
linking (alone and after a load) and indexing record ``done``, or ``failed`` with the error a person reads."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.cli import cli

from .conftest import REPO, shared_data


def run(*arguments):
    return CliRunner().invoke(cli, ["--config", str(REPO / "metadata.yml"), *map(str, arguments)])


@pytest.fixture
def em_copy(em_catalog_file, tmp_path):
    path = tmp_path / "em.db"
    shutil.copy(em_catalog_file, path)
    return path


def jobs_of(catalog) -> list[tuple]:
    db = open_catalog(catalog)
    try:
        return db.execute("select command, status, error from jobs order by id").fetchall()
    finally:
        db.close()


def last_job(catalog) -> tuple:
    return jobs_of(catalog)[-1]


def test_linking_a_catalog_is_recorded_as_a_done_link_job_with_what_it_linked(em_copy):
    assert run("link", em_copy).exit_code == 0
    db = open_catalog(em_copy)
    command, status, summary = db.execute("select command, status, summary from jobs order by id desc").fetchone()
    db.close()
    assert (command, status) == ("link", "done") and "files by modification time" in summary


def test_a_load_records_its_own_job_and_then_the_link_job_that_completes_it(tmp_path):
    catalog = tmp_path / "c.db"
    assert run("load", "files", "--quiet", catalog, shared_data("em")).exit_code == 0
    assert [(command, status) for command, status, _ in jobs_of(catalog)] == [("load files", "done"), ("link", "done")]


def test_a_load_with_no_link_records_no_link_job(tmp_path):
    catalog = tmp_path / "c.db"
    assert run("load", "files", "--quiet", "--no-link", catalog, shared_data("em")).exit_code == 0
    assert [command for command, _, _ in jobs_of(catalog)] == ["load files"]


def test_a_training_that_cannot_train_is_recorded_failed_with_the_reason_it_printed(em_copy):
    result = run("train", em_copy, "--tag-set", "morphology", "--classes", "nanoparticles,lattice")
    assert result.exit_code != 0
    command, status, error = last_job(em_copy)
    assert (command, status) == ("train", "failed")
    assert "too few labels to train 'morphology'" in error and "too few labels" in result.output


def test_learning_from_clicks_is_recorded_as_a_done_learn_job(em_copy):
    assert run("learn", em_copy).exit_code == 0
    assert last_job(em_copy) == ("learn", "done", None)


def test_learning_the_ranking_without_evidence_is_recorded_failed_with_its_error(em_copy):
    result = run("learn", em_copy, "--ranking")
    command, status, error = last_job(em_copy)
    assert result.exit_code != 0 and (command, status) == ("learn --ranking", "failed") and error


def test_a_rollback_with_nothing_to_go_back_to_is_recorded_failed_with_its_mode(em_copy):
    result = run("learn", em_copy, "--encoder-rollback", "--no-reembed")
    command, status, error = last_job(em_copy)
    assert result.exit_code != 0 and (command, status) == ("learn --encoder-rollback", "failed") and error


def test_pretraining_on_too_few_images_is_recorded_failed_saying_how_many_it_needs(tmp_path):
    catalog = tmp_path / "c.db"
    assert run("load", "files", "--quiet", catalog, shared_data("em", "16_STOimage_1.ser")).exit_code == 0
    result = run("pretrain", catalog, "--epochs", "1", "--quiet")
    command, status, error = last_job(catalog)
    assert result.exit_code != 0 and (command, status) == ("pretrain", "failed")
    assert "pretraining needs at least" in error


def test_updating_the_search_indexes_is_recorded_as_a_done_index_job(em_copy):
    pytest.importorskip("tantivy")
    assert run("index", em_copy, "--quiet").exit_code == 0
    assert last_job(em_copy)[:2] == ("index", "done")


def test_checking_the_search_indexes_records_no_job(em_copy):
    pytest.importorskip("tantivy")
    run("index", em_copy, "--check")
    assert all(command != "index" for command, _, _ in jobs_of(em_copy))
