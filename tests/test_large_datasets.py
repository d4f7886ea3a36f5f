"""Genuinely large datasets are read lazily: a 4D scan bigger than the reader's memory limit is catalogued with its
preview, reading only the pieces the preview needs (ingest/lazy.py)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from datasette_scisearch.ingest.files import file_loaders, load_files
from datasette_scisearch.ingest.lazy import LAZY_ABOVE_BYTES, slab_chunks
from datasette_scisearch.ingest.preview import representative_frame
from datasette_scisearch.ingest.sandbox import ReaderPool

SCAN = (40, 40)  # scan positions
DETECTOR = (256, 256)  # pixels of each diffraction pattern
SCAN_BYTES = SCAN[0] * SCAN[1] * DETECTOR[0] * DETECTOR[1] * 4  # float32: 420 MB
READER_MEMORY_BYTES = 320 * 2**20  # less than the scan: reading it whole cannot succeed


def diffraction_pattern(row: int) -> np.ndarray:
    """A central beam and a ring of spots, brighter towards the scan's bottom rows, with counting noise."""
    y, x = np.mgrid[: DETECTOR[0], : DETECTOR[1]] - np.array(DETECTOR)[:, None, None] / 2
    radius = np.hypot(y, x)
    pattern = 1000 * np.exp(-(radius**2) / 20) + 50 * (np.abs(radius - 60) < 3) * (1 + row / SCAN[0])
    return pattern.astype(np.float32)


def write_berkeley_4d_scan(path) -> None:
    """A Berkeley EMD v0.2 4D-STEM scan (as ncempy writes them: /data/<group> with emd_group_type 1, data and
    dim1..dim4), written a scan row at a time so this test never holds it whole either."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        handle.attrs["version_major"], handle.attrs["version_minor"] = 0, 2
        for name in ("microscope", "user", "sample", "comments"):
            handle.create_group(name)
        handle["microscope"].attrs["high tension"] = np.float64(300e3)
        handle["microscope"].attrs["dwell time"] = np.float64(1e-3)
        group = handle.create_group("data").create_group("scan4d")
        group.attrs["emd_group_type"] = 1
        data = group.create_dataset("data", shape=(*SCAN, *DETECTOR), dtype=np.float32, chunks=(1, 1, *DETECTOR))
        for row in range(SCAN[0]):
            pattern = diffraction_pattern(row)
            data[row] = rng.poisson(pattern, size=(SCAN[1], *DETECTOR)).astype(np.float32)
        for number, (size, name, unit) in enumerate(
            [
                (SCAN[0], "scan y", "n_m"),
                (SCAN[1], "scan x", "n_m"),
                (DETECTOR[0], "ky", "1/nm"),
                (DETECTOR[1], "kx", "1/nm"),
            ],
            start=1,
        ):
            dim = group.create_dataset(f"dim{number}", data=np.arange(size, dtype=np.float32))
            dim.attrs["name"], dim.attrs["units"] = np.bytes_(name.encode()), np.bytes_(unit.encode())


@pytest.fixture(scope="module")
def scan_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large")
    write_berkeley_4d_scan(folder / "scan_4d.emd")
    assert (folder / "scan_4d.emd").stat().st_size > max(READER_MEMORY_BYTES, LAZY_ABOVE_BYTES)
    return folder


def test_a_4d_scan_larger_than_the_readers_memory_limit_is_catalogued_with_its_mean_diffraction_preview(
    catalog, settings, scan_folder
):
    with ReaderPool(memory_limit_bytes=READER_MEMORY_BYTES) as pool:
        summary = load_files(catalog, [scan_folder], settings, progress=False, sandbox=pool)
    assert (summary.added, summary.failed) == (1, 0), summary.errors
    row = next(catalog.query("select * from files"))
    assert (row["kind"], row["shape"], row["dtype"]) == ("4D", "40×40×256×256", "float32")
    assert row["loader"].split(":")[0] == "emd"  # ncempy's reader, not a fallback after it ran out of memory
    width, height = catalog.execute("select width, height from previews where file_id = ?", [row["id"]]).fetchone()
    assert (width, height) == (256, 256)


def test_rosettasciio_reads_a_file_larger_than_the_readers_memory_limit_lazily(catalog, settings, scan_folder):
    rosettasciio = [loader for loader in file_loaders() if loader.name == "rosettasciio"]
    with ReaderPool(memory_limit_bytes=READER_MEMORY_BYTES) as pool:
        summary = load_files(catalog, [scan_folder], settings, progress=False, sandbox=pool, loaders=rosettasciio)
    assert (summary.added, summary.failed) == (1, 0), summary.errors
    row = next(catalog.query("select kind, preview, loader from files"))
    assert row["kind"] == "4D" and row["preview"] and row["loader"].startswith("rosettasciio")


def test_a_lazy_4d_scans_preview_frame_is_the_mean_pattern_read_from_a_sample_of_scan_positions(scan_folder):
    import dask.array as da

    with h5py.File(scan_folder / "scan_4d.emd", "r") as handle:
        stored = handle["data/scan4d/data"]
        lazy = da.from_array(stored, chunks=slab_chunks(stored.shape, stored.dtype))
        frame = representative_frame(lazy, "4D")
        rows_read = stored[:, :2].mean(axis=(0, 1), dtype=np.float64)  # a small part, read eagerly to compare
    assert isinstance(frame, np.ndarray) and frame.shape == DETECTOR
    centre = (DETECTOR[0] // 2, DETECTOR[1] // 2)
    assert frame[centre] == pytest.approx(rows_read[centre], rel=0.05)
    assert frame[centre] > 10 * frame[0, 0]


def test_slab_chunks_keep_each_frame_whole_and_a_chunk_near_32_mb():
    chunks = slab_chunks((512, 512, 256, 256), np.float32)
    assert chunks[2:] == (256, 256)
    assert np.prod(chunks) * 4 <= 32 * 2**20
