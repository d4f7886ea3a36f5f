"""Opening a search result in headless Chromium sends the click beacon, and the served catalog counts it."""

from __future__ import annotations

import time

from datasette_scisearch.private import open_private

BEACON_SECONDS = 10


def clicks_of(catalog, search_id: int) -> list[tuple]:
    db = open_private(catalog)  # the log lives beside the catalog
    try:
        return db.execute("select position, item_id from search_clicks where search_id = ?", [search_id]).fetchall()
    finally:
        db.close()


def test_opening_a_result_sends_a_beacon_that_the_catalog_counts(page, demo_catalog):
    page.goto("/-/scisearch?q=gold")
    card = page.locator(".scisearch-card[data-scisearch-position]").nth(1)
    item_id = card.get_attribute("data-item-id")
    search_id = int(card.get_attribute("data-scisearch-search-id"))
    position = int(card.get_attribute("data-scisearch-position"))
    with page.expect_request(lambda request: "/-/scisearch/click/" in request.url) as beacon:
        with page.expect_navigation():
            card.locator(".scisearch-card-title a").click()
    assert beacon.value.method == "POST"
    assert f"position={position}&item_type=file&item_id={item_id}" in beacon.value.post_data
    # The page has moved on; the server answers the beacon in its own time.
    deadline = time.monotonic() + BEACON_SECONDS
    while not clicks_of(demo_catalog, search_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert clicks_of(demo_catalog, search_id) == [(position, item_id)]
