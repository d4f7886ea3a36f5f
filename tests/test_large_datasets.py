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


MOVIE = (300, 1024, 1024)  # frames of a float32 MRC movie: 1.26 GB declared, more than twice the reader's limit
MOVIE_READER_MEMORY_BYTES = 512 * 2**20


def write_sparse_mrc_movie(path) -> None:
    """An MRC movie whose header ncempy writes (``writeHeader``, its way to start a file written piece by piece):
    the file is extended to its full size without writing the zeros (a sparse file: little disk), and every
    25th frame holds a bright disc that grows with the frame number."""
    from ncempy.io import mrc

    mrc.writeHeader(str(path), MOVIE, np.float32, (1.0, 2.5, 2.5))
    frame_bytes = MOVIE[1] * MOVIE[2] * 4
    with open(path, "r+b") as handle:
        handle.truncate(1024 + MOVIE[0] * frame_bytes)
    y, x = np.mgrid[: MOVIE[1], : MOVIE[2]] - MOVIE[1] / 2
    movie = np.memmap(path, dtype=np.float32, mode="r+", offset=1024, shape=MOVIE)
    for number in range(0, MOVIE[0], 25):
        movie[number] = (np.hypot(y, x) < 50 + number).astype(np.float32) * 100
    movie.flush()
    del movie


@pytest.fixture
def mrc_movie_folder(tmp_path):
    write_sparse_mrc_movie(tmp_path / "movie.mrc")
    yield tmp_path
    (tmp_path / "movie.mrc").unlink()  # 1.26 GB apparent: gone as soon as the test is


def test_an_mrc_movie_larger_than_the_readers_memory_limit_is_catalogued_through_a_memory_map(
    catalog, settings, mrc_movie_folder
):
    assert (mrc_movie_folder / "movie.mrc").stat().st_size > 2 * MOVIE_READER_MEMORY_BYTES
    with ReaderPool(memory_limit_bytes=MOVIE_READER_MEMORY_BYTES) as pool:
        summary = load_files(catalog, [mrc_movie_folder], settings, progress=False, sandbox=pool)
    assert (summary.added, summary.failed) == (1, 0), summary.errors
    row = next(catalog.query("select * from files"))
    assert (row["kind"], row["shape"], row["dtype"]) == ("stack", "300×1024×1024", "float32")
    assert row["loader"].split(":")[0] == "mrc"  # ncempy's reader, not a fallback after it ran out of memory
    assert row["pixel_size_nm"] == pytest.approx(0.25)
    assert catalog.execute("select count(*) from previews where file_id = ?", [row["id"]]).fetchone()[0] == 1
    # The item page's frames come from the map too: frame 1 (empty) and frame 300's neighbours are sampled.
    assert catalog.execute("select frames_total from frames where file_id = ?", [row["id"]]).fetchone()[0] == 300


def vendor_file(*parts):
    from .conftest import shared_data

    return shared_data(*parts)


def read_all(path, loader_name):
    from datasette_scisearch.ingest.lazy import compute, is_lazy

    loader = next(loader for loader in file_loaders() if loader.name == loader_name)
    return [(compute(dataset.data), dataset, is_lazy(dataset.data)) for dataset in loader.read(path)]


@pytest.mark.parametrize(
    ("parts", "loader_name"),
    [
        (("em", "dmTest_3D_int16_64,65,66.dm4"), "gatan-dm"),
        (("em", "08_carbon.dm3"), "gatan-dm"),
        (("em", "16_STOimage_1.ser"), "tia-ser"),
        (("em-vendors", "tia", "old", "16x16-spectrum_image-5x5x1024_1.ser"), "tia-ser"),
        (("em-vendors", "tia", "new", "16x16-diffraction_imagel_5x5x256x256_EDS_1.ser"), "tia-ser"),
        (("em-vendors", "tia", "old", "64x64x5_TEM_preview_1.ser"), "tia-ser"),
        (("em", "temp.mrc"), "mrc"),
    ],
)
def test_a_dataset_read_lazily_is_the_same_as_when_read_whole(parts, loader_name, monkeypatch):
    """ncempy writes no DM or TIA files, so the lazy path is proven on real vendor files by lowering the size
    above which a dataset is read lazily: every value, axis and calibration must be those of the whole read."""
    import scisearch_loaders.ncempy_formats as ncempy_formats

    path = vendor_file(*parts)
    whole = read_all(path, loader_name)
    monkeypatch.setattr(ncempy_formats, "LAZY_ABOVE_BYTES", 0)
    lazy = read_all(path, loader_name)
    assert [was_lazy for _, _, was_lazy in lazy] == [True] * len(whole)
    for (data, dataset, _), (lazy_data, lazy_dataset, _) in zip(whole, lazy):
        assert lazy_data.shape == data.shape and lazy_data.dtype == data.dtype
        assert np.array_equal(lazy_data, data)
        assert lazy_dataset.pixel_size_nm == dataset.pixel_size_nm and lazy_dataset.kind == dataset.kind
        assert (lazy_dataset.energy_axis_ev is None) == (dataset.energy_axis_ev is None)
        if dataset.energy_axis_ev is not None:
            assert np.allclose(lazy_dataset.energy_axis_ev, dataset.energy_axis_ev)
