"""The catalog itself: schema version, full-text search kept in sync, refusing what is not a catalog."""

from __future__ import annotations

import pytest
import sqlite_utils

from datasette_scisearch.catalog import CURRENT_SCHEMA_VERSION, MIGRATIONS, CatalogError, open_catalog, schema_version


def fts_names(db, query):
    return [
        r[0]
        for r in db.execute(
            "select f.name from files_fts join files f on f.id = files_fts.rowid where files_fts match ?", [query]
        )
    ]


def test_a_new_catalog_records_its_schema_version(tmp_path):
    db = open_catalog(tmp_path / "c.db")
    version = db.execute("select value from catalog_info where key = 'schema_version'").fetchone()[0]
    assert int(version) == schema_version(db) >= 1 and not MIGRATIONS.pending(db)
    assert open_catalog(tmp_path / "c.db").execute("select count(*) from _sqlite_migrations").fetchone()[0] == int(
        version
    )


def test_every_connection_can_use_sqlite_vec(catalog):
    assert catalog.execute("select vec_length(vec_f32('[1, 2, 3]'))").fetchone()[0] == 3


@pytest.mark.asyncio
async def test_the_librarys_and_datasettes_connections_read_the_catalog_through_a_memory_map(catalog, tmp_path):
    from datasette.app import Datasette

    assert catalog.execute("pragma mmap_size").fetchone()[0] >= 2**31
    served = Datasette([str(tmp_path / "catalog.db")]).get_database("catalog")
    assert (await served.execute("pragma mmap_size")).first()[0] >= 2**31


def test_full_text_search_follows_inserts_text_edits_and_deletes(catalog):
    with catalog.conn:
        file_id = catalog["files"].insert({"name": "Au_np_0001.dm4", "search_text": "gold nanoparticles"}).last_pk
    assert fts_names(catalog, "gold") == ["Au_np_0001.dm4"]
    with catalog.conn:
        catalog["files"].update(file_id, {"search_text": "ceria nanocubes"})
    assert fts_names(catalog, "gold") == [] and fts_names(catalog, "ceria") == ["Au_np_0001.dm4"]
    with catalog.conn:
        catalog["files"].delete(file_id)
    assert fts_names(catalog, "ceria") == []


def test_linking_a_file_does_not_rewrite_its_full_text_entry(catalog):
    with catalog.conn:
        file_id = catalog["files"].insert({"name": "STO_0003.emd", "search_text": "SrTiO3 HAADF"}).last_pk
        catalog.execute("update files set session_id = 'abc', proposal_id = 'P-1' where id = ?", [file_id])
    trigger = catalog.execute("select sql from sqlite_master where name = 'files_au'").fetchone()[0]
    assert 'UPDATE OF "name", "search_text"' in trigger
    assert fts_names(catalog, "HAADF") == ["STO_0003.emd"]


def test_a_missing_catalog_is_an_error_when_it_must_exist(tmp_path):
    with pytest.raises(CatalogError, match="no catalog at"):
        open_catalog(tmp_path / "nope.db", create=False)


def test_a_folder_is_not_a_catalog(tmp_path):
    with pytest.raises(CatalogError, match="is a folder"):
        open_catalog(tmp_path)


def test_an_sqlite_database_that_is_not_a_catalog_is_left_as_it_is(tmp_path):
    path = tmp_path / "orders.db"
    sqlite_utils.Database(path)["orders"].insert({"id": 1, "item": "pens"})
    with pytest.raises(CatalogError, match="not a scisearch catalog .*orders"):
        open_catalog(path)
    assert sqlite_utils.Database(path).table_names() == ["orders"]


def test_a_catalog_from_a_newer_version_is_refused_not_opened(tmp_path):
    db = open_catalog(tmp_path / "c.db")
    with db.conn:  # as a later datasette-scisearch would leave it
        db["_sqlite_migrations"].insert({"migration_set": "datasette-scisearch", "name": "m999_future"})
    db.close()
    with pytest.raises(CatalogError, match=f"newer catalog schema .*knows \\({CURRENT_SCHEMA_VERSION}\\)"):
        open_catalog(tmp_path / "c.db")


def test_a_deleted_tag_id_is_never_given_to_a_new_tag_so_its_history_stays_its_own(catalog):
    with catalog.conn:
        first = catalog["tags"].insert({"item_type": "file", "item_id": "1", "tag": "lattice"}).last_pk
        catalog["tag_history"].insert({"tag_id": first, "action": "accept", "actor": "alice"})
        catalog["tags"].delete(first)
        second = catalog["tags"].insert({"item_type": "file", "item_id": "1", "tag": "lattice"}).last_pk
    assert second > first
