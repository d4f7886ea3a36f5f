"""Readers in a sandbox: a file that crashes, hangs or exhausts its reader is that file's error; the load goes on."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from datasette_scisearch.ingest.files import file_loaders, load_files
from datasette_scisearch.ingest.sandbox import ReaderPool

from .conftest import shared_data
from .sandbox_faults import CrashingLoader, GreedyLoader, HangingLoader

pytestmark = pytest.mark.slow  # readers that hang, crash or run out of memory in the sandbox


@pytest.fixture
def folder(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    shutil.copy2(shared_data("em") / "08_carbon.dm3", disk / "08_carbon.dm3")
    return disk


def errors_of(catalog) -> dict[str, str]:
    return {row["source"].rsplit("/", 1)[-1]: row["message"] for row in catalog.query("select * from ingest_errors")}


def test_a_reader_that_crashes_is_that_files_error_and_the_load_goes_on(catalog, settings, folder):
    (folder / "a_bad.crash").write_bytes(b"\0" * 64)
    (folder / "z_bad.crash").write_bytes(b"\1" * 64)
    summary = load_files(catalog, [folder], settings, progress=False, loaders=[CrashingLoader(), *file_loaders()])
    assert (summary.added, summary.failed) == (1, 2)
    assert "the reader crashed on this file (SIGSEGV)" in errors_of(catalog)["a_bad.crash"]


def test_a_reader_that_hangs_is_stopped_after_the_timeout(catalog, settings, folder):
    (folder / "loop.hang").write_bytes(b"\0" * 64)
    # Long enough for the good file's reader to start again after the hung one is stopped, on a busy machine.
    with ReaderPool(timeout_s=12) as pool:
        summary = load_files(
            catalog, [folder], settings, progress=False, loaders=[HangingLoader(), *file_loaders()], sandbox=pool
        )
    assert (summary.added, summary.failed) == (1, 1)
    assert "took longer than 12 s, so the reader was stopped" in errors_of(catalog)["loop.hang"]


def test_a_reader_that_asks_for_more_memory_than_the_limit_is_refused_it(catalog, settings, folder):
    (folder / "huge.greedy").write_bytes(b"\0" * 64)
    with ReaderPool(memory_limit_bytes=512 * 2**20) as pool:
        summary = load_files(
            catalog, [folder], settings, progress=False, loaders=[GreedyLoader(), *file_loaders()], sandbox=pool
        )
    assert (summary.added, summary.failed) == (1, 1)
    assert "ran out of memory" in errors_of(catalog)["huge.greedy"]


def test_a_small_hdf5_file_declaring_gigabytes_is_refused_before_any_array_is_read(catalog, settings, folder):
    with h5py.File(folder / "bomb.emd", "w") as handle:  # Berkeley EMD layout, a 30000² float32 never written
        group = handle.create_group("data/bomb")
        group.attrs["emd_group_type"] = 1
        group.create_dataset("data", shape=(30000, 30000), dtype=np.float32, chunks=(1000, 1000))
        for index, size in ((1, 30000), (2, 30000)):
            group.create_dataset(f"dim{index}", data=np.arange(size, dtype=np.float32))
    summary = load_files(catalog, [folder], settings, progress=False)
    message = errors_of(catalog)["bomb.emd"]
    assert summary.failed == 1
    assert "declares 3.6 GB of data in a" in message and "rosettasciio" not in message


def test_a_second_load_does_not_read_a_file_that_crashed_its_reader_again(catalog, settings, folder):
    (folder / "bad.crash").write_bytes(b"\0" * 64)
    loaders = [CrashingLoader(), *file_loaders()]
    load_files(catalog, [folder], settings, progress=False, loaders=loaders)
    again = load_files(catalog, [folder], settings, progress=False, loaders=loaders)
    assert (again.unchanged, again.failed) == (1, 1)
    assert catalog.execute("select attempts from ingest_errors").fetchone()[0] == 1


def test_half_of_each_bruker_file_is_an_error_row_and_the_load_goes_on(catalog, settings, folder):
    """Half a .bcf makes RosettaSciIO's Bruker reader segfault most times (or fail to parse): either way the load
    finishes, every file is a row or an error row, and the complete file after them still loads."""
    for source in (shared_data("em") / "0.bcf", shared_data("em-vendors") / "bruker" / "test_TEM.bcf"):
        data = source.read_bytes()
        (folder / f"half_{source.name}").write_bytes(data[: len(data) // 2])
    summary = load_files(catalog, [folder], settings, progress=False)
    catalogued = {row["name"] for row in catalog.query("select name from files")}
    errors = errors_of(catalog)
    assert "08_carbon.dm3" in catalogued and "half_0.bcf" in errors
    assert catalogued | set(errors) == {"08_carbon.dm3", "half_0.bcf", "half_test_TEM.bcf"}
    assert summary.total == 3 and "rosettasciio" in errors["half_0.bcf"].lower()


def test_a_process_with_over_a_thousand_files_open_still_reads_through_the_sandbox(catalog, settings, folder):
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"this machine allows {hard} open files, too few to pass select's limit of 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # as a server or a long test run holds
    try:
        with ReaderPool() as pool:
            summary = load_files(catalog, [folder], settings, progress=False, sandbox=pool)
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert (summary.added, summary.failed) == (1, 0)
