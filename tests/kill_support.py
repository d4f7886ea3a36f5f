"""Helpers for tests that kill a command with SIGKILL part-way and look at what it left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from datasette_scisearch.search.index import refresh_search_items


def scisearch(*arguments) -> list[str]:
    return [sys.executable, "-m", "datasette_scisearch", *map(str, arguments)]


def kill_after(command: list[str], seconds: float) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def stale_documents(db) -> int:
    """Search documents that do not say what the catalog says (bringing them up to date changes this many)."""
    return refresh_search_items(db)


def shown_jobs(catalog) -> list[dict]:
    """The catalog's last jobs as ``scisearch status`` shows them (a killed one as interrupted, with why)."""
    shown = subprocess.run(scisearch("status", catalog, "--json"), capture_output=True, text=True, check=True)
    return json.loads(shown.stdout)["jobs"]
