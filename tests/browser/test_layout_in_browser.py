"""The main pages at a laptop's 1280 px and a phone's 375 px, in headless Chromium: no sideways scroll, results
before filters on a phone, filters in a drawer there, and a rejected tag not shown as accepted.

Each page is saved as a full-page screenshot under build/screenshots/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import pytest

from .conftest import NOT_FOUND_PAGE, SCREENSHOTS

MAIN_PAGES = {
    "search": "/-/scisearch",
    "results": "/-/scisearch?q=gold+nanoparticles",
    "results-filtered-sorted": "/-/scisearch?q=gold&instrument=TEAM+0.5&sort=magnification",
    "results-table": "/-/scisearch?q=gold&view=table",  # the table view scrolls inside its own box
    "browse": "/-/scisearch?q=&page=2",  # browsing everything, a later page
    "file": "/-/scisearch/item/demo/file/22",
    "spectrum": "/-/scisearch/item/demo/file/44",  # an EDS spectrum (.msa), plotted in keV
    "spectrum-image": "/-/scisearch/item/demo/file/41",  # an EELS spectrum image: its summed spectrum
    "stack": "/-/scisearch/item/demo/file/28",  # an in-situ series: a slider through its frames
    "proposal": "/-/scisearch/item/demo/proposal/P-2021-0042",
    "paper": "/-/scisearch/item/demo/paper/PUB-2022-001",
    "not-found": NOT_FOUND_PAGE,
}


@pytest.mark.parametrize("name", list(MAIN_PAGES))
def test_no_main_page_scrolls_sideways(sized_page, name):
    screen, width, page = sized_page
    response = page.goto(MAIN_PAGES[name])
    assert response.status == (404 if name == "not-found" else 200)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{screen}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("name", ["spectrum", "stack"])
def test_on_a_phone_the_spectrum_plot_and_the_frame_slider_fit_the_screen_and_work(browser, server_url, name):
    context = browser.new_context(viewport={"width": 375, "height": 800}, base_url=server_url)
    page = context.new_page()
    page.goto(MAIN_PAGES[name])
    shown = page.locator(".scisearch-spectrum" if name == "spectrum" else ".scisearch-frames")
    box = shown.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375 and box["width"] > 250
    if name == "stack":
        slider = page.locator("input[name=frame]")
        label = page.locator(".scisearch-frame-label")
        first = label.inner_text()
        slider.focus()
        page.keyboard.press("End")
        assert label.inner_text() != first and slider.bounding_box()["x"] + slider.bounding_box()["width"] <= 375
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    context.close()


def test_on_a_phone_the_results_come_before_the_filters_which_open_as_a_drawer(browser, server_url):
    context = browser.new_context(viewport={"width": 375, "height": 800}, base_url=server_url)
    page = context.new_page()
    page.goto("/-/scisearch?q=gold+nanoparticles")
    results_top = page.locator(".scisearch-results").bounding_box()["y"]
    drawer = page.locator(".scisearch-filters")
    summary = drawer.locator("> summary")
    assert summary.bounding_box()["y"] > results_top
    assert not drawer.evaluate("details => details.open")
    assert not page.locator(".scisearch-facet[data-facet=instrument]").is_visible()
    summary.click()
    assert page.locator(".scisearch-facet[data-facet=instrument]").is_visible()
    context.close()


def test_on_a_laptop_the_filters_are_a_sidebar_beside_the_results(page):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/-/scisearch?q=gold+nanoparticles")
    assert page.locator(".scisearch-facet[data-facet=instrument]").is_visible()
    assert not page.locator(".scisearch-filters > summary").is_visible()
    facets, results = (
        page.locator(".scisearch-facets").bounding_box(),
        page.locator(".scisearch-results").bounding_box(),
    )
    assert facets["x"] + facets["width"] <= results["x"]


def test_a_rejected_tag_is_not_shown_in_the_colour_of_an_accepted_one(page):
    page.goto("/-/scisearch/item/demo/file/22")
    colours = page.evaluate(
        """() => {
            const chip = document.createElement('ul');
            const status = (name) =>
                `<li class="scisearch-tag status-${name}"><span class="scisearch-tag-status">${name}</span></li>`;
            chip.innerHTML = status('accepted') + status('rejected');
            document.querySelector('.scisearch-tags').appendChild(chip);
            const [accepted, rejected] = chip.querySelectorAll('.scisearch-tag-status');
            return [getComputedStyle(accepted).color, getComputedStyle(rejected).color];
        }"""
    )
    accepted, rejected = colours
    assert accepted != rejected
    red, green, _ = (int(part) for part in rejected[rejected.index("(") + 1 : -1].split(","))
    assert red > green
