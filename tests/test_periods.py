"""A proposal under its proprietary period is its team's and staff's: route by route, nobody else reaches it.

The pages' catalog (tests/test_pages.py) has one proposal, DMR-1905287, with a session booked by ``jdoe``, three
gold files, a spectrum and a paper; the silicon lamellae belong to no proposal.  Here the proposal's release date
is a year ahead, and Jane Doe (account ``jdoe``) is in ``people``, so the user log's ``jdoe`` makes her its team.
Every route is tried as an anonymous visitor, as another signed-in user (bob), as the team member and as staff
(root); then the release date is moved into the past and the next request finds the data public.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
import sqlite_utils
from datasette.app import Datasette
from datasette.utils import tilde_encode

from datasette_scisearch import people, periods
from datasette_scisearch.catalog import open_catalog

from .test_pages import PAPER_ID, PROPOSAL_ID, SESSION_ID, SI_FILES
from .test_privacy import pages_catalog  # noqa: F401  (a fixture)
from .test_validation_api import signed_in

PRIVATE_FILES = ("1", "2", "3")  # the gold files, of the proposal's session
PRIVATE_NAMES = ("Au_np_300kV_HAADF_0012", "Au_np_300kV_HAADF_0013", "Au_np_DP_0014")
PUBLIC_FILES = 1 + SI_FILES  # the spectrum (of no session) and the lamellae
SETTINGS = {"plugins": {"datasette-scisearch": {"timezone": "UTC", "staff": {"allow": {"id": ["root"]}}}}}
OUTSIDERS = (None, "bob")


def _in_a_year() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).date().isoformat()


@pytest.fixture
def catalog(pages_catalog, tmp_path):  # noqa: F811
    """The pages' catalog with its proposal under its period and Jane Doe on its team."""
    path = tmp_path / "cat.db"
    shutil.copy(pages_catalog, path)
    db = open_catalog(path)
    periods.update_release_dates(db)
    periods.set_release_date(db, PROPOSAL_ID, _in_a_year())
    people.add_person(db, "Jane Doe", email="jane@example.org", account_id="jdoe")
    people.match_people(db)
    db.conn.commit()
    db.close()
    return path


def served(*paths) -> Datasette:
    return Datasette([str(path) for path in paths], metadata=SETTINGS)


def cookies(ds, who):
    return signed_in(ds, who) if who else {}


def release_now(path) -> None:
    db = sqlite_utils.Database(path)
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat(timespec="seconds")
    db.execute("update proposal_periods set release_date = ? where proposal_id = ?", [past, PROPOSAL_ID])
    db.conn.commit()
    db.close()


async def search_hits(ds, who, query: str, **params) -> list[tuple[str, str]]:
    answer = await ds.client.get("/-/scisearch.json", params={"q": query, "per_page": 100, **params}, cookies=who)
    assert answer.status_code == 200, answer.text
    return [(hit["item_type"], hit["item_id"]) for hit in answer.json()["hits"]]


# -- The library -----------------------------------------------------------------------------------------------


def test_the_release_date_is_the_last_session_end_plus_the_period(pages_catalog, tmp_path):  # noqa: F811
    path = tmp_path / "cat.db"
    shutil.copy(pages_catalog, path)
    db = open_catalog(path)
    periods.update_release_dates(db, period_days=10)
    row = db["proposal_periods"].get(PROPOSAL_ID)
    assert (row["release_date"], row["source"]) == ("2019-03-15T07:00:00+00:00", "sessions")


def test_a_release_date_in_the_proposal_record_wins_over_the_period(pages_catalog, tmp_path):  # noqa: F811
    path = tmp_path / "cat.db"
    shutil.copy(pages_catalog, path)
    db = open_catalog(path)
    db["proposals"].update(PROPOSAL_ID, {"details": '{"embargo_until": "2031-05-01"}'})
    periods.update_release_dates(db)
    assert db["proposal_periods"].get(PROPOSAL_ID)["release_date"] == "2031-05-01T00:00:00+00:00"


