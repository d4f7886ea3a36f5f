"""The catalog in Datasette: metadata for any catalog, previews as thumbnails, links between rows."""

from __future__ import annotations

import io
import json
import re
import shutil
import urllib.parse

import pytest
import sqlite_utils
from datasette.app import Datasette
from PIL import Image

from datasette_scisearch import web
from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings

from .conftest import REPO, shared_data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SESSION_ID = "3f2a9c0d1e4b5a67"  # records.session_id makes opaque ids like this
PROPOSAL_ID = "DMR-1905287"


def png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def build_catalog(path) -> None:
    """A small catalog: two imaged files with previews, a spectrum without one, a session and a proposal."""
    db = open_catalog(path)
    db["proposals"].insert(
        {
            "id": PROPOSAL_ID,
            "title": "Atomic-resolution imaging of gold nanoparticle catalysts",
            "pi": "A. Researcher",
            "institution": "University of Somewhere",
            "division": "Division of Materials Research",
        }
    )
    db["instruments"].insert({"name": "TitanCubed", "description": "FEI TitanCubed S-Twin"})
    db["sessions"].insert(
        {
            "id": SESSION_ID,
            "instrument": "TitanCubed",
            "user": "jdoe",
            "start": "2019-03-05T03:00:00+00:00",
            "end": "2019-03-05T07:00:00+00:00",
            "proposal_id": PROPOSAL_ID,
        }
    )
    common = {
        "format": "dm4",
        "instrument": "TitanCubed",
        "voltage_kv": 300.0,
        "session_id": SESSION_ID,
        "proposal_id": PROPOSAL_ID,
        "loaded_at": "2024-01-01T00:00:00+00:00",
    }
    db["files"].insert_all(
        [
            {
                **common,
                "id": 1,
                "name": "Au_np_300kV_HAADF_0012.dm4",
                "path": "/data/titancubed/jdoe/2019-03-04/Au_np_300kV_HAADF_0012.dm4",
                "kind": "image",
                "mode": "STEM",
                "detector": "HAADF",
                "magnification": 2.5e6,
                "pixel_size_nm": 0.012,
                # 20:30 in California is the next day in UTC.
                "acquired_at": "2019-03-05T04:30:00+00:00",
                "acquired_local": "2019-03-04T20:30:00-08:00",
                "preview": "256x128",
                "sha256": "a" * 64,
                "metadata": json.dumps({"Microscope": "Titan", "Voltage": 300000, "Detector": "HAADF"}),
            },
            {
                **common,
                "id": 2,
                "name": "Au_np_DP_0013.dm4",
                "path": "/data/titancubed/jdoe/2019-03-04/Au_np_DP_0013.dm4",
                "kind": "diffraction",
                "mode": "diffraction",
                "detector": "Ceta",
                "camera_length_mm": 145.0,
                "acquired_at": "2019-03-05T04:40:00+00:00",
                "acquired_local": "2019-03-04T20:40:00-08:00",
                "preview": "64x64",
                "sha256": "b" * 64,
                "metadata": json.dumps({"Microscope": "Titan"}),
            },
            {
                **common,
                "id": 3,
                "name": "EELS_0001.dm3",
                "path": "/data/titancubed/jdoe/2019-03-06/EELS_0001.dm3",
                "format": "dm3",
                "kind": "spectrum",
                "voltage_kv": 80.0,
                "session_id": None,
                "acquired_at": "2019-03-06T17:00:00+00:00",
                "acquired_local": "2019-03-06T09:00:00-08:00",
                "preview": None,
                "sha256": "c" * 64,
            },
        ]
    )
    db["previews"].insert_all(
        [
            {"file_id": 1, "png": png_of_size(256, 128), "width": 256, "height": 128},
            {"file_id": 2, "png": png_of_size(64, 64), "width": 64, "height": 64},
        ]
    )
    db.close()


@pytest.fixture(scope="session")
def catalog_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("datasette") / "cat.db"
    build_catalog(path)
    return path


@pytest.fixture
def ds(catalog_path):
    return Datasette([str(catalog_path)])


def thumbnails(html: str) -> list[str]:
    return re.findall(r"<img [^>]*>", html)


def facet_results(response) -> dict:
    return response.json()["facet_results"]


@pytest.mark.asyncio
async def test_every_connection_has_sqlite_vec_loaded(ds):
    response = await ds.client.get("/cat.json?sql=select+vec_version()+as+v&_shape=array")
    assert response.status_code == 200
    assert response.json()[0]["v"].startswith("v")


