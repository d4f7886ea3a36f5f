"""Search across facilities (search/hub.py): real scisearch instances on their own ports, asked over HTTP.

Two catalogs are built from the shared data (ncempy's EM files for "west", the
DigitalMicrograph files of em-vendors for "east") and served by ``datasette serve``
in subprocesses, as a facility runs them.  Faults come from a small HTTP server
in a thread whose first path segment says how it misbehaves (HTML, bytes that
are not JSON, the wrong shape, a 500, a long sleep) or that records what it was
sent; the hub asking it is a real Datasette with the plugin, in process.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest
import yaml
from datasette.app import Datasette

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import ConfigError, load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.search import hub
from datasette_scisearch.tagging.pipeline import tag_catalog

from .conftest import REPO, built_once, shared_data

SERVER_START_SECONDS = 90
QUERY = "HAADF"  # 12 results in west (ncempy's files), 2 in east (DigitalMicrograph's)


# -- Catalogs and servers ----------------------------------------------------------------------------------


def _build(folder: Path, sources: dict[str, Path]) -> Path:
    settings = load_settings(REPO / "metadata.yml")
    for name, source in sources.items():
        db = open_catalog(folder / f"{name}.db")
        load_files(db, [source], settings, progress=False)
        tag_catalog(db, settings, ["metadata", "filenames"], progress=False)
        db.close()
    return folder / "west.db"


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> dict[str, Path]:
    sources = {"west": shared_data("em"), "east": shared_data("em-vendors", "digitalmicrograph")}
    west = built_once(tmp_path_factory, "hub-catalogs", lambda folder: _build(folder, sources))
    return {"west": west, "east": west.with_name("east.db")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def metadata_with_hub(path: Path, block: dict | None) -> dict:
    """The repository's metadata.yml with this ``hub:`` block, written to ``path`` and returned."""
    document = yaml.safe_load((REPO / "metadata.yml").read_text())
    if block is not None:
        document["plugins"]["datasette-scisearch"]["hub"] = block
    path.write_text(yaml.safe_dump(document))
    return document


@contextlib.contextmanager
def serving(catalog: Path, metadata: Path, port: int | None = None):
    """``datasette serve CATALOG --metadata METADATA`` on a port of its own; yields (base URL, process) once it
    answers a search, and stops it afterwards."""
    port = port or _free_port()
    log = catalog.with_name(f"{catalog.stem}-{port}.log")
    with open(log, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "datasette", "serve", str(catalog), "--metadata", str(metadata)]
            + ["--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"datasette exited with status {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "-/scisearch.json", params={"q": QUERY}, timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"datasette did not answer within {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def two_facilities(catalogs, tmp_path_factory):
    """East on its own port, and west on another with east listed under ``hub:``: (west's URL, east's URL)."""
    folder = tmp_path_factory.mktemp("two-facilities")
    metadata_with_hub(folder / "east.yml", None)
    with serving(catalogs["east"], folder / "east.yml") as (east, _):
        # The facility's name here ("sunrise") is not its catalog's name there ("east").
        block = {"name": "west", "facilities": [{"name": "sunrise", "url": east, "timeout_seconds": 20}]}
        metadata_with_hub(folder / "west.yml", block)
        with serving(catalogs["west"], folder / "west.yml") as (west, _):
            yield west, east


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    """/<how>/-/scisearch.json answers as <how> says; /record/ keeps what it was sent and answers nothing found."""

    recorded: list[dict] = []
    EMPTY = {"ok": True, "query": "", "filters": {}, "item_type": None, "page": 1, "per_page": 20, "total": 0,
             "counts": {}, "hits": [], "facets": {}, "messages": [], "took_ms": 0.1, "rankers": {}}  # fmt: skip
    HOSTILE_HIT = {
        "item_type": "paper", "item_id": "7", "rowid": 7, "title": "<b>bold</b> HAADF", "score": 0.5,
        "snippet": "<script>alert(1)</script> a <mark>HAADF</mark> image", "ranks": {"fts": 1}, "scores": {"fts": 2.0},
        "facts": {"has_preview": True, "voltage_kv": "lots", "kind": "image"}, "database": "far",
        "url": "https://elsewhere.invalid/steal", "preview_url": "/-/scisearch/preview/far/7.png",
    }  # fmt: skip

    def do_GET(self):  # noqa: N802 (the handler's name is http.server's)
        how = self.path.strip("/").split("/")[0]
        if how == "slow":
            time.sleep(30)
        if how == "record":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            self.recorded.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "params": query})
        status, kind, body = {
            "html": (200, "text/html", b"<html><body>Welcome to nginx!</body></html>"),
            "garbage": (200, "application/json", b"\x00\xff{{not json at all"),
            "shape": (200, "application/json", json.dumps({"ok": True, "total": 3, "hits": "many"}).encode()),
            "types": (200, "application/json", json.dumps(
                {**self.EMPTY, "total": 1, "hits": [{"item_type": "file", "item_id": 1, "title": "x"}]}).encode()),
            "error": (500, "text/plain", b"Internal Server Error"),
            "flood": (200, "application/json", b'{"ok": true, "hits": [' + b"0, " * 2_000_000 + b"0]}"),
            "hostile": (200, "application/json", json.dumps({**self.EMPTY, "total": 1, "hits": [self.HOSTILE_HIT],
                                                            "rankers": {"fts": "fts5 bm25"}}).encode()),
        }.get(how, (200, "application/json", json.dumps(self.EMPTY).encode()))  # fmt: skip
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the hub gave up waiting, as it should

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def misbehaving():
    """The base URL of the misbehaving server (add "html/", "slow/", "record/" …)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def hub_over(catalog: Path, tmp_path: Path, facilities: list[dict], **options) -> Datasette:
    """West's catalog served in process by a Datasette whose metadata lists these facilities."""
    document = metadata_with_hub(tmp_path / "hub.yml", {"name": "west", "facilities": facilities, **options})
    return Datasette([str(catalog)], metadata=document)


