"""A load killed at any moment leaves each file wholly catalogued or wholly absent, and a re-run completes it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from datasette_scisearch.catalog import open_catalog

from .conftest import shared_data

pytestmark = pytest.mark.slow  # loads killed with SIGKILL and run again


def half_written(db) -> list[str]:
    """Rows that say they have a preview but have none, and previews of no row: what a torn write leaves."""
    torn = db.execute(
        "select name from files where preview is not null and id not in (select file_id from previews)"
    ).fetchall()
    orphans = db.execute("select file_id from previews where file_id not in (select id from files)").fetchall()
    return [row[0] for row in torn] + [f"preview of {row[0]}" for row in orphans]


@pytest.mark.parametrize("after_s", [0.8, 1.6, 2.4])
def test_a_load_killed_with_sigkill_leaves_nothing_half_written_and_a_rerun_completes(tmp_path, after_s):
    folder = tmp_path / "disk"
    shutil.copytree(shared_data("em"), folder)
    catalog = tmp_path / "catalog.db"
    command = [sys.executable, "-m", "datasette_scisearch", "load", "files", str(catalog), str(folder), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after_s)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    db = open_catalog(catalog)
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert half_written(db) == []
    db.close()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = open_catalog(catalog)
    paths = db.execute("select path, dataset, count(*) from files group by path, dataset having count(*) > 1")
    assert paths.fetchall() == []
    assert db["files"].count == 20 and half_written(db) == []
    db.close()
