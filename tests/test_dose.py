"""The electron dose on a file's page, worked out only from what its instrument recorded: a Velox STEM image's
probe current, dwell time and scan step give e⁻/Å² and e⁻/Å²/s; a camera image, a spectrum or a placeholder current
give the recorded values and no dose."""

from __future__ import annotations

import html
import json
import re
import shutil

import pytest
from datasette.app import Datasette

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.web import dose

from .conftest import REPO, shared_data

REAL_FILES = [
    ("em", "STEM HAADF Diffraction Micro.emd"),  # Velox STEM: screen current, dwell, 128×128 scan
    ("em", "Camera Ceta Imaging Micro.emd"),  # Velox Ceta camera image: screen current and exposure
    ("em-vendors", "msa", "example1.msa"),  # an EELS spectrum: 12.345 nA beam, 100 ms dwell, no pixel
    ("em", "08_carbon.dm3"),  # DigitalMicrograph's probe current 0 nA: a placeholder
]


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dose")
    (folder / "data").mkdir()
    for parts in REAL_FILES:
        shutil.copy(shared_data(*parts), folder / "data" / parts[-1])
    path = folder / "dose.db"
    db = open_catalog(path)
    load_files(db, [folder / "data"], load_settings(REPO / "metadata.yml"), progress=False, sandbox=False)
    db.close()
    return path


@pytest.fixture
def ds(catalog_path):
    return Datasette([str(catalog_path)])


def file_row(catalog_path, name: str) -> dict:
    db = open_catalog(catalog_path)
    try:
        row = next(db.query("select * from files where name = ?", [name]))
    finally:
        db.close()
    return row


def beam(catalog_path, name: str) -> dose.Beam | None:
    row = file_row(catalog_path, name)
    return dose.beam_of(row, json.loads(row["metadata"]))


async def listed(ds, catalog_path, name: str) -> dict[str, str]:
    """The item page's definition list: label -> value, as a reader sees them."""
    response = await ds.client.get(f"/-/scisearch/item/dose/file/{file_row(catalog_path, name)['id']}")
    assert response.status_code == 200
    pairs = re.findall(r"<dt>([^<]+)</dt><dd[^>]*>(.*?)</dd>", response.text, re.S)
    return {html.unescape(label): html.unescape(re.sub(r"<[^>]+>", "", value)) for label, value in pairs}


def test_a_stem_images_dose_is_its_probe_current_times_dwell_over_its_pixel_area(catalog_path):
    row = file_row(catalog_path, "STEM HAADF Diffraction Micro.emd")
    metadata = json.loads(row["metadata"])
    current = float(metadata["Optics"]["LastMeasuredScreenCurrent"])  # 22.5 fA, as Velox wrote it
    dwell = float(metadata["Scan"]["DwellTime"])  # 10 µs
    pixel_a = row["pixel_size_nm"] * 10
    expected = current * dwell / 1.602176634e-19 / pixel_a**2
    found = beam(catalog_path, "STEM HAADF Diffraction Micro.emd")
    assert found.scanned and found.dose_e_per_a2 == pytest.approx(expected, rel=1e-9)
    assert found.dose_rate_e_per_a2_s == pytest.approx(expected / float(metadata["Scan"]["FrameTime"]), rel=1e-9)


@pytest.mark.asyncio
async def test_the_stem_images_page_shows_its_dose_per_square_angstrom_and_per_second(ds, catalog_path):
    shown = await listed(ds, catalog_path, "STEM HAADF Diffraction Micro.emd")
    assert shown["Beam current"] == "22.5 fA" and shown["Dwell time"] == "10 µs"
    assert re.fullmatch(r"1\.84e-6 e⁻/Å²", shown["Electron dose"])
    assert re.fullmatch(r"7\.45e-6 e⁻/Å²/s \(frame average\)", shown["Dose rate"])


@pytest.mark.asyncio
async def test_a_camera_image_shows_its_current_and_exposure_and_says_why_it_has_no_dose(ds, catalog_path):
    shown = await listed(ds, catalog_path, "Camera Ceta Imaging Micro.emd")
    assert shown["Beam current"] == "34.5 fA" and shown["Exposure"] == "400 ms"
    assert shown["Electron dose"].startswith("not given: a camera image's dose needs the area the beam lit")
    assert "Dose rate" not in shown


@pytest.mark.asyncio
async def test_a_spectrum_shows_its_beam_current_and_dwell_but_no_dose_without_a_pixel(ds, catalog_path):
    shown = await listed(ds, catalog_path, "example1.msa")
    assert shown["Beam current"] == "12.3 nA" and shown["Dwell time"] == "100 ms"
    assert shown["Electron dose"] == "not given: the file records no pixel size in the specimen"


@pytest.mark.asyncio
async def test_a_placeholder_probe_current_of_zero_is_not_shown_as_a_current(ds, catalog_path):
    shown = await listed(ds, catalog_path, "08_carbon.dm3")
    assert "Beam current" not in shown and "Electron dose" not in shown
    assert shown["Exposure"] == "1 s"  # what DM did record