def test_a_release_date_staff_set_is_kept_through_the_next_load(catalog):
    db = open_catalog(catalog)
    periods.update_release_dates(db, period_days=1)
    assert db["proposal_periods"].get(PROPOSAL_ID)["release_date"].startswith(_in_a_year())


def test_the_user_logs_user_name_is_matched_to_a_person_by_account_id(catalog):
    db = open_catalog(catalog)
    assert [(row["proposal_id"], row["role"]) for row in db["proposal_people"].rows] == [(PROPOSAL_ID, "user")]


def test_a_name_that_matches_nobody_is_reported_and_not_guessed(catalog):
    db = open_catalog(catalog)
    unmatched = people.unmatched_names(db)
    assert [(entry["name"], entry["proposal_id"], entry["roles"]) for entry in unmatched] == [
        ("A. Researcher", PROPOSAL_ID, "pi")
    ]
    assert db.execute("select count(*) from proposal_people where role = 'pi'").fetchone()[0] == 0


def test_a_name_two_people_share_is_reported_as_ambiguous(catalog):
    db = open_catalog(catalog)
    people.add_person(db, "A. Researcher", email="a1@example.org")
    people.add_person(db, "a researcher", email="a2@example.org")
    assert [entry["why"] for entry in people.unmatched_names(db)] == ["matches 2 people"]


def test_an_email_already_someones_is_refused_with_a_clear_message(catalog):
    db = open_catalog(catalog)
    with pytest.raises(people.PeopleError, match="already the email"):
        people.add_person(db, "Someone Else", email="jane@example.org")


# -- The scisearch routes ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_search_hits_leave_out_the_proposals_data_for_anonymous_visitors_and_other_users(catalog):
    ds = served(catalog)
    for who in OUTSIDERS:
        for query in ("gold", "HAADF", "EELS", "jdoe", PROPOSAL_ID, SESSION_ID, "", "type:session", "type:proposal"):
            hits = await search_hits(ds, cookies(ds, who), query)
            assert not [hit for hit in hits if hit[0] in ("proposal", "session")], (who, query, hits)
            assert not [hit for hit in hits if hit[0] == "file" and hit[1] in PRIVATE_FILES], (who, query, hits)


@pytest.mark.asyncio
async def test_counts_and_facets_leave_out_the_proposals_data(catalog):
    ds = served(catalog)
    answer = (await ds.client.get("/-/scisearch.json", params={"q": "type:file,paper"})).json()
    assert answer["counts"] == {"file": PUBLIC_FILES, "paper": 1}
    assert PROPOSAL_ID not in {entry["value"] for entry in answer["facets"].get("proposal") or []}
    assert "diffraction" not in {entry["value"] for entry in answer["facets"]["kind"]}  # only file 3 is one
    staff = await ds.client.get("/-/scisearch.json", params={"q": "type:file,paper"}, cookies=signed_in(ds, "root"))
    assert "diffraction" in {entry["value"] for entry in staff.json()["facets"]["kind"]}


@pytest.mark.asyncio
async def test_the_search_page_shows_none_of_the_proposals_files(catalog):
    ds = served(catalog)
    for who in OUTSIDERS:
        page = await ds.client.get("/-/scisearch", params={"q": "gold"}, cookies=cookies(ds, who))
        assert page.status_code == 200
        assert not [name for name in PRIVATE_NAMES if name in page.text], who


