"""The reader chain over public vendor test files, with RosettaSciIO's own reading of each file as the oracle."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.ingest.kinds import kind_from_axes

from .conftest import REPO, shared_data

pytestmark = pytest.mark.slow  # every vendor file read, several times over


@pytest.fixture(scope="module")
def vendors():
    return shared_data("em-vendors").resolve()


@pytest.fixture(scope="module")
def vendor_catalog(tmp_path_factory, vendors):
    db = open_catalog(tmp_path_factory.mktemp("vendors") / "vendors.db")
    summary = load_files(db, [vendors], load_settings(REPO / "metadata.yml"), progress=False)
    yield db, summary
    db.close()


def row(vendor_catalog, vendors, relative: str, dataset: int = 0) -> dict:
    db, _ = vendor_catalog
    found = list(db.query("select * from files where path = ? and dataset = ?", [str(vendors / relative), dataset]))
    assert found, f"no row for {relative} #{dataset}"
    return found[0]


def oracle():
    spec = importlib.util.spec_from_file_location("readers_benchmark", REPO / "benchmarks" / "readers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_vendor_file_rosettasciio_reads_becomes_a_row(vendor_catalog, vendors):
    db, _ = vendor_catalog
    benchmark = oracle()
    catalogued = {r["path"] for r in db.query("select path from files")}
    missing = []
    for path in sorted(p for p in vendors.rglob("*") if p.is_file()):
        if path.suffix.lower() in (".txt",) or benchmark.companion_of(path) is not None:
            continue
        if path.suffix.lower() == ".emi" and list(path.parent.glob(path.stem + "_*.ser")):
            continue
        if benchmark.rosettasciio_signals(benchmark.reference_path(path)) is not None and str(path) not in catalogued:
            missing.append(path.name)
    assert missing == []


def test_kind_shape_time_kv_magnification_camera_length_and_instrument_agree_with_rosettasciio(vendors, settings):
    compared, agreeing = oracle().compare(vendors, settings, details=False)
    assert compared > 150
    assert agreeing / compared >= 0.97


def test_the_broken_bruker_file_is_an_error_naming_the_reader(vendor_catalog, vendors):
    db, _ = vendor_catalog
    message = db.execute(
        "select message from ingest_errors where source = ?", [str(vendors / "bruker" / "Nope.bcf")]
    ).fetchone()[0]
    assert "rosettasciio" in message.lower() and "Bruker" in message


def test_no_vendor_file_is_skipped_as_not_an_instrument_file(vendor_catalog):
    _, summary = vendor_catalog
    unclaimed = [n for n in summary.notes if n.startswith("not an instrument file")]
    assert all(n.endswith((".hdr", "COPYING.txt")) for n in unclaimed), unclaimed


def test_a_gatan_spectrum_image_takes_its_time_from_the_si_tag_group(vendor_catalog, vendors):
    found = row(vendor_catalog, vendors, "digitalmicrograph/2D/test-MonoCL_spectrum-SI.dm4")
    assert found["acquired_local"].startswith("2020-04-11T14:41:01")
    assert (found["acquired_at_source"], found["kind"]) == ("metadata", "spectrum image")


def test_a_gatan_camera_length_of_zero_is_stored_as_unknown(vendor_catalog, vendors):
    found = row(vendor_catalog, vendors, "digitalmicrograph/2D/test-MonoCL_spectrum-SI.dm4")
    assert found["camera_length_mm"] is None
    assert json.loads(found["metadata"])["Microscope Info STEM Camera Length"] == 0


def test_a_jeol_sightx_tiff_gives_kv_magnification_microscope_and_its_time_zone(vendor_catalog, vendors):
    found = row(vendor_catalog, vendors, "tiff/JEOL-SightX-Ronchigram-dummy.tif")
    assert (found["voltage_kv"], found["magnification"], found["instrument_reported"]) == (200, 400000, "JEM-ARM200F")
    assert found["acquired_at"] == "2021-05-18T05:10:44+00:00"  # written at +09:00


def test_a_tiff_without_vendor_time_takes_its_datetime_tag_and_says_so(vendor_catalog, vendors):
    found = row(vendor_catalog, vendors, "tiff/test_hamamatsu_streak_SCAN.tif")
    assert found["acquired_local"].startswith("2022-02-09T18:39:41")
    assert found["acquired_at_source"] == "TIFF DateTime tag"


def test_a_tvips_movie_of_diffraction_patterns_is_a_stack_with_kv_and_magnification(vendor_catalog, vendors):
    found = row(vendor_catalog, vendors, "tvips/test_tvips_2233_000.tvips")
    assert (found["kind"], found["voltage_kv"], found["magnification"]) == ("stack", 200, 80)


def test_a_nanomegas_blockfile_is_a_4d_scan(vendor_catalog, vendors):
    assert row(vendor_catalog, vendors, "blockfile/test2.blo")["kind"] == "4D"


def test_a_tia_line_of_spectra_is_a_spectrum_image(vendor_catalog, vendors):
    found = row(vendor_catalog, vendors, "tia/old/16x16-line_profile_diagonal_10x1024_1.ser")
    assert (found["kind"], found["instrument_reported"]) == ("spectrum image", "Tecnai 300 kV D248 SuperTwin")


def test_a_tia_file_ncempy_cannot_read_is_read_by_rosettasciio_with_the_first_error_as_evidence(
    vendor_catalog, vendors
):
    found = row(vendor_catalog, vendors, "tia/old/no_AcquireDate_1.ser")
    assert found["loader"].startswith("rosettasciio:")
    evidence = json.loads(found["metadata"])["reader_fallback"]
    assert evidence[0]["reader"].startswith("tia-ser:") and evidence[0]["error"]


def test_an_arina_master_is_one_4d_row_and_its_data_file_no_row_of_its_own(vendor_catalog, vendors):
    db, _ = vendor_catalog
    assert row(vendor_catalog, vendors, "arina/test_00_master.h5")["kind"] == "4D"
    data_rows = db.execute("select count(*) from files where name = 'test_00_data_000001.h5'").fetchone()[0]
    assert data_rows == 0


@pytest.mark.parametrize(
    "relative, kind",
    [
        ("jeol/Sample/00_View000/View000_0000001.map", "image"),
        ("jeol/Sample/00_View000/View000_0000006.pts", "spectrum image"),
        ("jeol/met03.EDS", "spectrum"),
        ("phenom/Elid2Version3.elid", "image"),
        ("quantumdetector/Single_9_Frame_CounterDepth_12_Rows_256.mib", "stack"),
        ("msa/example2.msa", "spectrum"),
        ("bruker/bruker_nano.spx", "spectrum"),
    ],
)
def test_vendor_formats_only_rosettasciio_reads_become_rows_of_their_kind(vendor_catalog, vendors, relative, kind):
    assert row(vendor_catalog, vendors, relative)["kind"] == kind


def test_a_spectrum_whose_date_is_not_believable_has_no_instrument_time(vendor_catalog, vendors):
    found = row(vendor_catalog, vendors, "msa/example1_wrong_date.msa")
    assert found["acquired_at_source"] == "file modification time"


# Kinds: one vocabulary, decided from the axes.


def test_one_energy_axis_is_a_spectrum_and_one_length_axis_a_line_profile():
    assert kind_from_axes([1024], ["eV"]) == "spectrum"
    assert kind_from_axes([300], ["nm"]) == "line profile"


def test_reciprocal_axes_make_a_diffraction_pattern_and_real_ones_an_image():
    assert kind_from_axes([256, 256], ["1/nm", "1/nm"]) == "diffraction"
    assert kind_from_axes([256, 256], ["1 / µm", "1 / µm"]) == "diffraction"
    assert kind_from_axes([256, 256], ["nm", "nm"]) == "image"


def test_navigation_axes_make_stacks_spectrum_images_and_4d_scans():
    assert kind_from_axes([10, 64, 64], ["s", "nm", "nm"], [True, False, False]) == "stack"
    assert kind_from_axes([5, 5, 1024], ["nm", "nm", "keV"], [True, True, False]) == "spectrum image"
    assert kind_from_axes([4, 4, 192, 192], ["", "", "", ""]) == "4D"


# Failures remembered, data roots, links, transactions.


@pytest.fixture
def folder_with_failures(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    shutil.copy2(shared_data("em") / "08_carbon.dm3", folder / "08_carbon.dm3")
    (folder / "truncated.dm3").write_bytes((shared_data("em") / "08_carbon.dm3").read_bytes()[:300])
    (folder / "empty.ser").write_bytes(b"")
    return folder


def counting_reads(monkeypatch):
    import datasette_scisearch.ingest.files as ingest

    calls = []
    real_read, real_hash = ingest.read_one, ingest.sha256_of
    monkeypatch.setattr(ingest, "read_one", lambda pool, path, *a: calls.append(path) or real_read(pool, path, *a))
    monkeypatch.setattr(ingest, "sha256_of", lambda paths: calls.append(paths[0]) or real_hash(paths))
    return calls


def test_a_second_load_of_a_folder_with_failing_files_reads_and_hashes_nothing(
    catalog, settings, folder_with_failures, monkeypatch
):
    first = load_files(catalog, [folder_with_failures], settings, progress=False)
    assert (first.added, first.failed) == (1, 2)
    calls = counting_reads(monkeypatch)
    second = load_files(catalog, [folder_with_failures], settings, progress=False)
    assert calls == []
    assert (second.unchanged, second.failed) == (1, 2)


def test_retry_errors_reads_the_failed_files_again(catalog, settings, folder_with_failures, monkeypatch):
    load_files(catalog, [folder_with_failures], settings, progress=False)
    calls = counting_reads(monkeypatch)
    load_files(catalog, [folder_with_failures], settings, progress=False, retry_errors=True)
    assert {Path(p).name for p in calls} == {"truncated.dm3", "empty.ser"}


def test_a_failed_file_that_changes_is_read_again(catalog, settings, folder_with_failures, monkeypatch):
    load_files(catalog, [folder_with_failures], settings, progress=False)
    shutil.copy2(shared_data("em") / "08_carbon.dm3", folder_with_failures / "truncated.dm3")
    calls = counting_reads(monkeypatch)
    summary = load_files(catalog, [folder_with_failures], settings, progress=False)
    assert {Path(p).name for p in calls} == {"truncated.dm3"}
    assert summary.failed == 1  # the empty file, still unchanged


def test_a_folder_given_relatively_is_stored_as_an_absolute_data_root(catalog, settings, folder_with_failures):
    here = os.getcwd()
    os.chdir(folder_with_failures.parent)
    try:
        load_files(catalog, [Path("disk")], settings, progress=False)
    finally:
        os.chdir(here)
    assert [r["path"] for r in catalog.query("select path from data_roots")] == [str(folder_with_failures.resolve())]
    path = catalog.execute("select path from files").fetchone()[0]
    assert path == str((folder_with_failures / "08_carbon.dm3").resolve())


def test_a_link_out_of_the_data_root_is_not_followed_and_the_summary_says_so(catalog, settings, tmp_path):
    outside, inside = tmp_path / "outside", tmp_path / "root"
    outside.mkdir(), inside.mkdir()
    shutil.copy2(shared_data("em") / "08_carbon.dm3", outside / "secret.dm3")
    (inside / "link.dm3").symlink_to(outside / "secret.dm3")
    summary = load_files(catalog, [inside], settings, progress=False)
    assert catalog["files"].count == 0 and catalog["ingest_errors"].count == 0
    assert any("link out of the data roots not followed" in note for note in summary.notes)


def test_a_file_whose_writing_fails_half_way_leaves_no_row_behind(catalog, settings, folder_with_failures):
    catalog.execute("create trigger fail_preview before insert on previews begin select raise(abort, 'disk full'); end")
    with pytest.raises(Exception, match="disk full"):
        load_files(catalog, [folder_with_failures / "08_carbon.dm3"], settings, progress=False)
    assert catalog["files"].count == 0
    catalog.execute("drop trigger fail_preview")
    assert load_files(catalog, [folder_with_failures / "08_carbon.dm3"], settings, progress=False).added == 1


def test_every_vendor_file_with_an_instrument_time_links_to_its_session_in_a_log_written_from_those_times(
    vendors, settings, tmp_path
):
    """The user log is written from RosettaSciIO's reading of each file's time (the oracle), a two-minute session
    around it, in UTC with its offset; the catalog's own times must fall inside.  Files that name no instrument
    are the 'VendorLab' instrument's, by their folder, as a facility's folder rules would say."""
    import dataclasses
    import datetime as dt

    from datasette_scisearch.config import InstrumentRule
    from datasette_scisearch.ingest import linking
    from datasette_scisearch.ingest.records import load_records

    settings = dataclasses.replace(
        settings, instruments=[*settings.instruments, InstrumentRule("VendorLab", folders=[vendors.name])]
    )
    benchmark = oracle()
    db = open_catalog(tmp_path / "linked.db")
    load_files(db, [vendors], settings, progress=False)
    sessions, expected = [], set()
    for file in db.query("select id, path, dataset, instrument from files where acquired_at_source = 'metadata'"):
        signals = benchmark.rosettasciio_signals(benchmark.reference_path(Path(file["path"])))
        if not signals or file["dataset"] >= len(signals) or not file["instrument"]:
            continue
        reference = benchmark.reference_values(signals[file["dataset"]])["acquired_at"]
        if reference is None:
            continue
        clock, moment = reference
        utc = moment.replace(tzinfo=dt.UTC) if clock == "utc" else moment.replace(tzinfo=settings.zone)
        start, end = utc - dt.timedelta(minutes=1), utc + dt.timedelta(minutes=1)
        sessions.append(f"{file['instrument']},{start.isoformat()},{end.isoformat()}")
        expected.add(file["id"])
    log = tmp_path / "userlog.csv"
    log.write_text("instrument,start,end\n" + "\n".join(sessions) + "\n", encoding="utf-8")
    load_records(db, "userlog", log, settings, progress=False)
    linking.link_all(db, settings)
    linked = {r["id"] for r in db.query("select id from files where session_id is not null")}
    db.close()
    assert len(expected) >= 30
    assert expected <= linked


# Vendor layouts the shared files lack, written here; RosettaSciIO's reading of them is still the oracle.


def write_direct_electron_scan(folder: Path) -> Path:
    """A Direct Electron 4D-STEM acquisition as the camera saves it: 16 frames of 32² px in
    YYYYMMDD_NNNNN_movie.mrc and the scan, magnification and time in YYYYMMDD_NNNNN_info.txt."""
    import datetime as dt

    import numpy as np
    from ncempy.io import mrc

    movie = folder / "20240305_00042_movie.mrc"
    frames = np.random.default_rng(0).integers(0, 100, (16, 32, 32)).astype(np.uint16)
    mrc.mrcWriter(str(movie), frames, (1.0, 1.0, 1.0))
    sidecar = {
        "Camera Model": "Apollo",
        "Scan - Enable": "Enable",
        "Scan - Type": "Raster",
        "Scan - Size X": 4,
        "Scan - Size Y": 4,
        "Image Size X (pixels)": 32,
        "Image Size Y (pixels)": 32,
        "Instrument Project Magnification": 50000,
        "Instrument Project TEMorSTEM Mode": 1,
        "Timestamp (seconds since Epoch)": dt.datetime(2024, 3, 5, 22, 30, 12, tzinfo=dt.UTC).timestamp(),
    }
    (folder / "20240305_00042_info.txt").write_text("".join(f"{k} = {v}\n" for k, v in sidecar.items()))
    return movie


def test_a_direct_electron_movie_with_its_sidecar_is_a_4d_scan_with_magnification_and_time(catalog, settings, tmp_path):
    movie = write_direct_electron_scan(tmp_path)
    load_files(catalog, [tmp_path], settings, progress=False)
    found = catalog.execute(
        "select kind, shape, magnification, acquired_at, loader from files where name = ?", [movie.name]
    ).fetchone()
    reference = oracle().reference_values(oracle().rosettasciio_signals(movie)[0])
    assert found == ("4D", "4×4×32×32", 50000.0, "2024-03-05T22:30:12+00:00", "mrc:2")
    assert (reference["kind"], reference["shape"]) == ("4D", (4, 4, 32, 32))


def test_editing_a_direct_electron_sidecar_reads_the_movie_again(catalog, settings, tmp_path):
    movie = write_direct_electron_scan(tmp_path)
    load_files(catalog, [tmp_path], settings, progress=False)
    sidecar = tmp_path / "20240305_00042_info.txt"
    sidecar.write_text(sidecar.read_text().replace("Magnification = 50000", "Magnification = 80000"))
    os.utime(sidecar, (movie.stat().st_atime, movie.stat().st_mtime + 10))  # saved later than the movie
    load_files(catalog, [tmp_path], settings, progress=False)
    assert catalog.execute("select magnification from files").fetchone()[0] == 80000


def test_a_jeol_img_is_read_with_its_voltage_magnification_and_time(catalog, settings, tmp_path, vendors):
    # JEOL's .img and .map share one tagged layout (RosettaSciIO reads both with one function): a real map,
    # saved under the suffix JEOL gives images, is a JEOL image file.
    image = tmp_path / "View000_0000001.img"
    shutil.copy2(vendors / "jeol/Sample/00_View000/View000_0000001.map", image)
    load_files(catalog, [tmp_path], settings, progress=False)
    found = catalog.execute("select kind, voltage_kv, magnification, acquired_local, loader from files").fetchone()
    assert found[:3] == ("image", 200.0, 40000.0)
    assert found[3].startswith("2017-04-07T18:08:39") and found[4].startswith("rosettasciio:")


def test_a_tia_frame_taken_with_the_tem_projector_in_diffraction_is_a_diffraction_pattern(tmp_path):
    import numpy as np
    from scisearch_loaders.ncempy_formats import _tia_diffraction

    frame = np.zeros((64, 64))
    emi = tmp_path / "pattern.emi"
    emi.write_bytes(b"<ObjectInfo><AcquireInfo></AcquireInfo></ObjectInfo>")
    assert _tia_diffraction(" TEM uP SA Zoom Diffraction", emi, frame, spectrum=False) == "diffraction"
    assert _tia_diffraction(" TEM uP SA Zoom Image", emi, frame, spectrum=False) is None


def test_a_stem_frame_is_a_pattern_only_when_a_camera_recorded_it(tmp_path):
    import numpy as np
    from scisearch_loaders.ncempy_formats import _tia_diffraction

    frame = np.zeros((64, 64))
    scanned, camera = tmp_path / "scan.emi", tmp_path / "camera.emi"
    scanned.write_bytes(b"<AcquireInfo><DwellTimePath>x</DwellTimePath></AcquireInfo>")
    camera.write_bytes(b"<AcquireInfo><CameraNamePath>BM-Ceta</CameraNamePath></AcquireInfo>")
    assert _tia_diffraction(" STEM nP Mh Zoom Diffraction", scanned, frame, spectrum=False) is None
    assert _tia_diffraction(" STEM nP Mh Zoom Diffraction", camera, frame, spectrum=False) == "diffraction"


def test_a_missing_file_says_whether_its_folder_is_gone_or_only_the_file(tmp_path):
    from datasette_scisearch.tagging.items import why_missing

    (tmp_path / "run").mkdir()
    assert "its folder holds no such file any more" in why_missing(tmp_path / "run" / "a.dm3")
    assert f"its folder '{tmp_path / 'gone'}' does not exist" in why_missing(tmp_path / "gone" / "a.dm3")
    assert "relative to the folder a load ran in" in why_missing(Path("data/a.dm3"))


# A Velox series: the real Ceta image of ../shared/data/em made three frames long, as Velox stores a series.


@pytest.fixture
def velox_series(tmp_path):
    import h5py
    import numpy as np

    path = tmp_path / "series" / "Ceta series.emd"
    path.parent.mkdir()
    shutil.copy2(shared_data("em") / "Camera Ceta Imaging Micro.emd", path)
    with h5py.File(path, "r+") as handle:
        group = next(iter(handle["Data/Image"].values()))
        frame, metadata = group["Data"][()], group["Metadata"][()]
        del group["Data"], group["Metadata"]
        frames = np.concatenate([frame, frame * 2, frame * 3], axis=2)  # (y, x, frame)
        group.create_dataset("Data", data=frames, chunks=(*frames.shape[:2], 1))
        group.create_dataset("Metadata", data=np.repeat(metadata, 3, axis=1))
    return path


def test_a_velox_series_has_its_frames_first_and_its_middle_frame_as_preview_as_rosettasciio_reads_it(
    catalog, settings, velox_series
):
    import numpy as np
    from rsciio.emd import file_reader

    from datasette_scisearch.tagging.items import file_pixels

    reference = file_reader(str(velox_series))[0]["data"]
    load_files(catalog, [velox_series.parent], settings, progress=False)
    catalogued = next(catalog["files"].rows)
    assert reference.shape == (3, 512, 512)
    assert (catalogued["shape"], catalogued["kind"]) == ("3×512×512", "stack")
    np.testing.assert_array_equal(file_pixels(catalogued), reference[1].astype(np.float32))


def test_a_large_velox_series_is_read_a_frame_at_a_time(velox_series, monkeypatch):
    import numpy as np
    from rsciio.emd import file_reader

    from datasette_scisearch.ingest.lazy import compute, is_lazy
    from loaders import ncempy_formats

    monkeypatch.setattr(ncempy_formats, "LAZY_ABOVE_BYTES", 1000)
    reference = file_reader(str(velox_series))[0]["data"]
    for dataset in ncempy_formats.EMDLoader().read(velox_series):
        assert is_lazy(dataset.data) and dataset.data.chunksize == (1, 512, 512)
        np.testing.assert_array_equal(compute(dataset.data[2]), reference[2])
