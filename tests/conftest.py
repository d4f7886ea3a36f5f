"""Shared fixtures: where the real data is, and fresh catalogs."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture
def em_dir() -> Path:
    return shared_data("em")


@pytest.fixture
def settings():
    return load_settings(REPO / "metadata.yml")


@pytest.fixture
def catalog(tmp_path):
    db = open_catalog(tmp_path / "catalog.db")
    yield db
    db.close()


@pytest.fixture(scope="session")
def em_catalog_file(tmp_path_factory) -> Path:
    """A catalog of the real files in ../shared/data/em, built once per run; copy it before changing it."""
    from datasette_scisearch.ingest.files import load_files

    path = tmp_path_factory.mktemp("em-catalog") / "em.db"
    db = open_catalog(path)
    load_files(db, [shared_data("em")], load_settings(REPO / "metadata.yml"), progress=False)
    db.close()
    return path


@pytest.fixture(scope="session")
def em_items(em_catalog_file) -> dict:
    """(file name, dataset name) -> Item, for every dataset catalogued from ../shared/data/em."""
    from datasette_scisearch.tagging.items import iter_items

    db = open_catalog(em_catalog_file)
    items = {(item.row["name"], item.row["dataset_name"]): item for item in iter_items(db, "file")}
    db.close()
    return items
