"""Experts' changes to tags (datasette_scisearch.tagging.experts) on a catalog of the real EM files, tagged by the
metadata and filename taggers: history, search documents, bad input and two experts at once."""

from __future__ import annotations

import shutil
import threading

import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.search import engine
from datasette_scisearch.tagging import experts
from datasette_scisearch.tagging.pipeline import tag_catalog

from .conftest import REPO


@pytest.fixture
def db(tagged_em_catalog_file, tmp_path):
    path = tmp_path / "catalog.db"
    shutil.copy(tagged_em_catalog_file, path)
    catalog = open_catalog(path)
    yield catalog
    catalog.close()


def tag_of(db, text: str, source: str = "metadata") -> dict:
    """One machine tag with this text, on the file that has it with the fewest other tags of that text."""
    row = db.execute(
        "select id from tags where tag = ? and source = ? and status = 'machine' order by cast(item_id as integer)",
        [text, source],
    ).fetchone()
    return experts.get_tag(db, row[0])


def found_ids(db, query: str) -> list[str]:
    return [hit.item_id for hit in engine.search(db, query, per_page=100).hits]


def test_accepting_a_machine_tag_keeps_its_row_source_and_score_and_records_who_and_when(db):
    tag = tag_of(db, "HAADF")
    change = experts.accept(db, tag["id"], {"id": "alice"})
    stored = experts.get_tag(db, tag["id"])
    assert (stored["status"], stored["source"], stored["score"]) == ("accepted", "metadata", tag["score"])
    [entry] = experts.history(db, tag_id=tag["id"])
    assert entry == change.history
    assert (entry["actor"], entry["action"], entry["old_value"], entry["new_value"]) == (
        "alice",
        "accept",
        "machine",
        "accepted",
    )
    assert (entry["item_type"], entry["item_id"], entry["tag"]) == ("file", tag["item_id"], "HAADF")
    assert entry["changed_at"].startswith("20")


def test_a_rejected_tag_no_longer_matches_tag_filters_or_its_words(db):
    tag = tag_of(db, "Z-contrast")
    assert tag["item_id"] in found_ids(db, "tag:Z-contrast")
    assert tag["item_id"] in found_ids(db, "Z-contrast")
    for other in db.execute(
        "select id from tags where item_type = 'file' and item_id = ? and tag = 'Z-contrast'", [tag["item_id"]]
    ).fetchall():
        experts.reject(db, other[0], "alice")
    assert tag["item_id"] not in found_ids(db, "tag:Z-contrast")
    assert tag["item_id"] not in found_ids(db, "Z-contrast")


def test_an_added_tag_makes_the_item_findable_by_its_words(db):
    assert found_ids(db, "nanowires") == []
    change = experts.add(db, "file", "3", "nanowires", "alice")
    assert (change.tag["status"], change.tag["source"]) == ("added", "expert")
    assert found_ids(db, "nanowires") == ["3"]
    assert found_ids(db, "tag:nanowires") == ["3"]


def test_an_added_tag_joins_the_category_taggers_give_the_same_words(db):
    assert experts.add(db, "file", "3", "HAADF", "alice").tag["category"] == "instrument"
    assert experts.add(db, "file", "3", "looks odd", "alice").tag["category"] == "other"


def test_an_accepted_tag_ranks_its_item_above_items_with_the_same_machine_tag(db):
    # Among files whose only "Z-contrast" is one machine tag, accepting it on the lowest-ranked one lifts it
    # above all the others: search counts an expert's tag twice.
    single = {
        row[0]
        for row in db.execute(
            "select item_id from tags where tag = 'Z-contrast' group by item_id having count(*) = 1"
        ).fetchall()
    }
    ranked = [item_id for item_id in found_ids(db, "Z-contrast") if item_id in single]
    last = ranked[-1]
    experts.accept(db, tag_of_item(db, last, "Z-contrast")["id"], "alice")
    reranked = [item_id for item_id in found_ids(db, "Z-contrast") if item_id in single]
    assert reranked[0] == last


def tag_of_item(db, item_id: str, text: str) -> dict:
    row = db.execute("select id from tags where item_type = 'file' and item_id = ? and tag = ?", [item_id, text])
    return experts.get_tag(db, row.fetchone()[0])


