"""Loading and tagging on a real Dask LocalCluster (two worker processes): the same catalog as in-process,
and what happens when workers die, vanish or cannot see the files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import dask
import psutil
import pytest
from click.testing import CliRunner

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.cli import cli
from datasette_scisearch.cluster import Cluster, ClusterError, cluster_options, open_cluster
from datasette_scisearch.config import load_settings
from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest.files import file_loaders, load_files
from datasette_scisearch.ingest.loader import Dataset, FileLoader
from datasette_scisearch.plugins import get_plugin_manager
from datasette_scisearch.tagging import pipeline as tagging
from datasette_scisearch.tagging import vectors
from datasette_scisearch.tagging.pipeline import tag_catalog
from datasette_scisearch.tagging.tagger import Result, Tag, Tagger

from .conftest import REPO, shared_data

pytestmark = pytest.mark.slow  # a cluster of worker processes per module: minutes on two cores

CHEAP_TAGGERS = ["metadata", "filenames", "image_analysis"]
# A few real files of different formats, enough to give every worker something to do.
SMALL_SET = ["08_carbon.dm3", "16_STOimage.emi", "16_STOimage_1.ser", "temp.mrc", "Camera Ceta Imaging Micro.emd"]


@pytest.fixture(scope="module")
def settings():
    return load_settings(REPO / "metadata.yml")


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes; a task may kill two workers before it counts as poison (the
    product's default is four: fewer deaths here keep the poison tests to a few worker restarts)."""
    with open_cluster(workers=WORKERS, allowed_failures=1) as cluster:
        yield cluster


WORKERS = 2


def _workers_back(cluster: Cluster, limit_s: float = 300) -> None:
    """After a test that lost workers, wait until all of them are back, so the next test starts from the same
    cluster whatever the load: restarted by their nannies or, where Dask closed a nanny, replaced as a run
    replaces them.  A condition polled, not a sleep; the limit is generous (a restart can take long on two busy
    cores) and bounded."""
    deadline = time.monotonic() + limit_s
    while (present := cluster.workers()) < WORKERS:
        assert time.monotonic() < deadline, f"only {present} of {WORKERS} workers came back in {limit_s:.0f} s"
        cluster.replace_lost_workers(present)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def in_process(em_catalog_file, tmp_path_factory, settings):
    """The real files loaded and tagged in this process: what a cluster run must reproduce."""
    path = tmp_path_factory.mktemp("in-process") / "em.db"
    shutil.copy(em_catalog_file, path)
    db = open_catalog(path)
    tag_catalog(db, settings, CHEAP_TAGGERS, progress=False)
    yield db
    db.close()


@pytest.fixture(scope="module")
def on_cluster(cluster, tmp_path_factory, settings):
    db = open_catalog(tmp_path_factory.mktemp("on-cluster") / "em.db")
    loaded = load_files(db, [shared_data("em")], settings, progress=False, cluster=cluster)
    tagged = tag_catalog(db, settings, CHEAP_TAGGERS, progress=False, cluster=cluster)
    yield types.SimpleNamespace(db=db, loaded=loaded, tagged=tagged)
    db.close()


def _rows(db, sql: str) -> list[tuple]:
    return [tuple(row) for row in db.execute(sql).fetchall()]


FILE_COLUMNS = (
    "path, dataset, name, folder, format, kind, instrument, acquired_at, acquired_at_source, mode, detector, "
    "voltage_kv, magnification, pixel_size_nm, camera_length_mm, shape, dtype, metadata, sha256, size_bytes, loader"
)


def test_a_cluster_load_catalogs_the_same_files_as_an_in_process_load(in_process, on_cluster):
    sql = f"select {FILE_COLUMNS} from files order by path, dataset"
    assert _rows(on_cluster.db, sql) == _rows(in_process, sql)
    assert len(_rows(in_process, sql)) == 20


def test_a_cluster_load_makes_the_same_previews(in_process, on_cluster):
    sql = "select f.path, f.dataset, p.png, p.width from previews p join files f on f.id = p.file_id order by 1, 2"
    assert _rows(on_cluster.db, sql) == _rows(in_process, sql)


