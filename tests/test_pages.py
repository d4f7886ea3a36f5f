"""The search and item pages under /-/scisearch, through Datasette's test client, on small real catalogs."""

from __future__ import annotations

import html
import io
import json
import re
import urllib.parse

import markupsafe
import numpy as np
import pytest
import sqlite_utils
from datasette.app import Datasette
from PIL import Image

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.search.index import refresh_search_items, search_item_ids
from datasette_scisearch.tagging import vectors
from datasette_scisearch.web import pages
from datasette_scisearch.web.present import format_value, safe_snippet

PROPOSAL_ID = "DMR-1905287"
SESSION_ID = "3f2a9c0d1e4b5a67"
PAPER_ID = "10.5555/gold/2019.1"  # a DOI as the id: a slash must survive the item page's URL
HOSTILE_TAG = '<img src=x onerror="alert(1)">'
SI_FILES = 27  # with the three gold files, more than one page of results for "lamella OR gold"
SETTINGS = {"plugins": {"datasette-scisearch": {"timezone": "America/Los_Angeles"}}}


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def build_catalog(path, with_vectors: bool = True) -> None:
    """A proposal with a paper, a session, three gold files and many silicon lamella images, tagged."""
    db = open_catalog(path)
    db["proposals"].insert(
        {
            "id": PROPOSAL_ID,
            "title": "Atomic-resolution imaging of gold nanoparticle catalysts",
            "abstract": "We image supported gold nanoparticles by aberration-corrected HAADF-STEM during heating.",
            "pi": "A. Researcher",
            "institution": "University of Somewhere",
            "start_date": "2019-01-01",
            "details": json.dumps({"program": "CMMT"}),
        }
    )
    db["papers"].insert(
        {
            "id": PAPER_ID,
            "title": "Sintering of gold nanoparticles observed in situ",
            "abstract": "Time series of HAADF images show gold nanoparticles coarsening on ceria.",
            "authors": "A. Researcher; B. Student",
            "year": 2020,
            "doi": PAPER_ID,
            "venue": "Microscopy Letters",
        }
    )
    db["links"].insert(
        {"from_type": "paper", "from_id": PAPER_ID, "to_type": "proposal", "to_id": PROPOSAL_ID}
        | {"method": "proposal id in acknowledgements", "evidence": PROPOSAL_ID, "confidence": 0.9}
    )
    db["instruments"].insert({"name": "TitanCubed", "description": "FEI TitanCubed S-Twin"})
    db["instruments"].insert({"name": "Helios", "description": "FEI Helios dual-beam SEM/FIB"})
    db["sessions"].insert(
        {
            "id": SESSION_ID,
            "instrument": "TitanCubed",
            "user": "jdoe",
            "start": "2019-03-05T03:00:00+00:00",
            "end": "2019-03-05T07:00:00+00:00",
            "proposal_id": PROPOSAL_ID,
            "notes": "gold on ceria, heating holder",
        }
    )
    gold = {
        "format": "dm4",
        "instrument": "TitanCubed",
        "voltage_kv": 300.0,
        "session_id": SESSION_ID,
        "proposal_id": PROPOSAL_ID,
        "loaded_at": "2024-01-01T00:00:00+00:00",
        "acquired_at": "2019-03-05T04:30:00+00:00",
        "acquired_local": "2019-03-04T20:30:00-08:00",
        "preview": "256x256",
    }
    files = [
        gold
        | {
            "id": 1,
            "name": "Au_np_300kV_HAADF_0012.dm4",
            "path": "/data/titancubed/jdoe/Au_np_300kV_HAADF_0012.dm4",
            "kind": "image",
            "mode": "STEM",
            "detector": "HAADF",
            "magnification": 2.5e6,
            "pixel_size_nm": 0.012,
            "search_text": "Au nanoparticles gold HAADF STEM image",
            "metadata": json.dumps({"Microscope": "Titan", "Voltage": 300000, "Detector": "HAADF"}),
        },
        gold
        | {
            "id": 2,
            "name": "Au_np_300kV_HAADF_0013.dm4",
            "path": "/data/titancubed/jdoe/Au_np_300kV_HAADF_0013.dm4",
            "kind": "image",
            "mode": "STEM",
            "detector": "HAADF",
            "search_text": "Au nanoparticles gold HAADF STEM image",
        },
        gold
        | {
            "id": 3,
            "name": "Au_np_DP_0014.dm4",
            "path": "/data/titancubed/jdoe/Au_np_DP_0014.dm4",
            "kind": "diffraction",
            "camera_length_mm": 145.0,
            "search_text": "Au nanoparticles gold diffraction pattern rings",
        },
    ]
    spectrum = {
        "id": 4,
        "name": "EELS_0001.dm3",
        "path": "/data/titancubed/jdoe/EELS_0001.dm3",
        "format": "dm3",
        "instrument": "TitanCubed",
        "kind": "spectrum",
        "mode": "EELS",
        "voltage_kv": 80.0,
        "acquired_at": "2019-03-05T05:00:00+00:00",
        "acquired_local": "2019-03-04T21:00:00-08:00",
        "loaded_at": "2024-01-01T00:00:00+00:00",
        "search_text": "EELS spectrum carbon K edge",
    }
    files += [
        {
            "id": 10 + number,
            "name": f"Si_lamella_5kV_{number:02d}.tif",
            "path": f"/data/helios/Si_lamella_5kV_{number:02d}.tif",
            "format": "tif",
            "instrument": "Helios",
            "kind": "image",
            "mode": "SEM",
            "detector": "ETD",
            "voltage_kv": 5.0,
            "acquired_at": f"2020-06-{number + 1:02d}T17:00:00+00:00",
            "acquired_local": f"2020-06-{number + 1:02d}T10:00:00-07:00",
            "loaded_at": "2024-01-01T00:00:00+00:00",
            "preview": "64x64",
            "search_text": "silicon lamella SEM image",
        }
        for number in range(SI_FILES)
    ]
    db["files"].insert_all([*files, spectrum])  # the spectrum has no preview
    db["previews"].insert_all({"file_id": f["id"], "png": png(64, 64), "width": 64, "height": 64} for f in files)
    db["tags"].insert_all(
        [
            {"item_type": "file", "item_id": "1", "tag": "HAADF", "score": 0.95, "source": "metadata"}
            | {"status": "machine", "evidence": "detector = HAADF", "category": "instrument"},
            {"item_type": "file", "item_id": "1", "tag": "nanoparticles", "score": 0.6, "source": "image_analysis"}
            | {"status": "machine", "evidence": "12 round particles, 4-9 nm", "category": "feature"},
            {"item_type": "file", "item_id": "1", "tag": "catalysis", "score": 0.4, "source": "keybert"}
            | {"status": "machine", "evidence": "keyword of the abstract", "via": f"proposal {PROPOSAL_ID}"}
            | {"category": "topic"},
            {"item_type": "file", "item_id": "1", "tag": HOSTILE_TAG, "score": 1.0, "source": "expert"}
            | {"status": "added", "evidence": "<b>typed by a person</b>"},
        ]
    )
    refresh_search_items(db)
    if with_vectors:
        # Image-feature vectors: file 2 looks most like file 1, the diffraction pattern less, lamellae least.
        rowids = search_item_ids(db, "file", [str(f["id"]) for f in files])
        vectors.ensure_space(db, "image_features", 3, "image_analysis")
        with db.conn:
            chosen = {"1": [1.0, 0.0, 0.0], "2": [0.95, 0.1, 0.0], "3": [0.6, 0.8, 0.0]}
            pairs = [(rowids[item_id], np.array(v)) for item_id, v in chosen.items()]
            pairs += [(rowids[str(10 + n)], np.array([0.0, 0.1 * n, 1.0])) for n in range(SI_FILES)]
            vectors.write_vectors(db, "image_features", pairs)
    db.close()


