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