def test_an_edit_keeps_the_row_and_records_old_and_new_text(db):
    tag = tag_of(db, "Z-contrast")
    experts.edit(db, tag["id"], "  atomic-number   contrast ", "bob")
    stored = experts.get_tag(db, tag["id"])
    assert (stored["tag"], stored["status"], stored["source"]) == ("atomic-number contrast", "accepted", "metadata")
    [entry] = experts.history(db, tag_id=tag["id"])
    assert (entry["action"], entry["old_value"], entry["new_value"]) == ("edit", "Z-contrast", "atomic-number contrast")
    assert tag["item_id"] in found_ids(db, '"atomic-number contrast"')


def test_a_ten_kilobyte_tag_is_refused_with_the_limit_and_nothing_is_written(db):
    with pytest.raises(experts.InvalidChange, match="at most 200 characters; this one has 10,240"):
        experts.add(db, "file", "3", "x" * 10_240, "alice")
    assert db.execute("select count(*) from tags where source = 'expert'").fetchone()[0] == 0
    assert experts.history(db) == []


def test_html_and_script_in_a_tag_are_stored_as_the_text_typed(db):
    hostile = '<script>alert("x")</script><b>bold</b>'
    change = experts.add(db, "file", "3", hostile, "alice")
    assert experts.get_tag(db, change.tag["id"])["tag"] == hostile


def test_control_characters_and_runs_of_whitespace_become_single_spaces():
    assert experts.clean_tag_text("gold\x00\tnano\n\nparticles ") == "gold nano particles"


def test_an_empty_tag_is_refused_with_a_message(db):
    with pytest.raises(experts.InvalidChange, match="cannot be empty"):
        experts.add(db, "file", "3", " \n ", "alice")


def test_adding_to_an_unknown_item_or_changing_an_unknown_tag_is_not_found(db):
    with pytest.raises(experts.NotFound, match="no file '99999'"):
        experts.add(db, "file", "99999", "gold", "alice")
    with pytest.raises(experts.NotFound, match="not a kind of item"):
        experts.add(db, "sample", "1", "gold", "alice")
    with pytest.raises(experts.NotFound, match="no tag"):
        experts.accept(db, 10**9, "alice")
    with pytest.raises(experts.NotFound, match="no tag"):
        experts.accept(db, "1; drop table tags", "alice")


def test_an_unknown_action_is_refused(db):
    tag = tag_of(db, "HAADF")
    with pytest.raises(experts.InvalidChange, match="unknown action 'delete'"):
        experts.change_tag(db, tag["id"], "delete", "alice")


def test_adding_the_same_tag_twice_is_a_conflict_that_writes_nothing(db):
    experts.add(db, "file", "3", "nanowires", "alice")
    with pytest.raises(experts.Conflict, match="already has the tag 'Nanowires'"):
        experts.add(db, "file", "3", "Nanowires", "bob")
    assert len(experts.history(db, "file", "3")) == 1


def test_bulk_reject_changes_every_source_of_the_text_on_each_item_and_skips_the_rest(db):
    with_haadf = [r[0] for r in db.execute("select distinct item_id from tags where tag = 'HAADF' order by 1")]
    without = db.execute(
        "select id from files where cast(id as text) not in (select item_id from tags where tag = 'HAADF') limit 1"
    ).fetchone()[0]
    items = [("file", item_id) for item_id in with_haadf[:3]] + [("file", str(without)), ("file", "99999")]
    rows = db.execute(
        f"select count(*) from tags where tag = 'HAADF' and item_id in ({','.join('?' * 3)})", with_haadf[:3]
    ).fetchone()[0]
    result = experts.bulk_change(db, "reject", "haadf", items, "carol")
    assert len(result.changes) == rows
    assert {change.tag["status"] for change in result.changes} == {"rejected"}
    assert [(s["item_id"], s["reason"]) for s in result.skipped] == [
        ("99999", "no such item"),
        (str(without), "no tag 'haadf'"),
    ]
    assert len(experts.history(db)) == rows
    assert not set(with_haadf[:3]) & set(found_ids(db, "tag:HAADF"))


def test_bulk_add_tags_each_item_once(db):
    result = experts.bulk_change(db, "add", "lamella", [("file", "1"), ("file", "2"), ("file", "1")], "carol")
    assert sorted(change.tag["item_id"] for change in result.changes) == ["1", "2"]
    assert sorted(found_ids(db, "lamella")) == ["1", "2"]


