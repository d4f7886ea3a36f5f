"""The search page of a hub in Chromium: two facilities' results on one page, then one stopped.

Screenshots go to build/screenshots/hub-*.png (ignored by git) for a person to look at.
"""

from __future__ import annotations

import urllib.parse

from ..conftest import REPO
from ..test_hub import QUERY, catalogs, metadata_with_hub, serving  # noqa: F401 (catalogs is a fixture)
from .conftest import LAPTOP_SCREEN, WIDTHS

SCREENSHOTS = REPO / "build" / "screenshots"


def test_the_page_shows_both_facilities_and_a_notice_once_one_stops(browser, catalogs, tmp_path):  # noqa: F811
    metadata_with_hub(tmp_path / "east.yml", None)
    with serving(catalogs["east"], tmp_path / "east.yml") as (east, east_server):
        block = {"name": "west", "facilities": [{"name": "sunrise", "url": east, "timeout_seconds": 20}]}
        metadata_with_hub(tmp_path / "west.yml", block)
        with serving(catalogs["west"], tmp_path / "west.yml") as (west, _):
            context = browser.new_context(viewport=LAPTOP_SCREEN)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            address = west + "-/scisearch?" + urllib.parse.urlencode({"q": QUERY, "facilities": "all"})
            page.goto(address)
            theirs = page.locator('[title="facility"]', has_text="sunrise")
            assert theirs.count() == 2 and page.locator(".scisearch-facility-notice").count() == 0
            link = page.locator(f'a[href^="{east}-/scisearch/item/east/file/"]')
            assert link.count() >= 2
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "hub-both.png"), full_page=True)

            east_server.terminate()
            east_server.wait(timeout=10)
            page.goto(address)
            notice = page.locator(".scisearch-facility-notice")
            assert notice.count() == 1 and "Facility sunrise (" in notice.inner_text()
            assert "refused the connection" in notice.inner_text() and notice.is_visible()
            assert page.locator('[title="facility"]', has_text="sunrise").count() == 0
            assert "Also searched: sunrise (no answer)." in page.locator(".scisearch-facilities").inner_text()
            assert page.locator("article[data-item-type]").count() == 12
            page.screenshot(path=str(SCREENSHOTS / "hub-one-stopped.png"), full_page=True)
            context.close()
            assert not errors, f"JavaScript errors in the page: {errors}"


def test_on_a_phone_the_hub_notices_fit_without_sideways_scroll(browser, catalogs, tmp_path):  # noqa: F811
    # Two facilities that do not answer: a closed port (refused at once) and an address that is no URL's.
    gone = [{"name": "sunrise", "url": "http://127.0.0.1:9/"}, {"name": "a-facility-with-a-very-long-name-" * 3,
            "url": "http://127.0.0.1:9/" + "long-path-segment-without-breaks" * 4 + "/"}]  # fmt: skip
    metadata_with_hub(tmp_path / "west.yml", {"name": "west", "facilities": gone})
    with serving(catalogs["west"], tmp_path / "west.yml") as (west, _):
        context = browser.new_context(viewport={"width": WIDTHS["phone"], "height": 800})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(west + "-/scisearch?" + urllib.parse.urlencode({"q": QUERY, "facilities": "all"}))
        notices = page.locator(".scisearch-facility-notice")
        assert notices.count() == 2 and notices.first.is_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "hub-notices-phone.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS["phone"]
        context.close()
        assert not errors, f"JavaScript errors in the page: {errors}"