@pytest.mark.asyncio
async def test_item_pages_json_similar_previews_and_tags_of_the_proposal_are_not_found(catalog):
    ds = served(catalog)
    tag = sqlite_utils.Database(catalog).execute("select id from tags where item_id = '1' limit 1").fetchone()[0]
    routes = [f"/-/scisearch/item/cat/file/{item}" for item in PRIVATE_FILES]
    routes += [f"/-/scisearch/item/cat/file/{item}.json" for item in PRIVATE_FILES]
    routes += [f"/-/scisearch/similar/cat/file/{item}.json" for item in PRIVATE_FILES]
    routes += [f"/-/scisearch/preview/cat/{item}.png" for item in PRIVATE_FILES]
    routes += [f"/-/scisearch/item/cat/session/{SESSION_ID}", f"/-/scisearch/item/cat/session/{SESSION_ID}.json"]
    routes += [f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}", f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}.json"]
    routes += [f"/-/scisearch/similar/cat/proposal/{PROPOSAL_ID}.json", f"/-/scisearch/tags/cat/{tag}.json"]
    for who in OUTSIDERS:
        for route in routes:
            response = await ds.client.get(route, cookies=cookies(ds, who))
            assert response.status_code == 404, (who, route, response.status_code)
            assert "Au_np" not in response.text and "gold on ceria" not in response.text, (who, route)


@pytest.mark.asyncio
async def test_the_public_paper_lists_neither_the_proposal_nor_its_files(catalog):
    ds = served(catalog)
    for who in OUTSIDERS:
        paper = f"/-/scisearch/item/cat/paper/{tilde_encode(PAPER_ID)}"
        detail = (await ds.client.get(f"{paper}.json", cookies=cookies(ds, who))).json()
        assert (detail["proposals"], detail["files"], detail["files_total"]) == ([], [], 0)
        page = await ds.client.get(paper, cookies=cookies(ds, who))
        assert page.status_code == 200 and "Au_np" not in page.text and f"/proposal/{PROPOSAL_ID}" not in page.text


@pytest.mark.asyncio
async def test_a_public_papers_hit_quotes_neither_the_proposals_id_nor_its_title(catalog):
    ds = served(catalog)
    title = "Atomic-resolution imaging of gold nanoparticle catalysts"
    for query in ("gold", "gold nanoparticles"):  # the proposal's id finds nothing: test_private_routes.py
        answer = await ds.client.get("/-/scisearch.json", params={"q": query})
        papers = [hit for hit in answer.json()["hits"] if hit["item_type"] == "paper"]
        assert papers and all(hit["proposal"] is None for hit in papers), query
        assert title not in answer.text and not [h for h in papers if PROPOSAL_ID in " ".join(h["why"])], query
        page = await ds.client.get("/-/scisearch", params={"q": query})
        assert title not in page.text, query


@pytest.mark.asyncio
async def test_more_like_a_public_file_leaves_the_proposals_files_out(catalog):
    ds = served(catalog)
    route = "/-/scisearch/similar/cat/file/10.json?k=100"
    similar = (await ds.client.get(route)).json()["similar"]
    assert similar and not {hit["item_id"] for hit in similar} & set(PRIVATE_FILES)
    staff = (await ds.client.get(route, cookies=signed_in(ds, "root"))).json()
    assert {hit["item_id"] for hit in staff["similar"]} & set(PRIVATE_FILES)


@pytest.mark.asyncio
async def test_another_user_may_not_change_a_tag_of_the_proposals_files(catalog):
    from .test_validation_api import post

    ds = Datasette(
        [str(catalog)],
        metadata={"plugins": {"datasette-scisearch": {"timezone": "UTC", "edit": {"allow": {"id": ["bob"]}}}}},
    )
    tag = sqlite_utils.Database(catalog).execute("select id from tags where item_id = '1' limit 1").fetchone()[0]
    bob = signed_in(ds, "bob")
    page = await ds.client.get("/-/scisearch/item/cat/file/10", cookies=bob)
    token = page.cookies.get("ds_csrftoken")
    answer = await post(ds, f"/-/scisearch/tags/cat/{tag}", {"action": "reject"}, {**bob, "ds_csrftoken": token}, token)
    assert answer.status_code == 404
    assert sqlite_utils.Database(catalog)["tags"].get(tag)["status"] == "machine"


