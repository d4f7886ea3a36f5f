"""Files gone from their folders: the row, preview and tags stay (the data may be archived), marked missing since
when it was seen gone — by a running watcher, by a watcher's scan at start, or by ``load files`` — the item page
says so, a download answers 410 saying so, ``is:missing`` / ``-is:missing`` filter search; a file that comes back
(at its path, or moved elsewhere under the roots with the same content) is the same item, present again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlite_utils
from datasette.app import Datasette

from datasette_scisearch import changes
from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.watching import Watcher, WatchOptions
from datasette_scisearch.search import engine

from .conftest import shared_data
from .test_watch import Watching, copy_in, query, until

CARBON = "08_carbon.dm3"


@pytest.fixture
def watcher(tmp_path):
    """A watcher subprocess (no tagging, 0.3 s settle) over an empty folder, stopped after the test."""
    running = Watching(tmp_path)
    yield running
    running.stop()


def row_of(catalog: Path, name: str) -> tuple | None:
    """(id, path, missing_since) of the file named ``name``, as a bystander reads it."""
    rows = query(catalog, "select id, path, missing_since from files where name = ? and dataset = 0", [name])
    return rows[0] if rows else None


# -- A running watcher ---------------------------------------------------------------------------------------


def test_a_file_deleted_from_a_watched_folder_keeps_its_row_marked_missing_since_then(watcher):
    copy_in(CARBON, watcher.folder)
    file_id, _, missing = until(lambda: row_of(watcher.catalog, CARBON), "the file", process=watcher.process)
    assert missing is None
    (watcher.folder / CARBON).unlink()
    marked = until(lambda: (row_of(watcher.catalog, CARBON) or (0, 0, None))[2], "the mark", process=watcher.process)
    assert marked.startswith("20") and marked.endswith("+00:00")  # when, in UTC
    assert row_of(watcher.catalog, CARBON)[0] == file_id  # the row stays
    assert query(watcher.catalog, "select count(*) from previews where file_id = ?", [file_id]) == [(1,)]
    until(lambda: watcher.said("gone from"), "the watcher's note")


def test_a_deleted_file_put_back_in_a_watched_folder_is_the_same_item_present_again(watcher):
    copy_in(CARBON, watcher.folder)
    file_id, _, _ = until(lambda: row_of(watcher.catalog, CARBON), "the file", process=watcher.process)
    (watcher.folder / CARBON).unlink()
    until(lambda: (row_of(watcher.catalog, CARBON) or (0, 0, None))[2], "the mark", process=watcher.process)
    copy_in(CARBON, watcher.folder)
    until(lambda: row_of(watcher.catalog, CARBON)[2] is None, "the mark to go", process=watcher.process)
    assert query(watcher.catalog, "select id from files where name = ?", [CARBON]) == [(file_id,)]


def test_a_file_moved_to_another_watched_place_keeps_its_id_at_its_new_path(watcher):
    copy_in(CARBON, watcher.folder)
    file_id, _, _ = until(lambda: row_of(watcher.catalog, CARBON), "the file", process=watcher.process)
    (watcher.folder / "archive").mkdir()
    (watcher.folder / CARBON).rename(watcher.folder / "archive" / CARBON)
    moved = str((watcher.folder / "archive" / CARBON).resolve())
    # The row takes the new path, then the file is read there: wait for both.
    until(lambda: row_of(watcher.catalog, CARBON) == (file_id, moved, None), "the row", process=watcher.process)
    assert query(watcher.catalog, "select count(*) from files where name = ?", [CARBON]) == [(1,)]


def test_a_folder_moved_out_of_a_watched_folder_marks_every_file_in_it_missing(watcher, tmp_path):
    (watcher.folder / "run1").mkdir()
    for name in (CARBON, "temp.mrc"):
        copy_in(name, watcher.folder / "run1")
    until(lambda: len(watcher.files()) == 2, "both files", process=watcher.process)
    (watcher.folder / "run1").rename(tmp_path / "elsewhere")

    def marked():
        return query(watcher.catalog, "select count(*) from files where missing_since is not null")[0][0] == 2

    until(marked, "both files marked missing", process=watcher.process)


# -- While no watcher ran, and plain loads -------------------------------------------------------------------


def test_a_watcher_started_after_a_file_was_deleted_marks_it_missing_at_its_scan(tmp_path):
    folder = tmp_path / "instrument"
    folder.mkdir()
    for name in (CARBON, "temp.mrc"):
        copy_in(name, folder)
    db = open_catalog(tmp_path / "catalog.db")
    options = WatchOptions(settle_s=0.0, tag=False)
    Watcher(db, [folder], load_settings(None), options).catch_up()
    (folder / CARBON).unlink()
    summary = Watcher(db, [folder], load_settings(None), options).catch_up()
    assert any("gone from" in note for note in summary.notes)
    missing = db.execute("select name from files where missing_since is not null").fetchall()
    assert missing == [(CARBON,)]


def test_load_files_marks_a_file_gone_from_the_folder_missing_and_unmarks_it_when_it_is_back(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    for name in (CARBON, "temp.mrc"):
        copy_in(name, folder)
    db = open_catalog(tmp_path / "catalog.db")
    settings = load_settings(None)
    changes.load_files(db, [folder], settings, progress=False)
    kept = folder.parent / "kept.dm3"
    (folder / CARBON).rename(kept)
    summary, _ = changes.load_files(db, [folder], settings, progress=False)
    assert any("marked missing" in note for note in summary.notes)
    assert db.execute("select missing_since is not null from files where name = ?", [CARBON]).fetchall() == [(1,)]
    kept.rename(folder / CARBON)  # back with the same bytes and time: 'unchanged' to the load, present again
    again, _ = changes.load_files(db, [folder], settings, progress=False)
    assert again.unchanged == again.total
    assert db.execute("select count(*) from files where missing_since is not null").fetchone() == (0,)


# -- Search, the item page, downloads ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog_with_a_deleted_file(tmp_path_factory) -> Path:
    """A catalog of two real files loaded from a folder, one of which was then deleted and found gone."""
    folder = tmp_path_factory.mktemp("missing") / "data"
    folder.mkdir()
    for name in (CARBON, "temp.mrc"):
        shutil.copyfile(shared_data("em", name), folder / name)
    path = folder.parent / "lab.db"
    db = open_catalog(path)
    changes.load_files(db, [folder], load_settings(None), progress=False)
    (folder / CARBON).unlink()
    changes.load_files(db, [folder], load_settings(None), progress=False)
    db.close()
    return path


def titles(catalog: Path, text: str) -> list[str]:
    db = open_catalog(catalog)
    try:
        return sorted(hit.title for hit in engine.search(db, text, mode="keyword").hits)
    finally:
        db.close()


def test_is_missing_finds_only_the_files_gone_from_their_folders(catalog_with_a_deleted_file):
    assert titles(catalog_with_a_deleted_file, "is:missing") == [CARBON]


def test_minus_is_missing_leaves_the_files_gone_from_their_folders_out(catalog_with_a_deleted_file):
    assert titles(catalog_with_a_deleted_file, "carbon") == [CARBON]  # still found by default: it may be archived
    assert titles(catalog_with_a_deleted_file, "carbon -is:missing") == []
    assert titles(catalog_with_a_deleted_file, "type:file -is:missing") == ["temp.mrc"]


def carbon_id(catalog: Path) -> int:
    return sqlite_utils.Database(catalog).execute("select id from files where name = ?", [CARBON]).fetchone()[0]


@pytest.mark.asyncio
async def test_the_item_page_of_a_file_gone_from_its_folder_says_so_and_offers_no_download(
    catalog_with_a_deleted_file,
):
    file_id = carbon_id(catalog_with_a_deleted_file)
    page = await Datasette([str(catalog_with_a_deleted_file)]).client.get(f"/-/scisearch/item/lab/file/{file_id}")
    assert page.status_code == 200
    assert "This file is no longer in its folder" in page.text
    assert "Gone from its folder since" in page.text
    assert f"/-/scisearch/download/lab/{file_id}" not in page.text


@pytest.mark.asyncio
async def test_downloading_a_file_gone_from_its_folder_answers_410_saying_when_it_went(catalog_with_a_deleted_file):
    file_id = carbon_id(catalog_with_a_deleted_file)
    response = await Datasette([str(catalog_with_a_deleted_file)]).client.get(
        f"/-/scisearch/download/lab/{file_id}", headers={"accept": "application/json"}
    )
    assert response.status_code == 410
    body = response.json()
    assert "was removed from" in body["error"] and "found gone" in body["error"]
    assert "archived" in body["fix"]


@pytest.mark.asyncio
async def test_a_result_card_says_its_file_is_gone_from_its_folder_and_the_json_says_since_when(
    catalog_with_a_deleted_file,
):
    client = Datasette([str(catalog_with_a_deleted_file)]).client
    page = await client.get("/-/scisearch?q=type:file")
    assert page.status_code == 200
    cards = page.text.split('<article class="scisearch-card"')[1:]
    assert len(cards) == 2
    by_name = {name: card for card in cards for name in (CARBON, "temp.mrc") if f">{name}</a>" in card}
    assert "Gone from its folder" in by_name[CARBON] and "Gone from its folder" not in by_name["temp.mrc"]
    hits = (await client.get("/-/scisearch.json?q=type:file")).json()["hits"]
    facts = {hit["title"]: hit["facts"] for hit in hits}
    assert facts[CARBON]["missing_since"].startswith("20") and facts["temp.mrc"]["missing_since"] is None


def test_scisearch_status_counts_the_files_gone_from_their_folders(tmp_path):
    from click.testing import CliRunner

    from datasette_scisearch.cli import cli

    folder = tmp_path / "disk"
    folder.mkdir()
    for name in (CARBON, "temp.mrc"):
        copy_in(name, folder)
    db = open_catalog(tmp_path / "catalog.db")
    changes.load_files(db, [folder], load_settings(None), progress=False)
    (folder / CARBON).unlink()
    changes.load_files(db, [folder], load_settings(None), progress=False)
    db.close()
    shown = CliRunner().invoke(cli, ["status", str(tmp_path / "catalog.db")])
    report = json.loads(CliRunner().invoke(cli, ["status", str(tmp_path / "catalog.db"), "--json"]).output)
    assert report["missing_files"] == 1
    assert "files gone from their folders: 1 (search is:missing to list them)" in shown.output
