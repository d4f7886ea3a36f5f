"""The tagging pipeline, with deterministic fake taggers registered for one test each, over real files."""

from __future__ import annotations

import json
import shutil
import types

import numpy as np
import pytest
from click.testing import CliRunner

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.cli import cli
from datasette_scisearch.config import load_settings
from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.plugins import get_plugin_manager
from datasette_scisearch.tagging import pipeline as tagging
from datasette_scisearch.tagging.pipeline import TaggingError, tag_catalog
from datasette_scisearch.tagging.tagger import ItemError, Result, Tag, Tagger, TaggerUnavailable

from .conftest import REPO


@pytest.fixture
def db(em_catalog_file, tmp_path):
    path = tmp_path / "em.db"
    shutil.copy(em_catalog_file, path)
    db = open_catalog(path)
    yield db
    db.close()


@pytest.fixture
def settings():
    return load_settings(REPO / "metadata.yml")


@pytest.fixture
def register():
    """Register taggers for one test; they are gone after it."""
    manager = get_plugin_manager()
    names = []

    def add(*taggers):
        plugin = types.SimpleNamespace(register_taggers=hookimpl(lambda register: [register(t) for t in taggers]))
        name = f"test-plugin-{len(names)}"
        manager.register(plugin, name=name)
        names.append(name)

    yield add
    for name in names:
        manager.unregister(name=name)


class KindTagger(Tagger):
    """Tags a file with its kind, and counts what it was asked to tag."""

    name = "kind_test"
    version = "1"
    batch_size = 4

    def __init__(self):
        self.seen: list[str] = []

    def tag_batch(self, items):
        for item in items:
            self.seen.append(item.item_id)
            yield item, Result(tags=[Tag(f"kind {item.row['kind']}", score=0.9, evidence="the kind column")])


class BrightnessTagger(Tagger):
    """Reads pixels: the first real-data tagger shape (needs_pixels, a vector space)."""

    name = "brightness_test"
    needs_pixels = True
    vector_spaces = {"brightness": 3}

    def tag_batch(self, items):
        for item in items:
            frame = item.pixels(256)
            stats = np.array([np.nanmean(frame), np.nanstd(frame), frame.ndim], dtype=np.float32) + 1e-3
            yield item, Result(tags=[Tag(f"{frame.ndim}-d data")], vectors={"brightness": stats})


def file_id(db, name: str) -> str:
    return str(db.execute("select id from files where name = ? order by dataset limit 1", [name]).fetchone()[0])


def tags_of(db, name: str, source: str) -> list[str]:
    return [
        row[0]
        for row in db.execute(
            "select tag from tags where item_type = 'file' and item_id = ? and source = ? order by tag",
            [file_id(db, name), source],
        )
    ]


def test_tags_are_stored_with_their_tagger_version_score_and_evidence(db, settings, register):
    register(KindTagger())
    tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    row = db.execute(
        "select tag, score, source, source_version, status, evidence from tags where item_id = ? and source = ?",
        [file_id(db, "08_carbon.dm3"), "kind_test"],
    ).fetchone()
    assert row == ("kind spectrum", 0.9, "kind_test", "1", "machine", "the kind column")


def test_every_tag_is_searchable_through_full_text_search(db, settings, register):
    register(KindTagger())
    tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    found = {
        row[0]
        for row in db.execute(
            "select s.item_id from search_items_fts f join search_items s on s.id = f.rowid "
            "where search_items_fts match 'tags:spectrum'"
        )
    }
    assert file_id(db, "08_carbon.dm3") in found


def test_a_second_run_tags_nothing_that_is_current(db, settings, register):
    tagger = KindTagger()
    register(tagger)
    tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    first = len(tagger.seen)
    summary = tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    assert first == db["files"].count
    assert len(tagger.seen) == first
    assert summary.taggers[0].current == first


def test_a_changed_item_is_tagged_again_and_only_it(db, settings, register):
    tagger = KindTagger()
    register(tagger)
    tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    carbon = file_id(db, "08_carbon.dm3")
    with db.conn:
        db.execute("update files set kind = 'spectrum image' where id = ?", [carbon])
    tagger.seen.clear()
    tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    assert tagger.seen == [carbon]
    assert tags_of(db, "08_carbon.dm3", "kind_test") == ["kind spectrum image"]


def test_a_new_tagger_version_tags_everything_again_and_replaces_its_old_tags(db, settings, register):
    tagger = KindTagger()
    register(tagger)
    tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    tagger.version = "2"
    tagger.seen.clear()
    tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    assert len(tagger.seen) == db["files"].count
    versions = {row[0] for row in db.execute("select source_version from tags where source = 'kind_test'")}
    assert versions == {"2"}


