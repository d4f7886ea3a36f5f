"""Shared fixtures: where the real data is, and fresh catalogs."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
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
DEMO_FILES = 48  # the demo facility `scisearch demo` builds for the browser and CLI tests


BROWSER_TESTS = "tests/browser/"  # every one serves scisearch demo's facility


def work_unit(nodeid: str) -> str:
    """Which tests pytest-xdist hands to one worker together: a test file (so a module's fixtures are built once),
    and every browser test as one (so one worker builds and serves the demo facility, and no second server
    starts)."""
    return "browser" if nodeid.startswith(BROWSER_TESTS) else nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` (pytest config), with the browser tests one unit (``work_unit``).  Units start in the
    order ``pytest_collection_modifyitems`` leaves them (``--no-loadscope-reorder``: xdist would otherwise order
    them by their count of tests, which started a one-minute file of five tests last while the other worker sat
    idle).  Groups of ``xdist_group`` are not used: pytest-xdist 3.8 marks them in a node id pytest 9 no longer
    lets it change."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class BrowserTogetherScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return BrowserTogetherScheduling(config, log)


def pytest_collection_modifyitems(items):
    """The order units start in: the browser tests first (the longest chain: building the demo facility, then
    Chromium), then the files holding a slow test, then the other files that use the demo facility (by then
    built, so their worker does not wait on it), then the rest."""
    slow_units = {work_unit(item.nodeid) for item in items if item.get_closest_marker("slow")}
    demo_units = {work_unit(item.nodeid) for item in items if "demo_facility" in item.fixturenames}

    def order(item):
        unit = work_unit(item.nodeid)
        return (unit != "browser", unit not in slow_units, unit in demo_units)

    items.sort(key=order)


@pytest.fixture(scope="module", autouse=True)
def _module_folders_removed(request, tmp_path_factory):
    """Once a test file has run, and nothing in it failed, remove the folders its fixtures made under this
    worker's temporary folder (``tmp_path``'s own go as each test passes: ``tmp_path_retention_policy``).  Left
    until the run ends, they added up to 4.5 GB, and CI's disk filled.  What ``built_once`` made is shared with
    later files and stays; a test file runs whole on one worker (``work_unit``), so no other file is using what
    goes."""
    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    failures_before = request.session.testsfailed
    yield
    if request.session.testsfailed != failures_before:
        return  # kept, to look into
    for path in set(base.iterdir()) - before:
        if path.is_dir() and not path.is_symlink() and not path.name.startswith("built-once-"):
            shutil.rmtree(path, ignore_errors=True)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (see ../shared/data/README.md)")
    return path


def catalog_of_real_files(folder: Path, files: list[tuple[str, ...]]) -> Path:
    """``folder``/views.db: these files of ../shared/data (each a path's parts) copied into ``folder``/data and
    loaded there, read in this process."""
    from datasette_scisearch.ingest.files import load_files

    (folder / "data").mkdir()
    for parts in files:
        shutil.copy(shared_data(*parts), folder / "data" / parts[-1])
    path = folder / "views.db"
    db = open_catalog(path)
    load_files(db, [folder / "data"], load_settings(REPO / "metadata.yml"), progress=False, sandbox=False)
    db.close()
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

    em = shared_data("em")

    def build(folder: Path) -> Path:
        db = open_catalog(folder / "em.db")
        load_files(db, [em], load_settings(REPO / "metadata.yml"), progress=False)
        db.close()
        return folder / "em.db"

    return built_once(tmp_path_factory, "em-catalog", build)


@pytest.fixture(scope="session")
def em_items(em_catalog_file) -> dict:
    """(file name, dataset name) -> Item, for every dataset catalogued from ../shared/data/em."""
    from datasette_scisearch.tagging.items import iter_items

    db = open_catalog(em_catalog_file)
    items = {(item.row["name"], item.row["dataset_name"]): item for item in iter_items(db, "file")}
    db.close()
    return items


@pytest.fixture(scope="session")
def tagged_em_catalog_file(em_catalog_file, tmp_path_factory):
    """The real EM files, tagged by the two taggers that need no model, built once per run; copy it before
    changing it."""
    from datasette_scisearch.tagging.pipeline import tag_catalog

    def build(folder: Path) -> Path:
        path = folder / "tagged.db"
        shutil.copy(em_catalog_file, path)
        db = open_catalog(path)
        tag_catalog(db, load_settings(REPO / "metadata.yml"), tagger_names=["metadata", "filenames"], progress=False)
        db.close()
        return path

    return built_once(tmp_path_factory, "tagged-em", build)


@pytest.fixture(scope="session")
def demo_facility(tmp_path_factory) -> Path:
    """The demo catalog as ``scisearch demo --no-serve --files 48`` builds it (files, user log, proposals, papers,
    linking and every installed tagger, models included), built once per run: the slowest fixture of the suite.
    What the command printed is beside it in ``demo-output.txt``."""
    return built_once(tmp_path_factory, "demo-facility", _build_demo_facility)


def _build_demo_facility(folder: Path) -> Path:
    built = subprocess.run(
        [sys.executable, "-m", "datasette_scisearch", "demo", "--no-serve", "--folder", str(folder)]
        + ["--files", str(DEMO_FILES)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"scisearch demo failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    (folder / "demo-output.txt").write_text(built.stdout)
    return folder / "demo.db"


# -- The search tests' demo facility and text model (tests/search_support.py) ------------------------------


@pytest.fixture
def hashed_words_model():
    """The deterministic hashed-words text model registered for one test.  A module whose every test searches
    by meaning asks for it once: ``pytestmark = pytest.mark.usefixtures("hashed_words_model")``."""
    from .search_support import HashedWordsTagger, registered

    with registered(HashedWordsTagger()):
        yield


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory) -> Path:
    """The demo facility loaded, linked and tagged with hashed-word text vectors, built once per run and shared by
    every module that searches it; read it, or copy it before changing it."""
    from .search_support import build_demo_catalog, cached_catalog

    return cached_catalog(tmp_path_factory, "demo", build_demo_catalog)


@pytest.fixture
def ds(demo_path):
    """Datasette serving the demo catalog (a module serving another catalog defines its own ``ds``)."""
    from datasette.app import Datasette

    return Datasette([str(demo_path)])
