"""When an in-memory copy of the catalog (a vector matrix, a tantivy index) may still answer after a change.

Rebuilding on every write would make a catalog that is being tagged rebuild
before every query; a copy one change behind is used for at most ten of its
own build times, and never more than a minute, while the catalog changes.
"""

from __future__ import annotations

import time

STALE_BUILD_TIMES = 10
MAX_STALE_SECONDS = 60.0


def fresh_enough(cached, current: tuple) -> bool:
    """Whether ``cached`` (with ``version``, ``built_at`` and ``build_seconds``) may still serve a catalog now
    at version ``current``; a copy of another catalog (the first part of the version differs) never may."""
    if cached.version[0] != current[0]:
        return False
    allowed = min(MAX_STALE_SECONDS, STALE_BUILD_TIMES * cached.build_seconds)
    return time.monotonic() - cached.built_at < allowed
