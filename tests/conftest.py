"""Shared fixtures: where the real data is, and fresh catalogs."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings

# Datasettes made by tests do not warm their catalogs up in the background (web/warming.py): most never search
# with a real query model, and loading one in every worker would slow the run; the browser tests' server does.
os.environ.setdefault("SCISEARCH_WARM", "0")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (see ../shared/data/README.md)")
    return path


def built_once(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """What ``build(folder)`` makes in an empty folder (a path inside it), built once per run however many
    xdist workers ask: the first builds it under a lock while the others wait, then each worker gets its own
    copy of the folder's files, so what a test changes (a catalog, its private database) no other worker
    sees.  Sub-folders (the inputs a catalog was built from) are linked, not copied."""
    mine = tmp_path_factory.getbasetemp() / f"built-once-{name}"
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: nothing to share
        shared_root = None
    else:
        shared_root = tmp_path_factory.getbasetemp().parent  # this run's folder, above every worker's own
    if (mine / ".built").exists():
        return mine / (mine / ".built").read_text()
    if shared_root is None:
        return _build_into(mine, build)
    shared = shared_root / f"built-once-{name}"
    with open(shared_root / f"built-once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if this worker dies
        if not (shared / ".built").exists():
            _build_into(shared, build)
    shutil.rmtree(mine, ignore_errors=True)  # a copy that an earlier failure left unfinished
    mine.mkdir()
    for entry in shared.iterdir():
        if entry.is_dir():
            (mine / entry.name).symlink_to(entry, target_is_directory=True)
        elif entry.name != ".built":
            shutil.copy2(entry, mine / entry.name)
    shutil.copy2(shared / ".built", mine / ".built")  # last: the copy is whole
    return mine / (mine / ".built").read_text()


def _build_into(folder: Path, build: Callable[[Path], Path]) -> Path:
    """Build in place (a catalog records its files' paths); what a failed build left behind is removed."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        made = build(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    (folder / ".built").write_text(str(made.relative_to(folder)))
    return made


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