@pytest.fixture(scope="session")
def catalog_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("pages") / "cat.db"
    build_catalog(path)
    return path


@pytest.fixture(scope="session")
def catalog_without_vectors(tmp_path_factory):
    path = tmp_path_factory.mktemp("pages") / "plain.db"
    build_catalog(path, with_vectors=False)
    return path


@pytest.fixture
def ds(catalog_path):
    return Datasette([str(catalog_path)], metadata=SETTINGS)


async def get(ds, path: str, **params):
    query = urllib.parse.urlencode(params, doseq=True)
    return await ds.client.get(f"{path}?{query}" if query else path)


def search(ds, q: str = "", **params):
    return get(ds, "/-/scisearch", q=q, **params)


def cards(text: str) -> list[str]:
    return re.findall(r'<article class="scisearch-card" data-item-type="file" data-item-id="([^"]+)"', text)


def rows(text: str) -> list[tuple[str, str]]:
    return re.findall(r'<article class="scisearch-row" data-item-type="(\w+)" data-item-id="([^"]+)"', text)


def notes(text: str) -> list[str]:
    found = re.findall(r'class="scisearch-(?:message|error)"[^>]*>\s*(?:<p>)?(.*?)</p>', text, re.S)
    return [html.unescape(note.strip()) for note in found]


