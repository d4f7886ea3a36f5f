"""A researcher's path through the search pages, in headless Chromium against the served demo facility."""

from __future__ import annotations

import re
import urllib.parse

PREVIEW_LOADED = "img => img.complete && img.naturalWidth > 0"


def search_for(page, query: str) -> None:
    page.goto("/-/scisearch")
    page.fill(".scisearch-q", query)
    with page.expect_navigation():
        page.press(".scisearch-q", "Enter")


def card_facts(page) -> list[str]:
    return page.locator(".scisearch-card .scisearch-facts").all_inner_texts()


def test_typing_a_query_shows_files_with_their_previews(page):
    search_for(page, "gold nanoparticles")
    assert "q=gold+nanoparticles" in page.url
    first = page.locator(".scisearch-card img").first
    first.wait_for()
    page.wait_for_function(f"() => ({PREVIEW_LOADED})(document.querySelector('.scisearch-card img'))")
    assert first.evaluate("img => img.naturalWidth") > 16
    assert any("TEAM 0.5" in facts for facts in card_facts(page))


def test_proposals_and_papers_show_with_highlighted_words(page):
    search_for(page, "gold nanoparticles")
    assert page.locator(".scisearch-row[data-item-type=paper]").count() >= 1
    assert page.locator(".scisearch-snippet mark").first.inner_text().lower() in {"gold", "nanoparticles"}


def test_a_facet_value_narrows_the_results_and_its_chip_removes_it(page):
    search_for(page, "image")
    themis = page.locator(".scisearch-facet[data-facet=instrument] a", has_text="Themis")
    expected = int(themis.locator(".scisearch-count").inner_text())
    with page.expect_navigation():
        themis.click()
    chip = page.locator(".scisearch-filter-chips a")
    assert chip.inner_text().startswith("instrument: Themis")
    assert all("Themis" in facts for facts in card_facts(page))
    assert page.locator(".scisearch-summary").inner_text().split(" in ")[0].endswith(f"of {expected}")
    with page.expect_navigation():
        chip.click()
    assert page.locator(".scisearch-filter-chips").count() == 0
    assert any("Themis" not in facts for facts in card_facts(page))


def test_the_images_tab_shows_only_preview_cards(page):
    search_for(page, "gold")
    with page.expect_navigation():
        page.locator(".scisearch-tabs a", has_text="Images").click()
    assert "type=file" in page.url
    assert page.locator(".scisearch-card").count() > 0
    assert page.locator(".scisearch-row").count() == 0


def test_opening_a_result_shows_its_preview_metadata_and_tags(page):
    search_for(page, "HAADF")
    title = page.locator(".scisearch-card-title a").first
    name = title.inner_text()
    with page.expect_navigation():
        title.click()
    assert page.locator("h1").inner_text() == name
    page.wait_for_function(f"() => ({PREVIEW_LOADED})(document.querySelector('.scisearch-item-preview img'))")
    # The viewer's canvas replaces the image once it has loaded (test_viewer_in_browser.py).
    preview = page.locator(".scisearch-item-preview canvas")
    preview.wait_for()
    assert preview.bounding_box()["width"] >= 300  # large, not a thumbnail
    assert page.locator(".scisearch-columns dt", has_text="Voltage").count() == 1
    assert page.locator(".scisearch-tag-group").count() >= 2
    assert page.locator(".scisearch-tag .scisearch-score span").count() > 0


def test_raw_metadata_unfolds_on_click(page):
    search_for(page, "HAADF")
    with page.expect_navigation():
        page.locator(".scisearch-card-title a").first.click()
    raw = page.locator(".scisearch-metadata pre")
    assert not raw.is_visible()
    page.locator(".scisearch-metadata summary").click()
    assert raw.is_visible()
    assert raw.inner_text().lstrip().startswith("{")


def test_more_like_this_leads_to_similar_items_that_open_in_turn(page):
    search_for(page, "HAADF")
    with page.expect_navigation():
        page.locator(".scisearch-more-like-this").first.click()
    assert page.url.endswith("#similar")
    first_item = page.url.split("#")[0]
    similar = page.locator("#similar .scisearch-card-title a")
    assert similar.count() >= 3
    with page.expect_navigation():
        similar.first.click()
    assert page.url != first_item
    assert page.locator("#similar .scisearch-card").count() >= 3


def test_a_proposal_page_shows_its_files_and_papers(page):
    search_for(page, "gold")
    with page.expect_navigation():
        page.locator(".scisearch-row[data-item-type=proposal] h3 a").first.click()
    assert page.locator(".scisearch-item-files .scisearch-card").count() > 0
    assert page.locator(".scisearch-context .scisearch-linked", has_text="Paper").count() > 0


def test_the_search_box_in_datasettes_top_bar_searches_the_catalog(page):
    page.goto("/demo/files_public")  # the demo holds a proposal under its period: visitors browse this view
    box = page.locator("header .scisearch-nav-search input")
    box.fill("diffraction")
    with page.expect_navigation():
        box.press("Enter")
    assert urllib.parse.urlparse(page.url).path == "/-/scisearch"
    assert page.locator(".scisearch-card").count() > 0


def test_a_file_in_datasettes_table_links_to_its_item_page(page):
    page.goto("/demo/files_public")  # the demo holds a proposal under its period: visitors browse this view
    link = page.locator("a.scisearch-item-link").first
    name = link.inner_text()
    with page.expect_navigation():
        link.click()
    assert re.search(r"/-/scisearch/item/demo/file/\d+$", page.url)
    assert page.locator("h1").inner_text().startswith(name)


def test_slash_puts_the_cursor_in_the_search_box(page):
    page.goto("/-/scisearch/item/demo/file/1")
    page.locator("body").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.classList.contains('scisearch-q')")


def test_pages_fit_a_laptop_screen_without_scrolling_sideways(page):
    for path in [
        "/-/scisearch",
        "/-/scisearch?q=gold",
        "/-/scisearch?q=gold&type=file",
        "/-/scisearch/item/demo/file/1",
    ]:
        page.goto(path)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= page.viewport_size["width"], path


def test_bad_input_is_a_message_in_the_page(page):
    for path, status in [
        ("/-/scisearch?q=" + "x" * 10_000, 400),
        ("/-/scisearch?q=gold&page=-5", 200),
        ("/-/scisearch?q=%F0%9F%94%AC%20gold", 200),
        ("/-/scisearch/item/demo/file/999999", 404),
    ]:
        response = page.goto(path)
        assert response.status == status, path
        assert page.locator(".scisearch-form").count() == 1, path
        assert "Traceback" not in page.content()
    assert "no file '999999'" in page.locator(".scisearch-error").inner_text()
