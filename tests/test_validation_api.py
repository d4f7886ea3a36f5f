"""Experts' tag changes over HTTP (web/validation.py) through Datasette's test client: permissions, CSRF,
bad input, bulk changes, the item and queue pages, and search changing at once."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import markupsafe
import pytest
from datasette.app import Datasette

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.learning.active import queue_count
from datasette_scisearch.tagging import experts
from datasette_scisearch.web import validation

from .conftest import REPO

EDITORS = {"id": ["root", "alice"]}
PLUGIN_SETTINGS = {"timezone": "America/Los_Angeles", "edit": {"allow": EDITORS}}
JSON = {"accept": "application/json"}


@pytest.fixture
def catalog_path(tagged_em_catalog_file, tmp_path):
    path = tmp_path / "em.db"
    shutil.copy(tagged_em_catalog_file, path)
    return path


@pytest.fixture
def ds(catalog_path):
    return Datasette([str(catalog_path)], metadata={"plugins": {"datasette-scisearch": PLUGIN_SETTINGS}})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def signed_in(ds, actor_id: str) -> dict:
    return {"ds_actor": ds.sign({"a": {"id": actor_id}}, "actor")}


async def session(ds, actor_id: str | None, item: str = "file/1") -> tuple[dict, str]:
    """Cookies and the CSRF token a browser would have after opening an item page."""
    cookies = signed_in(ds, actor_id) if actor_id else {}
    page = await ds.client.get(f"/-/scisearch/item/em/{item}", cookies=cookies)
    assert page.status_code == 200
    token = page.cookies.get("ds_csrftoken") or ds.sign("unused", "csrftoken")  # anonymous pages may not set one
    cookies = {**cookies, "ds_csrftoken": token}
    return cookies, token


def tag_id(path, item_id: str, text: str, source: str = "metadata") -> int:
    db = open_catalog(path)
    try:
        row = db.execute(
            "select id from tags where item_type = 'file' and item_id = ? and tag = ? and source = ?",
            [item_id, text, source],
        ).fetchone()
        return row[0]
    finally:
        db.close()


async def post(ds, path: str, fields: dict, cookies: dict, token: str | None, headers: dict | None = None):
    data = {**fields, **({"csrftoken": token} if token else {})}
    return await ds.client.post(path, data=data, cookies=cookies, headers=JSON if headers is None else headers)


async def found(ds, query: str) -> list[str]:
    response = await ds.client.get("/-/scisearch.json", params={"q": query, "per_page": 100})
    return [hit["item_id"] for hit in response.json()["hits"]]


@pytest.mark.asyncio
async def test_an_anonymous_visitor_cannot_change_a_tag(ds, catalog_path):
    haadf = tag_id(catalog_path, "1", "HAADF")
    response = await ds.client.post(f"/-/scisearch/tags/em/{haadf}", data={"action": "reject"}, headers=JSON)
    assert response.status_code == 403
    assert response.json() == {
        "ok": False,
        "error": "Sign in as an expert to accept, reject, edit and add tags.",
        "status": 403,
    }
    assert experts.get_tag(open_catalog(catalog_path), haadf)["status"] == "machine"


@pytest.mark.asyncio
async def test_a_signed_in_actor_without_the_edit_permission_is_refused(ds, catalog_path):
    cookies, token = await session(ds, "mallory")
    response = await post(
        ds, f"/-/scisearch/tags/em/{tag_id(catalog_path, '1', 'HAADF')}", {"action": "reject"}, cookies, token
    )
    assert response.status_code == 403
    assert "signed in as mallory" in response.json()["error"]


@pytest.mark.asyncio
async def test_a_post_without_the_csrf_token_is_refused(ds, catalog_path):
    cookies, _ = await session(ds, "root")
    response = await post(
        ds, f"/-/scisearch/tags/em/{tag_id(catalog_path, '1', 'HAADF')}", {"action": "reject"}, cookies, None
    )
    assert response.status_code == 403
    assert experts.get_tag(open_catalog(catalog_path), tag_id(catalog_path, "1", "HAADF"))["status"] == "machine"


@pytest.mark.asyncio
async def test_an_editor_accepts_a_tag_and_gets_the_tag_and_its_history_as_json(ds, catalog_path):
    cookies, token = await session(ds, "alice")
    haadf = tag_id(catalog_path, "1", "HAADF")
    response = await post(ds, f"/-/scisearch/tags/em/{haadf}", {"action": "accept"}, cookies, token)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["action"] == "accept"
    assert (body["tag"]["id"], body["tag"]["status"], body["tag"]["tag"]) == (haadf, "accepted", "HAADF")
    assert (body["history"]["actor"], body["history"]["old_value"], body["history"]["new_value"]) == (
        "alice",
        "machine",
        "accepted",
    )
    read = await ds.client.get(f"/-/scisearch/tags/em/{haadf}.json")
    assert read.json()["history"][0]["id"] == body["history"]["id"]


@pytest.mark.asyncio
async def test_a_plain_form_post_redirects_back_with_a_message(ds, catalog_path):
    cookies, token = await session(ds, "root")
    response = await post(
        ds,
        f"/-/scisearch/tags/em/{tag_id(catalog_path, '1', 'HAADF')}",
        {"action": "reject", "next": "/-/scisearch/item/em/file/1"},
        cookies,
        token,
        headers={},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/-/scisearch/item/em/file/1"
    assert "ds_messages" in response.cookies


@pytest.mark.asyncio
async def test_a_redirect_never_leaves_the_site(ds, catalog_path):
    cookies, token = await session(ds, "root")
    response = await post(
        ds,
        f"/-/scisearch/tags/em/{tag_id(catalog_path, '1', 'HAADF')}",
        {"action": "accept", "next": "//evil.example/"},
        cookies,
        token,
        headers={},
    )
    assert response.headers["location"] == "/-/scisearch/item/em/file/1"


@pytest.mark.asyncio
async def test_a_redirect_with_a_tab_that_browsers_drop_never_leaves_the_site(ds, catalog_path):
    cookies, token = await session(ds, "root")
    response = await post(
        ds,
        f"/-/scisearch/tags/em/{tag_id(catalog_path, '1', 'HAADF')}",
        {"action": "accept", "next": "/\t/evil.example/"},  # a browser reads it as //evil.example/
        cookies,
        token,
        headers={},
    )
    assert response.headers["location"] == "/-/scisearch/item/em/file/1"


def hold_write_lock(path, seconds: float) -> threading.Thread:
    """Another writer (a training run, say) holding the catalog's write lock for a while."""
    locked = threading.Event()

    def hold():
        db = open_catalog(path)
        db.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        db.conn.rollback()
        db.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait()
    return thread


