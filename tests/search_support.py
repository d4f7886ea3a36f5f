"""Catalogs and a deterministic text model for the search tests.

``HashedWordsTagger`` embeds text as the normalised sum of one fixed random
vector per word (seeded by the word's hash), so two texts are as similar as
the words they share: a real vector space, cheap and the same on every
machine, standing in for MiniLM where the model is not the point of a test.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import types
from pathlib import Path

import numpy as np

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest import linking
from datasette_scisearch.ingest.filerows import name_tokens
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.ingest.records import load_records
from datasette_scisearch.plugins import get_plugin_manager
from datasette_scisearch.search import embedding, vector_index
from datasette_scisearch.tagging.pipeline import tag_catalog
from datasette_scisearch.tagging.tagger import Result, Tagger

REPO = Path(__file__).resolve().parent.parent
HASHED_DIMENSIONS = 384  # as MiniLM: chance similarity between unrelated texts stays near 0.05
_WORD = re.compile(r"[a-z0-9]+")


def hashed_words_vector(text: str, dimensions: int = HASHED_DIMENSIONS) -> np.ndarray | None:
    total = np.zeros(dimensions, dtype=np.float32)
    for word in _WORD.findall(text.lower()):
        total += _word_vector(word, dimensions)
    norm = float(np.linalg.norm(total))
    return total / norm if norm else None


@functools.lru_cache(maxsize=1 << 16)
def _word_vector(word: str, dimensions: int) -> np.ndarray:
    """One word's fixed random vector.  Kept, since seeding a generator per word was most of the time it took to
    embed the 5,183 SciFact abstracts; read-only, so no caller can change what the cache hands out."""
    seed = int.from_bytes(hashlib.sha1(word.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    vector.flags.writeable = False
    return vector


class HashedWordsTagger(Tagger):
    name = "hashed_words"
    version = "1"
    description = "test model: a text's vector is the sum of one fixed random vector per word"
    applies_to = frozenset({"file", "proposal", "paper", "session"})
    batch_size = 256
    vector_spaces = {"text": HASHED_DIMENSIONS}

    def tag_batch(self, items):
        for item in items:
            vector = hashed_words_vector(f"{item.title} {_without_run_folders(item)}")
            yield item, Result(vectors={"text": vector} if vector is not None else {})

    def embed_query(self, text, space):
        return hashed_words_vector(text) if space == "text" else None


# A file's text holds the words of every folder above it, and above the test's own files those name the run
# (/tmp/pytest-of-root/pytest-12/popen-gw1/...): words that differ from run to run and from worker to worker,
# which moved a file across the similarity floor between two runs.  The stand-in keeps the folders that belong
# to the data (instrument, year, user) and leaves out the rest, so its vectors are the same wherever tests run.
KEPT_FOLDERS = 3


def _without_run_folders(item) -> str:
    folder = item.row.get("folder") if item.item_type == "file" and item.row else None
    if not folder:
        return item.text
    kept = Path(folder).parts[-KEPT_FOLDERS:]
    return item.text.replace(" ".join(name_tokens(folder)), " ".join(name_tokens(str(Path(*kept)))), 1)


@contextlib.contextmanager
def registered(*taggers: Tagger, name: str = "search-test-taggers"):
    """Taggers registered as a plugin for the duration, and the engine's loaded query models forgotten after."""
    plugin = types.SimpleNamespace(register_taggers=hookimpl(lambda register: [register(t) for t in taggers]))
    manager = get_plugin_manager()
    manager.register(plugin, name=name)
    # A query model another module's test left loaded (in parallel runs, any module may have run before this
    # one in the same worker) would embed queries in the wrong space: forget it before as well as after.
    embedding.forget()
    try:
        yield
    finally:
        manager.unregister(name=name)
        embedding.forget()


def settings():
    return load_settings(REPO / "metadata.yml")


def build_demo_catalog(folder: Path, n_files: int = 240) -> Path:
    """The demo facility, loaded, linked and tagged by the real metadata and filename taggers, with
    hashed-word text vectors."""
    from datasette_scisearch.demo import build_facility

    facility = build_facility(folder / "facility", n_files=n_files, seed=0, progress=False)
    path = folder / "demo.db"
    db = open_catalog(path)
    facility_settings = settings()
    for kind, source in (("proposals", facility.proposals), ("papers", facility.papers), ("userlog", facility.userlog)):
        load_records(db, kind, source, facility_settings, {}, progress=False)
    load_files(db, [facility.data_dir], facility_settings, progress=False)
    linking.link_all(db, facility_settings)
    with registered(HashedWordsTagger()):
        tag_catalog(db, facility_settings, ["metadata", "filenames", "hashed_words"], progress=False)
    db.close()
    vector_index.forget()
    return path


def build_shared_data_catalog(folder: Path, shared: Path, scifact: bool = True) -> Path:
    """The real data: ncempy's EM files, 584 NSF awards and the 5,183 SciFact abstracts as papers."""
    path = folder / "shared.db"
    db = open_catalog(path)
    facility_settings = settings()
    load_records(db, "proposals", shared / "proposals" / "nsf_awards_2017.jsonl", facility_settings, {}, progress=False)
    if scifact:
        load_records(db, "papers", shared / "scifact" / "corpus.jsonl", facility_settings, {}, progress=False)
    load_files(db, [shared / "em"], facility_settings, progress=False)
    linking.link_all(db, facility_settings)
    with registered(HashedWordsTagger()):
        tag_catalog(db, facility_settings, ["metadata", "filenames", "image_analysis", "hashed_words"], progress=False)
    db.close()
    vector_index.forget()
    return path


def cached_catalog(tmp_path_factory, name: str, build) -> Path:
    """A catalog built once per test run (whatever the xdist workers) and shared by every module that asks for
    it by name; each worker has its own copy."""
    from .conftest import built_once

    return built_once(tmp_path_factory, f"search-catalog-{name}", build)