@pytest.mark.asyncio
async def test_the_review_queue_shows_another_user_none_of_the_proposals_files(catalog):
    ds = served(catalog)
    page = await ds.client.get("/-/scisearch/queue/cat", cookies=signed_in(ds, "bob"))
    assert page.status_code == 200
    assert not [name for name in PRIVATE_NAMES if name in page.text]


@pytest.mark.asyncio
async def test_search_over_several_catalogs_leaves_out_each_ones_proposal_data(catalog, tmp_path):
    other = tmp_path / "other.db"
    shutil.copy(catalog, other)
    ds = served(catalog, other)
    hits = await search_hits(ds, {}, "gold")
    assert hits and not [hit for hit in hits if hit[0] == "file" and hit[1] in PRIVATE_FILES]
    answer = (await ds.client.get("/-/scisearch.json", params={"q": "gold"})).json()
    assert set(answer["catalogs"]) == {"cat", "other"}


# -- The team and staff -------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_team_member_finds_and_opens_their_own_files(catalog):
    ds = served(catalog)
    jdoe = signed_in(ds, "jdoe")
    assert ("file", "1") in await search_hits(ds, jdoe, "gold")
    assert (await ds.client.get("/-/scisearch/item/cat/file/1", cookies=jdoe)).status_code == 200
    detail = (await ds.client.get("/-/scisearch/item/cat/file/1.json", cookies=jdoe)).json()
    assert detail["proposal"]["id"] == PROPOSAL_ID and detail["session"]["id"] == SESSION_ID
    preview = await ds.client.get("/-/scisearch/preview/cat/1.png", cookies=jdoe)
    assert preview.status_code == 200 and preview.headers["cache-control"] == "private, no-store"


@pytest.mark.asyncio
async def test_staff_see_every_item_of_the_proposal(catalog):
    ds = served(catalog)
    root = signed_in(ds, "root")
    hits = await search_hits(ds, root, "gold")
    assert {("file", "1"), ("file", "2"), ("file", "3"), ("proposal", PROPOSAL_ID)} <= set(hits)
    for route in (f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}.json", "/cat/files.json", "/cat/people.json"):
        assert (await ds.client.get(route, cookies=root)).status_code == 200, route


# -- Datasette's own pages, JSON and SQL ---------------------------------------------------------------------


RAW_ROUTES = [
    "/cat/files",
    "/cat/files.json",
    "/cat/files.csv",
    "/cat/files/1",
    "/cat/files/1.json",
    "/cat/files.json?_facet=proposal_id",
    "/cat/files.json?_where=1",
    "/cat/sessions.json",
    "/cat/proposals.json",
    "/cat/tags.json",
    "/cat/links.json",
    "/cat/previews.json",
    "/cat/search_items.json",
    "/cat/search_items_fts.json",
    "/cat/files_fts.json",
    "/cat/people.json",
    "/cat/proposal_people.json",
    "/cat.json?sql=select+name+from+files",
    "/cat.json?sql=select+*+from+people",
    "/cat.db",
]


@pytest.mark.asyncio
async def test_the_raw_tables_sql_and_download_are_refused_to_everyone_but_staff(catalog):
    ds = served(catalog)
    for who in (*OUTSIDERS, "jdoe"):
        for route in RAW_ROUTES:
            response = await ds.client.get(route, cookies=cookies(ds, who))
            assert response.status_code == 403, (who, route, response.status_code)
            assert "Au_np" not in response.text


@pytest.mark.asyncio
async def test_the_public_views_leave_the_proposals_rows_out(catalog):
    ds = served(catalog)
    names = (await ds.client.get("/cat/files_public.json?_shape=array&_size=max")).json()
    assert len(names) == PUBLIC_FILES and not [row for row in names if row["name"].startswith("Au_np")]
    for view in ("sessions_public", "proposals_public"):
        assert (await ds.client.get(f"/cat/{view}.json?_shape=array")).json() == [], view
    tags = (await ds.client.get("/cat/tags_public.json?_shape=array&_size=max")).json()
    assert not [row for row in tags if row["item_id"] in PRIVATE_FILES]
    links = (await ds.client.get("/cat/links_public.json?_shape=array&_size=max")).json()
    assert not [row for row in links if PROPOSAL_ID in (row["to_id"], row["from_id"])]
    listed = (await ds.client.get("/cat.json")).json()
    shown = {table["name"] for table in listed["tables"]} | {view["name"] for view in listed["views"]}
    assert "files_public" in shown and "files" not in shown and "people" not in shown