@pytest.mark.asyncio
async def test_a_change_made_while_another_writer_holds_the_catalog_for_seconds_waits_and_lands(ds, catalog_path):
    cookies, token = await session(ds, "root")
    haadf = tag_id(catalog_path, "1", "HAADF")
    writer = hold_write_lock(catalog_path, 6.5)  # longer than Python's default 5 s wait for a lock
    response = await post(ds, f"/-/scisearch/tags/em/{haadf}", {"action": "accept"}, cookies, token)
    writer.join()
    assert response.status_code == 200
    assert response.json()["tag"]["status"] == "accepted"


@pytest.mark.asyncio
async def test_a_change_the_catalog_stays_too_busy_for_is_a_503_that_says_to_try_again(ds, catalog_path, monkeypatch):
    monkeypatch.setattr(validation, "BUSY_TIMEOUT_MS", 200)
    cookies, token = await session(ds, "root")
    haadf = tag_id(catalog_path, "1", "HAADF")
    writer = hold_write_lock(catalog_path, 2)
    response = await post(ds, f"/-/scisearch/tags/em/{haadf}", {"action": "accept"}, cookies, token)
    writer.join()
    assert response.status_code == 503
    assert "try again" in response.json()["error"]


@pytest.mark.asyncio
async def test_an_edit_to_an_empty_text_says_to_type_a_word(ds, catalog_path):
    cookies, token = await session(ds, "root")
    haadf = tag_id(catalog_path, "1", "HAADF")
    response = await post(ds, f"/-/scisearch/tags/em/{haadf}", {"action": "edit", "text": ""}, cookies, token)
    assert response.status_code == 400
    assert response.json()["error"] == "A tag cannot be empty: type a word or a short phrase"


