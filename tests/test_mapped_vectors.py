"""Vectors memory-mapped from files beside the catalog: the same answers as exact search, kept in step by writers.

The catalog is the 584 real NSF awards of ../shared/data, embedded by the
deterministic hashed-words model (tests/search_support.py) through the real
tagging run; the files are built whatever the catalog's size.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.ingest.records import load_records
from datasette_scisearch.search import engine, index_folder, mapped_vectors, vector_index
from datasette_scisearch.search.index import refresh_search_items
from datasette_scisearch.tagging import vectors
from datasette_scisearch.tagging.pipeline import tag_catalog

from .conftest import shared_data
from .search_support import HashedWordsTagger, hashed_words_vector, registered, settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def text_model():
    with registered(HashedWordsTagger()):
        yield
    mapped_vectors.forget()
    vector_index.forget()


@pytest.fixture(scope="module")
def embedded_awards(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("embedded") / "awards.db"
    db = open_catalog(path)
    load_records(db, "proposals", shared_data("proposals", "nsf_awards_2017.jsonl"), settings(), {}, progress=False)
    with registered(HashedWordsTagger()):
        tag_catalog(db, settings(), ["hashed_words"], progress=False)
    db.close()
    return path


@pytest.fixture
def catalog(embedded_awards, tmp_path):
    path = tmp_path / "awards.db"
    shutil.copy(embedded_awards, path)
    db = open_catalog(path)
    mapped_vectors.build(db, "text")
    yield db
    db.close()


def exact(db) -> vector_index.SpaceMatrix:
    """Exact search over every vector read from sqlite-vec (what each process did before the files)."""
    return vector_index._build(db, "text", 384, ("exact", 0))


def ranked(pairs: list[tuple[int, float]]) -> list[int]:
    return [r for r, _ in sorted(pairs, key=lambda pair: (-round(pair[1], 5), pair[0]))]


def queries(db) -> list[np.ndarray]:
    titles = [row[0] for row in db.execute("select title from proposals order by id limit 40")]
    return [hashed_words_vector(title + " electron microscopy") for title in titles]


def rowid_of(db, award_id: str) -> int:
    return db.execute("select id from search_items where item_id = ?", [award_id]).fetchone()[0]


def test_search_reads_the_vectors_from_the_mapped_files(catalog):
    space = vector_index.space_matrix(catalog, "text")
    assert isinstance(space, mapped_vectors.MappedSpace) and len(space) == 584
    assert isinstance(space.files.matrix, np.memmap)


@pytest.mark.parametrize("approximate", [False, True], ids=["scanning every vector", "by the nearest inverted lists"])
def test_the_mapped_index_answers_exactly_wherever_its_candidates_hold_every_true_neighbour(catalog, approximate):
    mapped, truth = vector_index.space_matrix(catalog, "text"), exact(catalog)
    recalls = []
    for query in queries(catalog):
        found, expected = mapped.nearest(query, 10, approximate=approximate), truth.nearest(query, 10)
        recall = len({r for r, _ in found} & {r for r, _ in expected}) / 10
        recalls.append(recall)
        if recall == 1.0:  # the same items in the same order, up to float32 rounding between near-ties
            assert [s for _, s in found] == pytest.approx([s for _, s in expected], abs=1e-5)
            assert ranked(found) == ranked(expected)
    assert np.mean(recalls) >= 0.95


def test_a_changed_vector_is_searched_before_the_files_are_written_again(catalog):
    rowid = rowid_of(catalog, "1700014")
    target = hashed_words_vector("ultrafast germanium photodetectors")
    with catalog.conn:
        vectors.write_vectors(catalog, "text", [(rowid, target)])
    refresh_search_items(catalog, ["proposal"], ["1700014"])  # a writer's hook: fewer changes than MERGE_AT
    space = vector_index.space_matrix(catalog, "text")
    assert list(space.changed) == [rowid]
    assert space.nearest(target, 1)[0][0] == rowid
    assert np.array_equal(space.vector_of(rowid), vectors.normalised(target))


def test_a_deleted_items_vector_is_not_found(catalog):
    rowid = rowid_of(catalog, "1700014")
    vector = vector_index.space_matrix(catalog, "text").vector_of(rowid)
    with catalog.conn:
        catalog.execute("delete from proposals where id = '1700014'")
    refresh_search_items(catalog, ["proposal"])
    space = vector_index.space_matrix(catalog, "text")
    assert space.vector_of(rowid) is None and len(space) == 583
    assert rowid not in [r for r, _ in space.nearest(vector, 10)]


def test_a_writer_writes_new_files_once_enough_changes_have_gathered(catalog, monkeypatch):
    monkeypatch.setattr(mapped_vectors, "MERGE_AT", 3)
    monkeypatch.setattr(mapped_vectors, "MERGE_SHARE", 0.0)
    before = index_folder.read_state(index_folder.indexes_folder(catalog), "vectors-text")
    rowids = [row[0] for row in catalog.execute("select id from search_items order by id limit 3")]
    with catalog.conn:
        vectors.write_vectors(catalog, "text", [(r, hashed_words_vector(f"changed {r}")) for r in rowids])
    refresh_search_items(catalog, ["proposal"], [])
    after = index_folder.read_state(index_folder.indexes_folder(catalog), "vectors-text")
    assert after["folder"] != before["folder"] and after["generation"] > before["generation"]
    space = vector_index.space_matrix(catalog, "text")
    assert len(space.changed) == 0 and mapped_vectors.check(catalog, "text").agrees


def test_hybrid_search_ranks_by_the_mapped_vectors_as_by_exact_ones(catalog):
    by_mapped = engine.search(catalog, "superconductors magnetic order", per_page=20)
    shutil.rmtree(index_folder.indexes_folder(catalog))
    mapped_vectors.forget()
    by_exact = engine.search(catalog, "superconductors magnetic order", per_page=20)
    assert [h.item_id for h in by_mapped.hits] == [h.item_id for h in by_exact.hits]


def test_damaged_files_are_not_used(catalog):
    state = index_folder.read_state(index_folder.indexes_folder(catalog), "vectors-text")
    (index_folder.indexes_folder(catalog) / state["folder"] / "lists.npy").write_bytes(b"broken")
    mapped_vectors.forget()
    assert isinstance(vector_index.space_matrix(catalog, "text"), vector_index.SpaceMatrix)


def test_files_of_the_layout_before_the_inverted_lists_are_not_read_and_the_next_writer_rebuilds_them(catalog):
    folder = index_folder.indexes_folder(catalog)
    state = index_folder.read_state(folder, "vectors-text")
    index_folder.write_state(folder, "vectors-text", {**state, "format": 1})
    mapped_vectors.forget()
    assert isinstance(vector_index.space_matrix(catalog, "text"), vector_index.SpaceMatrix)
    assert mapped_vectors.catch_up(catalog, "text") == 584
    mapped_vectors.forget()
    assert isinstance(vector_index.space_matrix(catalog, "text"), mapped_vectors.MappedSpace)


def test_every_vector_is_filed_in_exactly_one_inverted_list_and_found_by_its_id(catalog):
    files = vector_index.space_matrix(catalog, "text").files
    truth = exact(catalog)
    assert files.lists[0] == 0 and files.lists[-1] == len(files.rowids) == 584
    assert np.all(np.diff(files.lists) >= 0) and len(files.centroids) == 24  # about sqrt(584)
    assert sorted(files.rowids.tolist()) == sorted(truth.rowids.tolist())
    for rowid in truth.rowids[::37].tolist():
        assert np.array_equal(files.matrix[files.position(rowid)], truth.vector_of(rowid))


WRITER = textwrap.dedent(
    """
    import itertools, sys
    import numpy as np
    from datasette_scisearch.tagging import vectors
    from datasette_scisearch.catalog import open_catalog
    from datasette_scisearch.search import mapped_vectors
    from datasette_scisearch.search.index import refresh_search_items

    mapped_vectors.MERGE_AT, mapped_vectors.MERGE_SHARE = 50, 0.0  # fold often: the kill may land while writing files
    db = open_catalog(sys.argv[1])
    rowids = [row[0] for row in db.execute("select id from search_items order by id")]
    rng = np.random.default_rng(0)
    print("ready", flush=True)
    for n in itertools.count():
        batch = [rowids[(n * 7 + i) % len(rowids)] for i in range(7)]
        with db.conn:
            vectors.write_vectors(db, "text", [(r, rng.standard_normal(384)) for r in batch])
        refresh_search_items(db, ["proposal"], [])
    """
)


def test_files_and_catalog_agree_after_a_vector_writer_is_killed_in_the_middle(catalog, tmp_path):
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "awards.db")], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert writer.stdout.readline().strip() == "ready"
    time.sleep(2.0)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    report = mapped_vectors.check(catalog, "text")
    assert report.agrees, report
    mapped_vectors.catch_up(catalog, "text", force=True)
    report = mapped_vectors.check(catalog, "text")
    assert report.agrees and report.pending == 0


def test_scisearch_index_check_compares_the_vectors_too(catalog, tmp_path):
    import json

    from click.testing import CliRunner

    from datasette_scisearch.cli import cli

    result = CliRunner().invoke(cli, ["index", str(tmp_path / "awards.db"), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["index", str(tmp_path / "awards.db"), "--check", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["vectors"][0]["space"] == "text" and report["vectors"][0]["agrees"]


def test_a_reader_reads_only_the_vectors_changed_since_it_last_looked(catalog):
    first, second = (rowid_of(catalog, award) for award in ("1700014", "1700030"))
    with catalog.conn:
        vectors.write_vectors(catalog, "text", [(first, hashed_words_vector("tungsten carbide coatings"))])
    assert list(vector_index.space_matrix(catalog, "text").changed) == [first]
    with catalog.conn:
        vectors.write_vectors(catalog, "text", [(second, hashed_words_vector("niobium superconducting cavities"))])
        vectors.write_vectors(catalog, "text", [(first, hashed_words_vector("tungsten ditelluride flakes"))])
    space = vector_index.space_matrix(catalog, "text")
    assert list(space.changed) == sorted([first, second])
    assert np.array_equal(
        space.vector_of(first), vectors.normalised(hashed_words_vector("tungsten ditelluride flakes"))
    )
    assert space.nearest(hashed_words_vector("niobium superconducting cavities"), 1)[0][0] == second
    assert mapped_vectors.check(catalog, "text").agrees