def test_force_tags_current_items_again(db, settings, register):
    tagger = KindTagger()
    register(tagger)
    tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    tagger.seen.clear()
    tag_catalog(db, settings, tagger_names=["kind_test"], force=True, progress=False)
    assert len(tagger.seen) == db["files"].count


def test_an_item_that_breaks_a_batch_fails_alone_with_its_message(db, settings, register):
    class Fussy(KindTagger):
        name = "fussy_test"

        def tag_batch(self, items):
            if any(item.row["kind"] == "spectrum" for item in items):
                raise ValueError("cannot handle spectra")
            yield from super().tag_batch(items)

    register(Fussy())
    summary = tag_catalog(db, settings, tagger_names=["fussy_test"], progress=False)
    stats = summary.taggers[0]
    assert stats.failed == 1
    assert stats.tagged == db["files"].count - 1
    assert stats.errors[0]["message"] == "cannot handle spectra"
    run = db.execute(
        "select status, message from tag_runs where tagger = 'fussy_test' and item_id = ?",
        [file_id(db, "08_carbon.dm3")],
    ).fetchone()
    assert run == ("error", "cannot handle spectra")


def test_a_tagger_that_cannot_run_here_says_why_and_the_others_still_run(db, settings, register):
    class NoWeights(Tagger):
        name = "no_weights_test"

        def load(self, options, device="cpu"):
            raise TaggerUnavailable("no checkpoint: set taggers: no_weights_test: checkpoint: in metadata.yml")

    class Broken(Tagger):
        name = "broken_test"

        def load(self, options, device="cpu"):
            raise RuntimeError("boom")

    register(NoWeights(), Broken(), KindTagger())
    summary = tag_catalog(db, settings, tagger_names=["no_weights_test", "broken_test", "kind_test"], progress=False)
    by_name = {stats.tagger: stats for stats in summary.taggers}
    assert by_name["no_weights_test"].unavailable.startswith("no checkpoint")
    assert by_name["broken_test"].unavailable == "failed to load: RuntimeError: boom"
    assert by_name["kind_test"].tagged == db["files"].count


def test_a_tagger_gets_its_options_from_metadata_yml(db, settings, register):
    class Configured(KindTagger):
        name = "configured_test"

        def load(self, options, device="cpu"):
            self.prefix = options["prefix"]

        def tag_batch(self, items):
            yield from ((item, Result(tags=[Tag(f"{self.prefix} {item.item_id}")])) for item in items)

    settings.taggers["configured_test"] = {"prefix": "seen-by"}
    register(Configured())
    tag_catalog(db, settings, tagger_names=["configured_test"], progress=False)
    assert tags_of(db, "08_carbon.dm3", "configured_test") == [f"seen-by {file_id(db, '08_carbon.dm3')}"]


def test_an_interrupted_run_keeps_finished_batches_and_the_next_run_does_only_the_rest(db, settings, register):
    class Interrupted(KindTagger):
        name = "interrupted_test"
        batch_size = 5
        calls = 0

        def tag_batch(self, items):
            Interrupted.calls += 1
            if Interrupted.calls == 3:
                raise KeyboardInterrupt
            yield from super().tag_batch(items)

    tagger = Interrupted()
    register(tagger)
    with pytest.raises(KeyboardInterrupt):
        tag_catalog(db, settings, tagger_names=["interrupted_test"], progress=False)
    assert db.execute("select status from jobs order by id desc limit 1").fetchone()[0] == "interrupted"
    done_before = db.execute("select count(*) from tag_runs where tagger = 'interrupted_test'").fetchone()[0]
    assert done_before == 10
    tagger.seen.clear()
    tag_catalog(db, settings, tagger_names=["interrupted_test"], progress=False)
    assert len(tagger.seen) == db["files"].count - 10
    assert db.execute("select count(*) from tags where source = 'interrupted_test'").fetchone()[0] == db["files"].count


def test_experts_tags_survive_a_new_run_and_a_rejected_tag_does_not_come_back(db, settings, register):
    tagger = KindTagger()
    register(tagger)
    tag_catalog(db, settings, tagger_names=["kind_test"], progress=False)
    carbon = file_id(db, "08_carbon.dm3")
    with db.conn:
        db.execute("update tags set status = 'rejected' where item_id = ? and source = 'kind_test'", [carbon])
    tag_catalog(db, settings, tagger_names=["kind_test"], force=True, progress=False)
    rows = db.execute("select tag, status from tags where item_id = ? and source = 'kind_test'", [carbon]).fetchall()
    assert rows == [("kind spectrum", "rejected")]
    document = db.execute("select tags from search_items where item_type = 'file' and item_id = ?", [carbon]).fetchone()
    assert "kind spectrum" not in document[0]


