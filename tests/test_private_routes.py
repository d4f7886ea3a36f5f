"""Route by route once more, as an anonymous visitor, over catalogs holding one proposal under its period.

test_periods.py's catalog (the pages' catalog with DMR-1905287 private for a year, Jane Doe its team) is used for
what needs words known exactly: the proposal's title, "Atomic-resolution imaging of gold nanoparticle catalysts",
has words ("catalysts", "Atomic-resolution") that no public item holds, while the public paper acknowledges it.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from dataclasses import dataclass

import pytest
import sqlite_utils
from datasette.utils import tilde_encode

from datasette_scisearch import people
from datasette_scisearch.catalog import open_catalog

from .test_pages import PAPER_ID, PROPOSAL_ID, SESSION_ID
from .test_periods import (
    OUTSIDERS,
    PRIVATE_FILES,
    catalog,  # noqa: F401  (a fixture)
    cookies,
    demo_catalog,  # noqa: F401  (a fixture)
    release_now,
    search_hits,
    served,
)
from .test_privacy import pages_catalog  # noqa: F401  (a fixture)
from .test_validation_api import signed_in

PRIVATE_WORDS = ("catalysts", "Atomic-resolution")  # only in the private proposal's title


# -- A public paper does not carry its private proposal's words ---------------------------------------------------


@pytest.mark.asyncio
async def test_a_public_paper_is_not_found_by_words_only_its_private_proposal_holds(catalog):  # noqa: F811
    ds = served(catalog)
    for query in PRIVATE_WORDS:
        for mode in ("keyword", "hybrid"):
            hits = await search_hits(ds, {}, query, mode=mode)
            assert ("paper", PAPER_ID) not in hits, (query, mode, hits)


@pytest.mark.asyncio
async def test_a_public_paper_is_not_found_by_the_private_proposals_id_that_only_its_link_holds(catalog):  # noqa: F811
    ds = served(catalog)
    assert await search_hits(ds, {}, PROPOSAL_ID, mode="keyword") == []
    release_now(catalog)
    assert ("paper", PAPER_ID) in await search_hits(ds, {}, PROPOSAL_ID, mode="keyword")


@pytest.mark.asyncio
async def test_no_snippet_or_reason_quotes_the_private_proposals_title(catalog):  # noqa: F811
    ds = served(catalog)
    answer = await ds.client.get("/-/scisearch.json", params={"q": "gold nanoparticles", "per_page": 100})
    assert answer.status_code == 200
    assert "catalysts" not in answer.text.lower()
    page = await ds.client.get("/-/scisearch", params={"q": "gold nanoparticles"})
    assert "catalysts" not in page.text.lower()


@pytest.mark.asyncio
async def test_the_period_ending_lets_the_paper_be_found_by_the_proposals_words_at_the_next_request(
    catalog,  # noqa: F811
):
    ds = served(catalog)
    assert ("paper", PAPER_ID) not in await search_hits(ds, {}, "catalysts", mode="keyword")
    release_now(catalog)
    assert ("paper", PAPER_ID) in await search_hits(ds, {}, "catalysts", mode="keyword")


@pytest.mark.asyncio
async def test_the_team_member_and_staff_find_the_proposal_itself_by_its_words(catalog):  # noqa: F811
    ds = served(catalog)
    for who in ("jdoe", "root"):
        assert ("proposal", PROPOSAL_ID) in await search_hits(ds, signed_in(ds, who), "catalysts"), who


def paper_route() -> str:
    return f"/-/scisearch/item/cat/paper/{tilde_encode(PAPER_ID)}"


# -- Every count is of what the visitor may see --------------------------------------------------------------------


def queue_count_shown(text: str) -> int:
    import re

    return int(re.search(r'scisearch-count">([\d,]+) ', text).group(1).replace(",", ""))


@pytest.mark.asyncio
async def test_the_review_queues_total_counts_only_what_the_visitor_may_see(catalog):  # noqa: F811
    db = open_catalog(catalog)
    # Every file's machine tags unjudged and scored: each file with one awaits an expert, and is counted.
    db.execute("delete from tags where item_type = 'file' and status != 'machine'")
    db.execute("update tags set score = 0.5 where score is null")
    for file_id in ("2", "10", "11"):  # two more, one private and two public
        db["tags"].insert(
            {"item_type": "file", "item_id": file_id, "tag": "doubtful", "score": 0.2, "source": "keywords"}
            | {
                "status": "machine",
                "created_at": "2026-01-01T00:00:00+00:00",
                "updated_at": "2026-01-01T00:00:00+00:00",
            }
        )
    db.conn.commit()
    queued = {row[0] for row in db.execute("select distinct item_id from tags where item_type = 'file'")}
    assert queued & set(PRIVATE_FILES) and queued - set(PRIVATE_FILES)
    ds = served(catalog)
    for who in OUTSIDERS:
        page = await ds.client.get("/-/scisearch/queue/cat", cookies=cookies(ds, who))
        assert page.status_code == 200
        assert queue_count_shown(page.text) == len(queued - set(PRIVATE_FILES)), who
    staff = await ds.client.get("/-/scisearch/queue/cat", cookies=signed_in(ds, "root"))
    assert queue_count_shown(staff.text) == len(queued)


@pytest.mark.asyncio
async def test_the_tab_counts_are_the_hits_the_visitor_gets(catalog):  # noqa: F811
    ds = served(catalog)
    for query in ("gold", "HAADF", "nanoparticles", "image", "type:file", "kind:image"):
        answer = (await ds.client.get("/-/scisearch.json", params={"q": query, "per_page": 100})).json()
        shown: dict[str, int] = {}
        for hit in answer["hits"]:
            shown[hit["item_type"]] = shown.get(hit["item_type"], 0) + 1
        assert answer["counts"] == shown, query
        assert answer["total"] == len(answer["hits"]), query
        for facet, entries in (answer["facets"] or {}).items():
            for entry in entries:
                assert entry["count"] <= answer["total"], (query, facet, entry)


@pytest.mark.asyncio
async def test_the_sitemap_lists_and_counts_only_public_items(catalog):  # noqa: F811
    ds = served(catalog)
    page = await ds.client.get("/-/scisearch/sitemap/cat/1.xml")
    assert page.status_code == 200
    assert "/file/1<" not in page.text and f"/proposal/{PROPOSAL_ID}" not in page.text
    db = sqlite_utils.Database(catalog)
    visible = db.execute(
        "select count(*) from search_items where not (item_type = 'file' and item_id in ('1', '2', '3')) "
        "and item_type not in ('session', 'proposal')"
    ).fetchone()[0]
    assert page.text.count("<url>") == visible


@pytest.mark.asyncio
async def test_the_sitemap_index_counts_pages_of_public_items_only_and_each_page_is_full(catalog, monkeypatch):  # noqa: F811
    from datasette_scisearch.web import findable

    monkeypatch.setattr(findable, "SITEMAP_PAGE", 2)
    ds = served(catalog)
    db = sqlite_utils.Database(catalog)
    visible = db.execute(
        "select count(*) from search_items where not (item_type = 'file' and item_id in ('1', '2', '3')) "
        "and item_type not in ('session', 'proposal')"
    ).fetchone()[0]
    index = await ds.client.get("/sitemap.xml")
    pages = -(-visible // 2)
    assert index.text.count("<sitemap>") == pages
    listed = [
        (await ds.client.get(f"/-/scisearch/sitemap/cat/{page}.xml")).text.count("<url>")
        for page in range(1, pages + 1)
    ]
    assert listed == [2] * (pages - 1) + [visible - 2 * (pages - 1)]


@pytest.mark.asyncio
async def test_the_datacite_export_of_the_private_proposal_is_not_found(catalog):  # noqa: F811
    ds = served(catalog)
    for who in OUTSIDERS:
        answer = await ds.client.get(f"/-/scisearch/datacite/cat/{PROPOSAL_ID}.json", cookies=cookies(ds, who))
        assert answer.status_code == 404, (who, answer.status_code)
        assert "Au_np" not in answer.text
    team = await ds.client.get(f"/-/scisearch/datacite/cat/{PROPOSAL_ID}.json", cookies=signed_in(ds, "jdoe"))
    assert team.status_code == 200


# -- Links the pages build open for whoever follows them; a private item is as absent as one never held ----------


def links_of(text: str) -> set[str]:
    import re

    return {href.replace("&amp;", "&") for href in re.findall(r'(?:href|src)="(/[^"]*)"', text)}


@pytest.mark.asyncio
async def test_every_link_on_a_public_files_page_opens_for_an_anonymous_visitor(catalog):  # noqa: F811
    ds = served(catalog)
    page = await ds.client.get("/-/scisearch/item/cat/file/10")
    assert page.status_code == 200
    assert "/cat/files_public?id=10" in links_of(page.text)
    for link in sorted(links_of(page.text) - {"/-/scisearch/download/cat/10"}):  # no data roots in this catalog
        answer = await ds.client.get(link)
        assert answer.status_code == 200, (link, answer.status_code)
        assert "Au_np" not in answer.text and "catalysts" not in answer.text, link
    staff = await ds.client.get("/-/scisearch/item/cat/file/10", cookies=signed_in(ds, "root"))
    assert "/cat/files/10" in links_of(staff.text)


def title_of(text: str) -> str:
    import re

    return re.search(r"<title>(.*?)</title>", text, re.S).group(1)


@pytest.mark.asyncio
async def test_a_private_files_download_and_export_are_not_found_like_a_file_never_held(catalog):  # noqa: F811
    ds = served(catalog)
    for who in OUTSIDERS:
        for route in (
            "/-/scisearch/download/cat/{}",
            "/-/scisearch/export/cat/{}.png",
            "/-/scisearch/export/cat/{}.tiff",
        ):
            private = await ds.client.get(route.format(1), cookies=cookies(ds, who))
            absent = await ds.client.get(route.format(999999), cookies=cookies(ds, who))
            assert (private.status_code, absent.status_code) == (404, 404), (who, route)
            assert title_of(private.text).replace(" 1 ", " N ") == title_of(absent.text).replace(" 999999 ", " N ")


@pytest.mark.asyncio
async def test_the_public_links_view_leaves_out_a_public_files_link_to_a_private_file(catalog):  # noqa: F811
    db = sqlite_utils.Database(catalog)
    db["links"].insert(
        {"from_type": "file", "from_id": "10", "to_type": "file", "to_id": "1", "method": "same sample name"}
    )
    db["links"].insert(
        {"from_type": "file", "from_id": "10", "to_type": "session", "to_id": SESSION_ID, "method": "same day"}
    )
    db.conn.commit()
    ds = served(catalog)
    rows = (await ds.client.get("/cat/links_public.json?_shape=array&_size=max&from_id=10")).json()
    assert rows == []
    twin = await ds.client.get("/cat_public.json", params={"sql": "select * from links where from_id = '10'"})
    assert twin.json()["rows"] == []
    staff = await ds.client.get("/cat/links.json?_shape=array&from_id=10", cookies=signed_in(ds, "root"))
    assert len(staff.json()) == 2


# -- Signing in fills people -------------------------------------------------------------------------------------


def password_datasette(catalog_path, actors: dict | None = None):  # noqa: F811
    auth_passwords = pytest.importorskip("datasette_auth_passwords.utils", reason="datasette-auth-passwords is absent")
    from datasette.app import Datasette

    from .test_expert_accounts import PASSWORD

    hashes = {f"{who}_password_hash": auth_passwords.hash_password(PASSWORD) for who in ("carol", "jdoe2", "bob")}
    plugins = {
        "datasette-auth-passwords": {**hashes, "actors": actors or {}},
        "datasette-scisearch": {"timezone": "UTC", "staff": {"allow": {"id": ["root"]}}},
    }
    return Datasette([str(catalog_path)], metadata={"plugins": plugins})


async def password_sign_in(ds, who: str) -> dict:
    from .test_expert_accounts import PASSWORD, sign_in

    signed = await sign_in(ds, who, PASSWORD)
    assert signed.status_code == 302
    return {"ds_actor": signed.cookies["ds_actor"]}


def people_rows(catalog_path) -> list[dict]:
    return list(sqlite_utils.Database(catalog_path).query("select name, email, account_id, added_by from people"))


@pytest.mark.asyncio
async def test_signing_in_with_an_account_not_in_people_fills_it_with_the_actors_name_and_email(catalog):  # noqa: F811
    ds = password_datasette(catalog, {"carol": {"id": "carol", "name": "Carol Ng", "email": "carol@example.org"}})
    await password_sign_in(ds, "carol")
    assert {"name": "Carol Ng", "email": "carol@example.org", "account_id": "carol", "added_by": "sign-in"} in (
        people_rows(catalog)
    )


@pytest.mark.asyncio
async def test_a_sign_in_whose_email_is_already_a_persons_gets_its_own_row_and_is_not_guessed(catalog):  # noqa: F811
    ds = password_datasette(catalog, {"jdoe2": {"id": "jdoe2", "name": "Jane Doe", "email": "jane@example.org"}})
    cookies_ = await password_sign_in(ds, "jdoe2")
    rows = people_rows(catalog)
    assert {"name": "Jane Doe", "email": None, "account_id": "jdoe2", "added_by": "sign-in"} in rows
    assert (await ds.client.get("/-/scisearch/item/cat/file/1.json", cookies=cookies_)).status_code == 404


@pytest.mark.asyncio
async def test_staff_join_a_sign_in_to_its_person_who_then_sees_their_teams_data_at_once(catalog):  # noqa: F811
    from .test_periods import scisearch

    db = open_catalog(catalog)  # Jane is on the team by her e-mail in the user log, and has no sign-in yet
    db.execute("update people set account_id = null where name = 'Jane Doe'")
    db.execute("update sessions set user = 'jane@example.org'")
    people.match_people(db)
    db.conn.commit()
    ds = password_datasette(catalog, {"jdoe2": {"id": "jdoe2", "name": "J. Doe"}})
    cookies_ = await password_sign_in(ds, "jdoe2")
    assert (await ds.client.get("/-/scisearch/item/cat/file/1.json", cookies=cookies_)).status_code == 404
    jane = sqlite_utils.Database(catalog).execute("select id from people where name = 'Jane Doe'").fetchone()[0]
    joined = scisearch("people", "account", catalog, jane, "jdoe2", "--json")
    assert joined.exit_code == 0, joined.output
    assert (await ds.client.get("/-/scisearch/item/cat/file/1.json", cookies=cookies_)).status_code == 200
    assert [row["account_id"] for row in people_rows(catalog)] == ["jdoe2"]


def test_an_account_that_staff_gave_another_person_is_refused_with_a_clear_message(catalog):  # noqa: F811
    from .test_periods import scisearch

    db = sqlite_utils.Database(catalog)
    other = people.add_person(db, "Other Person", account_id="other")
    db.conn.commit()
    jane = db.execute("select id from people where name = 'Jane Doe'").fetchone()[0]
    answer = scisearch("people", "account", catalog, jane, "other")
    assert answer.exit_code != 0 and f"already the account id of person {other}" in answer.output


@pytest.mark.asyncio
async def test_a_sign_in_named_in_the_user_log_is_on_its_proposals_team_at_once(catalog):  # noqa: F811
    db = sqlite_utils.Database(catalog)
    db.execute("delete from proposal_people")
    db.execute("delete from people")
    db.execute("update sessions set user = 'carol'")
    db.conn.commit()
    ds = password_datasette(catalog)
    cookies_ = await password_sign_in(ds, "carol")
    assert (await ds.client.get("/-/scisearch/item/cat/file/1.json", cookies=cookies_)).status_code == 200
    bob = await password_sign_in(ds, "bob")
    assert (await ds.client.get("/-/scisearch/item/cat/file/1.json", cookies=bob)).status_code == 404


# -- JSON-LD's creator ----------------------------------------------------------------------------------------------


def json_ld_of(text: str) -> dict | None:
    import json
    import re

    found = re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S)
    return json.loads(found.group(1)) if found else None


@pytest.mark.asyncio
async def test_json_ld_creator_is_the_proposals_team_from_people_by_name_only(catalog):  # noqa: F811
    release_now(catalog)
    ds = served(catalog)
    for route in ("/-/scisearch/item/cat/file/1", f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}"):
        page = await ds.client.get(route)
        ld = json_ld_of(page.text)
        assert ld is not None, route
        assert [creator["name"] for creator in ld["creator"]] == ["Jane Doe"], route
        assert "jane@example.org" not in page.text and '"jdoe"' not in page.text, route
    datacite = (await ds.client.get(f"/-/scisearch/datacite/cat/{PROPOSAL_ID}.json")).json()
    assert {creator["name"] for record in datacite["data"] for creator in record["attributes"]["creators"]} == {
        "Jane Doe"
    }
    assert "jane@example.org" not in str(datacite)


@pytest.mark.asyncio
async def test_json_ld_creator_keeps_the_records_names_where_people_has_no_team(catalog):  # noqa: F811
    db = sqlite_utils.Database(catalog)
    db.execute("delete from proposal_people")
    db.conn.commit()
    release_now(catalog)
    ds = served(catalog)
    ld = json_ld_of((await ds.client.get(f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}")).text)
    assert [creator["name"] for creator in ld["creator"]] == ["A. Researcher"]


# -- The demo, route by route, as an anonymous visitor -------------------------------------------------------------
# The demo holds one proposal under its period, P-2023-0024 ("Point defects in monolayer MoS2 at low voltage"):
# its sessions and 26 files (images, diffraction patterns and 4D scans with frames) are its team's.

DEMO_PROPOSAL = "P-2023-0024"


@dataclass(frozen=True)
class Private:
    files: frozenset[str]
    sessions: frozenset[str]
    tags: tuple[int, ...]
    markers: tuple[str, ...]  # text only the private data holds: found in an answer, it leaked


@pytest.fixture(scope="module")
def demo(demo_catalog) -> tuple:  # noqa: F811
    db = sqlite_utils.Database(demo_catalog)
    files = frozenset(str(row[0]) for row in db.execute("select id from files where proposal_id = ?", [DEMO_PROPOSAL]))
    sessions = frozenset(row[0] for row in db.execute("select id from sessions where proposal_id = ?", [DEMO_PROPOSAL]))
    names = [
        row[0]
        for row in db.execute(
            "select distinct name from files where proposal_id = ? and name not in "
            "(select name from files where coalesce(proposal_id, '') != ?)",
            [DEMO_PROPOSAL, DEMO_PROPOSAL],
        )
    ]
    title = db.execute("select title from proposals where id = ?", [DEMO_PROPOSAL]).fetchone()[0]
    tags = tuple(
        row[0]
        for row in db.execute(
            "select id from tags where (item_type = 'file' and item_id in (select value from json_each(?))) "
            "or (item_type = 'session' and item_id in (select value from json_each(?))) "
            "or (item_type = 'proposal' and item_id = ?)",
            [json.dumps(sorted(files)), json.dumps(sorted(sessions)), DEMO_PROPOSAL],
        )
    )
    assert files and sessions and names and tags
    private = Private(files, sessions, tags, (DEMO_PROPOSAL, title, *sessions, *names))
    return demo_catalog, private


def no_private(text: str, private: Private, where: str) -> None:
    leaked = [marker for marker in private.markers if marker in text]
    assert not leaked, (where, leaked[:5])


def private_hits(answer: dict, private: Private) -> list:
    return [
        (hit["item_type"], hit["item_id"])
        for hit in answer["hits"]
        if (hit["item_type"] == "file" and hit["item_id"] in private.files)
        or (hit["item_type"] == "session" and hit["item_id"] in private.sessions)
        or (hit["item_type"] == "proposal" and hit["item_id"] == DEMO_PROPOSAL)
    ]


DEMO_QUERIES = (
    "MoS2",
    "monolayer MoS2",
    "point defects low voltage",
    DEMO_PROPOSAL,
    "",
    "type:file",
    "type:session",
    "type:proposal",
    "kind:4D",
    "kind:diffraction",
)


@pytest.mark.asyncio
async def test_demo_search_json_hits_counts_facets_snippets_and_why_hold_nothing_private(demo):
    path, private = demo
    ds = served(path)
    for query in DEMO_QUERIES:
        for extra in ({}, {"mode": "keyword"}, {"facilities": "all"}, {"type": "file"}):
            answer = await ds.client.get("/-/scisearch.json", params={"q": query, "per_page": 100, **extra})
            assert answer.status_code == 200, (query, extra)
            data = answer.json()
            assert private_hits(data, private) == [], (query, extra)
            shown = {key: value for key, value in data.items() if key not in ("query", "q", "messages", "filters")}
            no_private(json.dumps(shown), private, (query, extra))  # the query itself is the visitor's own
            if data["total"] <= 100 and not extra.get("type"):
                assert data["total"] == len(data["hits"]), (query, extra)


@pytest.mark.asyncio
async def test_demo_search_page_holds_nothing_private(demo):
    path, private = demo
    ds = served(path)
    for query in DEMO_QUERIES:
        page = await ds.client.get("/-/scisearch", params={"q": query})
        assert page.status_code == 200, query
        no_private(page.text.replace(query, "") if query else page.text, private, query)


@pytest.mark.asyncio
async def test_demo_item_pages_and_json_of_private_items_are_not_found(demo):
    path, private = demo
    ds = served(path)
    routes = [f"/-/scisearch/item/demo/file/{file_id}{suffix}" for file_id in private.files for suffix in ("", ".json")]
    routes += [
        f"/-/scisearch/item/demo/session/{session}{suffix}" for session in private.sessions for suffix in ("", ".json")
    ]
    routes += [
        f"/-/scisearch/item/demo/proposal/{DEMO_PROPOSAL}",
        f"/-/scisearch/item/demo/proposal/{DEMO_PROPOSAL}.json",
    ]
    for route in routes:
        answer = await ds.client.get(route)
        assert answer.status_code == 404, (route, answer.status_code)
        no_private(answer.text.replace(route.rsplit("/", 1)[-1].removesuffix(".json"), ""), private, route)


@pytest.mark.asyncio
async def test_demo_similar_of_private_items_is_not_found_and_of_public_ones_holds_none(demo):
    path, private = demo
    ds = served(path)
    for file_id in sorted(private.files)[:5]:
        assert (await ds.client.get(f"/-/scisearch/similar/demo/file/{file_id}.json")).status_code == 404
    public = sqlite_utils.Database(path).execute(
        "select id from files where coalesce(proposal_id, '') != ? and kind = 'image' limit 5", [DEMO_PROPOSAL]
    )
    for (file_id,) in public.fetchall():
        answer = await ds.client.get(f"/-/scisearch/similar/demo/file/{file_id}.json?k=100")
        assert answer.status_code == 200
        assert not {hit["item_id"] for hit in answer.json()["similar"]} & private.files, file_id


@pytest.mark.asyncio
async def test_demo_previews_frames_and_spectra_of_private_files_are_not_found(demo):
    path, private = demo
    ds = served(path)
    db = sqlite_utils.Database(path)
    frames = db.execute(
        "select file_id, frame from frames where file_id in (select value from json_each(?))",
        [json.dumps([int(f) for f in private.files])],
    ).fetchall()
    assert frames
    routes = [f"/-/scisearch/preview/demo/{file_id}.png" for file_id in private.files]
    routes += [f"/-/scisearch/frame/demo/{file_id}/{frame}.png" for file_id, frame in frames]
    for route in routes:
        answer = await ds.client.get(route)
        assert answer.status_code == 404, (route, answer.status_code)


@pytest.mark.asyncio
async def test_demo_tags_of_private_items_are_not_found(demo):
    path, private = demo
    ds = served(path)
    for tag in private.tags[:20]:
        answer = await ds.client.get(f"/-/scisearch/tags/demo/{tag}.json")
        assert answer.status_code == 404, (tag, answer.status_code)


@pytest.mark.asyncio
async def test_demo_review_queue_holds_nothing_private(demo):
    path, private = demo
    ds = served(path)
    for item_type in ("file", "session", "proposal"):
        page = await ds.client.get(f"/-/scisearch/queue/demo?type={item_type}")
        assert page.status_code == 200
        assert not {href.rsplit("/", 1)[-1] for href in links_of(page.text) if "/item/demo/" in href} & (
            private.files | private.sessions | {DEMO_PROPOSAL}
        ), item_type
        no_private(page.text, private, item_type)


@pytest.mark.asyncio
async def test_demo_downloads_and_exports_of_private_files_are_not_found(demo):
    path, private = demo
    ds = served(path)
    for file_id in sorted(private.files)[:5]:
        for route in (f"/-/scisearch/download/demo/{file_id}", f"/-/scisearch/export/demo/{file_id}.png"):
            answer = await ds.client.get(route)
            assert answer.status_code == 404, (route, answer.status_code)


@pytest.mark.asyncio
async def test_demo_json_ld_sitemap_and_datacite_hold_nothing_private(demo):
    path, private = demo
    ds = served(path)
    sitemap = await ds.client.get("/-/scisearch/sitemap/demo/1.xml")
    assert sitemap.status_code == 200 and "<url>" in sitemap.text
    for file_id in private.files:
        assert f"/item/demo/file/{file_id}<" not in sitemap.text
    no_private(sitemap.text, private, "sitemap")
    assert (await ds.client.get(f"/-/scisearch/datacite/demo/{DEMO_PROPOSAL}.json")).status_code == 404
    public = sqlite_utils.Database(path).execute("select id from proposals where id != ? limit 3", [DEMO_PROPOSAL])
    for (proposal_id,) in public.fetchall():
        datacite = await ds.client.get(f"/-/scisearch/datacite/demo/{proposal_id}.json")
        assert datacite.status_code == 200
        no_private(datacite.text, private, proposal_id)
        page = await ds.client.get(f"/-/scisearch/item/demo/proposal/{proposal_id}")
        no_private(page.text, private, proposal_id)


@pytest.mark.asyncio
async def test_demo_datasette_tables_json_csv_and_sql_hold_nothing_private(demo):
    path, private = demo
    ds = served(path)
    for route in (
        "/demo/files",
        "/demo/files.json",
        "/demo/sessions.csv",
        "/demo/tags.json",
        "/demo.json?sql=select+1",
    ):
        assert (await ds.client.get(route)).status_code == 403, route
    routes = [
        f"/demo/{view}{suffix}?_size=max"
        for view in ("files_public", "sessions_public", "proposals_public", "tags_public", "links_public")
        for suffix in ("", ".json", ".csv")
    ]
    routes += [
        "/demo_public.json?" + urllib.parse.urlencode({"sql": f"select * from {table}", "_size": "max"})
        for table in ("files", "sessions", "proposals", "tags", "links")
    ]
    for route in routes:
        answer = await ds.client.get(route)
        assert answer.status_code == 200, (route, answer.status_code)
        no_private(answer.text, private, route)
    refused = await ds.client.get("/demo_public.json", params={"sql": "select name from catalog.files"})
    assert refused.status_code != 200 or "rows" not in refused.json() or not refused.json()["rows"]


@pytest.mark.asyncio
async def test_demo_federation_over_several_catalogs_holds_nothing_private(demo, tmp_path):
    path, private = demo
    other = tmp_path / "other.db"
    shutil.copy(path, other)
    ds = served(path, other)
    for query in ("MoS2", DEMO_PROPOSAL, "type:file"):
        answer = await ds.client.get("/-/scisearch.json", params={"q": query, "per_page": 100})
        assert set(answer.json()["catalogs"]) == {"demo", "other"}
        assert private_hits(answer.json(), private) == [], query
        no_private(json.dumps([answer.json()["hits"], answer.json()["facets"]]), private, query)


@pytest.mark.asyncio
async def test_another_facility_asked_over_http_sends_none_of_its_private_proposals_data(catalog, tmp_path):  # noqa: F811
    from .test_hub import hub_over, metadata_with_hub, serving

    here = tmp_path / "west.db"  # the same catalog, its period over: here the gold files are public
    shutil.copy(catalog, here)
    release_now(here)
    metadata_with_hub(tmp_path / "east.yml", None)
    with serving(catalog, tmp_path / "east.yml") as (east, _):
        ds = hub_over(here, tmp_path, [{"name": "east", "url": east, "timeout_seconds": 30}])
        params = {"q": "gold", "facilities": "all", "per_page": 100}
        answer = (await ds.client.get("/-/scisearch.json", params=params, cookies=signed_in(ds, "root"))).json()
    by_facility: dict[str, set] = {}
    for hit in answer["hits"]:
        by_facility.setdefault(hit["facility"], set()).add((hit["item_type"], hit["item_id"]))
    assert ("file", "1") in by_facility["west"]
    assert by_facility["east"] and not {("file", file_id) for file_id in PRIVATE_FILES} & by_facility["east"]
    assert ("proposal", PROPOSAL_ID) not in by_facility["east"]


@pytest.mark.asyncio
async def test_a_date_staff_move_ahead_takes_the_proposals_words_out_of_the_paper_at_once(catalog):  # noqa: F811
    from .test_periods import _in_a_year, scisearch

    release_now(catalog)
    ds = served(catalog)
    assert ("paper", PAPER_ID) in await search_hits(ds, {}, "catalysts", mode="keyword")
    moved = scisearch("periods", catalog, "--proposal", PROPOSAL_ID, "--release", _in_a_year())
    assert moved.exit_code == 0, moved.output
    db = open_catalog(catalog)
    assert "catalysts" not in db.execute("select context from search_items where item_type = 'paper'").fetchone()[0]
    assert ("paper", PAPER_ID) not in await search_hits(ds, {}, "catalysts", mode="keyword")