@pytest.mark.asyncio
async def test_an_unknown_tag_or_item_is_404_and_a_bad_action_400(ds):
    cookies, token = await session(ds, "root")
    unknown_tag = await post(ds, "/-/scisearch/tags/em/999999", {"action": "accept"}, cookies, token)
    assert (unknown_tag.status_code, unknown_tag.json()["error"]) == (404, "There is no tag 999999 in this catalog")
    unknown_item = await post(
        ds, "/-/scisearch/tags/em/add", {"item_type": "file", "item_id": "424242", "text": "gold"}, cookies, token
    )
    assert unknown_item.status_code == 404
    assert "no file '424242'" in unknown_item.json()["error"]
    bad = await post(ds, "/-/scisearch/tags/em/1", {"action": "delete"}, cookies, token)
    assert bad.status_code == 400
    assert "Unknown action 'delete'" in bad.json()["error"]


@pytest.mark.asyncio
async def test_errors_from_a_form_post_are_readable_pages(ds):
    cookies, token = await session(ds, "root")
    response = await post(ds, "/-/scisearch/tags/em/999999", {"action": "accept"}, cookies, token, headers={})
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "There is no tag 999999 in this catalog" in response.text
    assert "Traceback" not in response.text


@pytest.mark.asyncio
async def test_a_ten_kilobyte_tag_is_refused_with_the_limit(ds):
    cookies, token = await session(ds, "root")
    response = await post(
        ds, "/-/scisearch/tags/em/add", {"item_type": "file", "item_id": "1", "text": "x" * 10_240}, cookies, token
    )
    assert response.status_code == 400
    assert "at most 200 characters; this one has 10,240" in response.json()["error"]


@pytest.mark.asyncio
async def test_an_added_tag_with_html_is_stored_as_text_and_shown_escaped(ds):
    hostile = '<script>alert("tag")</script>'
    cookies, token = await session(ds, "root")
    response = await post(
        ds, "/-/scisearch/tags/em/add", {"item_type": "file", "item_id": "1", "text": hostile}, cookies, token
    )
    assert response.json()["tag"]["tag"] == hostile
    page = await ds.client.get("/-/scisearch/item/em/file/1", cookies=cookies)
    assert hostile not in page.text
    assert str(markupsafe.escape(hostile)) in page.text


@pytest.mark.asyncio
async def test_an_added_tag_makes_the_item_findable_at_once(ds):
    assert await found(ds, "nanowires") == []
    cookies, token = await session(ds, "root")
    await post(
        ds, "/-/scisearch/tags/em/add", {"item_type": "file", "item_id": "3", "text": "nanowires"}, cookies, token
    )
    assert await found(ds, "nanowires") == ["3"]
    assert await found(ds, "tag:nanowires") == ["3"]


@pytest.mark.asyncio
async def test_a_rejected_tag_stops_matching_at_once(ds, catalog_path):
    before = await found(ds, "tag:Z-contrast")
    item_id = before[0]
    cookies, token = await session(ds, "root", f"file/{item_id}")
    result = await post(
        ds,
        "/-/scisearch/tags/em/bulk",
        {"action": "reject", "tag": "Z-contrast", "item": f"file:{item_id}"},
        cookies,
        token,
    )
    assert result.json()["changed"] >= 1
    assert item_id not in await found(ds, "tag:Z-contrast")
    assert item_id not in await found(ds, "Z-contrast")


