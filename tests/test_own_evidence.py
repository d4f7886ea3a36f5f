"""Ranking respects an item's own evidence: what a file's own tags, metadata and pixels say outweighs what it
inherits from its proposal, while the inherited words still find it.

Each pinned query has, in one proposal whose text and keywords mention the query, a file whose own evidence
says it (``shows``) and a file that has the words only through its proposal (``inherits``).  The file that
inherits is given the shorter document on purpose: that is where inherited keywords used to win, by BM25's
length normalisation, when they were counted among a file's own tags.  These are rules of the fusion, so
tuned weights (``engine.DEFAULT_WEIGHTS``) must keep them passing.
"""

from __future__ import annotations

import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.search import engine
from datasette_scisearch.search.index import refresh_search_items

# What a tagged image carries whatever it shows: its instrument, settings and acquisition, as the metadata and
# filename taggers write them.  It makes the documents of well-described files long, as they are.
ROUTINE_TAGS = ["TEAM 0.5", "high magnification", "pixel 0.01–0.1 nm", "2021", "2021-09-20", "mgarcia", "emd", "single"]
ROUTINE_TAGS += ["sharp", "160 mm", "STEM", "Z-contrast", "300 kV", "HAADF detector", "drift corrected", "16-bit"]
# query, proposal title, the own tags of the file that shows it, of the file that inherits it (kind, tags)
PINNED = [
    (
        "gold nanoparticles",
        "Supported gold nanoparticles for catalysis",
        ("image", ["gold", "nanoparticles", "particles", "real-space image", "HAADF", "STEM", "300 kV", "2.5 Mx"]),
        ("diffraction", ["diffraction pattern", "300 kV"]),
    ),
    (
        "HAADF",
        "HAADF-STEM of perovskite interfaces",
        ("image", ["HAADF", "STEM", "high-angle annular dark-field", "Z-contrast", "300 kV", "atomic resolution"]),
        ("image", ["bright field", "TEM"]),
    ),
    (
        "ceria nanocubes",
        "Shape-controlled ceria nanocubes",
        ("image", ["ceria", "CeO2", "nanocubes", "particles", "real-space image", "200 kV", "lattice fringes"]),
        ("spectrum", ["EELS", "spectrum"]),
    ),
    (
        "lattice fringes",
        "Lattice fringes in strained silicon",
        ("image", ["lattice fringes", "periodic structure", "atomic resolution", "HRTEM", "sharp", "300 kV"]),
        ("image", ["blurred", "SEM"]),
    ),
    (
        "nanowires",
        "Growth of GaN nanowires",
        ("image", ["nanowires", "elongated objects", "GaN", "SEM", "5 kV", "real-space image"]),
        ("spectrum", ["EDS", "spectrum"]),
    ),
    (
        "EELS",
        "EELS mapping of oxygen vacancies",
        ("spectrum", ["EELS", "electron energy loss", "spectrum", "O K edge", "Ti L edge", "300 kV"]),
        ("image", ["HAADF", "STEM"]),
    ),
    (
        "grain boundary",
        "Grain boundary structure in SrTiO3",
        ("image", ["grain boundary", "SrTiO3", "HAADF", "atomic resolution", "STEM", "300 kV"]),
        ("diffraction", ["diffraction pattern"]),
    ),
    (
        "diffraction pattern",
        "Diffraction patterns of quasicrystals",
        ("diffraction", ["diffraction pattern", "diffraction", "camera length 480 mm", "300 kV", "SAED", "rings"]),
        ("image", ["real-space image", "TEM"]),
    ),
    (
        "graphene",
        "Defects in graphene membranes",
        ("image", ["graphene", "carbon", "monolayer", "atomic resolution", "60 kV", "periodic structure"]),
        ("spectrum", ["EELS"]),
    ),
    (
        "zeolite",
        "Low-dose imaging of zeolite frameworks",
        ("image", ["zeolite", "framework", "low dose", "iDPC", "300 kV", "periodic structure"]),
        ("diffraction", ["diffraction pattern"]),
    ),
    (
        "platinum particles",
        "Platinum particles on carbon supports",
        ("image", ["platinum", "Pt", "particles", "real-space image", "HAADF", "200 kV"]),
        ("diffraction", ["diffraction pattern", "200 kV"]),
    ),
    (
        "in situ heating",
        "In situ heating of metal catalysts",
        ("stack", ["in situ", "heating", "series", "stack", "300 kV", "real-space image"]),
        ("image", ["HAADF"]),
    ),
]


