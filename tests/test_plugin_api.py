"""A plugin author's API: one import, and a clear error when two plugins claim the same name."""

from __future__ import annotations

import pytest

import datasette_scisearch
from datasette_scisearch import FileLoader, Result, Tag, Tagger, hookimpl
from datasette_scisearch.errors import ScisearchError
from datasette_scisearch.plugins import PluginConflict, get_taggers, pm


class BrightnessTagger(Tagger):
    name = "brightness_api_test"
    version = "1"
    applies_to = frozenset({"file"})

    def tag_batch(self, items):
        for item in items:
            yield item, Result(tags=[Tag("bright", score=0.5)])


class FirstPlugin:
    @hookimpl
    def register_taggers(self, register):
        register(BrightnessTagger())


class SecondPlugin:
    @hookimpl
    def register_taggers(self, register):
        register(BrightnessTagger())


@pytest.fixture
def registered():
    """Register plugins for one test and remove them after it."""
    plugins = []

    def register(plugin, name):
        pm.register(plugin, name=name)
        plugins.append(plugin)

    yield register
    for plugin in plugins:
        pm.unregister(plugin)


def test_everything_a_tagger_or_loader_needs_is_importable_from_the_package():
    names = set(datasette_scisearch.__all__)
    assert {"hookimpl", "Tagger", "Tag", "Result", "Item", "ItemError", "TaggerUnavailable"} <= names
    assert {"FileLoader", "RecordLoader", "Dataset", "LoaderError", "ScisearchError"} <= names
    assert all(hasattr(datasette_scisearch, name) for name in names)


def test_a_tagger_registered_through_the_package_api_is_found(registered):
    registered(FirstPlugin(), "first-api-test")
    assert "brightness_api_test" in [tagger.name for tagger in get_taggers()]


def test_two_plugins_registering_the_same_tagger_name_is_an_error_naming_both(registered):
    registered(FirstPlugin(), "first-api-test")
    registered(SecondPlugin(), "second-api-test")
    with pytest.raises(PluginConflict) as raised:
        get_taggers()
    error = raised.value
    assert "'brightness_api_test'" in error.message
    assert "'first-api-test'" in error.message and "'second-api-test'" in error.message
    assert error.status == 409 and "SCISEARCH_PLUGINS" in error.fix


def test_a_loader_name_two_plugins_share_is_refused_too(registered):
    class CsvLoader(FileLoader):
        name = "shared-name-api-test"
        suffixes = frozenset({".csv"})

    class LoaderPlugin:
        def __init__(self):
            self.loader = CsvLoader()

        @hookimpl
        def register_loaders(self, register):
            register(self.loader)

    from datasette_scisearch.plugins import get_loaders

    registered(LoaderPlugin(), "loader-one-api-test")
    registered(LoaderPlugin(), "loader-two-api-test")
    with pytest.raises(ScisearchError, match="two plugins register a loader named 'shared-name-api-test'"):
        get_loaders()