def test_a_cluster_load_records_the_same_errors(in_process, on_cluster):
    sql = "select source, line, loader, message from ingest_errors order by source"
    assert _rows(on_cluster.db, sql) == _rows(in_process, sql)
    assert on_cluster.loaded.failed == 3


ITEM_KEY = "(select path || '#' || dataset from files where id = t.item_id)"


def test_a_cluster_tag_run_writes_the_same_tags(in_process, on_cluster):
    sql = f"select {ITEM_KEY}, tag, score, source, source_version, status, evidence, via from tags t order by 1, 2, 4"
    assert _rows(on_cluster.db, sql) == _rows(in_process, sql)
    assert len(_rows(in_process, sql)) > 200


def test_a_cluster_tag_run_records_the_same_runs_and_per_item_errors(in_process, on_cluster):
    sql = f"select tagger, {ITEM_KEY}, tagger_version, fingerprint, status, message from tag_runs t order by 1, 2"
    assert _rows(on_cluster.db, sql) == _rows(in_process, sql)
    errors = [row for row in _rows(in_process, sql) if row[4] == "error"]
    assert errors and all("too small" in row[5] for row in errors)


def test_a_cluster_tag_run_stores_the_same_vectors(in_process, on_cluster):
    def vectors_by_item(db):
        found = {}
        for rowid, key in db.execute(
            "select s.id, f.path || '#' || f.dataset from search_items s join files f on f.id = s.item_id "
            "where s.item_type = 'file'"
        ):
            vector = vectors.read_vector(db, "image_features", rowid)
            if vector is not None:
                found[key] = vector.tolist()
        return found

    expected = vectors_by_item(in_process)
    assert len(expected) == 13
    assert vectors_by_item(on_cluster.db) == expected


def test_a_cluster_tag_run_updates_the_same_search_documents(in_process, on_cluster):
    sql = "select (select path || '#' || dataset from files where id = s.item_id), title, body, tags, context "
    sql += "from search_items s where item_type = 'file' order by 1"
    assert _rows(on_cluster.db, sql) == _rows(in_process, sql)


def test_local_workers_keep_glibcs_adaptive_heap_that_numpy_needs(cluster):
    settings = cluster.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_", "unset"))
    assert list(settings.values()) == ["unset", "unset"]


def test_running_again_on_the_cluster_reads_and_tags_nothing(cluster, on_cluster, settings):
    loaded = load_files(on_cluster.db, [shared_data("em")], settings, progress=False, cluster=cluster)
    tagged = tag_catalog(on_cluster.db, settings, CHEAP_TAGGERS, progress=False, cluster=cluster)
    assert (loaded.added, loaded.updated, loaded.unchanged) == (0, 0, 16)
    assert [stats.tagged for stats in tagged.taggers] == [0, 0, 0]
    assert [stats.current for stats in tagged.taggers] == [20, 20, 20]


def test_a_cluster_tag_run_keeps_only_the_fingerprints_of_items_still_in_flight(
    cluster, em_catalog_file, tmp_path, settings, monkeypatch
):
    # The writer holds an item's fingerprint until its tags are stored; over 10^8 items they must not pile up.
    live = types.SimpleNamespace(now=0, most=0)

    class CountedPrint(str):
        def __init__(self, _):
            live.now += 1
            live.most = max(live.most, live.now)

        def __del__(self):
            live.now -= 1

    real_fingerprint = tagging.fingerprint
    monkeypatch.setattr(tagging, "fingerprint", lambda item: CountedPrint(real_fingerprint(item)))
    monkeypatch.setattr(tagging, "CHUNK_SIZE", 1)
    shutil.copy(em_catalog_file, tmp_path / "em.db")
    db = open_catalog(tmp_path / "em.db")
    try:
        summary = tag_catalog(db, settings, ["metadata"], batch_size=1, progress=False, cluster=cluster)
    finally:
        db.close()
    window = cluster.default_window()
    assert summary.taggers[0].tagged == 20 > window + 2
    assert live.most <= window + 2


