"""Warming the server up in the background, so the first researcher's search is not the slow one.

A fresh process's first search imports the search modules, opens each catalog's indexes and memory-mapped
vectors, and loads the model that embeds queries (MiniLM through sentence-transformers: seconds on an idle
machine, tens of seconds on a busy one).  Datasette starts serving at once; a daemon thread then runs one search
per catalog through the engine, on a read-only connection of its own, so those costs are paid before anyone asks.
Nothing is written (the engine's search writes nothing) and nothing is logged as a researcher's search.

``SCISEARCH_WARM=0`` turns it off (the test suite does: most tests never search with a real model), and so does
``preload_query_models: false`` in metadata.yml, which also stops the query models' own preload (web/pages.py).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import sqlite_utils

from ..catalog import load_sqlite_vec
from .base import WebError, facility_settings, find_catalogs

WARM_QUERY = "electron microscopy"  # any words: what is warmed is the path a query takes, not an answer


def warming_wanted() -> bool:
    return os.environ.get("SCISEARCH_WARM", "1").strip().lower() not in ("0", "false", "no", "off")


def warm_in_background(datasette) -> threading.Thread | None:
    """Start the thread that searches each served catalog once; None when warming is off or nothing is served."""
    settings = facility_settings(datasette)
    if not warming_wanted() or not settings.preload_query_models:
        return None
    try:
        catalogs = find_catalogs(datasette, None)
    except WebError:  # no catalog attached: the search page says so
        return None
    thread = threading.Thread(target=_warm, args=(catalogs, settings), name="scisearch-warm-up", daemon=True)
    thread.start()
    return thread


def _warm(catalogs: list, settings) -> None:
    from ..search import engine  # the thread's own import: the server's start does not wait for it

    for db in catalogs:
        started = time.perf_counter()
        try:
            connection = db.connect()  # Datasette's read-only way in; its prepare_connection hooks run per thread
            try:
                load_sqlite_vec(connection)
                engine.search(sqlite_utils.Database(connection), WARM_QUERY, per_page=1, settings=settings)
            finally:
                connection.close()
        except Exception as error:  # a cold search later says what is wrong; warming must never stop the server
            print(f"scisearch: could not warm up '{db.name}': {type(error).__name__}: {error}", file=sys.stderr)
            continue
        print(f"scisearch: '{db.name}' warmed up in {time.perf_counter() - started:.1f} s", file=sys.stderr)