@pytest.mark.asyncio
async def test_an_accepted_tag_ranks_above_the_same_machine_tag(ds, catalog_path):
    db = open_catalog(catalog_path)
    single = {
        r[0] for r in db.execute("select item_id from tags where tag = 'Z-contrast' group by 1 having count(*) = 1")
    }
    db.close()
    ranked = [item_id for item_id in await found(ds, "Z-contrast") if item_id in single]
    last = ranked[-1]
    cookies, token = await session(ds, "root")
    await post(
        ds, f"/-/scisearch/tags/em/{tag_id(catalog_path, last, 'Z-contrast')}", {"action": "accept"}, cookies, token
    )
    assert [item_id for item_id in await found(ds, "Z-contrast") if item_id in single][0] == last


@pytest.mark.asyncio
async def test_bulk_accept_over_selected_items_reports_changes_and_skips(ds, catalog_path):
    cookies, token = await session(ds, "root")
    response = await ds.client.post(
        "/-/scisearch/tags/em/bulk",
        content="action=accept&tag=STEM&item=file:1&item=file:10&item=file:424242&csrftoken=" + token,
        cookies=cookies,
        headers={**JSON, "content-type": "application/x-www-form-urlencoded"},
    )
    body = response.json()
    assert response.status_code == 200
    assert {(c["tag"]["item_id"], c["tag"]["status"]) for c in body["changes"]} == {
        ("1", "accepted"),
        ("10", "accepted"),
    }
    assert body["changed"] == len(body["changes"]) >= 2
    assert body["skipped"] == [{"item_type": "file", "item_id": "424242", "reason": "no such item"}]


@pytest.mark.asyncio
async def test_a_bulk_item_not_written_as_type_and_id_is_a_clear_400(ds):
    cookies, token = await session(ds, "root")
    response = await post(
        ds, "/-/scisearch/tags/em/bulk", {"action": "accept", "tag": "STEM", "item": "12"}, cookies, token
    )
    assert response.status_code == 400
    assert "write items as type:id" in response.json()["error"]


@pytest.mark.asyncio
async def test_an_edit_and_its_undo_over_http(ds, catalog_path):
    cookies, token = await session(ds, "root")
    tag = tag_id(catalog_path, "1", "Z-contrast")
    edit = await post(ds, f"/-/scisearch/tags/em/{tag}", {"action": "edit", "text": "mass contrast"}, cookies, token)
    assert edit.json()["tag"]["tag"] == "mass contrast"
    undo = await post(ds, f"/-/scisearch/history/em/{edit.json()['history']['id']}/undo", {}, cookies, token)
    assert (undo.json()["tag"]["tag"], undo.json()["history"]["action"]) == ("Z-contrast", "undo-edit")


@pytest.mark.asyncio
async def test_the_item_page_shows_editors_their_controls_and_others_a_hint(ds):
    editor = await ds.client.get("/-/scisearch/item/em/file/1", cookies=signed_in(ds, "root"))
    assert 'class="scisearch-tag-form scisearch-add-tag"' in editor.text
    assert 'value="accept"' in editor.text and "scisearch-validate.js" in editor.text
    assert re.search(r'name="csrftoken" value="[^"]+"', editor.text)
    anonymous = await ds.client.get("/-/scisearch/item/em/file/1")
    assert "scisearch-tag-form" not in anonymous.text and "scisearch-validate.js" not in anonymous.text
    assert "Sign in as an expert" in anonymous.text


