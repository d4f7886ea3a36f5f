"""Bad URLs under /-/scisearch and elsewhere are answered with a 404 or 400 that says what was wrong, never a 500.

The fuzz draws paths and parameters from pieces a person or a scanner would send (unknown ids, traversal
strings, broken tilde escapes, huge numbers, markup) with a fixed seed, so a failure repeats."""

from __future__ import annotations

import random
import urllib.parse

import pytest
from datasette.app import Datasette

from datasette_scisearch.catalog import open_catalog

from .conftest import catalog_of_real_files
from .test_pages import PAPER_ID, PROPOSAL_ID, SESSION_ID, SETTINGS, catalog_path  # noqa: F401  (a fixture)

BAD_IDS = [
    "",
    "0",
    "-1",
    "9" * 30,
    "..",
    "...",
    "%2e%2e",
    "~2F..~2F..~2Fetc~2Fpasswd",
    "a b",
    "%00",
    "~",
    "~zz",
    "~2",
    "%ff",
    "é",
    "x" * 300,
    "1.5",
    "nan",
    "<script>",
    "'",
    '"',
    "1;drop table files",
    "%",
    "null",
]
GOOD_IDS = ["1", "12", PROPOSAL_ID, SESSION_ID, urllib.parse.quote(PAPER_ID, safe="")]
TYPES = ["file", "proposal", "paper", "session", "video", "", "FILE", ".."]
DATABASES = ["cat", "nope", "cat_private", "~2E", "_internal", "cat~", "", "%00"]
PATH_SHAPES = [
    "/-/scisearch/item/{db}/{type}/{id}",
    "/-/scisearch/item/{db}/{type}/{id}.json",
    "/-/scisearch/item/{db}/{type}",
    "/-/scisearch/similar/{db}/{type}/{id}.json",
    "/-/scisearch/preview/{db}/{id}.png",
    "/-/scisearch/preview/{db}/{id}",
    "/-/scisearch/tags/{db}/{id}",
    "/-/scisearch/tags/{db}/{id}.json",
    "/-/scisearch/history/{db}/{id}/undo",
    "/-/scisearch/queue/{db}",
    "/-/scisearch/{id}",
    "/-/scisearch/{id}/{id}",
    "/{db}/{id}",
    "/{db}/files/{id}",
    "/-/{id}",
]
PARAMETERS = ["q", "type", "page", "per_page", "db", "k", "tag", "instrument", "kind", "proposal", "year", "sort"]
BAD_VALUES = BAD_IDS + ["tag:", "voltage>=zzkV", "date:2021-99..x", "mag:5M-1M", "(((", "-", "*", "NEAR(", "pixel<0nm"]
PARAMETER_ROUTES = ["/-/scisearch", "/-/scisearch.json", "/-/scisearch/item/cat/file/1.json"]
PARAMETER_ROUTES += ["/-/scisearch/similar/cat/file/1.json", "/-/scisearch/queue/cat", "/-/scisearch/item/cat/file/1"]
FUZZ_REQUESTS = 1500


def fuzz_urls(seed: int = 13) -> list[str]:
    draw = random.Random(seed)
    urls = []
    for _ in range(FUZZ_REQUESTS):
        shape = draw.choice(PATH_SHAPES)
        url = shape.format(
            db=draw.choice(DATABASES),
            type=draw.choice(TYPES),
            id=draw.choice(BAD_IDS + GOOD_IDS),
        )
        if draw.random() < 0.3:
            url = draw.choice(PARAMETER_ROUTES)
        if draw.random() < 0.5:
            pairs = [(draw.choice(PARAMETERS), draw.choice(BAD_VALUES)) for _ in range(draw.randint(1, 3))]
            url += "?" + urllib.parse.urlencode(pairs)
        urls.append(url)
    return urls


@pytest.fixture
def ds(catalog_path):  # noqa: F811
    return Datasette([str(catalog_path)], metadata=SETTINGS)


# -- The routes added since: downloads and exports, frames, sitemaps and DataCite, the hub's facilities=, undo= --

REAL_FILES = [
    ("em", "dmTest_3D_int16_64,65,66.dm3"),  # a stack: frames to step through, exports of a 3-D array
    ("em-vendors", "digitalmicrograph", "1D", "test-MonarcCL_spectrum-pmt.dm4"),  # a spectrum
    ("em", "STEM HAADF Diffraction Micro.emd"),  # a Velox image
]
FORMATS = ["tiff", "png", "emd", "csv", "TIFF", "", "exe", "png.png", "x" * 80]
NEW_PATH_SHAPES = [
    "/-/scisearch/download/{db}/{id}",
    "/-/scisearch/export/{db}/{id}.{format}",
    "/-/scisearch/frame/{db}/{id}/{frame}.png",
    "/-/scisearch/frame/{db}/{id}/{frame}",
    "/sitemap.xml",
    "/-/scisearch/sitemap/{db}/{frame}.xml",
    "/-/scisearch/datacite/{db}/{id}.json",
    "/-/scisearch/click/{db}",
    "/-/scisearch/item/{db}/file/{id}",
]
NEW_PARAMETERS = ["facilities", "undo", "q", "page", "view", "sort", "shape", "frame", "format", "type"]
NEW_VALUES = BAD_IDS + ["all", "local", "ALL", "1-2", "5-1", "1-99999999999", "-", "1--2", "table", "date", "64,64"]
NEW_ROUTES = ["/-/scisearch", "/-/scisearch.json", "/-/scisearch/queue/views", "/-/scisearch/item/views/file/1"]
NEW_FUZZ_REQUESTS = 700


