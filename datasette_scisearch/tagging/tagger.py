"""What a tagger is: the contract between a model or rule and the catalog.

A tagger looks at a batch of items (files, proposals, papers, sessions) and
says what it sees: tags with a score and the evidence for each, and vectors
in named vector spaces.  It never touches the database; the core
(``tagging``) chooses the items, batches them, loads the tagger once per run,
writes tags and vectors with provenance, keeps full-text search in sync and
records errors.

A tagger that cannot run here (no checkpoint, no tesseract) raises
``TaggerUnavailable`` from ``load`` with a sentence saying how to fix it; the
run goes on without it.  A tagger that cannot tag one item yields an
``ItemError`` for it (or raises, and the core retries the batch one item at a
time to find the bad one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BUSY, ScisearchError

# What a tag says about an item, so pages can group tags the way a microscopist reads them (the item page's tags and
# the search page's tag filters).  A tag's ``category`` is one of these; anything else a plugin writes is kept as it
# is and shown after these under its own name.  Order here is the order pages show the groups in.
TAG_CATEGORIES = {
    "material": "Material",  # what the specimen is made of: elements, compounds, named materials
    "feature": "Features",  # what is seen in it: particles, grain boundary, lattice fringes, atomic resolution
    "technique": "Technique",  # how it was recorded: STEM, EELS, diffraction, tomography, in situ
    "kind": "Kind of data",  # image, spectrum, diffraction pattern, real-space image, stack
    "setting": "Instrument settings",  # 300 kV, 145 mm, high magnification, pixel < 0.1 nm, zone axis
    "instrument": "Instrument and detector",  # Themis, HAADF, Ceta
    "topic": "Topic",  # keywords of a proposal or paper: what the research is about
    "date": "Date",  # 2021-03-04, 2021, night, weekend
    "record": "Record ids",  # proposal numbers found in a name
    "other": "Other",
}
DEFAULT_TAG_CATEGORY = "other"
_CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def tag_category(*choices: str | None) -> str:
    """The first usable category of those given (the tag's own, then its tagger's), or "other"."""
    for choice in choices:
        name = str(choice or "").strip().lower().replace(" ", "-")
        if _CATEGORY_NAME.match(name):
            return name
    return DEFAULT_TAG_CATEGORY


def category_label(category: str | None) -> str:
    """How a page names a category: "setting" is "Instrument settings"; a plugin's own name is shown as written."""
    category = category or DEFAULT_TAG_CATEGORY
    return TAG_CATEGORIES.get(category) or category.replace("-", " ").replace("_", " ").capitalize()


def category_order(category: str | None) -> tuple[int, str]:
    """Sort key: the known categories in their order, a plugin's own after them by name, "other" last."""
    names = list(TAG_CATEGORIES)
    category = category or DEFAULT_TAG_CATEGORY
    if category == DEFAULT_TAG_CATEGORY:
        return len(names) + 1, category
    return (names.index(category), category) if category in names else (len(names), category)


class TaggerUnavailable(ScisearchError):
    """The tagger cannot run on this machine; the message says how to make it run."""

    kind = BUSY


@dataclass
class Tag:
    """One thing a tagger says about an item.  ``text`` is what people search for; ``category`` (one of
    ``TAG_CATEGORIES``) groups it on the pages, and when None the tagger's ``tag_category`` is used."""

    text: str
    score: float = 1.0
    evidence: str | None = None
    category: str | None = None


@dataclass
class Result:
    """All a tagger says about one item: tags, and vectors keyed by vector-space name."""

    tags: list[Tag] = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ItemError:
    """The tagger could not tag this item; ``message`` is shown to the user as is."""

    message: str


@dataclass
class Item:
    """One catalog item as a tagger sees it.

    ``row`` is the item's catalog row (for a file: kind, voltage_kv, detector,
    path, metadata as JSON …).  ``text`` is its own prose (a file's decoded
    name and metadata, a proposal's title and abstract).  ``pixels()`` reads a
    file's representative 2-D frame (or 1-D spectrum) through the loader that
    catalogued it, strided down so its longer side is at most ``max_side``.
    """

    item_type: str
    item_id: str
    title: str
    text: str
    row: dict[str, Any] = field(default_factory=dict)
    load_pixels: Callable[[int], np.ndarray] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.item_type, self.item_id

    def pixels(self, max_side: int = 2048) -> np.ndarray:
        if self.load_pixels is None:
            raise ValueError(f"{self.item_type} {self.item_id} has no pixels")
        return self.load_pixels(max_side)


class Tagger:
    """Base class for taggers.  Subclasses set the class attributes and implement ``tag_batch``.

    ``applies_to``: the item types it tags.  ``needs_pixels``: whether it reads
    images (the core then only hands it file items that have pixels).
    ``inherited``: its tags on a proposal or paper also flow to the files and
    sessions linked to it, marked "via proposal …" with a lower score.
    ``uses_gpu``: it can run on CUDA (the core then looks for a GPU).
    ``vector_spaces``: name → dimension of each vector space it writes (may be
    filled in by ``load`` when the dimension depends on the model).
    ``tag_category``: the category (``TAG_CATEGORIES``) of its tags that do not
    name their own.
    """

    name: str = ""
    version: str = "1"
    description: str = ""
    applies_to: frozenset[str] = frozenset({"file"})
    needs_pixels: bool = False
    inherited: bool = False
    uses_gpu: bool = False
    batch_size: int = 32
    vector_spaces: dict[str, int] = {}
    tag_category: str = DEFAULT_TAG_CATEGORY

    def wants(self, item: Item) -> bool:
        """Whether this item is worth tagging at all (OCR only on exported images, say)."""
        return True

    def load(self, options: dict[str, Any], device: str = "cpu") -> None:
        """Load models once per run; raise ``TaggerUnavailable`` if that cannot work here.

        ``options`` is this tagger's block under ``taggers:`` in metadata.yml
        (model names, checkpoint paths, vocabularies); ``device`` is "cuda"
        where a GPU is present, else "cpu".
        """

    def tag_batch(self, items: list[Item]) -> Iterator[tuple[Item, Result | ItemError]]:
        raise NotImplementedError

    def embed_query(self, text: str, space: str) -> np.ndarray | None:
        """A search query's vector in one of this tagger's spaces, for taggers whose vectors text can
        search (text embeddings, CLIP's text tower); None where a query cannot be embedded.  The search
        engine calls it on a loaded tagger."""
        return None

    def close(self) -> None:
        """Release models after the run."""


def tags_only(items: Iterable[Item], tag_one: Callable[[Item], list[Tag]]) -> Iterator[tuple[Item, Result]]:
    """For taggers that look at one item at a time and only give tags."""
    for item in items:
        yield item, Result(tags=tag_one(item))
