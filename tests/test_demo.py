"""The demo facility: real formats that read back as intended, bookings that cover the files, records that link."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
import json
import os
import re
import zoneinfo

import pytest
import tifffile
from ncempy.io import emd, emdVelox, mrc

from datasette_scisearch.demo import build_facility

ZONE = zoneinfo.ZoneInfo("America/Los_Angeles")
FORMATS = {"berkeley-emd", "velox-emd", "fei-tiff", "zeiss-tiff", "mrc", "emsa", "hspy", "blockfile"}


@pytest.fixture(scope="session")
def facility(tmp_path_factory):
    return build_facility(tmp_path_factory.mktemp("demo"), n_files=30, seed=0, progress=False)


@pytest.fixture(scope="session")
def bookings(facility):
    with open(facility.userlog, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def written(facility, file_format, kind=None):
    found = [e for e in facility.files if e["format"] == file_format and (kind is None or e["kind"] == kind)]
    assert found, f"the demo wrote no {file_format} {kind or ''} file"
    return found


def local_time_of_epoch(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).astimezone(ZONE).replace(tzinfo=None)


def sessions_in(bookings, settings, instrument):
    return [
        (dt.datetime.fromisoformat(row["start"]), dt.datetime.fromisoformat(row["end"]), row)
        for row in bookings
        if settings.canonical_instrument(row["instrument"]) == instrument
    ]


def test_small_demo_writes_every_format_of_every_instrument(facility):
    assert len(facility.files) == 30
    assert {e["format"] for e in facility.files} == FORMATS
    assert {e["instrument"] for e in facility.files} == {"TEAM 0.5", "Themis", "Helios", "Gemini", "Krios"}
    assert all(e["path"].is_file() and e["path"].is_relative_to(facility.data_dir) for e in facility.files)


def test_files_are_filed_by_instrument_year_user_and_project(facility):
    folders = {"TEAM 0.5": "team05", "Themis": "themis", "Helios": "helios", "Gemini": "gemini", "Krios": "krios"}
    for entry in facility.files:
        instrument, year, user, _project, _name = entry["path"].relative_to(facility.data_dir).parts
        assert (instrument, year, user) == (
            folders[entry["instrument"]],
            str(entry["acquired_at_local"].year),
            entry["user"],
        )


def test_berkeley_emd_images_read_back_with_team_voltage_magnification_and_pixel_size(facility):
    for entry in written(facility, "berkeley-emd", "image"):
        with emd.fileEMD(str(entry["path"])) as handle:
            data, dims = handle.get_emdgroup(0)
            metadata = handle.getMetadata(0)
        assert data.shape == entry["shape"]
        assert metadata["name"] == "TEAM 0.5"
        assert metadata["high tension"] == entry["voltage_kv"] * 1e3
        assert metadata["magnification"] == entry["magnification"]
        assert metadata["sample name"] == entry["sample"]
        assert metadata["User name"] == entry["user_name"]
        assert dims[-1][2] == "n_m"
        assert dims[-1][0][1] - dims[-1][0][0] == pytest.approx(entry["pixel_size_nm"], rel=1e-6)


def test_berkeley_emd_diffraction_patterns_have_reciprocal_nanometre_axes(facility):
    for entry in written(facility, "berkeley-emd", "diffraction"):
        with emd.fileEMD(str(entry["path"])) as handle:
            _, dims = handle.get_emdgroup(0)
            metadata = handle.getMetadata(0)
        assert [dim[2] for dim in dims] == ["1/nm", "1/nm"]
        assert metadata["camera length"] * 1e3 == pytest.approx(entry["camera_length_mm"])


def test_files_without_a_stored_time_carry_it_as_their_modification_time(facility):
    for entry in written(facility, "berkeley-emd") + written(facility, "mrc"):
        assert local_time_of_epoch(os.stat(entry["path"]).st_mtime) == entry["acquired_at_local"]


def test_velox_files_read_back_through_ncempy_with_voltage_magnification_and_utc_time(facility):
    for entry in written(facility, "velox-emd"):
        with emdVelox.fileEMDVelox(str(entry["path"])) as handle:
            data, summary = handle.get_dataset(0)
            metadata = handle.metaDataJSON
        optics = metadata["Optics"]
        assert data.shape == entry["shape"]
        assert float(optics["AccelerationVoltage"]) == entry["voltage_kv"] * 1e3
        assert optics["OperatingMode"] == {"TEM": "1", "STEM": "2"}[entry["mode"]]
        assert summary["detectorName"] == entry["detector"]
        epoch = int(metadata["Acquisition"]["AcquisitionStartDatetime"]["DateTime"])
        assert local_time_of_epoch(epoch) == entry["acquired_at_local"]
        if entry["kind"] == "diffraction":
            assert metadata["BinaryResult"]["PixelUnitX"] == "1/m"
            assert summary["pixelSize"][0] == pytest.approx(entry["pixel_size_inv_nm"] * 1e9)
        else:
            assert float(optics["NominalMagnification"]) == entry["magnification"]
            assert summary["pixelSize"][0] == pytest.approx(entry["pixel_size_nm"])


def test_fei_tiffs_parse_with_tifffile_into_helios_metadata(facility):
    for entry in written(facility, "fei-tiff"):
        with tifffile.TiffFile(entry["path"]) as tiff:
            fei = tiff.fei_metadata
        assert fei["System"]["SystemType"] == "Helios NanoLab 660"
        assert fei["Beam"]["HV"] == fei["EBeam"]["HV"] == entry["voltage_kv"] * 1e3
        assert fei["Scan"]["PixelWidth"] == pytest.approx(entry["pixel_size_nm"] * 1e-9)
        # FEI stores a field width, and magnification by convention is against a 127 mm display.
        assert 0.127 / fei["Scan"]["HorFieldsize"] == pytest.approx(entry["magnification"])
        assert fei["Detectors"]["Name"] == entry["detector"]
        moment = dt.datetime.strptime(f"{fei['User']['Date']} {fei['User']['Time']}", "%m/%d/%Y %I:%M:%S %p")
        assert moment == entry["acquired_at_local"]


def test_zeiss_tiffs_parse_with_tifffile_into_gemini_metadata(facility):
    for entry in written(facility, "zeiss-tiff"):
        with tifffile.TiffFile(entry["path"]) as tiff:
            sem = tiff.sem_metadata
        assert "GeminiSEM" in sem["sv_serial_number"][1]
        assert sem["ap_actualkv"][1:] == (entry["voltage_kv"], "kV")
        magnification, unit = sem["ap_mag"][1].split(" ", 1)
        assert float(magnification) * {"K X": 1e3, "X": 1}[unit] == entry["magnification"]
        assert sem["ap_pixel_size"][1:] == (entry["pixel_size_nm"], "nm")
        assert sem["dp_detector_channel"][1] == entry["detector"]
        moment = dt.datetime.strptime(f"{sem['ap_date'][1]} {sem['ap_time'][1]}", "%d %b %Y %H:%M:%S")
        assert moment == entry["acquired_at_local"]


def test_sem_tiffs_carry_a_databar_under_the_image(facility):
    for entry in written(facility, "fei-tiff") + written(facility, "zeiss-tiff"):
        image = tifffile.imread(entry["path"])
        assert image.shape[0] > entry["shape"][0] and image.shape[1] == entry["shape"][1]


def test_mrc_files_read_back_with_their_pixel_size_in_angstrom(facility):
    for entry in written(facility, "mrc"):
        result = mrc.mrcReader(str(entry["path"]))
        assert result["data"].shape == entry["shape"]
        assert result["pixelSize"][-1] == pytest.approx(entry["pixel_size_nm"] * 10, rel=1e-6)


def test_instrument_names_the_files_report_map_to_the_canonical_names(facility, settings):
    for entry in facility.files:
        path = entry["path"]
        if entry["format"] == "berkeley-emd":
            with emd.fileEMD(str(path)) as handle:
                reported = handle.getMetadata(0)["name"]
        elif entry["format"] == "velox-emd":
            with emdVelox.fileEMDVelox(str(path)) as handle:
                handle.get_dataset(0)
                instrument = handle.metaDataJSON["Instrument"]
            reported = " ".join(instrument[key] for key in ("InstrumentModel", "InstrumentId", "ComputerName"))
        elif entry["format"] == "fei-tiff":
            with tifffile.TiffFile(path) as tiff:
                reported = tiff.fei_metadata["System"]["SystemType"]
        elif entry["format"] == "zeiss-tiff":
            with tifffile.TiffFile(path) as tiff:
                reported = tiff.sem_metadata["sv_serial_number"][1]
        elif entry["format"] == "hspy":
            from rsciio.hspy import file_reader

            reported = file_reader(str(path))[0]["metadata"]["Acquisition_instrument"]["TEM"]["microscope"]
        else:
            reported = None  # MRC, EMSA and block files name no instrument: the instrument's folder does
        assert settings.instrument_for(reported, path) == entry["instrument"]


def test_file_names_state_the_values_their_metadata_reports(facility):
    for entry in facility.files:
        name = entry["path"].stem
        if match := re.search(r"_(\d+(?:\.\d+)?)kV", name):
            assert float(match.group(1)) == entry["voltage_kv"]
        if match := re.search(r"_(\d+(?:\.\d+)?)([kM])x", name):
            assert float(match.group(1)) * {"k": 1e3, "M": 1e6}[match.group(2)] == entry["magnification"]
        if match := re.search(r"_(\d+)mm", name):
            assert float(match.group(1)) == entry["camera_length_mm"]


def test_the_same_seed_builds_the_same_files_and_another_seed_does_not(tmp_path):
    def build(folder, seed):
        facility = build_facility(tmp_path / folder, n_files=8, seed=seed, progress=False)
        return {
            str(e["path"].relative_to(facility.root)): (
                hashlib.sha256(e["path"].read_bytes()).hexdigest(),
                e["acquired_at_local"],
                e["magnification"],
            )
            for e in facility.files
        }

    first, again = build("a", seed=3), build("b", seed=3)
    assert first == again
    assert (tmp_path / "a" / "userlog.csv").read_bytes() == (tmp_path / "b" / "userlog.csv").read_bytes()
    assert build("c", seed=4) != first


def test_building_again_replaces_an_earlier_demo_but_not_other_data(tmp_path):
    build_facility(tmp_path / "demo", n_files=5, seed=1, progress=False)
    rebuilt = build_facility(tmp_path / "demo", n_files=5, seed=2, progress=False)
    assert sorted(p for p in rebuilt.data_dir.rglob("*") if p.is_file()) == sorted(e["path"] for e in rebuilt.files)
    other = tmp_path / "theirs"
    (other / "data").mkdir(parents=True)
    (other / "data" / "precious.dm4").write_bytes(b"not ours")
    with pytest.raises(FileExistsError):
        build_facility(other, n_files=5, progress=False)


def test_user_log_has_the_booking_system_columns_and_local_times(facility, bookings):
    with open(facility.userlog, encoding="utf-8") as handle:
        assert handle.readline().strip() == "instrument,user,start,end,proposal,notes"
    for row in bookings:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row["start"]) and row["end"] > row["start"]


def test_every_booked_file_falls_inside_its_session_in_the_user_log(facility, bookings, settings):
    for entry in (e for e in facility.files if e["booked"]):
        moment = entry["acquired_at_local"]
        assert any(
            start <= moment <= end and row["user"] == entry["user"] and row["proposal"] == entry["proposal_id"]
            for start, end, row in sessions_in(bookings, settings, entry["instrument"])
        ), f"{entry['path'].name} at {moment} is in no booking of {entry['instrument']}"


def test_unbooked_files_fall_outside_every_session_of_their_instrument(facility, bookings, settings):
    unbooked = [e for e in facility.files if not e["booked"]]
    assert 0 < len(unbooked) <= 0.25 * len(facility.files)
    for entry in unbooked:
        for start, end, _ in sessions_in(bookings, settings, entry["instrument"]):
            assert not start - dt.timedelta(minutes=10) <= entry["acquired_at_local"] <= end + dt.timedelta(minutes=10)


def test_no_instrument_is_booked_twice_at_once(bookings, settings):
    for instrument in {settings.canonical_instrument(row["instrument"]) for row in bookings}:
        spans = sorted((start, end) for start, end, _ in sessions_in(bookings, settings, instrument))
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


def test_proposals_parse_with_the_documented_fields(facility):
    proposals = [json.loads(line) for line in facility.proposals.read_text(encoding="utf-8").splitlines()]
    assert 6 <= len(proposals) <= 10
    for proposal in proposals:
        documented = {"id", "title", "abstract", "pi", "institution", "start_date", "end_date"}
        assert set(proposal) - {"embargo_until"} == documented  # one proposal states its own release date
        assert re.fullmatch(r"P-\d{4}-\d{4}", proposal["id"])
        assert dt.date.fromisoformat(proposal["start_date"]) < dt.date.fromisoformat(proposal["end_date"])
    assert {e["proposal_id"] for e in facility.files} <= {p["id"] for p in proposals}
    assert [p["id"] for p in proposals if "embargo_until" in p] == ["P-2023-0024"]


def test_papers_acknowledge_only_proposals_that_exist(facility):
    proposal_ids = {json.loads(line)["id"] for line in facility.proposals.read_text(encoding="utf-8").splitlines()}
    papers = [json.loads(line) for line in facility.papers.read_text(encoding="utf-8").splitlines()]
    assert 6 <= len(papers) <= 12
    for paper in papers:
        assert set(paper) == {"id", "title", "abstract", "authors", "year", "doi", "funding"}
        named = set(re.findall(r"P-\d{4}-\d{4}", paper["funding"]))
        assert named and named <= proposal_ids


def test_readme_explains_the_demo(facility):
    text = (facility.root / "README.txt").read_text(encoding="utf-8")
    assert "synthetic" in text and "userlog.csv" in text


def test_eds_spectra_are_emsa_files_rosettasciio_reads_with_their_voltage_and_time(facility):
    from rsciio.msa import file_reader

    for entry in written(facility, "emsa", "spectrum"):
        signal = file_reader(str(entry["path"]))[0]
        assert signal["data"].shape == entry["shape"]
        assert signal["metadata"]["Acquisition_instrument"]["TEM"]["beam_energy"] == entry["voltage_kv"]
        assert signal["metadata"]["General"]["date"] == entry["acquired_at_local"].date().isoformat()


def test_eels_spectrum_images_are_hspy_files_with_an_energy_loss_axis(facility):
    from rsciio.hspy import file_reader

    for entry in written(facility, "hspy", "spectrum image"):
        signal = file_reader(str(entry["path"]))[0]
        assert signal["data"].shape == entry["shape"]
        assert signal["axes"][-1]["units"] == "eV" and signal["metadata"]["Signal"]["signal_type"] == "EELS"


def test_4d_scans_are_block_files_with_voltage_and_camera_length(facility):
    from rsciio.blockfile import file_reader

    for entry in written(facility, "blockfile", "4D"):
        signal = file_reader(str(entry["path"]))[0]
        assert signal["data"].shape == entry["shape"]
        header = signal["original_metadata"]["blockfile_header"]
        assert (header["Beam_energy"], header["Camera_length"]) == (
            entry["voltage_kv"] * 1e3,
            entry["camera_length_mm"] * 10,
        )


def test_the_catalog_of_a_small_demo_holds_every_kind_of_data(facility, settings, tmp_path):
    from datasette_scisearch.catalog import open_catalog
    from datasette_scisearch.ingest.files import load_files

    db = open_catalog(tmp_path / "demo.db")
    summary = load_files(db, [facility.data_dir], settings, progress=False)
    kinds = {row["kind"] for row in db.query("select distinct kind from files")}
    db.close()
    assert summary.failed == 0
    assert {"image", "diffraction", "stack", "spectrum", "spectrum image", "4D"} <= kinds


def test_every_file_written_records_the_scene_it_shows_as_ground_truth(facility):
    from datasette_scisearch.demo.scenes import SHOWS

    assert all(entry["shows"] == sorted(SHOWS[entry["scene"]]) for entry in facility.files)


def test_every_scene_the_programme_plans_has_a_ground_truth():
    from datasette_scisearch.demo.programme import PROPOSALS
    from datasette_scisearch.demo.scenes import SHOWS

    assert {recipe.scene for proposal in PROPOSALS for recipe in proposal.recipes} <= set(SHOWS)


def test_gold_nanoparticles_at_atomic_resolution_are_separate_crystallites_on_a_faint_support(tmp_path):
    """A file named Au_np_…_HAADF at 2 Mx shows what a gold catalyst looks like there: a few particles, each
    with its own atom columns, and mostly the support between them — not a lattice filling the frame."""
    import numpy as np
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    from datasette_scisearch.demo.detector import render
    from datasette_scisearch.demo.facility import plan_sessions
    from datasette_scisearch.demo.scenes import CRYSTALS

    planned = [a for s in plan_sessions(400, 0, tmp_path) for a in s.acquisitions]
    acquisition = next(a for a in planned if a.scene == "particles_columns_haadf")
    assert acquisition.path.name.startswith("Au_np_") and acquisition.magnification >= 1.8e6
    picture = render(acquisition).astype(float)
    smooth = ndimage.gaussian_filter(picture, 0.3 / acquisition.pixel_size_nm)  # blur away the columns
    particles, count = ndimage.label(smooth > threshold_otsu(smooth))
    assert 1 <= count <= 20 and 0.02 < (particles > 0).mean() < 0.3  # a frame-filling lattice: ~0.5, dozens
    # Inside the largest particle the columns repeat at gold's (110) spacings: a peak in its power spectrum.
    largest = particles == np.argmax(np.bincount(particles.ravel())[1:]) + 1
    rows, cols = np.nonzero(largest)
    patch = picture[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    power = np.abs(np.fft.fftshift(np.fft.fft2(patch - patch.mean()))) ** 2
    frequency = np.hypot(*np.meshgrid(*(np.fft.fftshift(np.fft.fftfreq(n)) for n in patch.shape), indexing="ij"))
    period_px = min(np.linalg.norm(v) for v in CRYSTALS["Au_110"][:2]) / acquisition.pixel_size_nm
    near_columns = np.abs(frequency - 1 / period_px) < 0.25 / period_px
    assert power[near_columns].max() > 20 * np.median(power[(frequency > 0.02) & ~near_columns])