def facet_links(text: str, facet: str) -> dict[str, str]:
    section = re.search(rf'data-facet="{facet}">(.*?)</section>', text, re.S)
    assert section, f"no {facet} facet in the page"
    found = re.findall(r'<a href="([^"]+)"[^>]*>\s*<span class="scisearch-facet-label">([^<]*)</span>', section[1])
    return {html.unescape(label): html.unescape(href) for href, label in found}


# -- The search page ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_search_page_before_a_query_offers_examples_and_the_newest_files(ds):
    response = await search(ds)
    assert response.status_code == 200
    assert 'href="/-/scisearch?q=tag%3Adiffraction"' in response.text
    assert len(cards(response.text)) == pages.PER_PAGE
    assert cards(response.text)[0] == str(10 + SI_FILES - 1)  # acquired last


@pytest.mark.asyncio
async def test_browsing_before_a_query_counts_everything_with_tabs_facets_and_pages(ds):
    response = await search(ds)
    everything = 3 + 1 + SI_FILES + 1 + 1 + 1  # gold files, the spectrum, lamellae, proposal, paper, session
    assert re.search(rf"1–{pages.PER_PAGE} of {everything}\b", response.text)
    assert set(facet_links(response.text, "instrument")) == {"Helios", "TitanCubed"}
    assert 'rel="next" href="/-/scisearch?page=2"' in response.text
    second = await search(ds, page="2")
    assert len(cards(second.text)) + len(rows(second.text)) == everything - pages.PER_PAGE


@pytest.mark.asyncio
async def test_browsing_one_tab_lists_every_item_of_that_type(ds):
    response = await search(ds, type="file")
    assert re.search(rf"of {3 + 1 + SI_FILES}\b", response.text)
    assert rows(response.text) == []


@pytest.mark.asyncio
async def test_a_query_shows_matching_files_as_cards_with_previews(ds):
    response = await search(ds, "HAADF nanoparticles")
    assert response.status_code == 200
    assert set(cards(response.text)) >= {"1", "2"}
    assert '<img loading="lazy" src="/-/scisearch/preview/cat/1.png"' in response.text


@pytest.mark.asyncio
async def test_file_cards_show_key_metadata_with_units(ds):
    response = await search(ds, "Au_np_300kV_HAADF_0012.dm4")
    card = response.text.split('data-item-id="1"', 1)[1].split("</article>", 1)[0]
    assert "image · TitanCubed · STEM · HAADF · 300 kV · 2.5 Mx · 12 pm · 2019-03-04" in card


@pytest.mark.asyncio
async def test_a_file_without_a_preview_shows_its_kind_in_place_of_one(ds):
    response = await search(ds, "EELS")
    card = response.text.split('data-item-id="4"', 1)[1].split("</article>", 1)[0]
    assert '<span class="scisearch-no-preview">spectrum</span>' in card
    assert "<img" not in card


@pytest.mark.asyncio
async def test_an_exact_file_name_finds_that_file_first(ds):
    response = await search(ds, "Au_np_300kV_HAADF_0012.dm4")
    assert cards(response.text)[0] == "1"


@pytest.mark.asyncio
async def test_proposals_and_papers_are_listed_with_highlighted_snippets(ds):
    response = await search(ds, "gold")
    assert ("proposal", PROPOSAL_ID) in rows(response.text)
    assert ("paper", PAPER_ID) in rows(response.text)
    assert re.search(r'<p class="scisearch-snippet">[^<]*<mark>gold</mark>', response.text, re.I)


