"""The results view in Chromium: sorting, the one-line why that opens, facets by title, previous / next through the
results from an item page, and the review queue's count; at a laptop's 1280 px and a phone's 375 px."""

from __future__ import annotations

from .conftest import SCREENSHOTS


def screenshot(page, name: str, screen: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{screen}.png"), full_page=True)


def voltages_shown(page) -> list[float]:
    facts = page.locator(".scisearch-results .scisearch-facts").all_inner_texts()
    return [float(part.split(" kV")[0].split(" · ")[-1]) for part in facts if " kV" in part]


def test_choosing_voltage_orders_the_files_highest_kv_first(sized_page):
    screen, width, page = sized_page
    page.goto("/-/scisearch?q=type:file")
    page.click(".scisearch-sort a[data-sort=kv]")
    assert "sort=kv" in page.url
    assert page.locator("nav[aria-label='Sort by'] .current").inner_text() == "Voltage"
    shown = voltages_shown(page)
    assert len(shown) > 3 and shown == sorted(shown, reverse=True)
    screenshot(page, "sorted-by-kv", screen)
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_the_why_line_opens_to_every_reason(sized_page):
    screen, width, page = sized_page
    page.goto("/-/scisearch?q=gold+nanoparticles")
    why = page.locator(".scisearch-results .scisearch-why").first
    assert why.locator("summary").inner_text().startswith("Matched ")
    assert not why.locator("li").first.is_visible()
    why.locator("summary").click()
    assert why.locator("li").first.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_a_proposal_facet_shows_titles_and_its_chip_removes_the_filter(sized_page):
    screen, width, page = sized_page
    page.goto("/-/scisearch?q=gold")
    if screen == "phone":
        page.click(".scisearch-filters > summary")
    value = page.locator(".scisearch-facet[data-facet=proposal] li a").first
    label = value.locator(".scisearch-facet-label").inner_text()
    proposal_id = value.locator(".scisearch-facet-detail").inner_text()
    assert proposal_id.startswith("P-") and len(label) > len(proposal_id) + 5
    value.click()
    chip = page.locator(".scisearch-filter-chips a").first
    assert chip.inner_text().startswith("proposal: ") and proposal_id not in chip.inner_text()
    screenshot(page, "proposal-chip", screen)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    chip.click()
    assert page.locator(".scisearch-filter-chips").count() == 0


def test_an_item_opened_from_the_results_steps_to_the_next_and_previous_result(sized_page):
    screen, width, page = sized_page
    page.goto("/-/scisearch?q=gold")
    titles = page.locator(".scisearch-results article[data-item-id] h3 a").all_inner_texts()
    page.locator(".scisearch-results article[data-item-id] h3 a").nth(1).click()
    nav = page.locator(".scisearch-result-nav")
    page.wait_for_selector(".scisearch-result-nav:not([hidden])")
    assert page.locator("h1").inner_text() == titles[1] and "2 of" in nav.inner_text()
    screenshot(page, "item-from-results", screen)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    with page.expect_navigation():
        nav.locator('a[rel="next"]').click()
    page.wait_for_selector(".scisearch-result-nav:not([hidden])")
    assert page.locator("h1").inner_text() == titles[2] and "3 of" in nav.inner_text()
    with page.expect_navigation():
        page.keyboard.press("ArrowLeft")
    assert page.locator("h1").inner_text() == titles[1]
    page.wait_for_selector(".scisearch-result-nav:not([hidden])")
    with page.expect_navigation():
        nav.locator("text=Back to results").click()
    assert "q=gold" in page.url


def test_an_item_opened_from_elsewhere_offers_no_previous_or_next(page):
    page.goto("/-/scisearch/item/demo/file/22")
    assert not page.locator(".scisearch-result-nav").is_visible()


def test_the_queue_says_how_many_items_await_review(sized_page):
    screen, width, page = sized_page
    page.goto("/-/scisearch/queue/demo")
    heading = page.locator("h1 .scisearch-count").inner_text()
    position = page.locator(".scisearch-queue-position").inner_text()
    assert position.startswith("1–") and position.endswith(" of " + heading.split()[0])
    screenshot(page, "queue", screen)
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_the_table_view_shows_values_side_by_side_without_widening_the_page(sized_page):
    screen, width, page = sized_page
    page.goto("/-/scisearch?q=type:file&sort=kv")
    page.click(".scisearch-layouts a:text('Table')")
    assert "view=table" in page.url
    first_row = page.locator(".scisearch-table tbody tr").first
    assert " kV" in first_row.inner_text()
    screenshot(page, "table-view", screen)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    with page.expect_navigation():
        first_row.locator("th a").click()
    page.wait_for_selector(".scisearch-result-nav:not([hidden])")
    assert "1 of" in page.locator(".scisearch-result-nav").inner_text()