def test_image_taggers_read_real_pixels_and_write_vectors_keyed_by_search_document(db, settings, register):
    register(BrightnessTagger())
    summary = tag_catalog(db, settings, tagger_names=["brightness_test"], progress=False)
    assert summary.taggers[0].failed == 0
    assert tags_of(db, "08_carbon.dm3", "brightness_test") == ["1-d data"]
    assert tags_of(db, "16_STOimage_1.ser", "brightness_test") == ["2-d data"]
    count = db.execute("select count(*) from vec_brightness").fetchone()[0]
    assert count == db["files"].count
    space = db.execute("select dimensions, tagger from vector_spaces where name = 'brightness'").fetchone()
    assert space == (3, "brightness_test")


def test_a_file_that_disappeared_is_a_clear_per_item_error(db, settings, register):
    with db.conn:
        db.execute("update files set path = path || '.moved' where name = '16_STOimage_1.ser'")
    register(BrightnessTagger())
    summary = tag_catalog(db, settings, tagger_names=["brightness_test"], progress=False)
    errors = summary.taggers[0].errors
    assert len(errors) == 1
    assert "is no longer there" in errors[0]["message"]
    assert summary.taggers[0].tagged == db["files"].count - 1


def test_a_vector_of_the_wrong_dimension_is_refused_for_that_item(db, settings, register):
    class Wrong(BrightnessTagger):
        name = "wrong_dimension_test"
        vector_spaces = {"brightness": 4}

    register(Wrong())
    summary = tag_catalog(db, settings, tagger_names=["wrong_dimension_test"], progress=False)
    assert summary.taggers[0].tagged == 0
    assert "gave a 3-d vector for 'brightness', not 4" in summary.taggers[0].errors[0]["message"]


class ProposalKeywords(Tagger):
    """A keyword tagger on proposals whose tags flow along links, as KeyBERT's do."""

    name = "keywords_test"
    applies_to = frozenset({"proposal"})
    inherited = True

    def tag_batch(self, items):
        yield from ((item, Result(tags=[Tag("perovskite oxides", score=0.8)])) for item in items)


@pytest.fixture
def sto_under_a_proposal(db):
    """The SrTiO3 image linked to a proposal P-1."""
    with db.conn:
        db["proposals"].insert({"id": "P-1", "title": "Oxide interfaces", "abstract": "SrTiO3 interfaces"})
        db.execute("update files set proposal_id = 'P-1' where name = '16_STOimage_1.ser'")
    return file_id(db, "16_STOimage_1.ser")


def test_a_proposals_keywords_flow_to_its_files_marked_via_the_proposal(db, settings, register, sto_under_a_proposal):
    register(ProposalKeywords())
    summary = tag_catalog(db, settings, tagger_names=["keywords_test"], progress=False)
    row = db.execute(
        "select score, via, evidence from tags where item_type = 'file' and item_id = ? and tag = 'perovskite oxides'",
        [sto_under_a_proposal],
    ).fetchone()
    assert summary.inherited_tags == 1
    assert row == (0.4, "proposal P-1", "keyword of proposal P-1: Oxide interfaces")


def test_inherited_tags_keep_their_rows_across_runs_and_leave_when_the_link_goes(
    db, settings, register, sto_under_a_proposal
):
    register(ProposalKeywords())
    tag_catalog(db, settings, tagger_names=["keywords_test"], progress=False)
    inherited = "select id from tags where source = 'keywords_test' and via is not null"
    first = db.execute(inherited).fetchall()
    again = tag_catalog(db, settings, tagger_names=["keywords_test"], progress=False)
    assert again.inherited_tags == 0 and db.execute(inherited).fetchall() == first
    with db.conn:
        db.execute("update files set proposal_id = null")
    gone = tag_catalog(db, settings, tagger_names=["keywords_test"], progress=False)
    assert gone.inherited_tags == 1 and db.execute(inherited).fetchall() == []


def test_unknown_tagger_names_are_refused_with_the_installed_ones_listed(db, settings):
    with pytest.raises(TaggingError, match="no tagger called 'nope'; installed: "):
        tag_catalog(db, settings, tagger_names=["nope"], progress=False)