@pytest.mark.asyncio
async def test_each_result_says_why_it_matched(ds):
    response = await search(ds, "HAADF")
    card = response.text.split('data-item-id="1"', 1)[1].split("</article>", 1)[0]
    line = re.search(r'<details class="scisearch-why">\s*<summary>([^<]*)</summary>', card)
    reasons = re.findall(r"<li>([^<]*)</li>", card.split('class="scisearch-why"', 1)[1])
    assert line and "HAADF" in html.unescape(line[1])
    assert any("HAADF" in html.unescape(reason) for reason in reasons)


@pytest.mark.asyncio
async def test_the_why_line_names_no_tagger_which_its_details_do(ds):
    response = await search(ds, "HAADF")
    card = response.text.split('data-item-id="1"', 1)[1].split("</article>", 1)[0]
    line = html.unescape(re.search(r'<details class="scisearch-why">\s*<summary>([^<]*)</summary>', card)[1])
    details = html.unescape(card.split("</summary>", 1)[1])
    taggers = {"filenames", "metadata", "keywords", "image_analysis", "ocr", "clip"}
    assert line.startswith("Matched ") and not any(f"({name}" in line for name in taggers)
    assert any(f"({name}" in details for name in taggers)


@pytest.mark.asyncio
async def test_tabs_count_each_item_type(ds):
    response = await search(ds, "gold")
    tabs = dict(
        re.findall(r'>(All|Images|Proposals|Papers|Sessions) <span class="scisearch-count">(\d+)</span>', response.text)
    )
    assert tabs["Images"] == "3"
    assert tabs["Proposals"] == "1"
    assert tabs["Papers"] == "1"
    assert int(tabs["All"]) == sum(int(count) for label, count in tabs.items() if label != "All")


@pytest.mark.asyncio
async def test_the_images_tab_shows_only_files(ds):
    response = await search(ds, "gold", type="file")
    assert set(cards(response.text)) == {"1", "2", "3"}
    assert rows(response.text) == []


@pytest.mark.asyncio
async def test_a_query_that_finds_nothing_suggests_what_to_try(ds):
    response = await search(ds, "xylophone", instrument="Helios")
    assert response.status_code == 200
    assert cards(response.text) == rows(response.text) == []
    assert "Try other or fewer words, or remove a filter." in response.text
    assert 'href="/-/scisearch?q=tag%3Adiffraction"' in response.text


@pytest.mark.asyncio
async def test_a_facet_value_links_to_the_same_search_with_its_filter(ds):
    response = await search(ds, "image")
    links = facet_links(response.text, "instrument")
    assert links["Helios"] == "/-/scisearch?q=image&instrument=Helios"


@pytest.mark.asyncio
async def test_a_facet_filter_narrows_the_results(ds):
    unfiltered = await search(ds, "nanoparticles")
    assert set(cards(unfiltered.text)) == {"1", "2", "3"}
    response = await search(ds, "nanoparticles", kind="diffraction")
    assert set(cards(response.text)) == {"3"}


@pytest.mark.asyncio
async def test_a_facet_filter_shows_as_a_chip_that_removes_it(ds):
    response = await search(ds, "image", instrument="TitanCubed", kind="image")
    chips = dict(re.findall(r'<li><a href="([^"]+)" title="Remove this filter">([^<]+?) <span', response.text))
    assert chips == {
        "/-/scisearch?q=image&amp;kind=image": "instrument: TitanCubed",
        "/-/scisearch?q=image&amp;instrument=TitanCubed": "kind: image",
    }


def test_a_facet_value_with_a_space_becomes_a_quoted_filter():
    assert pages._filter_token("instrument", "TEAM 0.5") == 'instrument:"TEAM 0.5"'
    assert pages._filter_token("kind", "image") == "kind:image"


@pytest.mark.asyncio
async def test_the_search_box_keeps_the_tab_and_filters(ds):
    response = await search(ds, "image", type="file", instrument="Helios")
    form = re.search(r'<form class="scisearch-form".*?</form>', response.text, re.S)[0]
    assert '<input type="hidden" name="type" value="file">' in form
    assert '<input type="hidden" name="instrument" value="Helios">' in form


@pytest.mark.asyncio
async def test_results_beyond_one_page_are_paginated(ds):
    response = await search(ds, "lamella")
    assert len(cards(response.text)) == pages.PER_PAGE
    assert '<a rel="next" href="/-/scisearch?q=lamella&amp;page=2">' in response.text
    second = await search(ds, "lamella", page=2)
    assert len(cards(second.text)) == SI_FILES - pages.PER_PAGE
    assert not set(cards(second.text)) & set(cards(response.text))