# ---------------------------------------------------------------- workers that die


class PoisonLoader(FileLoader):
    """Kills the worker process that reads a .poison file, as a file that exhausts memory would."""

    name = "poison_test"
    suffixes = frozenset({".poison"})

    def read(self, path):
        os._exit(13)
        yield Dataset(data=None)  # never reached; makes read() a generator like every loader's


def _copy_small_set(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in SMALL_SET:
        shutil.copy(shared_data("em", name), folder / name)
    return folder


def test_a_file_that_kills_every_worker_that_reads_it_is_recorded_as_its_error(cluster, tmp_path, settings):
    folder = _copy_small_set(tmp_path / "data")
    (folder / "m_bad.poison").write_bytes(b"not what it seems")
    db = open_catalog(tmp_path / "catalog.db")
    try:
        summary = load_files(db, [folder], settings, False, [PoisonLoader(), *file_loaders()], cluster=cluster)
        (message,) = [row[0] for row in db.execute("select message from ingest_errors where source like '%poison'")]
        assert "died while working on it" in message and "tcp://127.0.0.1:" in message
        assert summary.added == 4, summary.errors  # the rest of the load went on
    finally:
        db.close()
        _workers_back(cluster)


class PoisonTagger(Tagger):
    """Tags files with their kind, but kills its worker on the STO image (as a model running out of memory)."""

    name = "poison_test"
    batch_size = 8

    def tag_batch(self, items):
        for item in items:
            if item.row["name"] == "16_STOimage_1.ser":
                os._exit(13)
            yield item, Result(tags=[Tag(f"kind {item.row['kind']}", score=0.5)])


@pytest.fixture
def poison_tagger():
    plugin = types.SimpleNamespace(register_taggers=hookimpl(lambda register: register(PoisonTagger())))
    get_plugin_manager().register(plugin, name="poison-test-plugin")
    yield
    get_plugin_manager().unregister(name="poison-test-plugin")


def test_an_item_that_kills_its_workers_fails_alone_and_the_others_are_tagged(
    cluster, em_catalog_file, tmp_path, settings, poison_tagger
):
    shutil.copy(em_catalog_file, tmp_path / "em.db")
    db = open_catalog(tmp_path / "em.db")
    try:
        summary = tag_catalog(db, settings, ["poison_test"], progress=False, cluster=cluster)
        runs = _rows(db, "select (select name from files where id = item_id), status, message from tag_runs")
        failed = [row for row in runs if row[1] == "error"]
        assert [row[0] for row in failed] == ["16_STOimage_1.ser"]
        assert "died while working on it" in failed[0][2] and "tcp://127.0.0.1:" in failed[0][2]
        assert (summary.taggers[0].tagged, summary.taggers[0].failed) == (19, 1)
    finally:
        db.close()
        _workers_back(cluster)


def test_a_local_worker_whose_nanny_dask_closed_is_replaced_by_the_next_run(cluster, tmp_path, settings):
    # On a loaded machine LocalCluster closes a nanny whose worker has not come back within the lost-worker
    # timeout (15 s; 0.5 s here), and nothing in Dask starts it again: the cluster would stay one worker short.
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "0.5s"}):
        name, nanny = next(iter(cluster.local.workers.items()))
        cluster.local.sync(nanny.close)
        deadline = time.monotonic() + 60
        while name in cluster.local.workers:  # LocalCluster forgets the nanny once the timeout has passed
            assert time.monotonic() < deadline, "LocalCluster kept the closed nanny"
            time.sleep(0.05)
    assert cluster.workers() == WORKERS - 1
    folder = _copy_small_set(tmp_path / "data")
    db = open_catalog(tmp_path / "catalog.db")
    try:
        summary = load_files(db, [folder], settings, progress=False, cluster=cluster)
        assert summary.added == 4
    finally:
        db.close()
    cluster.client.wait_for_workers(WORKERS, timeout=240)  # the run asked for a new nanny in the closed one's place


# ---------------------------------------------------------------- a scheduler whose workers come and go