@pytest.mark.asyncio
async def test_sql_over_the_public_twin_works_and_never_reads_a_private_row(catalog):
    ds = served(catalog)
    rows = (await ds.client.get("/cat_public.json", params={"sql": "select name from files", "_shape": "array"})).json()
    assert len(rows) == PUBLIC_FILES and not [row for row in rows if row["name"].startswith("Au_np")]
    papers = await ds.client.get("/cat_public.json", params={"sql": "select id from papers", "_shape": "array"})
    assert papers.json() == [{"id": PAPER_ID}]
    for sql in (
        "select name from catalog.files",
        "select count(*) from catalog.files",
        "select * from catalog.people",
        "select * from catalog.proposal_periods",
        "select title from catalog.search_items",
        "with f as (select * from catalog.files) select name from f",
    ):
        response = await ds.client.get("/cat_public.json", params={"sql": sql, "_shape": "array"})
        assert response.status_code == 400 and "Au_np" not in response.text, (sql, response.text[:200])


@pytest.mark.asyncio
async def test_the_canned_context_query_finds_nothing_of_the_proposal(catalog):
    ds = served(catalog)
    rows = (await ds.client.get("/cat/file_context.json", params={"file_id": "1", "_shape": "array"})).json()
    assert rows == []
    output = await ds.client.get("/cat/proposal_output.json", params={"proposal_id": PROPOSAL_ID, "_shape": "array"})
    assert output.json() == []  # not even that a paper acknowledges it


# -- The period ends ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_period_ending_makes_the_data_public_at_the_next_request(catalog):
    ds = served(catalog)
    assert ("file", "1") not in await search_hits(ds, {}, "gold")
    assert (await ds.client.get("/-/scisearch/item/cat/file/1.json")).status_code == 404
    release_now(catalog)
    assert ("file", "1") in await search_hits(ds, {}, "gold")
    assert (await ds.client.get("/-/scisearch/item/cat/file/1.json")).status_code == 200
    assert (await ds.client.get("/-/scisearch/preview/cat/1.png")).status_code == 200
    names = (await ds.client.get("/cat/files_public.json?_shape=array&_size=max")).json()
    assert "Au_np_300kV_HAADF_0012.dm4" in {row["name"] for row in names}
    rows = (await ds.client.get("/cat_public.json", params={"sql": "select name from files", "_shape": "array"})).json()
    assert len(rows) == PUBLIC_FILES + len(PRIVATE_FILES)


@pytest.mark.asyncio
async def test_without_people_or_a_running_period_the_raw_tables_are_open_as_before(catalog):
    db = sqlite_utils.Database(catalog)
    db.execute("delete from proposal_people")
    db.execute("delete from people")
    db.conn.commit()
    release_now(catalog)
    ds = served(catalog)
    assert (await ds.client.get("/cat/files.json")).status_code == 200
    assert (await ds.client.get("/cat.json?sql=select+name+from+files")).status_code == 200


# -- The commands -------------------------------------------------------------------------------------------------


def scisearch(*args):
    from click.testing import CliRunner

    from datasette_scisearch.cli import cli

    return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)


def test_people_add_puts_a_person_on_the_team_whose_records_name_them(catalog):
    added = scisearch("people", "add", catalog, "A. Researcher", "--email", "ar@example.org")
    assert added.exit_code == 0, added.output
    assert f"team of {PROPOSAL_ID} as pi" in added.output
    assert "every name in the records matches one person" in scisearch("people", "unmatched", catalog).output