@pytest.mark.asyncio
async def test_a_page_past_the_end_shows_the_last_page_with_a_note(ds):
    response = await search(ds, "lamella", page=99)
    assert response.status_code == 200
    assert len(cards(response.text)) == SI_FILES - pages.PER_PAGE
    assert "There is no page 99 of these results; showing the last page, 2." in notes(response.text)


@pytest.mark.asyncio
async def test_a_huge_page_number_shows_the_last_page(ds):
    response = await search(ds, "lamella", page="9" * 40)
    assert response.status_code == 200
    assert len(cards(response.text)) == SI_FILES - pages.PER_PAGE


@pytest.mark.asyncio
async def test_a_negative_page_shows_the_first_page_with_a_note(ds):
    response = await search(ds, "lamella", page=-3)
    assert response.status_code == 200
    assert len(cards(response.text)) == pages.PER_PAGE
    assert "There is no page -3; showing the first page." in notes(response.text)


@pytest.mark.asyncio
async def test_a_page_that_is_not_a_number_shows_the_first_page_with_a_note(ds):
    response = await search(ds, "lamella", page="two")
    assert response.status_code == 200
    assert "'two' is not a page number; showing the first page." in notes(response.text)


@pytest.mark.asyncio
async def test_an_unknown_tab_shows_all_results_with_a_note(ds):
    response = await search(ds, "gold", type="<b>videos</b>")
    assert response.status_code == 200
    assert "There is no '<b>videos</b>' tab; showing all results." in notes(response.text)
    assert "<b>videos</b>" not in response.text


@pytest.mark.asyncio
async def test_a_ten_kilobyte_query_is_refused_with_a_message(ds):
    response = await search(ds, "gold " * 2048)
    assert response.status_code == 400
    (message,) = notes(response.text)
    assert "the limit is 2,000" in message
    assert "Traceback" not in response.text


@pytest.mark.asyncio
async def test_an_unknown_unit_is_reported_in_the_page(ds):
    response = await search(ds, "gold voltage>3kg")
    assert response.status_code == 200
    assert any("unknown unit 'kg'" in note.lower() for note in notes(response.text))


@pytest.mark.asyncio
@pytest.mark.parametrize("query", ['"unclosed phrase', "NEAR(gold", "gold AND OR NOT", "title:", "***", "(("])
async def test_query_syntax_a_search_engine_would_reject_is_answered(ds, query):
    response = await search(ds, query)
    assert response.status_code == 200
    assert "Traceback" not in response.text


@pytest.mark.asyncio
async def test_an_emoji_query_is_answered(ds):
    response = await search(ds, "🔬 gold ✨")
    assert response.status_code == 200
    assert "3" == re.search(r'>Images <span class="scisearch-count">(\d+)</span>', response.text)[1]


@pytest.mark.asyncio
async def test_html_in_a_query_is_shown_as_text(ds):
    response = await search(ds, "<script>alert(1)</script>")
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


@pytest.mark.asyncio
async def test_an_unknown_database_is_a_404_page_with_the_search_box(ds):
    response = await search(ds, "gold", db="nope")
    assert response.status_code == 404
    assert notes(response.text) == ["There is no database called 'nope' here."]
    assert 'class="scisearch-form"' in response.text


@pytest.mark.asyncio
async def test_a_catalog_without_vectors_ranks_by_text_and_says_so(catalog_without_vectors):
    ds = Datasette([str(catalog_without_vectors)], metadata=SETTINGS)
    response = await search(ds, "gold")
    assert response.status_code == 200
    assert set(cards(response.text)) == {"1", "2", "3"}
    assert "No text vectors yet: ranked by text match only" in notes(response.text)


@pytest.mark.asyncio
async def test_a_catalog_without_a_search_index_says_how_to_build_one(tmp_path):
    open_catalog(tmp_path / "empty.db").close()
    ds = Datasette([str(tmp_path / "empty.db")])
    response = await search(ds, "gold")
    assert response.status_code == 200
    assert any("scisearch tag" in note for note in notes(response.text))


@pytest.mark.asyncio
async def test_a_datasette_without_any_catalog_says_there_is_nothing_to_search(tmp_path):
    sqlite_utils.Database(tmp_path / "other.db")["things"].insert({"name": "x"})
    ds = Datasette([str(tmp_path / "other.db")])
    response = await search(ds, "gold")
    assert response.status_code == 404
    assert "No catalog is attached" in notes(response.text)[0]


