"""datasette-scisearch: make a user facility's instrument data findable.

The package follows the data: ``ingest/`` turns files and records into catalog rows, ``tagging/`` turns rows into
tags and vectors, ``search/`` finds them, ``web/`` shows them, ``learning/`` learns from experts and clicks; the
catalog, its settings, the plugin manager and the error family sit here at the root.  Loaders and taggers are
plugins; nothing here names a built-in one.

A plugin author needs only this module (docs/plugins.md)::

    from datasette_scisearch import Tag, Tagger, hookimpl
"""

from .errors import ScisearchError
from .hookspecs import hookimpl
from .ingest.loader import Dataset, FileLoader, LoaderError, NotData, RecordError, RecordLoader
from .tagging.tagger import TAG_CATEGORIES, Item, ItemError, Result, Tag, Tagger, TaggerUnavailable, tags_only

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "FileLoader",
    "Item",
    "ItemError",
    "LoaderError",
    "NotData",
    "RecordError",
    "RecordLoader",
    "Result",
    "ScisearchError",
    "TAG_CATEGORIES",
    "Tag",
    "Tagger",
    "TaggerUnavailable",
    "hookimpl",
    "tags_only",
]