@pytest.mark.asyncio
async def test_files_table_shows_a_lazy_thumbnail_for_each_file_with_a_preview(ds):
    response = await ds.client.get("/cat/files")
    images = thumbnails(response.text)
    assert len(images) == 2
    haadf = next(img for img in images if "Au_np_300kV_HAADF_0012.dm4" in img)
    assert 'loading="lazy"' in haadf
    assert re.search(r'src="/-/scisearch/preview/cat/1\.png\?v=\w+"', haadf)
    assert 'alt="preview of Au_np_300kV_HAADF_0012.dm4"' in haadf


@pytest.mark.asyncio
async def test_thumbnail_is_128_pixels_wide_and_keeps_the_preview_aspect_ratio(ds):
    response = await ds.client.get("/cat/files/1")
    (image,) = thumbnails(response.text)
    assert 'width="128" height="64"' in image


@pytest.mark.asyncio
async def test_thumbnail_of_a_small_preview_is_not_enlarged(ds):
    response = await ds.client.get("/cat/files/2")
    (image,) = thumbnails(response.text)
    assert 'width="64" height="64"' in image


@pytest.mark.asyncio
async def test_thumbnail_links_to_the_full_png(ds):
    response = await ds.client.get("/cat/files/1")
    link = re.search(r'<a class="scisearch-preview" href="([^"]+)"', response.text)
    assert link and link[1].startswith("/-/scisearch/preview/cat/1.png")