@pytest.mark.asyncio
async def test_the_item_page_shows_a_tags_history_and_staff_see_who_changed_it(ds, catalog_path):
    cookies, token = await session(ds, "alice")
    tag = tag_id(catalog_path, "1", "HAADF")
    await post(ds, f"/-/scisearch/tags/em/{tag}", {"action": "reject"}, cookies, token)
    for who, shown in ((None, "an expert"), ("root", "alice")):
        page = await ds.client.get("/-/scisearch/item/em/file/1", cookies=signed_in(ds, who) if who else {})
        entry = re.search(rf'data-tag-id="{tag}".*?</li>\s*</ol>', page.text, re.S)[0]
        assert "history (1)" in entry and f"<b>{shown}</b> reject" in entry


@pytest.mark.asyncio
async def test_a_tag_change_is_timed_in_iso_8601_in_the_facility_zone_on_the_page_and_in_json(ds, catalog_path):
    import datetime as dt
    import zoneinfo

    cookies, token = await session(ds, "alice")
    tag = tag_id(catalog_path, "1", "HAADF")
    body = (await post(ds, f"/-/scisearch/tags/em/{tag}", {"action": "accept"}, cookies, token)).json()
    local = dt.datetime.fromisoformat(body["history"]["changed_at"]).astimezone(
        zoneinfo.ZoneInfo(PLUGIN_SETTINGS["timezone"])
    )
    shown = f"{local.isoformat(sep=' ', timespec='seconds' if local.second else 'minutes')} ({local.tzname()})"
    assert body["history"]["changed_shown"] == shown  # what the page's script writes into the history
    page = await ds.client.get("/-/scisearch/item/em/file/1", cookies=cookies)
    entry = re.search(rf'data-tag-id="{tag}".*?</li>\s*</ol>', page.text, re.S)[0]
    assert f'<time datetime="{local.isoformat(timespec="seconds")}">{shown}</time>' in entry


@pytest.mark.asyncio
async def test_the_queue_lists_items_with_machine_tags_and_why(ds):
    response = await ds.client.get("/-/scisearch/queue/em", cookies=signed_in(ds, "root"))
    assert response.status_code == 200
    reasons = re.findall(r'<p class="scisearch-queue-reason">(.*?)</p>', response.text)
    assert reasons and all("weakest machine tag" in html.unescape(reason) for reason in reasons)
    assert 'form="scisearch-bulk"' in response.text


@pytest.mark.asyncio
async def test_the_queue_says_which_of_how_many_items_it_shows_and_pages_through_them(ds, catalog_path, monkeypatch):
    monkeypatch.setattr(validation, "QUEUE_SIZE", 2)
    total = queue_count(open_catalog(catalog_path))
    first = await ds.client.get("/-/scisearch/queue/em")
    second = await ds.client.get("/-/scisearch/queue/em?page=2")
    heading = re.search(r'<h1>Tags to review <span class="scisearch-count">([\d,]+) files</span>', first.text)
    assert total > 2 and heading and int(heading[1].replace(",", "")) == total
    assert f"1–2 of {total:,}" in first.text and f"3–4 of {total:,}" in second.text
    assert 'rel="next" href="/-/scisearch/queue/em?page=2"' in first.text
    ids = [re.findall(r'data-item-id="([^"]+)"', page.text) for page in (first, second)]
    assert len(ids[0]) == len(ids[1]) == 2 and not set(ids[0]) & set(ids[1])


@pytest.mark.asyncio
async def test_a_queue_page_past_the_end_shows_the_last_page(ds, catalog_path, monkeypatch):
    monkeypatch.setattr(validation, "QUEUE_SIZE", 2)
    response = await ds.client.get("/-/scisearch/queue/em?page=9999")
    assert response.status_code == 200 and re.findall(r'data-item-id="([^"]+)"', response.text)
    assert 'rel="next"' not in response.text and 'rel="prev"' in response.text