def test_a_tag_added_to_a_file_id_written_with_a_leading_zero_lands_on_that_file(db):
    change = experts.add(db, "file", "01", "lamella", "carol")
    assert change.tag["item_id"] == "1"
    assert found_ids(db, "lamella") == ["1"]


def test_undo_restores_what_the_change_replaced_and_is_history_too(db):
    tag = tag_of(db, "HAADF")
    change = experts.reject(db, tag["id"], "alice")
    experts.undo(db, change.history["id"], "alice")
    assert experts.get_tag(db, tag["id"])["status"] == "machine"
    assert [e["action"] for e in experts.history(db, tag_id=tag["id"])] == ["undo-reject", "reject"]


def test_undoing_an_edit_of_a_machine_tag_leaves_it_a_machine_tag_no_expert_vouched_for(db):
    tag = tag_of(db, "Z-contrast")
    change = experts.edit(db, tag["id"], "Z contrast", "alice")
    experts.undo(db, change.history["id"], "alice")
    stored = experts.get_tag(db, tag["id"])
    assert (stored["tag"], stored["status"]) == ("Z-contrast", "machine")


def test_undoing_an_edit_of_a_rejected_tag_leaves_it_rejected(db):
    tag = tag_of(db, "Z-contrast")
    experts.reject(db, tag["id"], "alice")
    change = experts.edit(db, tag["id"], "Z contrast", "bob")
    experts.undo(db, change.history["id"], "bob")
    assert experts.get_tag(db, tag["id"])["status"] == "rejected"


def test_undoing_a_history_entry_that_is_not_a_number_says_there_is_no_such_change(db):
    with pytest.raises(experts.NotFound, match="there is no change 'abc' in this catalog's history"):
        experts.undo(db, "abc", "alice")


def test_undo_refuses_when_the_tag_changed_since(db):
    tag = tag_of(db, "HAADF")
    first = experts.reject(db, tag["id"], "alice")
    experts.accept(db, tag["id"], "bob")
    with pytest.raises(experts.Conflict, match="changed since"):
        experts.undo(db, first.history["id"], "alice")
    assert experts.get_tag(db, tag["id"])["status"] == "accepted"


def test_two_experts_editing_one_tag_at_once_both_land_in_history_and_the_later_wins(db):
    tag = tag_of(db, "Z-contrast")
    path = db.conn.execute("pragma database_list").fetchone()[2]
    start = threading.Barrier(2)
    errors = []

    def expert(name: str, text: str):
        connection = open_catalog(path)
        try:
            start.wait()
            experts.edit(connection, tag["id"], text, name)
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=expert, args=args) for args in [("alice", "mass-thickness"), ("bob", "Z")]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    later, earlier = experts.history(db, tag_id=tag["id"])
    assert earlier["old_value"] == "Z-contrast"
    assert later["old_value"] == earlier["new_value"]  # the second saw the first's change: nothing lost
    assert experts.get_tag(db, tag["id"])["tag"] == later["new_value"]
    assert {earlier["actor"], later["actor"]} == {"alice", "bob"}


def test_tagging_again_brings_back_neither_a_rejected_tag_nor_a_second_copy_of_an_accepted_one(db):
    rejected = tag_of(db, "Z-contrast")
    accepted = tag_of(db, "HAADF")
    experts.reject(db, rejected["id"], "alice")
    experts.accept(db, accepted["id"], "alice")
    tag_catalog(db, load_settings(REPO / "metadata.yml"), tagger_names=["metadata"], force=True, progress=False)
    for tag, status in ((rejected, "rejected"), (accepted, "accepted")):
        rows = db.execute(
            "select status from tags where item_type = 'file' and item_id = ? and tag = ? and source = 'metadata'",
            [tag["item_id"], tag["tag"]],
        ).fetchall()
        assert rows == [(status,)]


def test_tagging_again_does_not_bring_back_the_words_an_expert_edited_away(db):
    edited = tag_of(db, "Z-contrast")
    experts.edit(db, edited["id"], "mass-thickness contrast", "alice")
    tag_catalog(db, load_settings(REPO / "metadata.yml"), tagger_names=["metadata"], force=True, progress=False)
    texts = {
        row[0]
        for row in db.execute(
            "select tag from tags where item_type = 'file' and item_id = ? and source = 'metadata'",
            [edited["item_id"]],
        )
    }
    assert "mass-thickness contrast" in texts and "Z-contrast" not in texts
