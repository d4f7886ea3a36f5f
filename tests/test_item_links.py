"""Every many-to-many link shows all its ends on the item pages and in their JSON: a paper that acknowledges
two proposals names both, a proposal lists its sessions, a session its files."""

from __future__ import annotations

import re

import pytest
import sqlite_utils
from datasette.app import Datasette
from datasette.utils import tilde_encode

from .test_pages import PAPER_ID, PROPOSAL_ID, SESSION_ID, SETTINGS, build_catalog

SECOND_PROPOSAL = "BES-2020-17"
SECOND_SESSION = "9c1d2e3f4a5b6c7d"
PAPER_ROUTE = tilde_encode(PAPER_ID)


@pytest.fixture(scope="module")
def linked_catalog(tmp_path_factory):
    """The pages' catalog, with the paper also acknowledging a second proposal and a second session booked."""
    path = tmp_path_factory.mktemp("links") / "cat.db"
    build_catalog(path, with_vectors=False)
    db = sqlite_utils.Database(path)
    with db.conn:
        db["proposals"].insert(
            {"id": SECOND_PROPOSAL, "title": "Ceria supports for single-atom catalysts", "pi": "C. Chemist"}
        )
        db["links"].insert(
            {"from_type": "paper", "from_id": PAPER_ID, "to_type": "proposal", "to_id": SECOND_PROPOSAL}
            | {"method": "proposal id in acknowledgements", "evidence": SECOND_PROPOSAL, "confidence": 0.9}
        )
        db["sessions"].insert(
            {
                "id": SECOND_SESSION,
                "instrument": "Helios",
                "user": "asmith",
                "start": "2019-04-01T16:00:00+00:00",
                "end": "2019-04-01T20:00:00+00:00",
                "proposal_id": PROPOSAL_ID,
            }
        )
    db.close()
    return path


@pytest.fixture
def ds(linked_catalog):
    return Datasette([str(linked_catalog)], metadata=SETTINGS)


def context_links(text: str) -> list[tuple[str, str]]:
    section = re.search(r'<section class="scisearch-context">.*?</section>', text, re.S)[0]
    return re.findall(
        r'scisearch-linked-label">(\w+)</span>\s*<a href="[^"]*/(?:proposal|paper|session)/([^"]+)"', section
    )


@pytest.mark.asyncio
async def test_a_paper_that_acknowledges_two_proposals_shows_both(ds):
    response = await ds.client.get(f"/-/scisearch/item/cat/paper/{PAPER_ROUTE}")
    assert response.status_code == 200
    proposals = [item_id for label, item_id in context_links(response.text) if label == "Proposal"]
    assert proposals == [PROPOSAL_ID, SECOND_PROPOSAL]


@pytest.mark.asyncio
async def test_the_item_json_of_a_paper_lists_both_proposals_with_links(ds):
    data = (await ds.client.get(f"/-/scisearch/item/cat/paper/{PAPER_ROUTE}.json")).json()
    assert [p["id"] for p in data["proposals"]] == [PROPOSAL_ID, SECOND_PROPOSAL]
    assert data["proposals"][1]["url"] == f"/-/scisearch/item/cat/proposal/{SECOND_PROPOSAL}"


@pytest.mark.asyncio
async def test_the_second_proposal_lists_the_paper_that_acknowledges_it(ds):
    response = await ds.client.get(f"/-/scisearch/item/cat/proposal/{SECOND_PROPOSAL}")
    papers = [item_id for label, item_id in context_links(response.text) if label == "Paper"]
    assert papers == [PAPER_ROUTE]


@pytest.mark.asyncio
async def test_a_proposal_page_lists_its_sessions_with_instrument_date_and_who(ds):
    response = await ds.client.get(f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}")
    section = re.search(r'<section class="scisearch-item-sessions".*?</section>', response.text, re.S)[0]
    assert re.findall(r'/session/(\w+)"', section) == [SESSION_ID, SECOND_SESSION]
    assert "TitanCubed session of jdoe" in section and "Helios session of asmith" in section
    assert "2019-03-04 19:00 to 23:00-08:00 (PST)" in section


@pytest.mark.asyncio
async def test_a_session_page_lists_its_files(ds):
    response = await ds.client.get(f"/-/scisearch/item/cat/session/{SESSION_ID}")
    files = re.search(
        r'<section class="scisearch-item-files">.*?<section class="scisearch-similar"', response.text, re.S
    )[0]
    assert re.findall(r'data-item-type="file" data-item-id="(\d+)"', files) == ["1", "2", "3"]


@pytest.mark.asyncio
async def test_a_file_page_names_its_session_and_proposal(ds):
    response = await ds.client.get("/-/scisearch/item/cat/file/1")
    assert ("Session", SESSION_ID) in context_links(response.text)
    assert ("Proposal", PROPOSAL_ID) in context_links(response.text)


@pytest.mark.asyncio
async def test_a_papers_doi_links_to_its_resolver(ds):
    response = await ds.client.get(f"/-/scisearch/item/cat/paper/{PAPER_ROUTE}")
    assert f'<a href="https://doi.org/{PAPER_ID}" rel="noopener">{PAPER_ID}</a>' in response.text


def test_a_files_shape_is_given_in_pixels():
    from datasette_scisearch.web.present import format_value

    assert format_value("shape", "432×512") == "432×512 px"