@pytest.mark.asyncio
async def test_an_item_an_expert_judged_leaves_the_queue(ds, catalog_path):
    cookies, token = await session(ds, "root")
    queued = re.findall(r'data-item-id="([^"]+)"', (await ds.client.get("/-/scisearch/queue/em")).text)
    first = queued[0]
    await post(
        ds, "/-/scisearch/tags/em/add", {"item_type": "file", "item_id": first, "text": "checked"}, cookies, token
    )
    assert first not in re.findall(r'data-item-id="([^"]+)"', (await ds.client.get("/-/scisearch/queue/em")).text)


@pytest.mark.asyncio
async def test_an_immutable_catalog_refuses_changes_with_a_reason(catalog_path):
    ds = Datasette(immutables=[str(catalog_path)], metadata={"plugins": {"datasette-scisearch": PLUGIN_SETTINGS}})
    cookies, token = await session(ds, "root")
    response = await post(ds, "/-/scisearch/tags/em/1", {"action": "accept"}, cookies, token)
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]


@pytest.mark.asyncio
async def test_without_an_allow_block_only_root_may_edit(catalog_path):
    ds = Datasette([str(catalog_path)], metadata={"plugins": {"datasette-scisearch": {"timezone": "UTC"}}})
    for actor, status in (("alice", 403), ("root", 200)):
        cookies, token = await session(ds, actor)
        response = await post(
            ds, f"/-/scisearch/tags/em/{tag_id(catalog_path, '1', 'HAADF')}", {"action": "accept"}, cookies, token
        )
        assert response.status_code == status


@pytest.mark.asyncio
async def test_the_queue_offers_first_what_the_learned_tagger_is_least_sure_of(ds, catalog_path):
    db = open_catalog(catalog_path)
    with db.conn:
        model_id = (
            db["learned_models"]
            .insert(
                {"tag_set": "morphology", "version": 1, "classes": '["nanowires", "particles"]', "status": "current"}
            )
            .last_pk
        )
        db["learned_predictions"].insert_all(
            [
                {"model_id": model_id, "item_type": "file", "item_id": "7", "label": "nanowires"}
                | {"probability": 0.52, "margin": 0.04},
                {"model_id": model_id, "item_type": "file", "item_id": "3", "label": "particles"}
                | {"probability": 0.9, "margin": 0.8},
            ]
        )
    db.close()
    page = (await ds.client.get("/-/scisearch/queue/em")).text
    assert re.findall(r'data-item-id="([^"]+)"', page)[:2] == ["7", "3"]
    first_reason = html.unescape(re.search(r'<p class="scisearch-queue-reason">(.*?)</p>', page)[1])
    assert "learned morphology tagger (v1) is unsure: nanowires at p=0.52" in first_reason


@pytest.mark.asyncio
async def test_a_json_body_with_the_csrf_header_changes_a_tag(ds, catalog_path):
    cookies, token = await session(ds, "root")
    haadf = tag_id(catalog_path, "1", "HAADF")
    response = await ds.client.post(
        f"/-/scisearch/tags/em/{haadf}",
        content=json.dumps({"action": "reject"}),
        cookies=cookies,
        headers={"content-type": "application/json", "x-csrftoken": token},
    )
    assert (response.status_code, response.json()["tag"]["status"]) == (200, "rejected")