def everywhere(**params) -> str:
    return "/-/scisearch.json?" + urllib.parse.urlencode({"q": QUERY, "facilities": "all", **params})


# -- Two instances answer one query together ---------------------------------------------------------------


def test_one_query_returns_results_from_both_facilities(two_facilities):
    west, east = two_facilities
    data = httpx.get(west + "-/scisearch.json", params={"q": QUERY, "facilities": "all"}, timeout=60).json()
    assert data["ok"] is True and data["notices"] == []
    assert {hit["facility"] for hit in data["hits"]} == {"west", "sunrise"}
    assert data["total"] == 12 + 2
    assert data["facilities"] == [
        {"name": "west", "url": None, "answered": True},
        {"name": "sunrise", "url": east, "answered": True},
    ]


def test_each_facilitys_best_match_comes_before_either_facilitys_second(two_facilities):
    west, _ = two_facilities
    data = httpx.get(west + "-/scisearch.json", params={"q": QUERY, "facilities": "all"}, timeout=60).json()
    assert sorted(hit["facility"] for hit in data["hits"][:2]) == ["sunrise", "west"]


def test_another_facilitys_results_link_to_their_item_pages_there(two_facilities):
    west, east = two_facilities
    data = httpx.get(west + "-/scisearch.json", params={"q": QUERY, "facilities": "all"}, timeout=60).json()
    theirs = [hit for hit in data["hits"] if hit["facility"] == "sunrise"]
    assert theirs and all(hit["url"].startswith(east + "-/scisearch/item/east/file/") for hit in theirs)
    assert all(hit["facility_url"] == east and hit["database"] == "east" for hit in theirs)
    page = httpx.get(theirs[0]["url"], timeout=60)
    assert page.status_code == 200 and theirs[0]["title"].split(" — ")[0] in page.text


def test_a_search_asks_other_facilities_only_when_asked_to(two_facilities):
    west, _ = two_facilities
    data = httpx.get(west + "-/scisearch.json", params={"q": QUERY}, timeout=60).json()
    assert data["total"] == 12 and "facilities" not in data and "notices" not in data


def test_the_search_page_shows_both_facilities_results_labelled(two_facilities):
    west, east = two_facilities
    html = httpx.get(west + "-/scisearch", params={"q": QUERY, "facilities": "all"}, timeout=60).text
    assert f'href="{east}-/scisearch/item/east/file/' in html
    assert 'title="facility">sunrise<' in html and "Also searched: sunrise" in html


@pytest.mark.parametrize(
    ("catalog", "facilities"), [("sunrise", {"sunrise"}), ("-sunrise", {"west"}), ("west", {"west"})]
)
def test_a_catalog_filter_chooses_among_facilities_and_is_not_passed_on(two_facilities, catalog, facilities):
    west, _ = two_facilities
    query = f"{QUERY} {catalog[:1] if catalog.startswith('-') else ''}catalog:{catalog.lstrip('-')}"
    data = httpx.get(west + "-/scisearch.json", params={"q": query, "facilities": "all"}, timeout=60).json()
    assert {hit["facility"] for hit in data["hits"]} == facilities
    assert data["total"] == sum({"west": 12, "sunrise": 2}[name] for name in facilities)
    assert not [message for message in data["messages"] if "no catalog called" in message]


# -- A facility that stops, sends junk or is slow ----------------------------------------------------------