@pytest.fixture(scope="module")
def bare_scheduler():
    """A scheduler with no workers of its own: each test starts (and loses) its own worker processes."""
    from distributed import LocalCluster

    scheduler = LocalCluster(
        n_workers=0, processes=True, dashboard_address=None, scheduler_kwargs={"allowed_failures": 0}
    )
    yield scheduler.scheduler_address
    scheduler.close()


def _start_worker(address: str, *, hide: Path | None = None) -> subprocess.Popen:
    """A worker process without a nanny (nothing restarts it); with ``hide``, that folder looks empty to it."""
    command = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny"]
    command += ["--no-dashboard"]
    if hide is not None:
        # A private mount namespace with an empty file system over the folder: a node that lacks the mount.
        command = ["unshare", "--mount", "sh", "-c", f'mount -t tmpfs none "{hide}" && exec "$@"', "sh", *command]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _client_with_one_worker(address: str, worker: subprocess.Popen):
    from distributed import Client

    client = Client(address, set_as_default=False)
    client.wait_for_workers(1, timeout=300)  # a condition, not a sleep: a loaded machine only makes it later
    return client


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_a_run_whose_cluster_loses_every_worker_stops_and_a_rerun_finishes_without_duplicates(
    bare_scheduler, cluster, tmp_path, settings
):
    folder = _copy_small_set(tmp_path / "data")
    (folder / "m_bad.poison").write_bytes(b"the last worker dies reading this")
    loaders = [PoisonLoader(), *file_loaders()]
    db = open_catalog(tmp_path / "catalog.db")
    worker = _start_worker(bare_scheduler)
    client = _client_with_one_worker(bare_scheduler, worker)
    try:
        with pytest.raises(ClusterError, match="has had no workers for 3 s.*run the same command again"):
            load_files(db, [folder], settings, False, loaders, cluster=Cluster(client, "test", patience_s=3))
        worker.wait(timeout=30)
        before = {row[0] for row in db.execute("select path from files")}
        (folder / "m_bad.poison").unlink()  # the operator moves the bad file away and runs the load again
        summary = load_files(db, [folder], settings, False, loaders, cluster=cluster)
        paths = [row[0] for row in db.execute("select path from files")]
        assert len(paths) == len(set(paths)) == 4
        assert {Path(p).name for p in paths} == {"08_carbon.dm3", "16_STOimage_1.ser", "temp.mrc"} | {
            "Camera Ceta Imaging Micro.emd"
        }
        assert summary.unchanged == len(before) and summary.added == 4 - len(before)
    finally:
        client.close()
        worker.kill()
        db.close()


class SchedulerStopper(FileLoader):
    """Kills the Dask scheduler whose pid the .stop file holds: a scheduler node lost in the middle of a run."""

    name = "stop_test"
    suffixes = frozenset({".stop"})

    def read(self, path):
        scheduler = psutil.Process(int(path.read_text()))
        scheduler.kill()
        # Hold this task until the scheduler is really gone (a zombie until the test reaps it), so its result
        # has no scheduler to go to, however long the kill takes on a loaded machine.
        while scheduler.is_running() and scheduler.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.05)
        yield Dataset(data=None)


