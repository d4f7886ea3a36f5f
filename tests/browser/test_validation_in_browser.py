"""Experts validating tags in headless Chromium: sign in with Datasette's root link, accept, reject and add tags,
see search change, drive it all from the keyboard; an anonymous visitor sees no controls and cannot post.

This module serves its own copy of the demo catalog (its changes must not reach the search tests) with
``--root``, and signs in the way `scisearch serve --root` tells a person to: by opening the printed link.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from .conftest import LAPTOP_SCREEN, serving

ROOT_LINK = re.compile(r"http://\S+/-/auth-token\?token=\w+")


@pytest.fixture(scope="module")
def expert_server(demo_catalog, tmp_path_factory):
    """The demo catalog served with --root: (base URL, the one-time sign-in link Datasette printed)."""
    folder = tmp_path_factory.mktemp("validation")
    catalog = folder / "demo.db"
    shutil.copy(demo_catalog, catalog)
    log = folder / "datasette.log"
    with serving(catalog, log, "--root") as url:
        deadline = time.monotonic() + 10
        while not ROOT_LINK.search(log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        link = ROOT_LINK.search(log.read_text())
        assert link, f"datasette --root printed no sign-in link:\n{log.read_text()[-2000:]}"
        yield url, link[0]


@pytest.fixture(scope="module")
def root_cookies(browser, expert_server):
    """Sign in once through the printed link (its token works once) and keep the cookie for every test."""
    url, link = expert_server
    context = browser.new_context(base_url=url)
    page = context.new_page()
    page.goto(link)
    cookies = [cookie for cookie in context.cookies() if cookie["name"] == "ds_actor"]
    context.close()
    assert cookies, "opening the --root link did not sign in"
    return cookies


def _new_page(browser, url, cookies):
    context = browser.new_context(viewport=LAPTOP_SCREEN, base_url=url)
    if cookies:
        context.add_cookies(cookies)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


@pytest.fixture
def expert(browser, expert_server, root_cookies):
    context, page, errors = _new_page(browser, expert_server[0], root_cookies)
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def visitor(browser, expert_server):
    context, page, errors = _new_page(browser, expert_server[0], None)
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def found(page, query: str) -> list[str]:
    response = page.request.get("/-/scisearch.json", params={"q": query, "per_page": "100"})
    assert response.ok
    return [hit["item_id"] for hit in response.json()["hits"]]


def machine_chip(page):
    """A machine tag whose text no other tag of the item has, located by its id (a locator by status would
    move on to the next machine tag once this one changes)."""
    tag_id = page.evaluate(
        """() => {
            const chips = [...document.querySelectorAll('.scisearch-tag[data-tag-id]')];
            const count = text => chips.filter(c => c.dataset.tag.toLowerCase() === text.toLowerCase()).length;
            return chips.find(c => c.dataset.status === 'machine' && count(c.dataset.tag) === 1).dataset.tagId;
        }"""
    )
    return page.locator(f'.scisearch-tag[data-tag-id="{tag_id}"]')


def open_item(page, item_id: str = "1"):
    page.goto(f"/-/scisearch/item/demo/file/{item_id}")
    page.wait_for_function("() => document.querySelectorAll('.scisearch-tag-form').length > 0")


def test_the_printed_root_link_signs_an_expert_in_and_the_item_page_offers_controls(expert):
    open_item(expert)
    assert expert.locator(".scisearch-add-tag input[name=text]").is_visible()
    assert expert.locator(".scisearch-tag .scisearch-accept").count() > 0
    assert expert.locator(".scisearch-sign-in-hint").count() == 0


def test_rejecting_a_tag_in_the_page_stops_it_matching_searches(expert):
    open_item(expert, "2")
    chip = machine_chip(expert)
    text = chip.get_attribute("data-tag")
    assert "2" in found(expert, f'tag:"{text}"')
    chip.locator(".scisearch-reject").click()
    expert.wait_for_function(
        "id => document.querySelector(`.scisearch-tag[data-tag-id=\"${id}\"]`).dataset.status === 'rejected'",
        arg=chip.get_attribute("data-tag-id"),
    )
    assert "Rejected" in expert.locator(".scisearch-validate-status").inner_text()
    assert "2" not in found(expert, f'tag:"{text}"')


def test_accepting_a_tag_is_kept_with_its_history_after_a_reload(expert):
    open_item(expert, "3")
    chip = machine_chip(expert)
    tag_id = chip.get_attribute("data-tag-id")
    chip.locator(".scisearch-accept").click()
    selector = f'.scisearch-tag[data-tag-id="{tag_id}"]'
    expert.wait_for_selector(f"{selector}[data-status=accepted]")
    expert.reload()
    assert expert.locator(selector).get_attribute("data-status") == "accepted"
    history = expert.locator(f"{selector} .scisearch-tag-history")
    history.locator("summary").click()
    assert re.search(r"root accept: “?machine”? → “?accepted", history.inner_text())


def test_an_added_tag_makes_the_item_findable_from_the_search_page(expert):
    open_item(expert, "4")
    field = expert.locator(".scisearch-add-tag input[name=text]")
    field.fill("zebra-striped moiré")
    field.press("Enter")
    expert.wait_for_selector('.scisearch-tag[data-status=added][data-tag="zebra-striped moiré"]')
    expert.goto("/-/scisearch?q=moiré")
    titles = expert.locator(".scisearch-card[data-item-id='4']")
    assert titles.count() == 1


def test_keyboard_shortcuts_accept_reject_add_and_show_help(expert):
    open_item(expert, "5")
    expert.evaluate("document.activeElement.blur()")
    expert.keyboard.press("j")
    first = expert.locator(".scisearch-tag.is-current")
    first_id = first.get_attribute("data-tag-id")
    expert.keyboard.press("a")
    expert.wait_for_selector(f'.scisearch-tag[data-tag-id="{first_id}"][data-status=accepted]')
    expert.keyboard.press("j")
    second_id = expert.locator(".scisearch-tag.is-current").get_attribute("data-tag-id")
    assert second_id != first_id
    expert.keyboard.press("r")
    expert.wait_for_selector(f'.scisearch-tag[data-tag-id="{second_id}"][data-status=rejected]')
    expert.keyboard.press("e")
    assert expert.evaluate("document.activeElement.name") == "text"
    expert.keyboard.press("Escape")
    expert.keyboard.press("n")
    assert expert.evaluate("document.activeElement.closest('.scisearch-add-tag') !== null")
    expert.keyboard.type("keyboard-added")
    expert.keyboard.press("Enter")
    expert.wait_for_selector('.scisearch-tag[data-tag="keyboard-added"]')
    expert.keyboard.press("Escape")
    expert.keyboard.press("?")
    assert expert.locator(".scisearch-keys-help").is_visible()
    expert.keyboard.press("Escape")
    assert expert.locator(".scisearch-keys-help").count() == 0


def test_the_queue_accepts_one_tag_across_selected_items_from_the_keyboard(expert):
    expert.goto("/-/scisearch/queue/demo")
    cards = expert.locator(".scisearch-queue-card")
    assert cards.count() >= 2
    assert expert.locator(".scisearch-queue-reason").first.inner_text()
    text = cards.nth(0).locator(".scisearch-queue-tags li").first.get_attribute("data-tag")
    matching = expert.locator(
        ".scisearch-queue-card", has=expert.locator(f'.scisearch-queue-tags li[data-tag="{text}"]')
    )
    assert matching.count() >= 1
    for index in range(min(3, matching.count())):
        matching.nth(index).locator("input[name=item]").check()
    expert.locator("#scisearch-bulk input[name=tag]").fill(text)
    expert.evaluate("document.activeElement.blur()")
    expert.keyboard.press("a")
    expert.wait_for_selector(".scisearch-queue-card.is-done")
    assert expert.locator(".scisearch-validate-status").inner_text().startswith(f"Accepted '{text}'")
    item_id = expert.locator(".scisearch-queue-card.is-done").first.get_attribute("data-item-id")
    detail = expert.request.get(f"/-/scisearch/item/demo/file/{item_id}.json").json()
    statuses = {tag["status"] for group in detail["tags"].values() for tag in group if tag["tag"] == text}
    assert statuses == {"accepted"}


def test_an_anonymous_visitor_sees_no_edit_controls_and_a_forged_post_is_refused(visitor):
    visitor.goto("/-/scisearch/item/demo/file/1")
    assert visitor.locator(".scisearch-tag").count() > 0
    assert visitor.locator(".scisearch-tag-form").count() == 0
    assert "Sign in as an expert" in visitor.locator(".scisearch-sign-in-hint").inner_text()
    tag_id = visitor.locator(".scisearch-tag[data-tag-id]").first.get_attribute("data-tag-id")
    forged = visitor.request.post(f"/-/scisearch/tags/demo/{tag_id}", form={"action": "reject"})
    assert forged.status == 403
    assert visitor.request.get(f"/-/scisearch/tags/demo/{tag_id}.json").json()["tag"]["status"] != "rejected"


def test_a_signed_in_post_without_the_csrf_token_is_refused(expert):
    open_item(expert)
    tag_id = expert.locator(".scisearch-tag[data-tag-id]").first.get_attribute("data-tag-id")
    before = expert.request.get(f"/-/scisearch/tags/demo/{tag_id}.json").json()["tag"]["status"]
    forged = expert.request.post(f"/-/scisearch/tags/demo/{tag_id}", form={"action": "reject"})
    assert forged.status == 403
    assert expert.request.get(f"/-/scisearch/tags/demo/{tag_id}.json").json()["tag"]["status"] == before


def test_a_queue_card_accepts_one_of_its_tags_with_its_own_button(expert):
    expert.goto("/-/scisearch/queue/demo")
    chip = expert.locator(".scisearch-queue-card .scisearch-queue-tags li[data-tag-id]").first
    tag_id = chip.get_attribute("data-tag-id")
    chip.locator(".scisearch-accept").click()
    expert.wait_for_selector(f'.scisearch-queue-tags li[data-tag-id="{tag_id}"].status-accepted')
    assert expert.locator(".scisearch-validate-status").inner_text().startswith("Accepted")
    assert expert.locator("#scisearch-bulk input[name=item]:checked").count() == 0


def test_a_bulk_accept_in_the_queue_is_undone_with_one_button(expert):
    expert.goto("/-/scisearch/queue/demo")
    cards = expert.locator(".scisearch-queue-card")
    text = cards.nth(0).locator(".scisearch-queue-tags li").first.get_attribute("data-tag")
    matching = expert.locator(
        ".scisearch-queue-card", has=expert.locator(f'.scisearch-queue-tags li[data-tag="{text}"]')
    )
    for index in range(min(2, matching.count())):
        matching.nth(index).locator("input[name=item]").check()
    expert.locator("#scisearch-bulk input[name=tag]").fill(text)
    expert.locator("#scisearch-bulk button[value=accept]").click()
    expert.wait_for_selector(".scisearch-queue-card.is-done")
    undo = expert.locator("#scisearch-bulk-undo")
    assert undo.is_visible()
    item_id = expert.locator(".scisearch-queue-card.is-done").first.get_attribute("data-item-id")
    undo.locator("button").click()
    expert.wait_for_function("() => document.querySelectorAll('.scisearch-queue-card.is-done').length === 0")
    assert expert.locator(".scisearch-validate-status").inner_text().startswith("Undid")
    detail = expert.request.get(f"/-/scisearch/item/demo/file/{item_id}.json").json()
    statuses = {tag["status"] for group in detail["tags"].values() for tag in group if tag["tag"] == text}
    assert "accepted" not in statuses


def test_without_javascript_a_bulk_accept_is_undone_from_the_page_it_returns_to(browser, expert_server, root_cookies):
    context = browser.new_context(viewport=LAPTOP_SCREEN, base_url=expert_server[0], java_script_enabled=False)
    context.add_cookies(root_cookies)
    page = context.new_page()
    page.goto("/-/scisearch/queue/demo")
    text = page.locator(".scisearch-queue-card .scisearch-queue-tags li").first.get_attribute("data-tag")
    matching = page.locator(".scisearch-queue-card", has=page.locator(f'.scisearch-queue-tags li[data-tag="{text}"]'))
    items = [matching.nth(index).get_attribute("data-item-id") for index in range(min(2, matching.count()))]
    for index in range(len(items)):
        matching.nth(index).locator("input[name=item]").check()
    page.locator("#scisearch-bulk input[name=tag]").fill(text)
    page.locator("#scisearch-bulk button[value=accept]").click()  # a plain form post, then the queue again
    assert re.search(r"[?&]undo=\d+-\d+", page.url)

    def statuses() -> set[str]:
        found = set()
        for item_id in items:
            detail = page.request.get(f"/-/scisearch/item/demo/file/{item_id}.json").json()
            found |= {tag["status"] for group in detail["tags"].values() for tag in group if tag["tag"] == text}
        return found

    assert "accepted" in statuses()
    undo = page.locator("#scisearch-bulk-undo")
    assert undo.is_visible()
    undo.locator("button").click()
    assert "undo=" not in page.url and "accepted" not in statuses()
    context.close()