@pytest.mark.asyncio
async def test_stopping_a_facility_leaves_the_others_results_with_a_notice(catalogs, tmp_path):
    metadata_with_hub(tmp_path / "east.yml", None)
    with serving(catalogs["east"], tmp_path / "east.yml") as (east, server):
        ds = hub_over(catalogs["west"], tmp_path, [{"name": "east", "url": east, "timeout_seconds": 20}])
        before = (await ds.client.get(everywhere())).json()
        assert {hit["facility"] for hit in before["hits"]} == {"west", "east"}
        server.terminate()
        server.wait(timeout=10)
        after = (await ds.client.get(everywhere())).json()
        page = (await ds.client.get("/-/scisearch?" + urllib.parse.urlencode({"q": QUERY, "facilities": "all"}))).text
    assert after["total"] == 12 and {hit["facility"] for hit in after["hits"]} == {"west"}
    assert after["notices"] == [{"facility": "east", "url": east, "problem": after["notices"][0]["problem"]}]
    assert "refused the connection" in after["notices"][0]["problem"]
    assert after["facilities"][1] == {"name": "east", "url": east, "answered": False}
    assert "scisearch-facility-notice" in page and "Facility east (" in page and "refused the connection" in page
    assert page.count('class="scisearch-card"') + page.count('class="scisearch-row"') >= 12


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("html", "answered text/html instead of JSON"),
        ("garbage", "sent something that is not JSON"),
        ("shape", "hits is not a list"),
        ("types", "hits[0].item_id is not text"),
        ("error", "answered HTTP 500"),
        ("flood", "more than an answer can be"),
    ],
)
async def test_a_facility_answering_junk_gives_a_notice_and_the_local_results(
    catalogs, tmp_path, misbehaving, how, problem
):
    ds = hub_over(catalogs["west"], tmp_path, [{"name": "junkyard", "url": misbehaving + how + "/"}])
    response = await ds.client.get(everywhere())
    data = response.json()
    assert response.status_code == 200 and data["total"] == 12
    assert [notice["facility"] for notice in data["notices"]] == ["junkyard"]
    assert problem in data["notices"][0]["problem"]


@pytest.mark.asyncio
async def test_a_slow_facility_is_given_up_on_at_its_timeout(catalogs, tmp_path, misbehaving):
    ds = hub_over(catalogs["west"], tmp_path, [{"name": "sloth", "url": misbehaving + "slow/", "timeout_seconds": 1}])
    await ds.client.get("/-/scisearch.json?q=warm")  # the first search of a catalog opens its indexes
    started = time.monotonic()
    data = (await ds.client.get(everywhere())).json()
    took = time.monotonic() - started
    assert took < 10, f"the page waited {took:.1f} s for a facility given 1 s (it sleeps 30 s)"
    assert data["total"] == 12
    assert data["notices"] == [
        {"facility": "sloth", "url": misbehaving + "slow/", "problem": "did not answer within 1 s"}
    ]


@pytest.mark.asyncio
async def test_links_leading_off_a_facility_are_dropped_and_its_markup_is_shown_as_text(
    catalogs, tmp_path, misbehaving
):
    ds = hub_over(catalogs["west"], tmp_path, [{"name": "far", "url": misbehaving + "hostile/"}])
    data = (await ds.client.get(everywhere())).json()
    (theirs,) = [hit for hit in data["hits"] if hit["facility"] == "far"]
    assert theirs["url"] is None and theirs["preview_url"] == misbehaving + "-/scisearch/preview/far/7.png"
    assert "voltage_kv" not in theirs["facts"]
    page = (await ds.client.get("/-/scisearch?" + urllib.parse.urlencode({"q": QUERY, "facilities": "all"}))).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "elsewhere.invalid" not in page


# -- Only public results travel, and nothing loops ---------------------------------------------------------


@pytest.mark.asyncio
async def test_requests_to_other_facilities_carry_no_cookies_and_ask_for_local_answers(catalogs, tmp_path, misbehaving):
    _Misbehaving.recorded.clear()
    ds = hub_over(catalogs["west"], tmp_path, [{"name": "ear", "url": misbehaving + "record/"}])
    cookies = {"ds_actor": ds.sign({"a": {"id": "root"}}, "actor")}
    response = await ds.client.get(everywhere(), cookies=cookies)
    assert response.status_code == 200 and response.json()["notices"] == []
    (sent,) = _Misbehaving.recorded
    assert "cookie" not in sent["headers"] and "authorization" not in sent["headers"]
    assert sent["params"]["facilities"] == ["local"] and sent["headers"][hub.FORWARDED_HEADER.lower()]
    assert sent["params"]["q"] == [QUERY]


