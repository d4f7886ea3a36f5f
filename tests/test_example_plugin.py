"""The example third-party tagger in plugins/example-tagger: found through its entry point, tagging real files."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.plugins import ENTRY_POINT_GROUP, describe_plugins, get_taggers
from datasette_scisearch.tagging.items import iter_items, make_item
from datasette_scisearch.tagging.tagger import ItemError, Result, TaggerUnavailable

from .conftest import REPO, shared_data

DISTRIBUTION = "scisearch-example-tagger"


def _installed() -> bool:
    try:
        importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _installed(), reason="the example tagger is not installed: pip install -e plugins/example-tagger"
)


def after_hours(options=None):
    """The tagger as the core finds it: through the entry point, not by importing its module."""
    [tagger] = [tagger for tagger in get_taggers() if tagger.name == "after_hours"]
    tagger.load(options or {})
    return tagger


def tags_of(tagger, item) -> dict:
    [(_, result)] = list(tagger.tag_batch([item]))
    assert isinstance(result, Result)
    return {tag.text: tag for tag in result.tags}


def file_item(acquired_local, source="metadata"):
    row = {"id": 1, "name": "x.emd", "path": "/x.emd", "acquired_local": acquired_local, "acquired_at_source": source}
    return make_item("file", row)


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory):
    em = shared_data("em")
    path = tmp_path_factory.mktemp("example") / "catalog.db"
    db = open_catalog(path)
    load_files(db, [em], load_settings(REPO / "metadata.yml"), progress=False)
    db.close()
    return path


@pytest.fixture(scope="module")
def real_items(catalog_path):
    db = open_catalog(catalog_path)
    items = {(item.row["name"], item.row["dataset_name"]): item for item in iter_items(db, "file")}
    db.close()
    return items


def test_the_example_tagger_is_registered_only_through_its_entry_point():
    [entry_point] = [
        ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == "example_tagger"
    ]
    assert entry_point.value == "scisearch_example_tagger"
    assert entry_point.dist.metadata["Name"] == DISTRIBUTION


def test_scisearch_plugins_lists_its_package_and_the_tagger_it_provides():
    info = {plugin.name: plugin for plugin in describe_plugins()}["example_tagger"]
    assert (info.distribution, info.hooks, info.provides) == (
        DISTRIBUTION,
        ["register_taggers"],
        ["tagger:after_hours"],
    )


def test_real_files_taken_late_in_the_evening_are_tagged_night(real_items):
    tagger = after_hours()
    bruker = tags_of(tagger, real_items["0.bcf", "EDX"])  # 21:52 on a Thursday
    titan = tags_of(tagger, real_items["After HAADF 130mm_1.ser", None])  # 22:41
    assert bruker.keys() == titan.keys() == {"night", "after hours"}
    assert titan["night"].score == pytest.approx(0.9)
    assert titan["night"].evidence == "acquired Thursday 22:41 facility time (metadata)"


def test_a_real_file_taken_in_the_working_day_is_not_tagged(real_items):
    assert tags_of(after_hours(), real_items["Camera Ceta Imaging Micro.emd", "BM-Ceta"]) == {}  # Wed 09:48


def test_night_hours_come_from_the_options(real_items):
    assert "night" in tags_of(after_hours({"night_starts": 18}), real_items["16_STOimage_1.ser", None])  # 18:18


def test_a_saturday_acquisition_is_weekend_and_after_hours():
    tags = tags_of(after_hours(), file_item("2024-03-02T14:05:00-08:00"))
    assert tags.keys() == {"weekend", "after hours"}


def test_a_time_taken_from_the_files_modification_date_is_weaker_evidence():
    tags = tags_of(after_hours(), file_item("2024-03-05T23:30:00-08:00", "file modification time"))
    assert tags["night"].score == pytest.approx(0.5)


def test_a_file_without_a_time_gets_no_tags_and_an_unreadable_time_is_an_item_error():
    tagger = after_hours()
    [(_, empty), (_, broken)] = list(tagger.tag_batch([file_item(None), file_item("last Tuesday")]))
    assert empty.tags == []
    assert isinstance(broken, ItemError) and broken.message == "acquired_local 'last Tuesday' is not an ISO 8601 time"


def test_night_hours_that_are_not_hours_are_a_clear_message():
    [tagger] = [tagger for tagger in get_taggers() if tagger.name == "after_hours"]
    with pytest.raises(TaggerUnavailable, match="must be hours, 0 to 23"):
        tagger.load({"night_starts": "8pm"})


def test_scisearch_tag_runs_it_end_to_end_and_search_finds_its_tags(catalog_path):
    command = [sys.executable, "-m", "datasette_scisearch", "tag", str(catalog_path), "--tagger", "after_hours"]
    result = subprocess.run([*command, "--json"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    [stats] = json.loads(result.stdout)["taggers"]
    assert (stats["tagger"], stats["failed"]) == ("after_hours", 0)
    db = open_catalog(catalog_path)
    night = list(
        db.query(
            """select t.item_id, f.name from tags t join files f on f.id = cast(t.item_id as integer)
            where t.item_type = 'file' and t.source = 'after_hours' and t.tag = 'night' and t.status = 'machine'"""
        )
    )
    found = db.query(
        """select s.item_id from search_items s join search_items_fts on search_items_fts.rowid = s.id
        where s.item_type = 'file' and search_items_fts match 'tags : night'"""
    )
    found_ids = {row["item_id"] for row in found}
    db.close()
    assert {"0.bcf", "After HAADF 130mm_1.ser", "After LAABF 1.5m_1.ser"} <= {row["name"] for row in night}
    assert "Camera Ceta Imaging Micro.emd" not in {row["name"] for row in night}
    assert {row["item_id"] for row in night} <= found_ids  # the search documents carry the new tags
