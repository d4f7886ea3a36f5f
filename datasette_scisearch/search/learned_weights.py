"""The fusion weights and similarity floors ``scisearch learn --ranking`` fitted for a catalog, as search reads them.

``learning/fusion.py`` fits them and writes them, versioned, to ``ranking_models``;
the engine reads the current ones here at each search (one indexed row) and
puts them between its shipped defaults and a caller's own weights.
"""

from __future__ import annotations

import json

import sqlite_utils
from sqlite_utils.utils import sqlite3

# The weights a fit may set; anything else in a stored row is ignored.
FITTED = ("rrf_k", "text", "text_floor", "text_band", "text_lowest")


def current_weights(db: sqlite_utils.Database) -> dict:
    """The fitted weights in use for this catalog; empty where none were fitted (or the table is not there yet)."""
    try:
        row = db.execute(
            "select weights from ranking_models where kind = 'fusion' and status = 'current' "
            "order by version desc limit 1"
        ).fetchone()
    except sqlite3.OperationalError:
        return {}
    if row is None:
        return {}
    return {name: float(value) for name, value in json.loads(row[0]).items() if name in FITTED}
