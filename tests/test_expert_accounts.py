"""Experts keep their own accounts: they sign in at /-/login with a password (datasette-auth-passwords, its hash
in metadata.yml), stay signed in by Datasette's actor cookie, and may change tags when the edit block names them."""

from __future__ import annotations

import re
import shutil

import pytest
from datasette.app import Datasette

from .test_validation_api import JSON, tag_id

auth_passwords = pytest.importorskip(
    "datasette_auth_passwords.utils", reason="datasette-auth-passwords is not installed"
)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def catalog_path(tagged_em_catalog_file, tmp_path):
    path = tmp_path / "em.db"
    shutil.copy(tagged_em_catalog_file, path)
    return path


@pytest.fixture
def ds(catalog_path):
    accounts = {"alice_password_hash": auth_passwords.hash_password(PASSWORD)}
    plugins = {
        "datasette-auth-passwords": accounts,
        "datasette-scisearch": {"edit": {"allow": {"id": ["root", "alice"]}}},
    }
    return Datasette([str(catalog_path)], metadata={"plugins": plugins})


async def sign_in(ds, username: str, password: str):
    form = await ds.client.get("/-/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', form.text)[1]
    cookies = {"ds_csrftoken": form.cookies["ds_csrftoken"]}
    fields = {"username": username, "password": password, "csrftoken": token}
    return await ds.client.post("/-/login", data=fields, cookies=cookies)


@pytest.mark.asyncio
async def test_an_expert_signs_in_with_a_password_and_accepts_a_tag(ds, catalog_path):
    signed = await sign_in(ds, "alice", PASSWORD)
    assert signed.status_code == 302
    cookies = {"ds_actor": signed.cookies["ds_actor"]}
    page = await ds.client.get("/-/scisearch/item/em/file/1", cookies=cookies)
    assert 'class="scisearch-tag-form' in page.text
    token = page.cookies.get("ds_csrftoken")
    haadf = tag_id(catalog_path, "1", "HAADF")
    accepted = await ds.client.post(
        f"/-/scisearch/tags/em/{haadf}",
        data={"action": "accept", "csrftoken": token},
        cookies={**cookies, "ds_csrftoken": token},
        headers=JSON,
    )
    assert accepted.status_code == 200
    assert accepted.json()["tag"]["status"] == "accepted"


@pytest.mark.asyncio
async def test_a_wrong_password_signs_nobody_in(ds):
    refused = await sign_in(ds, "alice", "not the password")
    assert refused.status_code == 200
    assert "Invalid username or password" in refused.text
    assert "ds_actor" not in refused.cookies


@pytest.mark.asyncio
async def test_an_account_the_edit_block_does_not_name_may_read_but_not_edit(catalog_path):
    accounts = {"bob_password_hash": auth_passwords.hash_password(PASSWORD)}
    plugins = {"datasette-auth-passwords": accounts, "datasette-scisearch": {"edit": {"allow": {"id": ["alice"]}}}}
    ds = Datasette([str(catalog_path)], metadata={"plugins": plugins})
    signed = await sign_in(ds, "bob", PASSWORD)
    cookies = {"ds_actor": signed.cookies["ds_actor"]}
    page = await ds.client.get("/-/scisearch/item/em/file/1", cookies=cookies)
    assert page.status_code == 200
    assert 'class="scisearch-tag-form' not in page.text


def statuses(catalog_path, tag_ids) -> dict[int, str]:
    from datasette_scisearch.catalog import open_catalog

    db = open_catalog(catalog_path)
    try:
        marks = ",".join("?" * len(tag_ids))
        return dict(db.execute(f"select id, status from tags where id in ({marks})", list(tag_ids)).fetchall())
    finally:
        db.close()


@pytest.mark.asyncio
async def test_an_expert_signed_in_by_password_reviews_queue_cards_one_by_one_and_undoes_a_bulk_accept(
    ds, catalog_path
):
    """The issue's flow end to end with plain forms, as a browser without JavaScript sends them."""
    signed = await sign_in(ds, "alice", PASSWORD)
    cookies = {"ds_actor": signed.cookies["ds_actor"]}
    queue = await ds.client.get("/-/scisearch/queue/em", cookies=cookies)
    total = int(re.search(r'class="scisearch-count">(\d+)', queue.text)[1])
    cookies["ds_csrftoken"] = queue.cookies["ds_csrftoken"]
    token = re.search(r'name="csrftoken" value="([^"]+)"', queue.text)[1]
    cards = re.findall(r'<article class="scisearch-card scisearch-queue-card".*?</article>', queue.text, re.S)
    assert len(cards) >= 4

    # Card by card: accept the first card's first tag, reject the second's, each with that card's own buttons.
    judged = {}
    for card, action in zip(cards[:2], ["accept", "reject"]):
        first_tag = re.search(r'data-tag-id="(\d+)"', card)[1]
        form = re.search(rf'action="([^"]+/{first_tag})"', card)[1]
        sent = await ds.client.post(form, data={"action": action, "csrftoken": token, "next": "/-/scisearch/queue/em"},
                                    cookies=cookies)  # fmt: skip
        assert sent.status_code == 303
        judged[int(first_tag)] = {"accept": "accepted", "reject": "rejected"}[action]
    assert statuses(catalog_path, judged) == judged
    after = await ds.client.get("/-/scisearch/queue/em", cookies=cookies)
    assert f'class="scisearch-count">{total - 2} ' in after.text  # judged items leave the queue

    # A bulk accept of one tag over the next two cards, then its undo from the page the form returns to.
    rest = re.findall(r'<article class="scisearch-card scisearch-queue-card".*?</article>', after.text, re.S)[:2]
    items = [re.search(r'name="item" value="([^"]+)"', card)[1] for card in rest]
    common = re.search(r'data-tag="([^"]+)" data-tag-id="(\d+)"', rest[0])[1]
    fields = {"action": "accept", "tag": common, "item": items, "csrftoken": token, "next": "/-/scisearch/queue/em"}
    bulk = await ds.client.post("/-/scisearch/tags/em/bulk", data=fields, cookies=cookies)
    assert bulk.status_code == 303 and "undo=" in bulk.headers["location"]
    changed = re.search(r"undo=(\d+)-(\d+)", bulk.headers["location"])
    returned = await ds.client.get(bulk.headers["location"], cookies=cookies)
    undo_range = re.search(r'name="history_range" value="([^"]+)"', returned.text)[1]
    assert undo_range == f"{changed[1]}-{changed[2]}"
    accepted_ids = [
        int(tag) for card in rest for tag in re.findall(rf'data-tag="{re.escape(common)}" data-tag-id="(\d+)"', card)
    ]
    assert accepted_ids and set(statuses(catalog_path, accepted_ids).values()) == {"accepted"}
    undo_fields = {"history_range": undo_range, "csrftoken": token, "next": "/-/scisearch/queue/em"}
    undone = await ds.client.post("/-/scisearch/history/em/undo", data=undo_fields, cookies=cookies)
    assert undone.status_code == 303
    assert set(statuses(catalog_path, accepted_ids).values()) == {"machine"}
    assert statuses(catalog_path, judged) == judged  # the card-by-card decisions stay