# -- The item page -----------------------------------------------------------------------------------


def item(ds, item_type: str, item_id: str):
    from datasette.utils import tilde_encode

    return ds.client.get(f"/-/scisearch/item/cat/{item_type}/{tilde_encode(item_id)}")


@pytest.mark.asyncio
async def test_file_page_shows_the_large_preview(ds):
    response = await item(ds, "file", "1")
    assert response.status_code == 200
    assert re.search(
        r'<figure class="scisearch-item-preview"[^>]*>\s*'
        r'<a href="[^"]+"[^>]*>\s*<img src="/-/scisearch/preview/cat/1\.png',
        response.text,
    )


@pytest.mark.asyncio
async def test_file_page_without_a_preview_shows_no_image(ds):
    response = await item(ds, "file", "4")
    assert response.status_code == 200
    assert "scisearch-item-preview" not in response.text
    assert "<h1>EELS_0001.dm3</h1>" in response.text


@pytest.mark.asyncio
async def test_file_page_lists_normalised_values_with_units(ds):
    response = await item(ds, "file", "1")
    listed = dict(re.findall(r"<dt>([^<]+)</dt><dd[^>]*>([^<]+)</dd>", response.text))
    assert listed["Voltage"] == "300 kV"
    assert listed["Magnification"] == "2.5 Mx (2,500,000×)"
    assert listed["Pixel size"] == "12 pm"
    assert "Acquired" not in listed  # a time is a <time> element: see the next test


@pytest.mark.asyncio
async def test_file_page_gives_times_in_iso_8601_in_the_facility_zone_and_in_utc(ds):
    response = await item(ds, "file", "1")
    pattern = r'<dt>([^<]+)</dt><dd[^>]*><time datetime="([^"]+)">([^<]+)</time>'
    times = {label: (machine, shown) for label, machine, shown in re.findall(pattern, response.text)}
    assert times["Acquired"] == ("2019-03-04T20:30:00-08:00", "2019-03-04 20:30-08:00 (PST)")
    assert times["Acquired (UTC)"] == ("2019-03-05T04:30:00+00:00", "2019-03-05 04:30+00:00 (UTC)")


@pytest.mark.asyncio
async def test_file_page_shows_raw_metadata_pretty_printed_and_folded(ds):
    response = await item(ds, "file", "1")
    block = re.search(r'<section class="scisearch-metadata">\s*<details>.*?<pre>(.*?)</pre>', response.text, re.S)
    assert block and json.loads(html.unescape(block[1])) == {
        "Detector": "HAADF",
        "Microscope": "Titan",
        "Voltage": 300000,
    }
    assert '"Voltage": 300000' in html.unescape(block[1])


@pytest.mark.asyncio
async def test_tags_are_grouped_by_category_with_score_bars_and_evidence(ds):
    response = await item(ds, "file", "1")
    groups = re.findall(r'<div class="scisearch-tag-group" data-category="([^"]+)">\s*<h3>([^<]+)</h3>', response.text)
    assert groups == [
        ("feature", "Features"),
        ("instrument", "Instrument and detector"),
        ("topic", "Topic"),
        ("other", "Other"),  # the expert's tag names no category: its words are no tagger's
    ]
    haadf = re.search(r'<li class="scisearch-tag status-machine"\s+data-tag="HAADF".*?</li>', response.text, re.S)[0]
    assert '<span style="width: 95%">' in haadf
    assert "detector = HAADF" in haadf


@pytest.mark.asyncio
async def test_each_tag_names_the_tagger_that_gave_it(ds):
    response = await item(ds, "file", "1")
    haadf = re.search(r'data-tag="HAADF".*?</li>', response.text, re.S)[0]
    assert '<span class="scisearch-tag-source" title="given by metadata">metadata</span>' in haadf


@pytest.mark.asyncio
async def test_the_tag_filters_are_grouped_by_category(ds):
    response = await ds.client.get("/-/scisearch?q=")
    sections = re.findall(
        r'data-facet="tag" data-category="([^"]+)">\s*<h2>([^<]+)</h2>(.*?)</section>', response.text, re.S
    )
    assert [(category, label) for category, label, _ in sections] == [
        ("feature", "Features"),
        ("instrument", "Instrument and detector"),
        ("topic", "Topic"),
        ("other", "Other"),
    ]
    assert 'href="/-/scisearch?tag=nanoparticles"' in sections[0][2]  # each group filters by tag:


@pytest.mark.asyncio
async def test_an_inherited_tag_says_which_proposal_it_came_from(ds):
    response = await item(ds, "file", "1")
    tag = re.search(r'data-tag="catalysis".*?</li>', response.text, re.S)[0]
    assert f"via proposal {PROPOSAL_ID}" in tag


@pytest.mark.asyncio
async def test_html_in_a_tag_and_its_evidence_is_shown_as_text(ds):
    response = await item(ds, "file", "1")
    assert HOSTILE_TAG not in response.text
    assert "<b>typed by a person</b>" not in response.text
    assert str(markupsafe.escape(HOSTILE_TAG)) in response.text


@pytest.mark.asyncio
async def test_a_tag_an_expert_added_shows_its_status(ds):
    response = await item(ds, "file", "1")
    tag = re.search(r'<li class="scisearch-tag status-added".*?</li>', response.text, re.S)[0]
    assert '<span class="scisearch-tag-status">added</span>' in tag


@pytest.mark.asyncio
async def test_file_page_links_its_session_proposal_and_paper(ds):
    response = await item(ds, "file", "1")
    context = re.search(r'<section class="scisearch-context">.*?</section>', response.text, re.S)[0]
    assert f'href="/-/scisearch/item/cat/session/{SESSION_ID}">TitanCubed session of jdoe</a>' in context
    assert "2019-03-04 19:00 to 23:00-08:00 (PST)" in context
    assert f'href="/-/scisearch/item/cat/proposal/{PROPOSAL_ID}">Atomic-resolution imaging' in context
    assert 'href="/-/scisearch/item/cat/paper/10~2E5555~2Fgold~2F2019~2E1">Sintering of gold' in context


@pytest.mark.asyncio
async def test_proposal_page_shows_its_abstract_and_its_files_as_cards(ds):
    response = await item(ds, "proposal", PROPOSAL_ID)
    assert response.status_code == 200
    assert "aberration-corrected HAADF-STEM during heating" in response.text
    files = files_section(response.text)
    assert set(cards(files)) == {"1", "2", "3"}


def files_section(page: str) -> str:
    return page.split('<section class="scisearch-item-files">', 1)[1].split('<section class="scisearch-similar"')[0]


@pytest.mark.asyncio
async def test_proposal_page_groups_its_files_by_kind_with_counts(ds):
    files = files_section((await item(ds, "proposal", PROPOSAL_ID)).text)
    groups = re.findall(
        r'data-kind="([^"]+)">\s*<h3>([^<]+)<span class="scisearch-count">(\d+)</span>(.*?)</section>', files, re.S
    )
    assert [(kind, heading.strip(), count) for kind, heading, count, _ in groups] == [
        ("image", "Images", "2"),
        ("diffraction", "Diffraction patterns", "1"),
    ]
    assert cards(groups[0][3]) == ["1", "2"] and cards(groups[1][3]) == ["3"]
    assert '<a href="#files-image">Images</a> 2 · <a href="#files-diffraction">Diffraction patterns</a> 1' in files


@pytest.mark.asyncio
async def test_an_id_with_slashes_opens_its_item_page(ds):
    response = await item(ds, "paper", PAPER_ID)
    assert response.status_code == 200
    assert "<h1>Sintering of gold nanoparticles observed in situ</h1>" in response.text


@pytest.mark.asyncio
async def test_similar_items_are_shown_nearest_first(ds):
    response = await item(ds, "file", "1")
    similar = response.text.split('id="similar"', 1)[1]
    assert cards(similar)[:2] == ["2", "3"]