def new_route_urls(seed: int = 2026) -> list[str]:
    draw = random.Random(seed)
    ids = BAD_IDS + ["1", "2", "3", "P-1"]
    urls = []
    for _ in range(NEW_FUZZ_REQUESTS):
        url = draw.choice(NEW_PATH_SHAPES).format(
            db=draw.choice(["views", "nope", "~2E", "_internal", ""]),
            id=draw.choice(ids),
            frame=draw.choice(ids + ["0", "9", "65", "66"]),
            format=draw.choice(FORMATS),
        )
        if draw.random() < 0.4:
            url = draw.choice(NEW_ROUTES)
        if draw.random() < 0.6:
            pairs = [(draw.choice(NEW_PARAMETERS), draw.choice(NEW_VALUES)) for _ in range(draw.randint(1, 3))]
            url += "?" + urllib.parse.urlencode(pairs)
        urls.append(url)
    return urls


@pytest.fixture(scope="module")
def real_files_catalog(tmp_path_factory):
    return catalog_of_real_files(tmp_path_factory.mktemp("fuzz-real"), REAL_FILES)


@pytest.mark.asyncio
async def test_no_fuzzed_url_on_downloads_frames_sitemaps_the_hub_or_undo_gets_a_server_error(real_files_catalog):
    # A hub whose one other facility is a closed port: facilities=all asks it and gets a notice, never a 500.
    hub_block = {"name": "here", "facilities": [{"name": "gone", "url": "http://127.0.0.1:9/", "timeout_seconds": 2}]}
    plugin = {**SETTINGS["plugins"]["datasette-scisearch"], "hub": hub_block}
    ds = Datasette([str(real_files_catalog)], metadata={"plugins": {"datasette-scisearch": plugin}})
    root = {"ds_actor": ds.sign({"a": {"id": "root"}}, "actor")}  # the queue and its undo= are root's
    draw = random.Random(7)
    failures = {}
    for url in new_route_urls():
        response = await ds.client.get(url, cookies=root if draw.random() < 0.5 else {})
        if response.status_code >= 500:
            failures[url] = response.status_code
    assert failures == {}


@pytest.mark.asyncio
async def test_the_fuzzed_new_routes_reach_real_answers_not_only_refusals(real_files_catalog):
    """The fuzz above means something only if its routes answer: each serves a real file's data here."""
    ds = Datasette([str(real_files_catalog)], metadata=SETTINGS)
    db = open_catalog(real_files_catalog)
    stack = db.execute("select id from files where name = 'dmTest_3D_int16_64,65,66.dm3'").fetchone()[0]
    db.close()
    answers = {
        url: (await ds.client.get(url)).status_code
        for url in [
            f"/-/scisearch/download/views/{stack}",
            f"/-/scisearch/export/views/{stack}.tiff",
            f"/-/scisearch/frame/views/{stack}/0.png",
            "/sitemap.xml",
            f"/-/scisearch/item/views/file/{stack}",
        ]
    }
    assert answers == dict.fromkeys(answers, 200)


@pytest.mark.asyncio
async def test_no_fuzzed_url_under_scisearch_gets_a_server_error(ds):
    failures = {}
    for url in fuzz_urls():
        response = await ds.client.get(url)
        if response.status_code >= 500:
            failures[url] = response.status_code
    assert failures == {}


@pytest.mark.asyncio
async def test_a_url_no_route_matches_is_a_404_even_with_rich_installed(ds):
    pytest.importorskip("rich", reason="the 500 came from Datasette printing 404s with rich")
    for url in ["/-/scisearch/item/cat/file/", "/nope/nothing/here", "/-/scisearch/preview/cat/.png"]:
        response = await ds.client.get(url)
        assert response.status_code == 404, url


@pytest.mark.asyncio
async def test_an_unknown_page_under_scisearch_says_so_with_the_search_box(ds):
    response = await ds.client.get("/-/scisearch/nothing/here")
    assert response.status_code == 404
    assert "There is no page at /-/scisearch/nothing/here" in response.text
    assert 'class="scisearch-form"' in response.text


@pytest.mark.asyncio
async def test_a_broken_tilde_escape_in_an_item_id_is_a_404_page(ds):
    response = await ds.client.get("/-/scisearch/item/cat/file/~zz")
    assert response.status_code == 404
    assert "is not an id this catalog could hold" in response.text or "There is no file" in response.text


@pytest.mark.asyncio
async def test_an_unknown_item_type_in_the_json_api_is_a_404_with_a_json_error(ds):
    response = await ds.client.get("/-/scisearch/item/cat/video/1.json")
    assert response.status_code == 404
    assert response.json()["ok"] is False
    assert "'video' is not a kind of item here" in response.json()["error"]


@pytest.mark.asyncio
async def test_a_preview_id_that_is_not_a_number_is_a_404(ds):
    response = await ds.client.get("/-/scisearch/preview/cat/..png")
    assert response.status_code == 404
    assert "There is no preview for file" in response.text
