"""The on-disk tantivy index beside the catalog: kept in step by every writer, read by many, checked, repaired.

The catalog is the 584 real NSF awards of ../shared/data as proposals; the index
is built whatever the catalog's size, and searches rank with it
(``tantivy_from``) however few documents there are.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.cli import cli
from datasette_scisearch.config import Settings
from datasette_scisearch.ingest.records import load_records
from datasette_scisearch.search import engine, index_folder, text_index
from datasette_scisearch.search.index import refresh_search_items
from datasette_scisearch.tagging import experts

from .conftest import shared_data

pytest.importorskip("tantivy")

BY_TANTIVY = {"tantivy_from": 1}
BY_FTS5 = {"tantivy_from": 10**12}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def awards_catalog(tmp_path_factory) -> Path:
    """A catalog of the real NSF awards with its text index built; each test works on its own copy."""
    path = tmp_path_factory.mktemp("awards") / "awards.db"
    db = open_catalog(path)
    awards = shared_data("proposals", "nsf_awards_2017.jsonl")
    load_records(db, "proposals", awards, Settings(), {}, progress=False)
    refresh_search_items(db)
    db.close()
    return path


@pytest.fixture
def catalog(awards_catalog, tmp_path):
    path = tmp_path / "awards.db"
    shutil.copy(awards_catalog, path)
    db = open_catalog(path)
    text_index.build(db)
    yield db
    db.close()
    text_index.forget()


def ids(results) -> list[str]:
    return [hit.item_id for hit in results.hits]


def found(db, query: str, weights=None) -> set[str]:
    """Every item the query finds, page by page: a fast writer makes more than one page of matches."""
    every: set[str] = set()
    for page in range(1, 1000):
        results = engine.search(db, query, page=page, per_page=100, weights=weights or BY_TANTIVY)
        every |= set(ids(results))
        if page * 100 >= results.total:
            return every
    return every


def add_proposal(db, award_id: str, title: str) -> None:
    with db.conn:
        db["proposals"].insert({"id": award_id, "title": title, "abstract": ""})
    refresh_search_items(db, ["proposal"], [award_id])


# -- Writers keep it in step -----------------------------------------------------------------------------------


def test_a_built_index_records_the_catalog_generation_it_reflects(catalog):
    state = index_folder.read_state(index_folder.indexes_folder(catalog), "text")
    assert state["generation"] == text_index.generation(catalog) > 0
    assert state["documents"] == 584


def test_the_index_lives_in_a_folder_beside_the_catalog(catalog, tmp_path):
    assert index_folder.indexes_folder(catalog) == tmp_path / "awards.db.indexes"
    assert (tmp_path / "awards.db.indexes" / "text.json").exists()


def test_a_new_item_is_found_by_the_next_search_without_a_rebuild(catalog):
    folder = index_folder.read_state(index_folder.indexes_folder(catalog), "text")["folder"]
    add_proposal(catalog, "9900001", "Germanium tin nanowires for ultrafast photodetectors")
    assert found(catalog, "photodetectors germanium") == {"9900001"}
    state = index_folder.read_state(index_folder.indexes_folder(catalog), "text")
    assert state["folder"] == folder and state["generation"] == text_index.generation(catalog)


def test_an_experts_tag_shows_in_the_next_search(catalog):
    assert found(catalog, "zeolite") == set()
    experts.add(catalog, "proposal", "1700014", "zeolite", actor="expert-1")
    assert found(catalog, "zeolite") == {"1700014"}


def test_an_edited_item_is_found_by_its_new_words_and_not_its_old_ones(catalog):
    before = catalog.execute("select title from proposals where id = '1700014'").fetchone()[0]
    assert "1700014" in found(catalog, '"free-standing dielectric"')
    with catalog.conn:
        catalog.execute("update proposals set title = 'Perovskite solar absorbers' where id = '1700014'")
    refresh_search_items(catalog, ["proposal"], ["1700014"])
    assert "Dielectric" in before
    assert "1700014" in found(catalog, "perovskite solar absorbers")
    assert "1700014" not in found(catalog, '"free-standing dielectric"')


def test_a_deleted_item_leaves_the_index(catalog):
    with catalog.conn:
        catalog.execute("delete from proposals where id = '1700014'")
    refresh_search_items(catalog, ["proposal"])
    report = text_index.check(catalog)
    assert report.agrees and report.documents_in_index == 583 and report.pending == 0


def test_a_writer_reindexes_only_the_changed_documents(catalog):
    with catalog.conn:
        catalog.execute("update proposals set title = title || ' (renewed)' where id in ('1700014', '1700030')")
    with index_folder.writer_lock(index_folder.indexes_folder(catalog), "text", wait=True):
        refresh_search_items(catalog, ["proposal"])  # another writer holds the index: this one leaves it
    assert text_index.catch_up(catalog) == 2


# -- Readers ------------------------------------------------------------------------------------------------


def test_a_reader_finds_what_changed_after_the_index_was_written(catalog):
    with index_folder.writer_lock(index_folder.indexes_folder(catalog), "text", wait=True):
        add_proposal(catalog, "9900002", "Hafnium oxide ferroelectric memories")
        with catalog.conn:
            catalog.execute("delete from proposals where id = '1700014'")
        refresh_search_items(catalog, ["proposal"])
        assert text_index.text_index(catalog, 1).behind == 2
        assert found(catalog, "hafnium ferroelectric") == {"9900002"}
        assert "1700014" not in found(catalog, '"free-standing dielectric"')


def add_microscopy_proposals(db) -> None:
    add_proposal(db, "9900011", "Oxide interfaces imaged at 300 kV")
    add_proposal(db, "9900012", "Oxide catalysts imaged at 300kV in situ")
    add_proposal(db, "9900013", "Oxide membranes imaged at 80 kV")


def test_a_proposal_that_mentions_a_voltage_is_found_by_it_through_the_index_as_through_fts5(catalog):
    add_microscopy_proposals(catalog)
    by_tantivy = found(catalog, "oxide imaged 300 kV")
    assert by_tantivy == {"9900011", "9900012"}
    assert by_tantivy == found(catalog, "oxide imaged 300 kV", BY_FTS5)


def test_a_proposal_that_mentions_a_voltage_is_found_by_it_before_the_index_takes_it(catalog):
    with index_folder.writer_lock(index_folder.indexes_folder(catalog), "text", wait=True):
        add_microscopy_proposals(catalog)
        with catalog.conn:  # and one the index has, edited to another voltage
            catalog.execute("update proposals set title = 'Oxide films imaged at 300 kV' where id = '1700014'")
        refresh_search_items(catalog, ["proposal"], ["1700014"])
        assert text_index.text_index(catalog, 1).behind == 4
        assert found(catalog, "oxide imaged 300 kV") == {"9900011", "9900012", "1700014"}
        assert found(catalog, "oxide imaged 80 kV") == {"9900013"}


def test_a_missing_index_is_not_used_and_search_still_answers(catalog):
    expected = set(ids(engine.search(catalog, "superconductors", per_page=100, weights=BY_FTS5)))
    shutil.rmtree(index_folder.indexes_folder(catalog))
    text_index.forget()
    assert text_index.text_index(catalog, 1) is None
    assert found(catalog, "superconductors") == expected


def test_a_corrupt_index_is_rebuilt_by_the_next_writer(catalog):
    folder = index_folder.indexes_folder(catalog)
    state = index_folder.read_state(folder, "text")
    (folder / state["folder"] / "meta.json").write_text("not json")
    text_index.forget()
    assert text_index.text_index(catalog, 1) is None  # not used: FTS5 answers meanwhile
    add_proposal(catalog, "9900003", "Xylophone resonators")
    assert text_index.check(catalog).agrees
    assert found(catalog, "xylophone") == {"9900003"}


def test_an_index_of_another_catalog_at_the_same_path_is_not_used_and_is_replaced_by_its_first_writer(
    catalog, tmp_path
):
    catalog.close()
    (tmp_path / "awards.db").unlink()
    db = open_catalog(tmp_path / "awards.db")
    db["proposals"].insert({"id": "1", "title": "Only item"})
    assert text_index.text_index(db, 1) is None
    refresh_search_items(db)
    report = text_index.check(db)
    assert report.agrees and report.documents_in_index == 1
    db.close()


# -- Checking and the command --------------------------------------------------------------------------------


def test_check_finds_a_document_missing_from_the_index(catalog):
    import tantivy

    state = index_folder.read_state(index_folder.indexes_folder(catalog), "text")
    index = tantivy.Index.open(str(index_folder.indexes_folder(catalog) / state["folder"]))
    rowid = catalog.execute("select id from search_items where item_id = '1700014'").fetchone()[0]
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    writer.delete_documents_by_term("rowid", rowid)
    writer.commit()
    writer.wait_merging_threads()
    report = text_index.check(catalog)
    assert report.missing == [rowid] and not report.agrees


def test_scisearch_index_check_says_the_index_agrees(catalog, tmp_path):
    result = CliRunner().invoke(cli, ["index", str(tmp_path / "awards.db"), "--check", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["all_agree"] is True


def test_scisearch_index_builds_a_missing_index(catalog, tmp_path):
    shutil.rmtree(index_folder.indexes_folder(catalog))
    result = CliRunner().invoke(cli, ["index", str(tmp_path / "awards.db"), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] == 584
    assert text_index.check(catalog).agrees


def test_scisearch_index_check_fails_where_there_is_no_index(catalog, tmp_path):
    shutil.rmtree(index_folder.indexes_folder(catalog))
    result = CliRunner().invoke(cli, ["index", str(tmp_path / "awards.db"), "--check"])
    assert result.exit_code == 1
    assert "no usable text index" in result.output


# -- Processes: killed writers, readers beside a writer ----------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import itertools, sys
    from datasette_scisearch.tagging import experts
    from datasette_scisearch.catalog import open_catalog
    from datasette_scisearch.search.index import refresh_search_items

    db = open_catalog(sys.argv[1])
    action = sys.argv[2]
    awards = [row[0] for row in db.execute("select id from proposals order by id")]
    print("ready", flush=True)
    for n in itertools.count():
        if action == "load":
            with db.conn:
                db["proposals"].insert_all(
                    [
                        {"id": f"99{n:05d}{i}", "title": f"Zirconium marker {n} {i}", "abstract": "loaded"}
                        for i in range(5)
                    ]
                )
            refresh_search_items(db, ["proposal"])
        elif action == "tag":
            experts.add(db, "proposal", awards[n % len(awards)], f"marker{n}", actor="writer")
        elif action == "edit":
            with db.conn:
                edited = awards[n % len(awards)]
                db.execute("update proposals set title = ? where id = ?", [f"Zirconium edit {n}", edited])
            refresh_search_items(db, ["proposal"], [awards[n % len(awards)]])
        elif action == "delete":
            with db.conn:
                db.execute("delete from proposals where id = ?", [awards[n]])
            refresh_search_items(db, ["proposal"])
        if len(sys.argv) > 3 and n + 1 >= int(sys.argv[3]):
            break
    """
)


