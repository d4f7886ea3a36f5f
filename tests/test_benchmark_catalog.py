"""The benchmarks' synthetic catalog (benchmarks/synthetic_catalog.py) is written in bulk, around the library:
these tests check that it is still the catalog the library would have written, so that what the benchmarks
measure is the engine on a real catalog's shape."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.search.index import refresh_search_items
from datasette_scisearch.tagging import vectors

from .conftest import shared_data

REPO = Path(__file__).resolve().parent.parent


def builder():
    spec = importlib.util.spec_from_file_location("synthetic_catalog", REPO / "benchmarks" / "synthetic_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    shared_data("scifact", "corpus.jsonl")
    shared_data("proposals", "nsf_awards_2017.jsonl")
    path = tmp_path_factory.mktemp("synthetic") / "catalog.db"
    builder().build(path, 2000, progress=False, topic_model=False)
    return path


@pytest.fixture
def db(synthetic, tmp_path):
    path = tmp_path / "catalog.db"
    shutil.copy(synthetic, path)  # each test its own copy: what one writes, no other sees
    db = open_catalog(path)
    yield db
    db.close()


def test_refreshing_the_search_documents_of_a_synthetic_catalog_changes_none(db):
    assert db.execute("select count(*) from search_items").fetchone()[0] == 2000
    changed = refresh_search_items(db)
    assert changed == 0


def test_the_full_text_index_of_a_synthetic_catalog_passes_fts5s_integrity_check(db):
    db.execute("insert into search_items_fts(search_items_fts, rank) values('integrity-check', 1)")
    files_about_gold = db.execute("select count(*) from files where name like 'Au\\_np\\_%' escape '\\'").fetchone()[0]
    found = db.execute(
        "select count(*) from search_items_fts join search_items si on si.id = search_items_fts.rowid "
        "where search_items_fts match 'title:Au' and si.item_type = 'file'"
    ).fetchone()[0]
    assert found == files_about_gold > 0


def test_a_synthetic_catalog_keeps_its_documents_in_full_text_search_after_an_edit(db):
    with db.conn:
        db.execute("update search_items set body = body || ' zirconolite' where id = 7")
    found = db.execute("select rowid from search_items_fts where search_items_fts match 'zirconolite'").fetchall()
    assert found == [(7,)]


def test_every_synthetic_document_has_one_unit_length_text_vector(db):
    table = vectors.table_for("text")
    rows = db.execute(f"select item_rowid, embedding from [{table}] order by item_rowid").fetchall()
    documents = [row[0] for row in db.execute("select id from search_items order by id")]
    assert [rowid for rowid, _ in rows] == documents
    norms = np.linalg.norm(np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows]), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
