"""An item described for machines: schema.org ``Dataset`` JSON-LD (for search engines, e.g. Google Dataset Search)
and DataCite-style metadata records (for a repository or a data catalog that mints DOIs).

Both are built from what ``item_detail`` returns, and nothing else: a file's row (instrument, mode, voltage, pixel
size…), its session and proposals, the papers of those proposals, its tags.  ``Site`` carries what the instance
knows of itself (its title as the publisher, metadata.yml's ``license``/``license_url``) and turns paths into the
absolute URLs these formats want.

The properties used are those schema.org defines for ``Dataset`` and the types it points to
(https://schema.org/Dataset, /PropertyValue, /DataDownload, /Person, /ScholarlyArticle); the units carry UN/CEFACT
common codes, as schema.org's ``unitCode`` asks (KVT kilovolt, C45 nanometre, MMT millimetre, C62 "one").  The
DataCite records follow the DataCite Metadata Schema 4 in the JSON shape of DataCite's REST API
(https://schema.datacite.org/meta/kernel-4/, https://support.datacite.org/docs/api).  No DOI is invented: each
record is identified by its URL here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

CONTEXT = "https://schema.org"
MAX_PARTS = 100  # files a proposal's JSON-LD lists by name (the rest are in the sitemap)
MAX_KEYWORDS = 30

# (column, what it measures, schema.org unitText, UN/CEFACT unit code)
MEASURED = [
    ("voltage_kv", "accelerating voltage", "kV", "KVT"),
    ("magnification", "magnification", None, "C62"),
    ("pixel_size_nm", "pixel size", "nm", "C45"),
    ("camera_length_mm", "camera length", "mm", "MMT"),
]
MODES = {
    "STEM": "Scanning transmission electron microscopy (STEM)",
    "TEM": "Transmission electron microscopy (TEM)",
    "SEM": "Scanning electron microscopy (SEM)",
}
KINDS = {
    "diffraction": "Electron diffraction",
    "4D": "4D-STEM (a diffraction pattern at each scan position)",
    "spectrum": "Spectroscopy",
    "spectrum-image": "Spectrum imaging",
    "stack": "Image series",
    "line profile": "Line profile",
}
DETECTORS = {
    "HAADF": "High-angle annular dark-field (HAADF) imaging",
    "BF": "Bright-field imaging",
    "ABF": "Annular bright-field imaging",
    "DF": "Dark-field imaging",
    "EELS": "Electron energy-loss spectroscopy (EELS)",
    "EDS": "Energy-dispersive X-ray spectroscopy (EDS)",
    "EDX": "Energy-dispersive X-ray spectroscopy (EDS)",
}


@dataclass
class Site:
    """What the instance says about itself, and how its paths become absolute URLs."""

    absolute: Callable[[str], str]
    item_path: Callable[[str, object], str]  # (item type, id) -> path of the item page
    download_path: Callable[[object], str] | None = None  # file id -> path of the original's download
    publisher: str | None = None
    license: str | None = None  # a URL when metadata.yml gives license_url, else the licence's name
    license_name: str | None = None

    def item(self, item_type: str, item_id) -> str:
        return self.absolute(self.item_path(item_type, item_id))


# -- schema.org ------------------------------------------------------------------------------------------


def item_json_ld(detail: dict, site: Site) -> dict:
    """The JSON-LD of an item page: a Dataset for a file, a proposal or a session (the data of one booking), a
    ScholarlyArticle for a paper (an article is not a dataset: it points to the proposals' data it is based on)."""
    if detail["item_type"] == "paper":
        return _paper_article(detail, site)
    return dataset_json_ld(detail, site)


def dataset_json_ld(detail: dict, site: Site) -> dict | None:
    """The schema.org Dataset for a file, a proposal or a session; None for a paper."""
    item_type = detail["item_type"]
    if item_type == "file":
        return _file_dataset(detail, site)
    if item_type == "proposal":
        return _proposal_dataset(detail, site)
    if item_type == "session":
        return _session_dataset(detail, site)
    return None


def _common(detail: dict, site: Site, description: str) -> dict:
    item_type, item_id = detail["item_type"], detail["item_id"]
    url = site.item(item_type, item_id)
    ld = {
        "@context": CONTEXT,
        "@type": "Dataset",
        "@id": url,
        "name": detail.get("title") or f"{item_type} {item_id}",
        "description": description,
        "url": url,
        "identifier": url,
    }
    if site.license:
        ld["license"] = _license(site)
    if site.publisher:
        ld["publisher"] = {"@type": "Organization", "name": site.publisher}
        ld["includedInDataCatalog"] = {"@type": "DataCatalog", "name": site.publisher, "url": site.absolute("/")}
    keywords = _keywords(detail)
    if keywords:
        ld["keywords"] = keywords
    citations = [_article(paper) for paper in detail.get("papers") or []]
    if citations:
        ld["citation"] = citations
    return ld


def _file_dataset(detail: dict, site: Site) -> dict:
    row = detail.get("row") or {}
    ld = _common(detail, site, _file_description(row))
    for key, column in (("dateCreated", "acquired_at"), ("dateModified", "modified_at")):
        if row.get(column):
            ld[key] = str(row[column])
    if row.get("acquired_at"):
        ld["temporalCoverage"] = str(row["acquired_at"])
    techniques = measurement_techniques(row)
    if techniques:
        ld["measurementTechnique"] = techniques
    measured = [
        _property_value(name, row[column], unit, code)
        for column, name, unit, code in MEASURED
        if isinstance(row.get(column), (int, float))
    ]
    if measured:
        ld["variableMeasured"] = measured
    creators = _people(
        detail.get("team") or [(detail.get("session") or {}).get("user"), *[p.get("pi") for p in detail["proposals"]]]
    )
    if creators:
        ld["creator"] = creators
    if detail["proposals"]:
        ld["isPartOf"] = [_proposal_reference(p, site) for p in detail["proposals"]]
    if site.download_path is not None and not row.get("missing_since"):  # gone from its folder: nothing to fetch
        ld["distribution"] = [
            {
                "@type": "DataDownload",
                "name": row.get("name") or detail["item_id"],
                "contentUrl": site.absolute(site.download_path(detail["item_id"])),
                "encodingFormat": row.get("format") or "application/octet-stream",
                **({"contentSize": f"{row['size_bytes']} B"} if row.get("size_bytes") else {}),
            }
        ]
    return ld


def _proposal_dataset(detail: dict, site: Site) -> dict:
    row = detail.get("row") or {}
    ld = _common(detail, site, row.get("abstract") or f"The data of proposal {detail['item_id']}.")
    if row.get("start_date"):
        ld["dateCreated"] = str(row["start_date"])
        ld["temporalCoverage"] = f"{row['start_date']}/{row.get('end_date') or '..'}"
    creators = _people(detail.get("team") or [row.get("pi")], affiliation=row.get("institution"))
    if creators:
        ld["creator"] = creators
    _add_parts(ld, detail, site)
    return ld


def _session_dataset(detail: dict, site: Site) -> dict:
    row = detail.get("row") or {}
    said = f"{row.get('instrument') or 'An instrument'} booked by {row.get('user') or 'an unknown user'}"
    if row.get("start"):
        said += f" from {row['start']} to {row.get('end') or '?'}"
    ld = _common(detail, site, f"{said}." + (f" Notes: {row['notes']}" if row.get("notes") else ""))
    if row.get("start"):
        ld["dateCreated"] = str(row["start"])
        ld["temporalCoverage"] = f"{row['start']}/{row.get('end') or '..'}"
    creators = _people(detail.get("team") or [row.get("user")])
    if creators:
        ld["creator"] = creators
    _add_parts(ld, detail, site)
    if detail.get("proposals"):
        ld["isPartOf"] = [_proposal_reference(p, site) for p in detail["proposals"]]
    return ld


def _paper_article(detail: dict, site: Site) -> dict:
    row = detail.get("row") or {}
    url = site.item("paper", detail["item_id"])
    ld = {"@context": CONTEXT, "@type": "ScholarlyArticle", "@id": url, "url": url, "name": detail.get("title")}
    if row.get("abstract"):
        ld["abstract"] = row["abstract"]
    authors = _people(re.split(r"\s*;\s*|\s+and\s+", row.get("authors") or ""))
    if authors:
        ld["author"] = authors
    article = _article(row)
    for key in ("identifier", "datePublished"):
        if key in article:
            ld[key] = article[key]
    if "url" in article:
        ld["sameAs"] = article["url"]  # the DOI's own address
    if detail.get("proposals"):
        ld["isBasedOn"] = [_proposal_reference(p, site) for p in detail["proposals"]]
    return ld


def _proposal_reference(proposal: dict, site: Site) -> dict:
    return {
        "@type": "Dataset",
        "name": proposal.get("title") or proposal["id"],
        "identifier": proposal["id"],
        "url": site.item("proposal", proposal["id"]),
    }


def _add_parts(ld: dict, detail: dict, site: Site) -> None:
    """A proposal's or session's files, as its parts (the first MAX_PARTS), and how they were measured."""
    files = detail.get("files") or []
    techniques = sorted({t for f in files for t in measurement_techniques(f)})
    if techniques:
        ld["measurementTechnique"] = techniques
    parts = [
        {"@type": "Dataset", "name": f.get("title") or f.get("name") or str(f["id"]), "url": site.item("file", f["id"])}
        for f in files[:MAX_PARTS]
    ]
    if parts:
        ld["hasPart"] = parts


def measurement_techniques(row: dict) -> list[str]:
    """How a file was measured, in words a search engine's reader knows (mode, kind, detector)."""
    found = []
    mode = (row.get("mode") or "").upper()
    for key, words in MODES.items():
        if key in mode:
            found.append(words)
    if row.get("kind") in KINDS:
        found.append(KINDS[row["kind"]])
    detector = (row.get("detector") or "").upper()
    for key, words in DETECTORS.items():
        if key in detector.replace("-", " ").split() or detector == key:
            found.append(words)
    return list(dict.fromkeys(found)) or ["Electron microscopy"]


def _file_description(row: dict) -> str:
    """One sentence of what the file holds, from its catalogued facts."""
    kind = row.get("kind") or "dataset"
    facts = [f"{row.get('mode')} {kind}" if row.get("mode") else kind]
    if row.get("detector"):
        facts.append(f"{row['detector']} detector")
    if row.get("shape"):
        facts.append(f"shape {row['shape']}")
    for column, name, unit, _ in MEASURED:
        value = row.get(column)
        if isinstance(value, (int, float)):
            facts.append(f"{name} {value:g}{' ' + unit if unit else '×'}")
    if row.get("instrument"):
        facts.append(f"on {row['instrument']}")
    if row.get("acquired_at"):
        facts.append(f"acquired {row['acquired_at']}")
    name = row.get("name") or "This file"
    return f"{name}: electron-microscopy {', '.join(facts)}."


def _license(site: Site):
    """schema.org's ``license`` is a URL or a CreativeWork: a URL alone as it is, a name as a CreativeWork."""
    if site.license_name and site.license != site.license_name:
        return {"@type": "CreativeWork", "name": site.license_name, "url": site.license}
    if "://" in site.license:
        return site.license
    return {"@type": "CreativeWork", "name": site.license}


def _property_value(name: str, value, unit: str | None, code: str) -> dict:
    prop = {"@type": "PropertyValue", "name": name, "value": value, "unitCode": code}
    if unit:
        prop["unitText"] = unit
    return prop


def _people(names: list, affiliation: str | None = None) -> list[dict]:
    """Each distinct name as a Person: the team's names from ``people`` where the proposal's people are matched
    (``detail["team"]``, web/findable.py), else the records' strings as they are."""
    people = []
    for name in dict.fromkeys(str(n).strip() for n in names if n and str(n).strip()):
        person = {"@type": "Person", "name": name}
        if affiliation:
            person["affiliation"] = {"@type": "Organization", "name": affiliation}
        people.append(person)
    return people


def _article(paper: dict) -> dict:
    article = {"@type": "ScholarlyArticle", "name": paper.get("title") or str(paper.get("id"))}
    doi = (paper.get("doi") or "").strip()
    if doi:
        article["identifier"] = doi
        article["url"] = doi if doi.startswith("http") else f"https://doi.org/{doi}"
    # schema.org wants an ISO 8601 date: a publication date when the catalog has one; a bare year is not one.
    published = str(paper.get("published") or "")
    if re.match(r"\d{4}-\d\d-\d\d", published):
        article["datePublished"] = published[:10]
    return article


def _keywords(detail: dict) -> list[str]:
    words = []
    for tags in (detail.get("tags") or {}).values():
        words.extend(t["tag"] for t in tags if t.get("status") != "rejected")
    return list(dict.fromkeys(words))[:MAX_KEYWORDS]


# -- DataCite ------------------------------------------------------------------------------------------------


def datacite_record(detail: dict, site: Site, publication_year: int) -> dict:
    """One DataCite-style record (the ``attributes`` of DataCite's REST API) for a file or a proposal."""
    ld = dataset_json_ld(detail, site) or {}
    row = detail.get("row") or {}
    is_proposal = detail["item_type"] == "proposal"
    creators = [
        {
            "name": p["name"],
            "nameType": "Personal",
            **({"affiliation": [{"name": p["affiliation"]["name"]}]} if "affiliation" in p else {}),
        }
        for p in ld.get("creator") or []
    ] or [{"name": site.publisher or "Unknown", "nameType": "Organizational"}]
    record = {
        "identifiers": [{"identifier": ld.get("url"), "identifierType": "URL"}],
        "url": ld.get("url"),
        "types": {
            "resourceTypeGeneral": "Collection" if is_proposal else "Dataset",
            "resourceType": "Proposal data" if is_proposal else (row.get("kind") or "Dataset"),
        },
        "titles": [{"title": ld.get("name")}],
        "creators": creators,
        "publisher": site.publisher or "Unknown",
        "publicationYear": publication_year,
        "descriptions": [{"description": ld.get("description"), "descriptionType": "Abstract"}],
        "subjects": [{"subject": word} for word in ld.get("keywords") or []]
        + [{"subject": technique} for technique in _as_list(ld.get("measurementTechnique"))],
        "dates": _datacite_dates(ld),
        "relatedIdentifiers": _datacite_relations(ld, detail, site),
        "schemaVersion": "http://datacite.org/schema/kernel-4",
    }
    if site.license:
        record["rightsList"] = [
            {
                "rights": site.license_name or site.license,
                **({"rightsUri": site.license} if "://" in site.license else {}),
            }
        ]
    if not is_proposal:
        if row.get("format"):
            record["formats"] = [row["format"]]
        if row.get("size_bytes"):
            record["sizes"] = [f"{row['size_bytes']} bytes"]
    return record


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value] if value else []


def _datacite_dates(ld: dict) -> list[dict]:
    dates = []
    if ld.get("dateCreated"):
        dates.append({"date": ld["dateCreated"], "dateType": "Created"})
    if ld.get("dateModified"):
        dates.append({"date": ld["dateModified"], "dateType": "Updated"})
    return dates


def _datacite_relations(ld: dict, detail: dict, site: Site) -> list[dict]:
    relations = []
    for paper in ld.get("citation") or []:
        if paper.get("identifier"):
            relations.append(
                {"relatedIdentifier": paper["identifier"], "relatedIdentifierType": "DOI", "relationType": "IsCitedBy"}
            )
    for whole in ld.get("isPartOf") or []:
        relations.append(
            {"relatedIdentifier": whole["url"], "relatedIdentifierType": "URL", "relationType": "IsPartOf"}
        )
    for part in ld.get("hasPart") or []:
        relations.append({"relatedIdentifier": part["url"], "relatedIdentifierType": "URL", "relationType": "HasPart"})
    return relations
