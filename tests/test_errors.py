"""One error family and its two front doors: the command line's message format and the web layer's status codes."""

from __future__ import annotations

import json

import pytest
import sqlite_utils
from click.testing import CliRunner
from datasette.app import Datasette
from datasette.utils.asgi import Request

from datasette_scisearch.catalog import CatalogError, open_catalog
from datasette_scisearch.cli import cli
from datasette_scisearch.errors import BUSY, NOT_FOUND, ScisearchError
from datasette_scisearch.search.query import QueryError
from datasette_scisearch.web import handle_exception

from .conftest import REPO

COMMANDS_THAT_TAKE_ONE_CATALOG = [["status"], ["errors"], ["link"], ["tag"], ["learn"], ["train", "--tag-set", "x"]]


def scisearch(*args, env=None):
    return CliRunner().invoke(cli, ["--config", str(REPO / "metadata.yml"), *map(str, args)], env=env)


@pytest.fixture
def small_catalog(tmp_path):
    path = tmp_path / "small.db"
    db = open_catalog(path)
    db["proposals"].insert({"id": "P-1", "title": "Gold clusters on ceria"})
    db.close()
    return path


def test_an_error_says_what_to_fix_and_its_kind_gives_its_status_code():
    error = ScisearchError("no such tag", fix="pick one from the list", kind=NOT_FOUND)
    assert (error.message, error.fix, error.status) == ("no such tag", "pick one from the list", 404)


def test_the_web_layers_older_status_argument_becomes_the_kind_it_stands_for():
    assert ScisearchError("slow down", 503).kind == BUSY


def test_every_rooms_error_is_a_scisearch_error():
    assert issubclass(CatalogError, ScisearchError) and issubclass(QueryError, ScisearchError)


@pytest.mark.parametrize("command", COMMANDS_THAT_TAKE_ONE_CATALOG, ids=lambda c: c[0])
def test_every_command_fails_on_a_missing_catalog_with_the_same_error_line_and_exit_1(command, tmp_path):
    result = scisearch(*command, tmp_path / "none.db", env={"SCISEARCH_CATALOG": None})
    assert result.exit_code == 1
    assert result.output.startswith(f"error: no catalog at '{tmp_path / 'none.db'}'\nhint: build one with 'scisearch")


@pytest.mark.parametrize("command", COMMANDS_THAT_TAKE_ONE_CATALOG, ids=lambda c: c[0])
def test_a_command_given_no_catalog_says_how_to_name_one(command):
    result = scisearch(*command, env={"SCISEARCH_CATALOG": None})
    assert result.exit_code == 1
    assert result.output.startswith("error: no catalog named\nhint: name it first")
    assert "$SCISEARCH_CATALOG" in result.output


def test_a_failure_shows_no_traceback_unless_debug_is_asked_for(tmp_path):
    plain = scisearch("status", tmp_path / "none.db")
    debug = scisearch("--debug", "status", tmp_path / "none.db")
    assert "Traceback" not in plain.output
    assert "Traceback" in debug.output and "CatalogError" in debug.output and "error: no catalog at" in debug.output


def test_a_command_called_the_wrong_way_gets_the_same_error_format():
    result = scisearch("status", "--no-such-option")
    assert result.exit_code == 2
    first, second = result.output.splitlines()[:2]
    assert first.startswith("error: No such option") and "--no-such-option" in first
    assert second == "hint: 'cli status --help' shows how to call it"


@pytest.mark.parametrize("rate", ["0", "-1e-5", "0.5", "fast"])
def test_a_learning_rate_the_encoder_cannot_use_is_refused_before_anything_is_learned(small_catalog, rate):
    result = scisearch("learn", small_catalog, "--encoder", "--learning-rate", rate)
    assert result.exit_code == 2
    assert result.output.startswith("error: Invalid value for '--learning-rate'")
    assert "ranking_models" not in sqlite_utils.Database(small_catalog).table_names() or not list(
        sqlite_utils.Database(small_catalog).query("select * from ranking_models")
    )


def test_the_catalog_comes_from_scisearch_catalog_when_it_is_left_out(small_catalog):
    result = scisearch("status", "--json", env={"SCISEARCH_CATALOG": str(small_catalog)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"]["proposals"] == 1


def test_the_catalog_may_be_named_with_the_catalog_option(small_catalog):
    result = scisearch("status", "--json", "--catalog", small_catalog, env={"SCISEARCH_CATALOG": None})
    assert json.loads(result.output)["catalog"] == str(small_catalog)


def test_search_takes_the_catalog_first_like_every_other_command(small_catalog):
    assert scisearch("link", small_catalog).exit_code == 0
    result = scisearch("search", small_catalog, "ceria")
    assert "[proposal] P-1  Gold clusters on ceria" in result.output


def test_with_scisearch_catalog_set_load_files_reads_every_folder_it_is_given(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "notes.txt").write_text("not instrument data")
    result = scisearch("load", "files", "--json", first, second, env={"SCISEARCH_CATALOG": str(tmp_path / "c.db")})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["total"], summary["skipped"]) == (2, 2) and (tmp_path / "c.db").exists()


def test_search_writes_nothing_to_the_catalog(small_catalog):
    before = small_catalog.read_bytes()
    scisearch("search", small_catalog, "ceria")
    assert small_catalog.read_bytes() == before
    assert sqlite_utils.Database(small_catalog)["search_items"].count == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path,content_type", [("/-/scisearch.json", "application/json"), ("/-/scisearch", "text/html")]
)
async def test_an_error_escaping_a_route_gets_its_kinds_status_as_json_or_a_page(path, content_type):
    datasette = Datasette(memory=True)
    await datasette.invoke_startup()
    request = Request.fake(path)
    request.scope["csrftoken"] = lambda: "token"  # what Datasette's CSRF middleware gives every real request
    response = await handle_exception(datasette, request, QueryError("tag: needs a value", fix="write tag:HAADF"))()
    assert response.status == 400 and response.content_type.startswith(content_type)
    assert "tag: needs a value" in response.body and "write tag:HAADF" in response.body


def test_an_error_outside_the_family_is_left_to_datasette():
    assert handle_exception(None, None, ValueError("a bug")) is None