def test_a_run_whose_scheduler_is_lost_stops_with_a_sentence_and_a_rerun_finishes_without_duplicates(
    cluster, tmp_path, settings
):
    command = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0", "--no-dashboard"]
    command += ["--scheduler-file", str(tmp_path / "scheduler.json")]
    scheduler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = _copy_small_set(tmp_path / "data")
    (folder / "a_scheduler.stop").write_text(str(scheduler.pid))
    loaders = [SchedulerStopper(), *file_loaders()]
    db = open_catalog(tmp_path / "catalog.db")
    worker = client = None
    try:
        for _ in range(300):
            if (tmp_path / "scheduler.json").exists():
                break
            time.sleep(0.1)
        address = json.loads((tmp_path / "scheduler.json").read_text())["address"]
        worker = _start_worker(address)
        client = _client_with_one_worker(address, worker)
        with pytest.raises(ClusterError, match="scheduler was lost.*run the same command again"):
            load_files(db, [folder], settings, False, loaders, cluster=Cluster(client, "test", patience_s=60))
        (folder / "a_scheduler.stop").unlink()
        load_files(db, [folder], settings, False, loaders, cluster=cluster)
        paths = [row[0] for row in db.execute("select path from files")]
        assert len(paths) == len(set(paths)) == 4
    finally:
        if client is not None:
            client.close(timeout=5)
        if worker is not None:
            worker.kill()
        scheduler.kill()
        db.close()


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare --mount` (root) to give a worker a different view")
def test_a_worker_that_cannot_see_the_files_gives_each_file_an_error_naming_the_path_and_worker(
    bare_scheduler, tmp_path, settings
):
    folder = _copy_small_set(tmp_path / "data")
    db = open_catalog(tmp_path / "catalog.db")
    worker = _start_worker(bare_scheduler, hide=folder)
    client = _client_with_one_worker(bare_scheduler, worker)
    try:
        summary = load_files(db, [folder], settings, progress=False, cluster=Cluster(client, "test"))
        errors = _rows(db, "select source, message from ingest_errors order by source")
        assert summary.failed == len(errors) == len(SMALL_SET) and summary.added == 0
        for source, message in errors:
            assert f"cannot see '{source}'" in message and "the Dask worker tcp://" in message
    finally:
        client.close()
        worker.kill()
        db.close()


# ---------------------------------------------------------------- getting a cluster


def test_an_unreachable_scheduler_fails_within_seconds_with_a_sentence(tmp_path):
    began = time.monotonic()
    result = CliRunner().invoke(
        cli, ["load", "files", str(tmp_path / "c.db"), str(shared_data("em")), "--dask", "tcp://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    assert "error: cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'" in result.output
    assert "Traceback" not in result.output
    assert time.monotonic() - began < 15


def test_dask_and_workers_together_are_refused():
    with pytest.raises(ClusterError, match="either --dask or --workers"):
        with open_cluster("tcp://127.0.0.1:8786", 2):
            pass


def test_the_example_cluster_file_becomes_a_slurm_job_of_32_single_threaded_workers():
    from dask_jobqueue import SLURMCluster

    options, scale, _ = cluster_options(REPO / "examples" / "slurm-cluster.yml")
    with SLURMCluster(**options) as slurm:
        script = slurm.job_script()
    assert scale == {"jobs": 4}
    assert "#SBATCH -A m0000" in script and "#SBATCH -t 02:00:00" in script
    assert "--nthreads 1" in script and "--nworkers 32" in script
    assert "PRE_SPAWN_ENVIRON=\"{'MALLOC_TRIM_THRESHOLD_': None}\"" in script


def test_the_example_gpu_cluster_file_asks_slurm_for_one_gpu_per_worker():
    from dask_jobqueue import SLURMCluster

    options, scale, _ = cluster_options(REPO / "examples" / "slurm-gpu-cluster.yml")
    with SLURMCluster(**options) as slurm:
        script = slurm.job_script()
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH --cpus-per-task=16" in script
    assert "--nthreads 1" in script and "--nworkers" not in script


def test_a_cluster_file_on_a_machine_without_slurm_is_refused_at_once_instead_of_waiting_for_workers(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    began = time.monotonic()
    with pytest.raises(ClusterError, match="no 'sbatch' on this machine's PATH"):
        with open_cluster(dask=str(REPO / "examples" / "slurm-cluster.yml")):
            pass
    assert time.monotonic() - began < 10


def test_a_cluster_file_with_an_unknown_setting_is_refused_with_its_name(tmp_path):
    path = tmp_path / "cluster.yml"
    path.write_text("slurm: {cores: 4, memory: 8GB}\nnodes: 3\n")
    open_catalog(tmp_path / "c.db").close()
    result = CliRunner().invoke(cli, ["tag", str(tmp_path / "c.db"), "--dask", str(path)])
    assert result.exit_code == 1
    assert "unknown setting 'nodes'" in result.output