@pytest.mark.asyncio
async def test_preview_route_serves_the_png_of_a_file(ds):
    response = await ds.client.get("/-/scisearch/preview/cat/1.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(PNG_SIGNATURE)
    assert Image.open(io.BytesIO(response.content)).size == (256, 128)


@pytest.mark.asyncio
async def test_preview_linked_from_the_page_may_be_cached_for_a_year(ds):
    page = await ds.client.get("/cat/files")
    url = re.search(r'src="(/-/scisearch/preview/cat/1\.png[^"]*)"', page.text)[1]
    response = await ds.client.get(url)
    assert response.headers["cache-control"] == "public, max-age=31536000"


@pytest.mark.asyncio
async def test_preview_without_its_version_is_cached_only_briefly(ds):
    response = await ds.client.get("/-/scisearch/preview/cat/1.png?v=stale")
    assert response.headers["cache-control"] == "public, max-age=3600"


@pytest.mark.asyncio
async def test_preview_of_an_unknown_file_is_not_found(ds):
    response = await ds.client.get("/-/scisearch/preview/cat/999.png")
    assert response.status_code == 404
    assert "There is no preview for file &#39;999&#39; in &#39;cat&#39;" in response.text


@pytest.mark.asyncio
async def test_preview_of_a_file_that_has_none_is_not_found(ds):
    response = await ds.client.get("/-/scisearch/preview/cat/3.png")
    assert response.status_code == 404


@pytest.mark.asyncio
async def test_preview_in_an_unknown_database_is_not_found(ds):
    response = await ds.client.get("/-/scisearch/preview/nosuchdb/1.png")
    assert response.status_code == 404
    assert "There is no database called &#39;nosuchdb&#39; here." in response.text


@pytest.mark.asyncio
async def test_preview_is_forbidden_to_whoever_may_not_see_the_files_table(catalog_path):
    metadata = {"databases": {"cat": {"tables": {"files": {"allow": {"id": "root"}}}}}}
    ds = Datasette([str(catalog_path)], metadata=metadata)
    anonymous = await ds.client.get("/-/scisearch/preview/cat/1.png")
    root = await ds.client.get(
        "/-/scisearch/preview/cat/1.png", cookies={"ds_actor": ds.sign({"a": {"id": "root"}}, "actor")}
    )
    assert anonymous.status_code == 403
    assert root.status_code == 200


@pytest.mark.asyncio
async def test_files_table_has_the_researchers_facets_by_default(ds):
    response = await ds.client.get("/cat/files.json")
    facets = facet_results(response)
    assert {"instrument", "kind", "mode", "detector", "voltage_kv", "proposal_id", "acquired_local"} <= set(facets)
    kinds = {result["value"]: result["count"] for result in facets["kind"]["results"]}
    assert kinds == {"image": 1, "diffraction": 1, "spectrum": 1}


@pytest.mark.asyncio
async def test_proposal_facet_shows_the_proposal_title(ds):
    response = await ds.client.get("/cat/files.json")
    (proposal,) = facet_results(response)["proposal_id"]["results"]
    assert proposal["label"] == "Atomic-resolution imaging of gold nanoparticle catalysts"


@pytest.mark.asyncio
async def test_date_facet_counts_files_by_the_day_the_facility_lived_them(ds):
    response = await ds.client.get("/cat/files.json")
    days = {r["value"]: r["count"] for r in facet_results(response)["acquired_local"]["results"]}
    # Files taken on the evening of 4 March in California, not on 5 March UTC.
    assert days == {"2019-03-04": 2, "2019-03-06": 1}


@pytest.mark.asyncio
async def test_choosing_a_day_in_the_date_facet_shows_that_days_files(ds):
    response = await ds.client.get("/cat/files.json")
    day = next(r for r in facet_results(response)["acquired_local"]["results"] if r["value"] == "2019-03-04")
    chosen = await ds.client.get(urllib.parse.urlsplit(day["toggle_url"])._replace(scheme="", netloc="").geturl())
    assert chosen.json()["filtered_table_rows_count"] == 2


@pytest.mark.asyncio
async def test_voltage_filter_understands_units(ds):
    response = await ds.client.get("/cat/files.json?voltage_kv__gte=200000V&_shape=array")
    assert {row["name"] for row in response.json()} == {"Au_np_300kV_HAADF_0012.dm4", "Au_np_DP_0013.dm4"}


@pytest.mark.asyncio
async def test_voltage_is_shown_with_its_unit(ds):
    response = await ds.client.get("/cat/files/1")
    assert re.search(r'<td class="col-voltage_kv[^"]*">300(\.0)?&nbsp;kV</td>', response.text)


@pytest.mark.asyncio
async def test_magnification_is_shown_as_microscopists_write_it(ds):
    response = await ds.client.get("/cat/files/1")
    assert '<span title="2.5e+06">2.5 Mx</span>' in response.text


@pytest.mark.asyncio
async def test_file_row_page_links_to_its_session_by_who_booked_it(ds):
    response = await ds.client.get("/cat/files/1")
    assert f'<a href="/cat/sessions/{SESSION_ID}">jdoe</a>&nbsp;<em>{SESSION_ID}</em>' in response.text


@pytest.mark.asyncio
async def test_file_row_page_links_to_its_proposal_by_title(ds):
    response = await ds.client.get("/cat/files/1")
    assert (
        f'<a href="/cat/proposals/{PROPOSAL_ID}">Atomic-resolution imaging of gold nanoparticle catalysts</a>'
        f"&nbsp;<em>{PROPOSAL_ID}</em>"
    ) in response.text


@pytest.mark.asyncio
async def test_files_table_links_each_file_to_its_session_and_proposal(ds):
    response = await ds.client.get("/cat/files")
    assert response.text.count(f'href="/cat/sessions/{SESSION_ID}"') == 2
    assert response.text.count(f'href="/cat/proposals/{PROPOSAL_ID}"') >= 3


@pytest.mark.asyncio
async def test_files_table_page_has_its_title_and_column_descriptions(ds):
    response = await ds.client.get("/cat/files")
    assert "<h1>Instrument files</h1>" in response.text
    assert "<dt>voltage_kv</dt><dd>Accelerating voltage, in kV.</dd>" in response.text
    assert "<dt>acquired_at</dt><dd>When it was acquired, in UTC (ISO 8601).</dd>" in response.text


@pytest.mark.asyncio
async def test_file_metadata_json_renders_as_a_collapsed_pretty_printed_block(ds):
    response = await ds.client.get("/cat/files/1")
    block = re.search(
        r'<details class="scisearch-json"><summary>3 fields</summary><pre>(.*?)</pre>', response.text, re.S
    )
    assert block
    assert "  &#34;Microscope&#34;: &#34;Titan&#34;" in block[1]


@pytest.mark.asyncio
async def test_huge_file_metadata_is_cut_short_with_a_link_to_all_of_it(tmp_path):
    path = tmp_path / "cat.db"
    build_catalog(path)
    db = sqlite_utils.Database(path)
    db["files"].update(1, {"metadata": json.dumps({f"tag{i}": "x" * 100 for i in range(1000)})})
    db.close()
    response = await Datasette([str(path)]).client.get("/cat/files/1")
    assert '<a href="/cat/files/1.json">all of it as JSON</a>' in response.text
    assert len(response.text) < 100_000


@pytest.mark.asyncio
async def test_file_path_is_shown_as_plain_text(ds):
    response = await ds.client.get("/cat/files/1")
    cell = re.search(r'<td class="col-path[^"]*">(.*?)</td>', response.text)[1]
    assert cell == "/data/titancubed/jdoe/2019-03-04/Au_np_300kV_HAADF_0012.dm4"


@pytest.mark.asyncio
async def test_previews_bookkeeping_and_vector_tables_are_hidden(tmp_path):
    path = tmp_path / "cat.db"
    build_catalog(path)
    db = sqlite_utils.Database(path)
    web.load_sqlite_vec(db.conn)
    db.execute("create virtual table file_vectors using vec0(embedding float[4])")
    db.close()
    response = await Datasette([str(path)]).client.get("/cat.json")
    visible = {table["name"] for table in response.json()["tables"] if not table["hidden"]}
    assert visible == {
        "files", "sessions", "proposals", "papers", "instruments",
        "links", "tags", "tag_history", "jobs", "ingest_errors", "learned_models",
    }  # fmt: skip


@pytest.mark.asyncio
async def test_stylesheet_for_thumbnails_is_linked_and_served(ds):
    page = await ds.client.get("/cat/files")
    href = re.search(r'<link rel="stylesheet" href="([^"]*scisearch\.css)">', page.text)[1]
    stylesheet = await ds.client.get(href)
    assert stylesheet.status_code == 200
    assert ".scisearch-preview img" in stylesheet.text


@pytest.mark.asyncio
async def test_a_catalog_with_any_file_name_gets_the_same_metadata(catalog_path, tmp_path):
    path = tmp_path / "facility2019.db"
    shutil.copy(catalog_path, path)
    ds = Datasette([str(path)])
    response = await ds.client.get("/facility2019/files.json")
    assert "kind" in facet_results(response)
    assert ds.table_metadata("facility2019", "files")["title"] == "Instrument files"


@pytest.mark.asyncio
async def test_a_database_that_is_not_a_catalog_gets_none_of_it(tmp_path):
    path = tmp_path / "other.db"
    sqlite_utils.Database(path)["files"].insert({"id": 1, "name": "a.txt", "preview": "1x1"}, pk="id")
    ds = Datasette([str(path)])
    response = await ds.client.get("/other/files.json")
    assert facet_results(response) == {}
    assert ds.table_metadata("other", "files") == {}


@pytest.mark.asyncio
async def test_the_instances_metadata_overrides_the_catalog_defaults(catalog_path):
    metadata = {"databases": {"cat": {"tables": {"files": {"title": "Our files", "facets": ["format"]}}}}}
    ds = Datasette([str(catalog_path)], metadata=metadata)
    response = await ds.client.get("/cat/files.json")
    assert set(facet_results(response)) == {"format"}
    assert ds.table_metadata("cat", "files")["title"] == "Our files"
    # What the instance does not override stays.
    assert ds.table_metadata("cat", "files")["sort_desc"] == "acquired_at"


@pytest.mark.asyncio
async def test_a_file_that_becomes_a_catalog_while_served_gets_the_metadata(tmp_path, monkeypatch):
    monkeypatch.setattr(web.base, "SCHEMA_MAX_AGE_SECONDS", 0)
    path = tmp_path / "late.db"
    sqlite_utils.Database(path).vacuum()
    ds = Datasette([str(path)])
    assert ds.table_metadata("late", "files") == {}
    open_catalog(path).close()
    assert ds.table_metadata("late", "files")["title"] == "Instrument files"


@pytest.fixture(scope="module")
def ingested_catalog_path(tmp_path_factory):
    em = shared_data("em")
    ingest = pytest.importorskip("datasette_scisearch.ingest.files")
    path = tmp_path_factory.mktemp("ingested") / "em.db"
    db = open_catalog(path)
    ingest.load_files(db, [em], load_settings(REPO / "metadata.yml"), progress=False)
    db.close()
    return path


@pytest.mark.asyncio
async def test_real_instrument_files_show_as_thumbnails_that_serve_pngs(ingested_catalog_path):
    ds = Datasette([str(ingested_catalog_path)])
    page = await ds.client.get("/em/files?_size=max")
    urls = re.findall(r'src="(/-/scisearch/preview/em/\d+\.png\?v=\w+)"', page.text)
    with_previews = sqlite_utils.Database(ingested_catalog_path)["previews"].count
    assert len(urls) == with_previews > 10
    response = await ds.client.get(urls[0])
    assert response.content.startswith(PNG_SIGNATURE)
    Image.open(io.BytesIO(response.content)).verify()


@pytest.mark.asyncio
async def test_real_instrument_files_are_faceted_by_kind_and_instrument(ingested_catalog_path):
    ds = Datasette([str(ingested_catalog_path)])
    facets = facet_results(await ds.client.get("/em/files.json"))
    kinds = {r["value"] for r in facets["kind"]["results"]}
    instruments = {r["value"] for r in facets["instrument"]["results"]}
    assert {"image", "diffraction", "spectrum"} <= kinds
    assert "TEAM 0.5" in instruments


@pytest.mark.asyncio
async def test_context_queries_are_offered_only_for_catalogs(ds):
    response = await ds.client.get("/cat.json")
    assert {"file_context", "proposal_output"} <= {query["name"] for query in response.json()["queries"]}
