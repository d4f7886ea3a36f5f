"""Sorting results: by relevance, date, voltage or magnification, through the JSON API and the search page."""

from __future__ import annotations

import re
import urllib.parse

import pytest
import sqlite_utils

pytestmark = pytest.mark.usefixtures("hashed_words_model")  # the demo is searched by meaning too


async def search(ds, **params):
    response = await ds.client.get("/-/scisearch.json?" + urllib.parse.urlencode(params))
    return response.status_code, response.json()


def with_values(hits, fact):
    return [hit["facts"][fact] for hit in hits if hit["facts"].get(fact) is not None]


@pytest.mark.asyncio
async def test_sort_by_kv_lists_the_highest_voltage_first(ds):
    status, data = await search(ds, q="voltage<=80kV", sort="kv", per_page=100)
    voltages = with_values(data["hits"], "voltage_kv")
    assert status == 200 and data["sort"] == "kv"
    assert len(set(voltages)) > 1 and voltages == sorted(voltages, reverse=True)


@pytest.mark.asyncio
async def test_sort_by_magnification_lists_the_highest_magnification_first(ds):
    _, data = await search(ds, q="type:file", sort="magnification", per_page=100)
    magnifications = with_values(data["hits"], "magnification")
    assert len(set(magnifications)) > 1 and magnifications == sorted(magnifications, reverse=True)


@pytest.mark.asyncio
async def test_sort_by_date_lists_the_newest_file_first(ds):
    _, data = await search(ds, q="gold", type="file", sort="date", per_page=50)
    days = with_values(data["hits"], "acquired_local")
    assert len(set(days)) > 1 and days == sorted(days, reverse=True)


@pytest.mark.asyncio
async def test_a_sorted_search_finds_the_same_items_as_by_relevance(ds):
    _, by_relevance = await search(ds, q="gold", type="file", per_page=100)
    _, by_kv = await search(ds, q="gold", type="file", sort="magnification", per_page=100)
    assert by_relevance["sort"] == "relevance" and by_kv["total"] == by_relevance["total"]
    assert {h["item_id"] for h in by_kv["hits"]} == {h["item_id"] for h in by_relevance["hits"]}
    assert [h["item_id"] for h in by_kv["hits"]] != [h["item_id"] for h in by_relevance["hits"]]


@pytest.mark.asyncio
async def test_items_without_the_sorted_value_follow_those_with_it(ds):
    _, data = await search(ds, q="gold", sort="kv", per_page=100)
    has_voltage = [hit["facts"].get("voltage_kv") is not None for hit in data["hits"]]
    assert True in has_voltage and False in has_voltage
    assert has_voltage == sorted(has_voltage, reverse=True)


@pytest.mark.asyncio
async def test_an_unknown_sort_is_a_400_that_names_the_known_ones(ds):
    status, data = await search(ds, q="gold", sort="colour")
    assert status == 400 and data["ok"] is False
    assert "colour" in data["error"] and "magnification" in data["error"]


@pytest.mark.asyncio
async def test_the_search_page_offers_each_order_as_a_link_and_marks_the_current_one(ds):
    response = await ds.client.get("/-/scisearch?q=gold&sort=kv")
    html = response.text
    assert response.status_code == 200
    assert '<span class="current" aria-current="true">Voltage</span>' in html
    assert 'data-sort="magnification"' in html and "sort=magnification" in html
    assert "sort=kv" in html.split("scisearch-pagination")[1] if "scisearch-pagination" in html else True


@pytest.mark.asyncio
async def test_the_search_page_explains_an_unknown_order_and_shows_the_most_relevant(ds):
    response = await ds.client.get("/-/scisearch?q=gold&sort=colour")
    assert response.status_code == 200
    assert "no &#39;colour&#39; order" in response.text or "no 'colour' order" in response.text


# -- Facets people can read ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_proposal_facet_values_carry_their_titles(ds, demo_path):
    _, data = await search(ds, q="gold")
    proposals = data["facets"]["proposal"]
    titles = dict(sqlite_utils.Database(demo_path).execute("select id, title from proposals").fetchall())
    assert proposals and all(entry["label"] == titles[entry["value"]] for entry in proposals)


@pytest.mark.asyncio
async def test_the_search_page_labels_a_proposal_by_its_title_and_keeps_its_id_as_detail(ds, demo_path):
    _, data = await search(ds, q="gold")
    entry = data["facets"]["proposal"][0]
    html = (await ds.client.get("/-/scisearch?q=gold")).text
    facet = html.split('data-facet="proposal"', 1)[1].split("</section>", 1)[0]
    assert entry["label"] in facet.replace("&#39;", "'")
    assert f'<span class="scisearch-facet-detail">{entry["value"]}</span>' in facet


@pytest.mark.asyncio
async def test_an_active_proposal_filter_shows_as_a_chip_with_its_title(ds):
    _, data = await search(ds, q="gold")
    entry = data["facets"]["proposal"][0]
    filtered = urllib.parse.urlencode({"q": "gold", "proposal": entry["value"]})
    html = (await ds.client.get("/-/scisearch?" + filtered)).text
    chips = html.split('class="scisearch-chips scisearch-filter-chips"', 1)[1].split("</ul>", 1)[0]
    assert f"proposal: {entry['label']}" in chips.replace("&#39;", "'")
    assert "Remove this filter" in chips


@pytest.mark.asyncio
async def test_each_facet_keeps_its_own_heading_beside_labelled_values(ds):
    html = (await ds.client.get("/-/scisearch?q=gold")).text
    headings = dict(re.findall(r'data-facet="(\w+)">\s*<h2>([^<]*)</h2>', html))
    assert headings["instrument"] == "Instrument" and headings["proposal"] == "Proposal"


# -- The table view --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_table_view_lists_the_same_results_with_their_values_and_units(ds):
    previews = (await ds.client.get("/-/scisearch?q=type:file&sort=kv")).text
    table = (await ds.client.get("/-/scisearch?q=type:file&sort=kv&view=table")).text
    in_order = re.findall(r'<article class="scisearch-card" data-item-type="file" data-item-id="(\d+)"', previews)
    rows = re.findall(r'<tr data-item-type="file" data-item-id="(\d+)"', table)
    assert rows and rows == in_order
    first_row = table.split(f'data-item-id="{rows[0]}"', 1)[1].split("</tr>", 1)[0]
    assert re.search(r"<td>\d+ kV</td>", first_row) and re.search(r"<td>\d{4}-\d\d-\d\d</td>", first_row)


@pytest.mark.asyncio
async def test_the_table_view_is_kept_by_sorting_and_paging_links(ds):
    html = (await ds.client.get("/-/scisearch?q=type:file&view=table")).text
    sort_links = re.findall(r'href="([^"]*)" data-sort="', html)
    assert sort_links and all("view=table" in html_link for html_link in sort_links)
    assert "view=table" in re.search(r'rel="next" href="([^"]*)"', html)[1]
    assert '<span class="current" aria-current="true">Table</span>' in html
