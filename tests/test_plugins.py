"""The plugin core: built-ins found through entry points, outside plugins registered the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.ingest.loader import Dataset, FileLoader, LoaderError
from datasette_scisearch.plugins import describe_plugins, get_loaders, pm

SCISEARCH = [sys.executable, "-m", "datasette_scisearch"]


class SpectrumCsvLoader(FileLoader):
    """A facility's own format: one spectrum per .spectrum.csv file."""

    name = "spectrum-csv"
    version = "2"
    suffixes = frozenset({".csv"})

    def read(self, path):
        values = np.loadtxt(path, delimiter=",")
        if values.ndim != 1:
            raise LoaderError("expected one row of counts")
        yield Dataset(data=values, axes_units=["eV"], voltage_kv=200, mode="EELS", metadata={"channels": values.size})


class FakePlugin:
    @hookimpl
    def register_loaders(self, register):
        register(SpectrumCsvLoader())


@pytest.fixture
def fake_plugin():
    plugin = FakePlugin()
    pm.register(plugin, name="fake-spectrum-csv")
    yield plugin
    pm.unregister(plugin)


def test_built_in_loaders_come_from_the_entry_point_group():
    info = {i.name: i for i in describe_plugins()}
    assert info["instrument_files"].distribution == "datasette-scisearch"
    assert info["instrument_files"].hooks == ["register_loaders"]
    assert "loader:tia-ser" in info["instrument_files"].provides
    assert {"userlog", "proposals", "papers"} <= set(info)


def test_a_plugin_registered_from_outside_loads_its_format(fake_plugin, catalog, settings, tmp_path):
    (tmp_path / "eels.csv").write_text(",".join(str(v) for v in range(100)))
    (tmp_path / "broken.csv").write_text("1,2\n3,4\n")
    summary = load_files(catalog, [tmp_path], settings, progress=False)
    row = catalog.execute("select kind, voltage_kv, loader from files").fetchone()
    assert row == ("spectrum", 200.0, "spectrum-csv:2")
    message = summary.errors[0]["message"]  # which reader, what was wrong, whether loading again helps
    assert message.startswith("the spectrum-csv reader could not read it: expected one row of counts")
    assert "not read again until the file changes" in message


def test_a_loader_that_crashes_costs_one_file_not_the_load(catalog, settings, tmp_path):
    class Crashing(FileLoader):
        name = "crashing"
        suffixes = frozenset({".bad"})

        def read(self, path):
            raise ZeroDivisionError("division by zero")
            yield

    class Plugin:
        @hookimpl
        def register_loaders(self, register):
            register(Crashing())

    plugin = Plugin()
    pm.register(plugin, name="crashing")
    try:
        (tmp_path / "a.bad").write_text("x")
        summary = load_files(catalog, [tmp_path], settings, progress=False)
    finally:
        pm.unregister(plugin)
    assert summary.failed == 1
    assert "ZeroDivisionError" in summary.errors[0]["message"]


def test_the_fake_plugin_is_gone_after_its_test():
    assert "spectrum-csv" not in {loader.name for loader in get_loaders()}


def _run(args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(SCISEARCH + args, capture_output=True, text=True, env=env, timeout=120)


def test_scisearch_plugins_json_lists_name_version_and_hooks():
    result = _run(["plugins", "--json"])
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert set(plugins["instrument_files"]) == {"name", "distribution", "version", "hooks", "provides"}
    assert plugins["papers"]["hooks"] == ["register_loaders"]


def test_scisearch_plugins_environment_variable_limits_what_loads():
    result = _run(["plugins", "--json"], {"SCISEARCH_PLUGINS": "userlog"})
    assert [p["name"] for p in json.loads(result.stdout)] == ["userlog"]


def test_datasette_has_every_hook_of_the_web_package_even_when_the_package_is_imported_before_datasette():
    # Importing a module of the web package first makes Datasette load its plugins half-way through that import.
    script = (
        "import datasette_scisearch.web.present\n"
        "from datasette.plugins import pm\n"
        "import datasette_scisearch.web as web\n"
        "print(len(pm.get_hookcallers(web)), len(web._HOOKS))\n"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    registered, defined = map(int, output.split())
    assert registered == defined and defined >= 10
