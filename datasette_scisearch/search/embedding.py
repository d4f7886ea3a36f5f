"""Query vectors: the tagger that filled a vector space embeds the query in that space.

The engine names no tagger: ``vector_spaces.tagger`` says which one wrote a
space, and that tagger (found among the registered plugins) is loaded once per
process, at the first query that needs it — so heavy model imports never
happen at server start — and asked for ``embed_query(text, space)``.  When
it is not installed or cannot load here, search goes on without that space
and says why.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..config import ConfigError, Settings, load_settings
from ..plugins import get_taggers
from ..tagging.tagger import TaggerUnavailable

CACHED_QUERIES = 512
# A tagger that failed to load is tried again after this long (a checkpoint may have been installed meanwhile).
RETRY_SECONDS = 300.0


@dataclass
class _Loaded:
    tagger: object | None
    error: str | None
    loaded_at: float


_loaded: dict[str, _Loaded] = {}
_vectors: OrderedDict[tuple, np.ndarray | None] = OrderedDict()
_lock = threading.Lock()
# One query at a time through a model: not every model is safe to call from several threads at once.
_embedding_lock = threading.Lock()


def _registered(name: str):
    for tagger in get_taggers():
        if tagger.name == name:
            return tagger
    return None


def _options(name: str, settings: Settings | None) -> dict:
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError:
            settings = Settings()
    return dict(settings.taggers.get(name) or {})


def _tagger(name: str, settings: Settings | None, model_path: str | None = None) -> _Loaded:
    registered = _registered(name)
    if registered is None:
        return _Loaded(None, f"the '{name}' tagger that made them is not installed", time.monotonic())
    # A space pinned to a tuned model (learning/encoder_switch.py) gets its own instance: the registered one
    # keeps serving catalogs whose vectors came from the model the settings name.
    key = f"{name}@{model_path}" if model_path else name
    with _lock:
        loaded = _loaded.get(key)
        same_kind = loaded is not None and (loaded.tagger is None or type(loaded.tagger) is type(registered))
        if loaded is not None and same_kind:
            if loaded.error is None or time.monotonic() - loaded.loaded_at < RETRY_SECONDS:
                return loaded
        try:
            tagger = type(registered)() if model_path else registered
            options = _options(name, settings)
            if model_path:
                options["model"] = model_path
            tagger.load(options, "cpu")
            loaded = _Loaded(tagger, None, time.monotonic())
        except TaggerUnavailable as error:
            loaded = _Loaded(None, f"the '{name}' tagger cannot run here: {error}", time.monotonic())
        except Exception as error:  # a broken plugin must not break search
            loaded = _Loaded(None, f"the '{name}' tagger failed to load: {error}", time.monotonic())
        _loaded[key] = loaded
        return loaded


def embed_query(
    text: str, space: str, tagger_name: str, settings: Settings | None = None, model_path: str | None = None
):
    """(vector, None) or (None, why not) for ``text`` in ``space``, with the model the space is pinned to
    (``vector_spaces.model_path``) when it is."""
    loaded = _tagger(tagger_name, settings, model_path)
    if loaded.tagger is None:
        return None, loaded.error
    key = (tagger_name, type(loaded.tagger).__qualname__, id(loaded.tagger), space, text)
    with _lock:
        if key in _vectors:
            _vectors.move_to_end(key)
            return _vectors[key], None
    try:
        with _embedding_lock, _one_intra_op_thread():
            vector = loaded.tagger.embed_query(text, space)
    except Exception as error:
        return None, f"the '{tagger_name}' tagger could not embed the query: {error}"
    if vector is not None:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(vector)) or not np.any(vector):
            vector = None
    with _lock:
        _vectors[key] = vector
        while len(_vectors) > CACHED_QUERIES:
            _vectors.popitem(last=False)
    return vector, None


@contextlib.contextmanager
def _one_intra_op_thread():
    """Embed a query on one thread.  Measured here: all-MiniLM-L6-v2 embeds a short query in ~12 ms on one
    thread, but in 40–400 ms with torch's default two threads while other work holds the cores.  A query is
    too small to gain from splitting; torch is only looked at if the tagger already imported it."""
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else 1
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def warm_up(tagger_names: list[str], settings: Settings | None = None) -> None:
    """Load the query taggers in a background thread, so the first query someone types does not wait for
    a model (a query that comes while one loads waits for it rather than loading it again).  The server calls
    it at start-up (``preload_query_models``) and when the search page is opened."""
    names = [name for name in tagger_names if name not in _loaded]
    if names:
        threading.Thread(target=lambda: [_tagger(name, settings) for name in names], daemon=True).start()


def is_loaded(tagger_name: str) -> bool:
    """Whether this process has loaded the tagger that embeds queries (what preloading at start-up does)."""
    loaded = _loaded.get(tagger_name)
    return loaded is not None and loaded.tagger is not None


def forget_query_vectors() -> None:
    """Empty the cache of query vectors (benchmarks time the model, not the cache)."""
    with _lock:
        _vectors.clear()


def forget() -> None:
    """Unload every query tagger (tests register fake taggers per test)."""
    with _lock:
        for loaded in _loaded.values():
            if loaded.tagger is not None:
                try:
                    loaded.tagger.close()
                except Exception:
                    pass
        _loaded.clear()
        _vectors.clear()