def _start_writer(path: Path, action: str, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), action, *extra], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert process.stdout.readline().strip() == "ready"
    return process


@pytest.mark.parametrize("action", ["load", "tag", "edit", "delete"])
def test_index_and_catalog_agree_after_a_writer_is_killed_in_the_middle(catalog, tmp_path, action):
    writer = _start_writer(tmp_path / "awards.db", action)
    time.sleep(1.5)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    catalog.close()
    db = open_catalog(tmp_path / "awards.db")
    assert text_index.check(db).agrees  # what the index has not taken yet, readers take from the log
    assert found(db, "zirconium marker") == found(db, "zirconium marker", BY_FTS5)
    text_index.catch_up(db)
    report = text_index.check(db)
    assert report.agrees and report.pending == 0
    db.close()


READER = textwrap.dedent(
    """
    import sys, time
    from datasette_scisearch.catalog import open_catalog
    from datasette_scisearch.search import engine

    db = open_catalog(sys.argv[1])
    expected, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
    seen, searches = 0, 0
    # Until the writer's last change is found (and a few searches made), with a deadline for a writer that stops.
    while (seen < expected or searches < 6) and time.monotonic() < deadline:
        results = engine.search(db, "zirconium marker", per_page=100, weights={"tantivy_from": 1})
        assert results.total >= seen, (results.total, seen)  # the writer only adds: nothing found is lost again
        seen, searches = results.total, searches + 1
    print(searches, seen)
    """
)