def test_tag_command_prints_a_summary_per_tagger(db, register, tmp_path):
    register(KindTagger())
    path = db.conn.execute("pragma database_list").fetchone()[2]
    result = CliRunner().invoke(cli, ["tag", path, "-t", "kind_test", "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"kind_test 1: {db['files'].count} tagged ({db['files'].count} tags, 0 vectors)" in result.output


def test_tag_command_json_summary_has_counts_per_tagger(db, register):
    register(KindTagger())
    path = db.conn.execute("pragma database_list").fetchone()[2]
    result = CliRunner().invoke(cli, ["tag", path, "-t", "kind_test", "--json"])
    payload = json.loads(result.output)
    assert payload["taggers"][0]["tagger"] == "kind_test"
    assert payload["taggers"][0]["tagged"] == db["files"].count
    assert payload["job_id"] is not None


def test_tag_command_with_an_unknown_tagger_exits_1_with_a_sentence(db):
    path = db.conn.execute("pragma database_list").fetchone()[2]
    result = CliRunner().invoke(cli, ["tag", path, "-t", "nope"])
    assert result.exit_code == 1
    assert "error: no tagger called 'nope'" in result.output


def test_tag_command_on_a_missing_catalog_exits_1(tmp_path):
    result = CliRunner().invoke(cli, ["tag", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert "no catalog at" in result.output


def test_errors_command_lists_tagging_failures_with_their_messages(db, settings, register):
    class Fussy(KindTagger):
        name = "fussy_errors_test"

        def tag_batch(self, items):
            for item in items:
                yield item, (ItemError("no spectra, please") if item.row["kind"] == "spectrum" else Result())

    register(Fussy())
    tag_catalog(db, settings, tagger_names=["fussy_errors_test"], progress=False)
    path = db.conn.execute("pragma database_list").fetchone()[2]
    result = CliRunner().invoke(cli, ["errors", path])
    assert f"fussy_errors_test on file {file_id(db, '08_carbon.dm3')}\n    no spectra, please" in result.output
    assert "3 loading errors, 1 tagging errors" in result.output


def test_a_run_with_nothing_new_loads_no_model(db, settings, register):
    class CountsLoads(KindTagger):
        name = "counts_loads_test"
        loads = 0

        def load(self, options, device="cpu"):
            CountsLoads.loads += 1

    register(CountsLoads())
    tag_catalog(db, settings, tagger_names=["counts_loads_test"], progress=False)
    tag_catalog(db, settings, tagger_names=["counts_loads_test"], progress=False)
    assert CountsLoads.loads == 1


def test_a_model_with_another_dimension_than_its_space_fails_per_item_and_keeps_the_old_vectors(db, settings, register):
    class Wider(Tagger):
        name = "wider_test"
        vector_spaces = {"brightness": 5}

        def tag_batch(self, items):
            yield from ((item, Result(vectors={"brightness": np.ones(5)})) for item in items)

    register(BrightnessTagger(), Wider())
    tag_catalog(db, settings, tagger_names=["brightness_test"], progress=False)
    summary = tag_catalog(db, settings, tagger_names=["wider_test"], progress=False)
    assert summary.taggers[0].tagged == 0
    assert "holds 3-d vectors but wider_test gives 5-d ones" in summary.taggers[0].errors[0]["message"]
    assert db.execute("select count(*) from vec_brightness").fetchone()[0] == db["files"].count


def test_a_catalog_with_more_items_than_one_chunk_is_tagged_by_a_process_that_just_opened_it(
    db, settings, register, monkeypatch
):
    # A `scisearch tag` on a catalog of more than CHUNK_SIZE files stores its first batch while the rest are still
    # being read; a chunk of one item makes these 20 files such a catalog.
    monkeypatch.setattr(tagging, "CHUNK_SIZE", 1)
    register(KindTagger())
    summary = tag_catalog(db, settings, ["kind_test"], progress=False)
    assert summary.taggers[0].tagged == 20


class CategorisingTagger(Tagger):
    """Names the category of one tag, leaves another to its tagger's default, and writes a third badly."""

    name = "category_test"
    applies_to = frozenset({"proposal"})
    inherited = True
    tag_category = "topic"

    def tag_batch(self, items):
        tags = [Tag("SrTiO3", 0.9, category="material"), Tag("oxide interfaces", 0.8), Tag("odd", 0.5, category="?!")]
        yield from ((item, Result(tags=tags)) for item in items)


def category_of(db, item_type: str, item_id: str, tag: str) -> str:
    sql = "select category from tags where item_type = ? and item_id = ? and tag = ?"
    return db.execute(sql, [item_type, item_id, tag]).fetchone()[0]


def test_a_tag_keeps_the_category_it_names_else_its_taggers(db, settings, register, sto_under_a_proposal):
    register(CategorisingTagger())
    tag_catalog(db, settings, tagger_names=["category_test"], progress=False)
    assert category_of(db, "proposal", "P-1", "SrTiO3") == "material"
    assert category_of(db, "proposal", "P-1", "oxide interfaces") == "topic"
    assert category_of(db, "proposal", "P-1", "odd") == "topic"  # not a category name: the tagger's is used


def test_an_inherited_tag_keeps_the_category_of_the_tag_it_came_from(db, settings, register, sto_under_a_proposal):
    register(CategorisingTagger())
    tag_catalog(db, settings, tagger_names=["category_test"], progress=False)
    assert category_of(db, "file", sto_under_a_proposal, "SrTiO3") == "material"
    assert category_of(db, "file", sto_under_a_proposal, "oxide interfaces") == "topic"
