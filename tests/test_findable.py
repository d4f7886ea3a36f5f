"""Findable: schema.org Dataset JSON-LD on public item pages (checked against schema.org's own property lists, kept in
tests/data/schema_org), a paged sitemap of public items, and a DataCite-style export of a proposal's datasets."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from datasette.app import Datasette

from datasette_scisearch.web import findable

from .test_pages import HOSTILE_TAG, PAPER_ID, PROPOSAL_ID, SESSION_ID, SI_FILES, build_catalog

SCHEMA = json.loads((Path(__file__).parent / "data" / "schema_org" / "dataset_properties.json").read_text())
LICENSE_URL = "https://creativecommons.org/licenses/by/4.0/"
METADATA = {
    "title": "Example Microscopy Facility",
    "license": "CC BY 4.0",
    "license_url": LICENSE_URL,
    "plugins": {"datasette-scisearch": {"timezone": "America/Los_Angeles"}},
}
STAFF_ONLY_FILES = {"databases": {"cat": {"tables": {"files": {"allow": {"id": "staff"}}}}}}
ITEMS = 3 + 1 + SI_FILES + 3  # gold files, the spectrum, lamellae; a proposal, a paper, a session
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
# DataCite Metadata Schema 4's mandatory properties (https://schema.datacite.org/meta/kernel-4/), as its REST API
# spells them: Identifier, Creator, Title, Publisher, PublicationYear, ResourceType.
DATACITE_MANDATORY = ["identifiers", "creators", "titles", "publisher", "publicationYear", "types"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("findable") / "cat.db"
    build_catalog(path, with_vectors=False)
    return path


def served(path, **extra) -> Datasette:
    return Datasette([str(path)], metadata={**METADATA, **extra})


def json_ld(html: str) -> dict | None:
    found = re.findall(r'<script type="application/ld\+json">(.*?)</script>', html, re.S)
    assert len(found) <= 1
    return json.loads(found[0]) if found else None


# -- Checking against schema.org's definitions --------------------------------------------------------------


def is_a(type_name: str, wanted: str) -> bool:
    """Whether a schema.org type (or data type) is ``wanted`` or one of its subtypes."""
    while type_name is not None:
        if type_name == wanted:
            return True
        type_name = SCHEMA["types"].get(type_name, {}).get("parent") or SCHEMA["data_types"].get(type_name)
    return False


def properties_of(type_name: str) -> dict:
    found = {}
    while type_name is not None:
        entry = SCHEMA["types"][type_name]
        found = {**entry["properties"], **found}
        type_name = entry["parent"]
    return found


def fits(value, expected: list[str]) -> bool:
    if isinstance(value, dict):
        return any(is_a(value.get("@type"), name) for name in expected)
    if isinstance(value, bool):
        return "Boolean" in expected
    if isinstance(value, (int, float)):
        return any(name in ("Number", "Integer") for name in expected)
    if isinstance(value, str):
        if "Text" in expected:
            return True
        if "URL" in expected and re.match(r"https?://", value):
            return True
        if {"Date", "DateTime"} & set(expected) and re.match(r"\d{4}-\d\d-\d\d", value):
            return True
    return False


def schema_problems(node: dict, where: str = "") -> list[str]:
    """Every property of ``node`` (and of the nodes inside it) that its schema.org type does not define, or whose
    value is not of a type schema.org expects for it."""
    node_type = node.get("@type")
    if node_type not in SCHEMA["types"]:
        return [f"{where or 'top'}: unknown type {node_type!r}"]
    allowed = properties_of(node_type)
    problems = []
    for key, value in node.items():
        if key.startswith("@"):
            continue
        if key not in allowed:
            problems.append(f"{where}{node_type}.{key} is not a schema.org property of {node_type}")
            continue
        for item in value if isinstance(value, list) else [value]:
            if not fits(item, allowed[key]):
                problems.append(f"{where}{node_type}.{key} = {item!r:.80} is not one of {allowed[key]}")
            elif isinstance(item, dict):
                problems.extend(schema_problems(item, f"{where}{node_type}.{key} > "))
    return problems


def test_the_schema_check_finds_a_property_schema_org_does_not_define():
    assert schema_problems({"@type": "Dataset", "name": "x", "voltage": 300}) == [
        "Dataset.voltage is not a schema.org property of Dataset"
    ]
    assert schema_problems({"@type": "Dataset", "variableMeasured": {"@type": "Person", "name": "x"}})


# -- JSON-LD on the item pages ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_file_page_carries_dataset_json_ld_that_uses_only_schema_org_dataset_properties(catalog):
    page = await served(catalog).client.get("/-/scisearch/item/cat/file/1")
    ld = json_ld(page.text)
    assert ld["@context"] == "https://schema.org" and ld["@type"] == "Dataset"
    assert schema_problems(ld) == []


@pytest.mark.asyncio
async def test_a_file_json_ld_names_technique_measured_values_with_units_creators_license_proposal_and_paper(catalog):
    ld = json_ld((await served(catalog).client.get("/-/scisearch/item/cat/file/1")).text)
    assert ld["name"] == "Au_np_300kV_HAADF_0012.dm4"
    assert ld["url"] == "http://localhost/-/scisearch/item/cat/file/1"
    assert ld["dateCreated"] == "2019-03-05T04:30:00+00:00"
    assert "High-angle annular dark-field (HAADF) imaging" in ld["measurementTechnique"]
    assert "Scanning transmission electron microscopy (STEM)" in ld["measurementTechnique"]
    measured = {p["name"]: p for p in ld["variableMeasured"]}
    assert (measured["accelerating voltage"]["value"], measured["accelerating voltage"]["unitText"]) == (300.0, "kV")
    assert (measured["pixel size"]["value"], measured["pixel size"]["unitCode"]) == (0.012, "C45")
    assert [c["name"] for c in ld["creator"]] == ["jdoe", "A. Researcher"]
    assert ld["license"] == {"@type": "CreativeWork", "name": "CC BY 4.0", "url": LICENSE_URL}
    assert ld["isPartOf"][0]["url"] == f"http://localhost/-/scisearch/item/cat/proposal/{PROPOSAL_ID}"
    assert ld["citation"][0]["url"] == f"https://doi.org/{PAPER_ID}"
    assert ld["distribution"][0]["contentUrl"] == "http://localhost/-/scisearch/download/cat/1"


@pytest.mark.asyncio
async def test_a_proposal_page_carries_dataset_json_ld_with_its_files_as_parts(catalog):
    ld = json_ld((await served(catalog).client.get(f"/-/scisearch/item/cat/proposal/{PROPOSAL_ID}")).text)
    assert schema_problems(ld) == []
    assert ld["description"].startswith("We image supported gold nanoparticles")
    assert ld["creator"] == [
        {
            "@type": "Person",
            "name": "A. Researcher",
            "affiliation": {"@type": "Organization", "name": "University of Somewhere"},
        }
    ]
    assert {part["url"].rsplit("/", 1)[1] for part in ld["hasPart"]} == {"1", "2", "3"}
    assert ld["citation"][0]["identifier"] == PAPER_ID


@pytest.mark.asyncio
async def test_a_tag_written_as_html_cannot_end_the_json_ld_script(catalog):
    page = await served(catalog).client.get("/-/scisearch/item/cat/file/1")
    script = re.search(r'<script type="application/ld\+json">(.*?)</script>', page.text, re.S)[1]
    assert "<" not in script
    assert HOSTILE_TAG in json.loads(script)["keywords"]


@pytest.mark.asyncio
async def test_a_session_page_carries_dataset_json_ld_of_its_booking(catalog):
    ld = json_ld((await served(catalog).client.get(f"/-/scisearch/item/cat/session/{SESSION_ID}")).text)
    assert ld["@type"] == "Dataset" and schema_problems(ld) == []
    assert ld["temporalCoverage"] == "2019-03-05T03:00:00+00:00/2019-03-05T07:00:00+00:00"
    assert ld["creator"] == [{"@type": "Person", "name": "jdoe"}]
    assert ld["isPartOf"][0]["identifier"] == PROPOSAL_ID
    assert len(ld["hasPart"]) == 3


@pytest.mark.asyncio
async def test_a_paper_page_carries_a_scholarly_article_based_on_its_proposals_data(catalog):
    page = await served(catalog).client.get("/-/scisearch/item/cat/paper/10.5555~2Fgold~2F2019.1")
    ld = json_ld(page.text)
    assert ld["@type"] == "ScholarlyArticle" and schema_problems(ld) == []
    assert [a["name"] for a in ld["author"]] == ["A. Researcher", "B. Student"]
    assert ld["sameAs"] == f"https://doi.org/{PAPER_ID}"
    assert ld["isBasedOn"][0]["url"] == f"http://localhost/-/scisearch/item/cat/proposal/{PROPOSAL_ID}"


@pytest.mark.asyncio
async def test_an_item_anonymous_visitors_may_not_read_carries_no_json_ld_even_for_staff(catalog):
    ds = served(catalog, **STAFF_ONLY_FILES)
    staff = {"ds_actor": ds.sign({"a": {"id": "staff"}}, "actor")}
    page = await ds.client.get("/-/scisearch/item/cat/file/1", cookies=staff)
    assert page.status_code == 200 and "Au_np_300kV_HAADF_0012.dm4" in page.text
    assert json_ld(page.text) is None


# -- Sitemap -----------------------------------------------------------------------------------------------


async def sitemap_urls(ds) -> list[str]:
    index = ElementTree.fromstring((await ds.client.get("/sitemap.xml")).text)
    urls = []
    for loc in index.iter(f"{SITEMAP}loc"):
        page = await ds.client.get(loc.text.removeprefix("http://localhost"))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("application/xml")
        urls += [u.text for u in ElementTree.fromstring(page.text).iter(f"{SITEMAP}loc")]
    return urls


@pytest.mark.asyncio
async def test_the_sitemap_lists_every_public_item_page_once(catalog):
    urls = await sitemap_urls(served(catalog))
    assert len(urls) == len(set(urls)) == ITEMS
    assert "http://localhost/-/scisearch/item/cat/file/1" in urls
    assert f"http://localhost/-/scisearch/item/cat/proposal/{PROPOSAL_ID}" in urls


@pytest.mark.asyncio
async def test_a_large_sitemap_is_paged_and_the_pages_together_list_each_item_once(catalog, monkeypatch):
    monkeypatch.setattr(findable, "SITEMAP_PAGE", 10)
    ds = served(catalog)
    index = ElementTree.fromstring((await ds.client.get("/sitemap.xml")).text)
    assert len(list(index.iter(f"{SITEMAP}sitemap"))) == -(-ITEMS // 10)
    urls = await sitemap_urls(ds)
    assert len(urls) == len(set(urls)) == ITEMS


@pytest.mark.asyncio
async def test_the_sitemap_leaves_out_items_anonymous_visitors_may_not_read(catalog):
    urls = await sitemap_urls(served(catalog, **STAFF_ONLY_FILES))
    assert urls and not any("/file/" in url for url in urls)


@pytest.mark.asyncio
async def test_a_sitemap_page_past_the_end_is_a_404(catalog):
    ds = served(catalog)
    assert (await ds.client.get("/-/scisearch/sitemap/cat/99.xml")).status_code == 404
    assert (await ds.client.get("/-/scisearch/sitemap/cat/x.xml")).status_code == 404


# -- DataCite ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_datacite_export_of_a_proposal_has_a_record_for_it_and_each_of_its_files(catalog):
    response = await served(catalog).client.get(f"/-/scisearch/datacite/cat/{PROPOSAL_ID}.json")
    assert response.status_code == 200
    records = [record["attributes"] for record in response.json()["data"]]
    assert [r["types"]["resourceTypeGeneral"] for r in records] == ["Collection", "Dataset", "Dataset", "Dataset"]
    for record in records:
        assert [key for key in DATACITE_MANDATORY if not record.get(key)] == []
        assert record["publisher"] == "Example Microscopy Facility"
        assert {"relatedIdentifier": PAPER_ID, "relatedIdentifierType": "DOI", "relationType": "IsCitedBy"} in (
            record["relatedIdentifiers"]
        )
        assert record["rightsList"] == [{"rights": "CC BY 4.0", "rightsUri": LICENSE_URL}]
    assert records[1]["titles"] == [{"title": "Au_np_300kV_HAADF_0012.dm4"}]


@pytest.mark.asyncio
async def test_the_datacite_export_pages_through_many_files(catalog, monkeypatch):
    monkeypatch.setattr(findable, "DATACITE_PAGE", 2)
    ds = served(catalog)
    first = (await ds.client.get(f"/-/scisearch/datacite/cat/{PROPOSAL_ID}.json")).json()
    assert first["meta"] == {"total": 3, "page": 1, "totalPages": 2}
    second = (await ds.client.get(first["links"]["next"].removeprefix("http://localhost"))).json()
    assert len(first["data"]) == 3 and len(second["data"]) == 1  # the proposal's own record is on page 1
    assert "next" not in second["links"]


@pytest.mark.asyncio
async def test_the_datacite_export_follows_the_read_rule_and_names_a_missing_proposal(catalog):
    hidden = served(catalog, databases={"cat": {"tables": {"proposals": {"allow": {"id": "staff"}}}}})
    assert (await hidden.client.get(f"/-/scisearch/datacite/cat/{PROPOSAL_ID}.json")).status_code == 403
    missing = await served(catalog).client.get("/-/scisearch/datacite/cat/NOPE-1.json")
    assert missing.status_code == 404 and "NOPE-1" in missing.json()["error"]


@pytest.mark.asyncio
async def test_a_datacite_page_too_far_to_count_is_a_404_not_a_500(catalog):
    response = await served(catalog).client.get(f"/-/scisearch/datacite/cat/{PROPOSAL_ID}.json?page={'9' * 25}")
    assert response.status_code == 404