def test_people_unmatched_lists_the_name_no_person_has(catalog):
    result = scisearch("people", "unmatched", catalog, "--json")
    assert [(row["name"], row["why"]) for row in json.loads(result.output)] == [
        ("A. Researcher", "matches nobody in people")
    ]


def test_periods_says_which_proposals_are_private_and_staff_can_release_one(catalog):
    assert f"{PROPOSAL_ID}: private until" in scisearch("periods", catalog).output
    released = scisearch("periods", catalog, "--proposal", PROPOSAL_ID, "--release", "2020-01-01")
    assert f"{PROPOSAL_ID}: public since 2020-01-01 (from staff)" in released.output


def test_a_release_date_that_is_not_a_date_is_a_clear_error(catalog):
    result = scisearch("periods", catalog, "--proposal", PROPOSAL_ID, "--release", "soon")
    assert result.exit_code == 1
    assert "error: 'soon' is not a date" in result.output and "Traceback" not in result.output


# -- The demo ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory):
    from .search_support import build_demo_catalog, cached_catalog

    return cached_catalog(tmp_path_factory, "demo", build_demo_catalog)


@pytest.mark.asyncio
async def test_the_demo_holds_one_proposal_under_its_period_that_visitors_do_not_see(demo_catalog):
    db = sqlite_utils.Database(demo_catalog)
    private = [
        row[0]
        for row in db.execute("select proposal_id from proposal_periods where release_date > ?", [periods.now_utc()])
    ]
    assert private == ["P-2023-0024"]
    mos2_files = db.execute("select count(*) from files where proposal_id = 'P-2023-0024'").fetchone()[0]
    assert mos2_files > 0
    ds = served(demo_catalog)
    hits = await search_hits(ds, {}, "MoS2 monolayer")
    assert not [hit for hit in hits if hit == ("proposal", "P-2023-0024")]
    file_ids = {item_id for kind, item_id in hits if kind == "file"}
    shown = db.execute(
        "select count(*) from files where proposal_id = 'P-2023-0024' and id in (select value from json_each(?))",
        [json.dumps([int(i) for i in file_ids])],
    ).fetchone()[0]
    assert shown == 0
    staff_hits = await search_hits(ds, signed_in(ds, "root"), "MoS2 monolayer")
    assert ("proposal", "P-2023-0024") in staff_hits


@pytest.mark.asyncio
async def test_the_public_files_view_shows_previews_and_links_names_to_item_pages(catalog):
    ds = served(catalog)
    page = await ds.client.get("/cat/files_public")
    assert page.status_code == 200
    assert '<a class="scisearch-preview" href="/-/scisearch/preview/cat/10.png' in page.text
    assert '<a class="scisearch-item-link" href="/-/scisearch/item/cat/file/10">' in page.text
    assert "Au_np" not in page.text


@pytest.mark.asyncio
async def test_signing_in_with_a_password_as_the_persons_account_opens_their_proposal(catalog):
    auth_passwords = pytest.importorskip("datasette_auth_passwords.utils", reason="datasette-auth-passwords is absent")
    from .test_expert_accounts import PASSWORD, sign_in

    plugins = {
        "datasette-auth-passwords": {
            "jdoe_password_hash": auth_passwords.hash_password(PASSWORD),
            "bob_password_hash": auth_passwords.hash_password(PASSWORD),
        },
        "datasette-scisearch": {"timezone": "UTC"},
    }
    ds = Datasette([str(catalog)], metadata={"plugins": plugins})
    for who, expected in (("jdoe", 200), ("bob", 404)):
        signed = await sign_in(ds, who, PASSWORD)
        assert signed.status_code == 302
        answer = await ds.client.get(
            "/-/scisearch/item/cat/file/1.json", cookies={"ds_actor": signed.cookies["ds_actor"]}
        )
        assert answer.status_code == expected, who