def test_two_processes_search_while_a_third_writes(catalog, tmp_path):
    path = str(tmp_path / "awards.db")
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, path, "60", "120"], stdout=subprocess.PIPE, text=True, cwd=REPO)
        for _ in range(2)
    ]
    writer = _start_writer(tmp_path / "awards.db", "load", "12")
    assert writer.wait(timeout=60) == 0
    outputs = [reader.communicate(timeout=180)[0] for reader in readers]
    assert [reader.returncode for reader in readers] == [0, 0]
    for output in outputs:
        searches, last_seen = map(int, output.split())
        assert searches > 5 and last_seen == 60
    assert text_index.check(catalog).agrees


def test_the_index_folder_setting_puts_the_indexes_where_it_says(catalog, tmp_path):
    config = tmp_path / "metadata.yml"
    elsewhere = tmp_path / "indexes-elsewhere"
    config.write_text(f"plugins:\n  datasette-scisearch:\n    index_folder: '{elsewhere}/{{catalog}}.idx'\n")
    try:
        result = CliRunner().invoke(cli, ["--config", str(config), "index", str(tmp_path / "awards.db"), "--quiet"])
        assert result.exit_code == 0, result.output
        assert (elsewhere / "awards.db.idx" / "text.json").exists()
        assert index_folder.indexes_folder(catalog) == elsewhere / "awards.db.idx"
    finally:
        index_folder.configure(None)


def test_an_index_folder_setting_without_the_catalogs_name_is_refused(tmp_path):
    config = tmp_path / "metadata.yml"
    config.write_text("plugins:\n  datasette-scisearch:\n    index_folder: /srv/indexes\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "index", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert "'index_folder' must contain {catalog}" in result.output


def test_a_writer_that_cannot_write_the_indexes_warns_and_its_change_is_still_found(catalog, capfd):
    lock = index_folder.indexes_folder(catalog) / "text.lock"
    lock.unlink()
    lock.mkdir()  # something this writer cannot open stands where the writers' lock file goes
    add_proposal(catalog, "9900004", "Xenotime crystals under strain")
    assert "could not update the search indexes" in capfd.readouterr().err
    assert text_index.text_index(catalog, 1).behind == 1
    assert found(catalog, "xenotime") == {"9900004"}