@pytest.mark.asyncio
@pytest.mark.parametrize("marked_by", ["header", "parameter"])
async def test_a_request_from_another_hub_is_answered_locally_even_where_fan_out_is_the_default(
    catalogs, tmp_path, misbehaving, marked_by
):
    _Misbehaving.recorded.clear()
    ds = hub_over(catalogs["west"], tmp_path, [{"name": "ear", "url": misbehaving + "record/"}], search_by_default=True)
    if marked_by == "header":
        response = await ds.client.get(f"/-/scisearch.json?q={QUERY}", headers={hub.FORWARDED_HEADER: "fan-out"})
    else:
        response = await ds.client.get(f"/-/scisearch.json?q={QUERY}&facilities=local")
    assert response.status_code == 200 and response.json()["total"] == 12
    assert _Misbehaving.recorded == [] and "notices" not in response.json()


@pytest.mark.asyncio
async def test_where_fan_out_is_the_default_a_plain_search_asks_the_other_facilities(catalogs, tmp_path, misbehaving):
    _Misbehaving.recorded.clear()
    ds = hub_over(catalogs["west"], tmp_path, [{"name": "ear", "url": misbehaving + "record/"}], search_by_default=True)
    response = await ds.client.get(f"/-/scisearch.json?q={QUERY}")
    assert response.json()["notices"] == [] and len(_Misbehaving.recorded) == 1


# -- The hub's configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "said"),
    [
        ({"facilities": [{"name": "x", "url": "ftp://x.example/"}]}, "is not an http(s) address"),
        ({"facilities": [{"name": "x"}]}, "needs a name and a url"),
        ({"facilities": [{"name": "x", "url": "http://a/"}, {"name": "X", "url": "http://b/"}]}, "two facilities"),
        ({"facilities": [{"name": "x", "url": "http://a/", "timeout_seconds": 0}]}, "timeout_seconds must be"),
        ({"facilities": "http://a/"}, "must be a list"),
    ],
)
def test_a_hub_block_that_cannot_be_used_is_refused_with_what_to_change(block, said):
    with pytest.raises(ConfigError) as refused:
        hub.hub_from_config(block)
    assert said in refused.value.message


@pytest.mark.asyncio
async def test_a_broken_hub_block_leaves_search_working_and_says_why(catalogs, tmp_path):
    document = metadata_with_hub(tmp_path / "hub.yml", {"facilities": [{"name": "x", "url": "nowhere"}]})
    ds = Datasette([str(catalogs["west"])], metadata=document)
    data = (await ds.client.get(everywhere())).json()
    assert data["total"] == 12
    assert any("other facilities were not searched" in message for message in data["messages"])


@pytest.mark.asyncio
async def test_a_facility_named_like_a_local_catalog_is_not_asked(catalogs, tmp_path):
    ds = hub_over(catalogs["west"], tmp_path, [{"name": "west", "url": "http://127.0.0.1:9/"}])
    data = (await ds.client.get(everywhere())).json()
    assert data["total"] == 12 and "has the name of a catalog served here" in data["notices"][0]["problem"]


# -- The command line ----------------------------------------------------------------------------------------


def search_on_the_command_line(catalog: Path, metadata: Path, *options: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from datasette_scisearch.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(metadata), "search", str(catalog), QUERY, *options])
    return result.exit_code, result.output


def test_the_command_line_searches_the_other_facilities_with_facilities_all(two_facilities, catalogs, tmp_path):
    _, east = two_facilities
    metadata_with_hub(tmp_path / "hub.yml", {"name": "west", "facilities": [{"name": "sunrise", "url": east}]})
    status, output = search_on_the_command_line(catalogs["west"], tmp_path / "hub.yml", "--facilities", "all", "--json")
    data = json.loads(output)
    assert status == 0 and data["total"] == 12 + 2 and data["notices"] == []
    theirs = [hit for hit in data["hits"] if hit["facility"] == "sunrise"]
    assert len(theirs) == 2 and all(hit["url"].startswith(east + "-/scisearch/item/east/") for hit in theirs)
    assert {hit["facility"] for hit in data["hits"]} == {"west", "sunrise"}


def test_the_command_line_asks_no_other_facility_unless_told_to(catalogs, tmp_path, misbehaving):
    _Misbehaving.recorded.clear()
    metadata_with_hub(tmp_path / "hub.yml", {"facilities": [{"name": "listener", "url": misbehaving + "record/"}]})
    status, output = search_on_the_command_line(catalogs["west"], tmp_path / "hub.yml", "--json")
    assert status == 0 and json.loads(output)["total"] == 12 and _Misbehaving.recorded == []


def test_a_dead_facility_on_the_command_line_is_a_note_beside_the_local_results(catalogs, tmp_path):
    dead = f"http://127.0.0.1:{_free_port()}/"
    metadata_with_hub(tmp_path / "hub.yml", {"facilities": [{"name": "gone", "url": dead, "timeout_seconds": 5}]})
    status, output = search_on_the_command_line(catalogs["west"], tmp_path / "hub.yml", "--facilities", "all")
    assert status == 0 and output.startswith(f"note: facility gone ({dead}) refused the connection")
    assert "12 results for 'HAADF'" in output
