"""The scisearch command as a person uses it: summaries, JSON, clear errors, surviving a kill."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import click
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from datasette_scisearch.cli import cli

from .conftest import DEMO_FILES, REPO, shared_data


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(cli, ["--config", str(REPO / "metadata.yml"), *map(str, args)], catch_exceptions=False)


def test_load_files_prints_a_summary_naming_each_failure(runner, tmp_path):
    result = invoke(runner, "load", "files", "--quiet", tmp_path / "c.db", shared_data("em"))
    assert result.exit_code == 0
    assert "16 added" in result.output and "3 failed" in result.output
    assert "01_Si110_5images.emi" in result.output
    assert "scisearch errors" in result.output
    assert "note: metadata partner of '16_STOimage_1.ser'" in result.output


def test_load_files_json_has_counts_errors_and_links(runner, tmp_path):
    result = invoke(runner, "load", "files", "--json", tmp_path / "c.db", shared_data("em"))
    payload = json.loads(result.output)
    assert (payload["added"], payload["failed"]) == (16, 3)
    assert {"source", "line", "message"} == set(payload["errors"][0])
    assert "files_in_sessions" in payload["links"]


def test_a_missing_folder_is_a_clear_error_with_nonzero_exit_and_no_catalog(runner, tmp_path):
    result = invoke(runner, "load", "files", tmp_path / "c.db", tmp_path / "no-such-folder")
    assert result.exit_code == 1
    assert "error: " in result.output and "no-such-folder" in result.output and "does not exist" in result.output
    assert not (tmp_path / "c.db").exists()


def test_a_file_that_is_not_a_catalog_is_refused(runner, tmp_path):
    (tmp_path / "notes.db").write_text("shopping list")
    result = invoke(runner, "status", tmp_path / "notes.db")
    assert result.exit_code == 1
    assert "not an SQLite database" in result.output


def test_status_and_errors_report_what_the_catalog_holds(runner, tmp_path):
    invoke(runner, "load", "files", "--quiet", tmp_path / "c.db", shared_data("em"))
    status = json.loads(invoke(runner, "status", "--json", tmp_path / "c.db").output)
    assert status["counts"]["files"] == 20 and status["schema_version"] >= 1
    errors = json.loads(invoke(runner, "errors", "--json", tmp_path / "c.db").output)
    assert len(errors["loading"]) == 3 and errors["tagging"] == []


@pytest.mark.slow
def test_a_killed_load_keeps_what_it_committed_and_a_rerun_completes_it(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    rng = np.random.default_rng(0)
    for index in range(120):
        tifffile.imwrite(disk / f"grid_{index:03d}.tif", rng.integers(0, 4000, (512, 512), dtype=np.uint16))
    catalog = tmp_path / "c.db"
    command = [sys.executable, "-m", "datasette_scisearch", "load", "files", "--quiet", str(catalog), str(disk)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = 0
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        if catalog.exists():
            try:
                with sqlite3.connect(catalog, timeout=1) as probe:
                    committed = probe.execute("select count(*) from files").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
        if committed >= 10:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 10 <= committed < 120, "the load should have been killed part-way"
    rerun = subprocess.run(command + ["--json"], capture_output=True, text=True, timeout=300)
    payload = json.loads(rerun.stdout)
    with sqlite3.connect(catalog) as db:
        files = db.execute("select count(*), count(distinct path) from files").fetchone()
        statuses = [r[0] for r in db.execute("select status from jobs where command = 'load files' order by id")]
    assert files == (120, 120)
    assert payload["unchanged"] >= committed and payload["added"] + payload["unchanged"] == 120
    assert statuses == ["interrupted", "done"]


@pytest.mark.slow
def test_demo_builds_catalogs_and_links_a_facility_without_serving(runner, demo_facility):
    # The facility `scisearch demo --no-serve --files 48` built (once per run, shared with the browser tests).
    output = (demo_facility.parent / "demo-output.txt").read_text()
    status = json.loads(invoke(runner, "status", "--json", demo_facility).output)
    assert status["counts"]["files"] == DEMO_FILES and status["counts"]["ingest_errors"] == 0
    with sqlite3.connect(demo_facility) as db:
        linked, with_proposal = db.execute("select count(session_id), count(proposal_id) from files").fetchone()
        instruments = {row[0] for row in db.execute("select distinct instrument from files")}
    assert linked >= 20 and with_proposal >= linked  # a few files were taken without a booking
    assert instruments == {"TEAM 0.5", "Themis", "Helios", "Gemini", "Krios"}
    assert "scisearch serve" in output


def test_a_keyword_search_imports_no_learning_command_reader_sandbox_or_plugin(tmp_path):
    from datasette_scisearch.catalog import open_catalog
    from datasette_scisearch.config import Settings
    from datasette_scisearch.ingest.records import load_records

    db = open_catalog(tmp_path / "awards.db")
    load_records(db, "proposals", shared_data("proposals", "nsf_awards_2017.jsonl"), Settings(), {}, progress=False)
    db.close()
    script = (
        "import json, sys\n"
        "from datasette_scisearch.cli import cli\n"
        "cli.main(['search', sys.argv[1], 'graphene', '--mode', 'keyword', '--json'], standalone_mode=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "awards.db")], capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout.splitlines()[-1])
    assert '"query": "graphene"' in result.stdout  # it did search
    unneeded = ("datasette_scisearch.learning.learn_command", "datasette_scisearch.ingest.sandbox")
    assert [name for name in found if name.startswith(unneeded)] == []
    assert [name for name in found if name.startswith(("scisearch_loaders", "scisearch_taggers", "torch"))] == []


def test_a_plugins_command_is_found_when_it_is_run(runner):
    import types

    from datasette_scisearch import cli as cli_module
    from datasette_scisearch.hookspecs import hookimpl
    from datasette_scisearch.plugins import get_plugin_manager

    @click.command("hello-facility")
    def hello():
        click.echo("hello from a plugin")

    plugin = types.SimpleNamespace(register_commands=hookimpl(lambda cli: cli.add_command(hello)))
    get_plugin_manager().register(plugin, name="test-command-plugin")
    cli.more_commands = cli_module._register_plugin_commands  # as at start: plugins' commands not yet added
    try:
        result = invoke(runner, "hello-facility")
    finally:
        get_plugin_manager().unregister(name="test-command-plugin")
        cli.commands.pop("hello-facility", None)
    assert result.exit_code == 0
    assert result.output == "hello from a plugin\n"