@pytest.mark.asyncio
async def test_without_vectors_the_page_says_why_nothing_is_similar(catalog_without_vectors):
    ds = Datasette([str(catalog_without_vectors)], metadata=SETTINGS)
    response = await ds.client.get("/-/scisearch/item/plain/file/1")
    assert response.status_code == 200
    similar = response.text.split('id="similar"', 1)[1]
    assert cards(similar) == []
    assert "Nothing to compare with yet" in similar


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/-/scisearch/item/cat/file/999999", "There is no file '999999' in this catalog."),
        ("/-/scisearch/item/cat/file/" + "9" * 40, f"There is no file '{'9' * 40}' in this catalog."),
        ("/-/scisearch/item/cat/proposal/~2Fetc~2Fpasswd", "There is no proposal '/etc/passwd' in this catalog."),
        ("/-/scisearch/item/cat/video/1", "'video' is not a kind of item here"),
        ("/-/scisearch/item/nope/file/1", "There is no database called 'nope' here."),
    ],
)
async def test_an_unknown_item_is_a_404_page_with_a_message(ds, path, message):
    response = await ds.client.get(path)
    assert response.status_code == 404
    assert notes(response.text)[0].startswith(message)
    assert 'class="scisearch-form"' in response.text


@pytest.mark.asyncio
async def test_item_page_is_forbidden_to_whoever_may_not_see_its_table(catalog_path):
    restricted = {"databases": {"cat": {"tables": {"files": {"allow": {"id": "staff"}}}}}}
    ds = Datasette([str(catalog_path)], metadata=restricted)
    assert (await ds.client.get("/-/scisearch/item/cat/file/1")).status_code == 403
    assert (await ds.client.get(f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}")).status_code == 200


# -- In Datasette's own pages -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_files_table_links_each_file_name_to_its_item_page(ds):
    response = await ds.client.get("/cat/files")
    assert '<a class="scisearch-item-link" href="/-/scisearch/item/cat/file/1">Au_np_300kV_HAADF_0012.dm4</a>' in (
        response.text
    )


@pytest.mark.asyncio
async def test_proposal_and_paper_titles_link_to_their_item_pages(ds):
    proposals = await ds.client.get("/cat/proposals")
    assert f'href="/-/scisearch/item/cat/proposal/{PROPOSAL_ID}">Atomic-resolution imaging' in proposals.text
    paper = await ds.client.get("/cat/papers/10~2E5555~2Fgold~2F2019~2E1")
    assert 'href="/-/scisearch/item/cat/paper/10~2E5555~2Fgold~2F2019~2E1">Sintering of gold' in paper.text


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/", "/cat", "/cat/files", "/cat/files/1"])
async def test_datasette_pages_have_the_catalog_search_box_in_the_top_bar(ds, path):
    response = await ds.client.get(path)
    header = re.search(r"<header>.*?</header>", response.text, re.S)[0]
    assert '<form class="scisearch-nav-search" action="/-/scisearch" method="get" role="search">' in header


@pytest.mark.asyncio
async def test_with_two_catalogs_the_box_on_one_searches_that_one(catalog_path, catalog_without_vectors):
    ds = Datasette([str(catalog_path), str(catalog_without_vectors)], metadata=SETTINGS)
    page = await ds.client.get("/plain/files")
    form = re.search(r'<form class="scisearch-nav-search".*?</form>', page.text, re.S)[0]
    assert '<input type="hidden" name="db" value="plain">' in form
    response = await search(ds, "gold", db="plain")
    assert 'href="/-/scisearch/item/plain/file/1"' in response.text
    assert 'href="/-/scisearch/item/cat/file/1"' in (await search(ds, "gold")).text  # the first catalog


@pytest.mark.asyncio
async def test_a_datasette_without_a_catalog_has_no_search_box(tmp_path):
    sqlite_utils.Database(tmp_path / "other.db")["things"].insert({"name": "x"})
    ds = Datasette([str(tmp_path / "other.db")])
    response = await ds.client.get("/other/things")
    assert "scisearch-nav-search" not in response.text


# -- How values read ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("voltage_kv", 300.0, "300 kV"),
        ("magnification", 13.5e6, "13.5 Mx"),
        ("pixel_size_nm", 0.0125, "12.5 pm"),
        ("pixel_size_nm", 1.5, "1.5 nm"),
        ("camera_length_mm", 145.0, "145 mm"),
        ("size_bytes", 531_100, "518.7 KB"),
    ],
)
def test_values_are_shown_with_their_units(column, value, shown):
    assert format_value(column, value) == shown


def test_a_snippet_keeps_its_marks_and_nothing_else():
    snippet = safe_snippet("gold <mark>HAADF</mark> <script>alert(1)</script> &amp; more")
    assert str(snippet) == "gold <mark>HAADF</mark> &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"
