"""``scisearch watch --dask ADDRESS``: a live watcher whose files are read and tagged by the workers of a real Dask
cluster (a LocalCluster of two worker processes, reached at its scheduler's address as a SLURM job's would be),
giving the catalog a plain in-process load gives."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from datasette_scisearch import changes
from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.cluster import start_local_cluster
from datasette_scisearch.config import load_settings
from datasette_scisearch.search import engine

from .conftest import shared_data
from .test_watch import query, until

pytestmark = pytest.mark.slow  # a cluster of worker processes: a minute on two busy cores

# Real files of four formats, a TIA pair among them (read together on one worker).
FILES = ["08_carbon.dm3", "16_STOimage.emi", "16_STOimage_1.ser", "temp.mrc", "Camera Ceta Imaging Micro.emd"]
ROWS = "select name, dataset, kind, shape, sha256, voltage_kv from files order by name, dataset"


@pytest.fixture(scope="module")
def scheduler():
    """A LocalCluster's scheduler and its two single-threaded worker processes, for the module."""
    local = start_local_cluster(2)
    try:
        yield local
    finally:
        local.close()


def task_prefixes(local) -> set[str]:
    """The kinds of task the scheduler has run (its ``task_prefixes``: the function names of the tasks)."""
    from distributed import Client

    with Client(local, set_as_default=False) as client:
        return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))


def test_a_watcher_on_a_dask_cluster_reads_and_tags_new_files_there_as_a_plain_load_would(scheduler, tmp_path):
    folder = tmp_path / "instrument"
    folder.mkdir()
    catalog = tmp_path / "catalog.db"
    command = [sys.executable, "-m", "datasette_scisearch", "watch", str(catalog), str(folder)]
    options = ["--dask", scheduler.scheduler_address, "--settle", "0.3s", "-t", "filenames", "--tag-every", "1s"]
    log = tmp_path / "watch.log"
    with open(log, "w") as out:
        process = subprocess.Popen([*command, *options], stdout=out, stderr=subprocess.STDOUT)
    try:
        until(lambda: "watching " in log.read_text(), "the watcher to start", process=process)
        for name in FILES:
            shutil.copyfile(shared_data("em", name), folder / name)

        def found_by_its_tags():
            db = open_catalog(catalog)
            try:
                return [hit.title for hit in engine.search(db, '"strontium titanate"', mode="keyword").hits]
            finally:
                db.close()

        assert until(found_by_its_tags, "the filename tagger's words", process=process) == ["16_STOimage_1.ser"]
        until(lambda: len(query(catalog, "select distinct path from files")) == 4, "every file", process=process)
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()
    assert {"read_on_worker", "tag_on_worker"} <= task_prefixes(scheduler)  # the work ran on the workers

    reference = open_catalog(tmp_path / "reference.db")
    changes.load_files(reference, [folder], load_settings(None), progress=False, sandbox=False)
    assert query(catalog, ROWS) == reference.execute(ROWS).fetchall()
    assert query(catalog, "select count(*) from ingest_errors") == [(0,)]