def test_serve_with_root_says_how_to_sign_in_and_prints_the_link(catalog_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "datasette_scisearch", "serve", str(catalog_path), "--root", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    try:
        while len(lines) < 20 and "auth-token" not in "".join(lines[-1:]):
            lines.append(server.stdout.readline())
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert "sign in as root" in lines[-2]
    assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/-/auth-token\?token=\w+\n", lines[-1])


@pytest.mark.asyncio
async def test_a_bulk_accept_is_undone_on_every_item_at_once(ds, catalog_path):
    cookies, token = await session(ds, "root")
    form = {**JSON, "content-type": "application/x-www-form-urlencoded"}
    bulk = await ds.client.post(
        "/-/scisearch/tags/em/bulk",
        content="action=accept&tag=STEM&item=file:1&item=file:10&csrftoken=" + token,
        cookies=cookies,
        headers=form,
    )
    history = [change["history"]["id"] for change in bulk.json()["changes"]]
    assert len(history) >= 2
    undone = await ds.client.post(
        "/-/scisearch/history/em/undo",
        content="&".join(f"history={entry}" for entry in history) + "&csrftoken=" + token,
        cookies=cookies,
        headers=form,
    )
    assert undone.status_code == 200
    assert {change["tag"]["status"] for change in undone.json()["undone"]} == {"machine"}
    assert len(undone.json()["undone"]) == len(history) and undone.json()["skipped"] == []


@pytest.mark.asyncio
async def test_undoing_without_naming_a_change_is_a_clear_400(ds):
    cookies, token = await session(ds, "root")
    response = await post(ds, "/-/scisearch/history/em/undo", {}, cookies, token)
    assert response.status_code == 400
    assert "name the changes to undo" in response.json()["error"].lower()


@pytest.mark.asyncio
async def test_each_queue_card_offers_accept_and_reject_on_each_of_its_tags(ds):
    cookies, _ = await session(ds, "root")
    page = await ds.client.get("/-/scisearch/queue/em", cookies=cookies)
    card = re.search(r'<article class="scisearch-card scisearch-queue-card".*?</article>', page.text, re.S)[0]
    tags = re.findall(r'data-tag-id="(\d+)"', card)
    assert tags
    for tag in tags:
        assert f'action="/-/scisearch/tags/em/{tag}"' in card
    assert card.count('value="accept"') == card.count('value="reject"') == len(tags)


def statuses(path, tag_ids: list[int]) -> set[str]:
    db = open_catalog(path)
    try:
        return {db.execute("select status from tags where id = ?", [i]).fetchone()[0] for i in tag_ids}
    finally:
        db.close()


@pytest.mark.asyncio
async def test_a_bulk_accept_made_without_javascript_is_undone_from_the_queue_page_it_returns_to(ds, catalog_path):
    cookies, token = await session(ds, "root")
    form = {"content-type": "application/x-www-form-urlencoded"}  # what a browser sends: no JSON wanted
    stem = [tag_id(catalog_path, item_id, "STEM") for item_id in ("1", "10")]
    bulk = await ds.client.post(
        "/-/scisearch/tags/em/bulk",
        content="action=accept&tag=STEM&item=file:1&item=file:10&next=/-/scisearch/queue/em&csrftoken=" + token,
        cookies=cookies,
        headers=form,
    )
    assert bulk.status_code == 303 and statuses(catalog_path, stem) == {"accepted"}
    location = bulk.headers["location"]
    assert re.fullmatch(r"/-/scisearch/queue/em\?undo=\d+-\d+", location)
    queue = await ds.client.get(location, cookies=cookies)
    undo_form = re.search(r'<form id="scisearch-bulk-undo"[^>]*>(.*?)</form>', queue.text, re.S)
    assert " hidden>" not in undo_form[0].split("\n")[0]  # shown, not waiting for JavaScript
    assert f'name="history_range" value="{location.split("undo=")[1]}"' in undo_form[1]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', undo_form[1]))
    undone = await ds.client.post(
        "/-/scisearch/history/em/undo", data=fields | {"csrftoken": token}, cookies=cookies, headers=form
    )
    assert undone.status_code == 303 and undone.headers["location"] == "/-/scisearch/queue/em"
    assert statuses(catalog_path, stem) == {"machine"}


@pytest.mark.asyncio
async def test_a_range_of_changes_to_undo_that_is_not_one_says_how_to_write_it(ds):
    cookies, token = await session(ds, "root")
    response = await post(ds, "/-/scisearch/history/em/undo", {"history_range": "9-x"}, cookies, token)
    assert response.status_code == 400
    assert "write it as first-last" in response.json()["error"]