@pytest.fixture(scope="module")
def pinned_catalog(tmp_path_factory):
    db = open_catalog(tmp_path_factory.mktemp("own") / "own.db")
    for number, (query, title, (shows_kind, shows_tags), (inherits_kind, inherits_tags)) in enumerate(PINNED):
        proposal = f"P-{number:02d}"
        db["proposals"].insert(
            {"id": proposal, "title": title, "abstract": f"We study {query} by electron microscopy."}
        )
        for suffix, kind, tags in (("shows", shows_kind, shows_tags), ("inherits", inherits_kind, inherits_tags)):
            file_id = 100 * (number + 1) + (1 if suffix == "shows" else 2)
            db["files"].insert(
                {"id": file_id, "name": f"{proposal}_{file_id:04d}.dm4", "path": f"/data/{proposal}/{file_id}.dm4"}
                | {"kind": kind, "proposal_id": proposal, "format": "dm4", "search_text": f"{kind} {proposal}"}
            )
            own = tags + (ROUTINE_TAGS if suffix == "shows" else [])
            rows = [{"tag": tag, "score": 0.8, "source": "metadata", "via": None} for tag in own]
            # What every file of the proposal inherits: its keywords, as the keyword tagger passes them on.
            rows.append({"tag": query, "score": 0.33, "source": "keybert", "via": f"proposal {proposal}"})
            rows.append({"tag": title, "score": 0.3, "source": "keybert", "via": f"proposal {proposal}"})
            db["tags"].insert_all(
                {"item_type": "file", "item_id": str(file_id), "status": "machine", "evidence": "", **row}
                for row in rows
            )
    refresh_search_items(db)
    yield db
    db.close()


def file_order(db, query: str) -> list[str]:
    results = engine.search(db, query, item_type="file", per_page=50)
    return [hit.item_id for hit in results.hits]


@pytest.mark.parametrize("number", range(len(PINNED)), ids=[pinned[0] for pinned in PINNED])
def test_a_file_whose_own_evidence_matches_ranks_before_one_that_only_inherits_the_words(pinned_catalog, number):
    query = PINNED[number][0]
    shows, inherits = str(100 * (number + 1) + 1), str(100 * (number + 1) + 2)
    order = file_order(pinned_catalog, query)
    assert shows in order and inherits in order, order
    assert order.index(shows) < order.index(inherits), order


def test_gold_nanoparticles_shows_the_real_space_image_before_the_diffraction_pattern_of_its_proposal(
    pinned_catalog,
):
    hits = engine.search(pinned_catalog, "gold nanoparticles", item_type="file").hits
    kinds = [hit.facts.get("kind") for hit in hits if hit.item_id in ("101", "102")]
    assert kinds == ["image", "diffraction"]


def test_a_proposal_keyword_alone_still_finds_every_file_of_the_proposal(pinned_catalog):
    # "catalysis" is only in the first proposal's title: the files inherit it, and are found by it.
    assert set(file_order(pinned_catalog, "catalysis")) == {"101", "102"}


def test_inherited_tags_are_searched_as_context_and_own_tags_as_tags(pinned_catalog):
    tags, context = pinned_catalog.execute(
        "select tags, context from search_items where item_type = 'file' and item_id = '102'"
    ).fetchone()
    assert "gold nanoparticles" not in tags and "diffraction pattern" in tags
    assert "gold nanoparticles" in context


# A diffraction pattern named as its specimen ('Au_np_DP_480mm'): the filename tagger reads gold and nanoparticles
# from its name as it does from the image's ('Au_np_300kV_HAADF'), but a pattern cannot show particles.
NAMED_LIKE_ITS_SPECIMEN = [
    ("image", ["gold", "nanoparticles", "Au", "real-space image", "lattice fringes", "HAADF", "STEM", "300 kV"]),
    ("diffraction", ["gold", "nanoparticles", "Au", "diffraction pattern", "diffraction", "300 kV", "480 mm"]),
]
CATEGORY = {"gold": "material", "Au": "material", "nanoparticles": "feature", "lattice fringes": "feature"}


@pytest.fixture(scope="module")
def named_like_its_specimen(tmp_path_factory):
    db = open_catalog(tmp_path_factory.mktemp("named") / "named.db")
    for file_id, (kind, tags) in enumerate(NAMED_LIKE_ITS_SPECIMEN, start=1):
        name = f"Au_np_{'HAADF' if kind == 'image' else 'DP'}_{file_id:03d}.emd"
        db["files"].insert(
            {"id": file_id, "name": name, "path": f"/data/{name}", "kind": kind, "format": "emd"}
            | {"search_text": f"{kind} Au nanoparticles on amorphous carbon"}
        )
        db["tags"].insert_all(
            {"item_type": "file", "item_id": str(file_id), "tag": tag, "score": 0.75, "source": "filenames"}
            | {"status": "machine", "evidence": name, "via": None, "category": CATEGORY.get(tag, "other")}
            for tag in tags
        )
    refresh_search_items(db)
    yield db
    db.close()


def test_a_diffraction_pattern_named_after_its_nanoparticles_ranks_after_the_image_that_shows_them(
    named_like_its_specimen,
):
    assert file_order(named_like_its_specimen, "gold nanoparticles") == ["1", "2"]


def test_a_diffraction_patterns_feature_words_are_searched_as_context_and_still_find_it(named_like_its_specimen):
    tags, context = named_like_its_specimen.execute(
        "select tags, context from search_items where item_type = 'file' and item_id = '2'"
    ).fetchone()
    assert "nanoparticles" not in tags and "gold" in tags and "nanoparticles" in context
    assert "2" in file_order(named_like_its_specimen, "nanoparticles diffraction")
