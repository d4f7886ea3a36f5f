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
