"""What the item page shows beyond the preview, made at load from real files: a spectrum plotted with its axis and
units, a spectrum image's spectrum summed over its scan, and a slider through a stack's frames."""

from __future__ import annotations

import json
import re

import pytest
from datasette.app import Datasette

from datasette_scisearch.catalog import open_catalog

from .conftest import catalog_of_real_files, shared_data

REAL_FILES = [
    ("em-vendors", "msa", "example1.msa"),  # an EELS spectrum, 21 channels from 520 eV
    ("em", "dmTest_3D_int16_64,65,66.dm3"),  # a stack of 66 frames
    ("em-vendors", "digitalmicrograph", "2D", "test-MonoCL_spectrum-SI.dm4"),  # a CL spectrum image, 67 positions
    ("em-vendors", "digitalmicrograph", "1D", "test-MonarcCL_spectrum-pmt.dm4"),  # a CL spectrum, 170 channels
    ("em", "08_carbon.dm3"),  # an EELS spectrum from DigitalMicrograph, 2,048 channels
]


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory):
    return catalog_of_real_files(tmp_path_factory.mktemp("views"), REAL_FILES)


@pytest.fixture
def db(catalog_path):
    catalog = open_catalog(catalog_path)
    yield catalog
    catalog.close()


@pytest.fixture
def ds(catalog_path):
    return Datasette([str(catalog_path)])


def file_id(db, name: str) -> int:
    return db.execute("select id from files where name = ?", [name]).fetchone()[0]


def test_a_spectrum_is_kept_with_its_energy_axis_in_ev(db):
    x, x_label, x_unit, channels = db.execute(
        "select x, x_label, x_unit, channels from spectra where file_id = ?", [file_id(db, "example1.msa")]
    ).fetchone()
    x = json.loads(x)
    assert (x_label, x_unit, channels, len(x)) == ("energy loss", "eV", 21, 21)
    assert x[0] == pytest.approx(520.13, abs=0.01) and x[1] - x[0] == pytest.approx(3.1, abs=0.01)


def rosettasciio_axis(*parts: str) -> tuple[list[float], str]:
    """The reference: the last axis's values and unit as RosettaSciIO's own reader calibrates them."""
    from rsciio.digitalmicrograph import file_reader

    axis = file_reader(str(shared_data(*parts)))[0]["axes"][-1]
    return [axis["offset"] + axis["scale"] * i for i in range(axis["size"])], axis["units"]


def test_a_cl_spectrum_is_kept_against_wavelength_in_nm_as_rosettasciio_reads_it(db):
    x, x_label, x_unit, y_label = db.execute(
        "select x, x_label, x_unit, y_label from spectra where file_id = ?",
        [file_id(db, "test-MonarcCL_spectrum-pmt.dm4")],
    ).fetchone()
    reference, unit = rosettasciio_axis("em-vendors", "digitalmicrograph", "1D", "test-MonarcCL_spectrum-pmt.dm4")
    assert (x_label, x_unit, y_label, unit) == ("wavelength", "nm", "counts", "nm")
    assert json.loads(x) == pytest.approx(reference, abs=1e-4)


def test_a_cl_spectrum_images_pixel_is_its_scan_step_not_its_wavelength_step(db):
    pixel_nm, x, x_unit = db.execute(
        "select pixel_size_nm, x, x_unit from files join spectra on spectra.file_id = files.id where files.id = ?",
        [file_id(db, "test-MonoCL_spectrum-SI.dm4")],
    ).fetchone()
    reference, _ = rosettasciio_axis("em-vendors", "digitalmicrograph", "2D", "test-MonoCL_spectrum-SI.dm4")
    assert pixel_nm == pytest.approx(20.6345, rel=1e-4)  # the line scan's 0.0206 µm step, not 0.093 nm per channel
    assert x_unit == "nm" and json.loads(x)[0] == pytest.approx(reference[0], abs=1e-3)


def test_a_digitalmicrograph_eels_spectrum_is_calibrated_in_energy_loss(db):
    x, x_label, x_unit = db.execute(
        "select x, x_label, x_unit from spectra where file_id = ?", [file_id(db, "08_carbon.dm3")]
    ).fetchone()
    reference, unit = rosettasciio_axis("em", "08_carbon.dm3")
    assert (x_label, x_unit, unit) == ("energy loss", "eV", "eV")
    # 2,048 channels are kept as 1,024 points, each the first channel of a pair
    assert json.loads(x)[:3] == pytest.approx(reference[:6:2], abs=1e-3)


def test_a_spectrum_images_spectrum_is_its_sum_over_the_scan(db):
    summed_over, channels = db.execute(
        "select summed_over, channels from spectra where file_id = ?", [file_id(db, "test-MonoCL_spectrum-SI.dm4")]
    ).fetchone()
    assert (summed_over, channels) == (67, 1336)


def test_a_stack_keeps_eight_frames_evenly_from_its_first_to_its_last(db):
    rows = db.execute(
        "select frame, label, frames_total from frames where file_id = ? order by frame",
        [file_id(db, "dmTest_3D_int16_64,65,66.dm3")],
    ).fetchall()
    assert [frame for frame, _, _ in rows] == [0, 9, 19, 28, 37, 46, 56, 65]
    assert rows[0][1:] == ("frame 1 of 66", 66) and rows[-1][1] == "frame 66 of 66"


@pytest.mark.asyncio
async def test_the_item_page_plots_a_spectrum_with_its_axis_titled_with_its_unit(ds, db):
    response = await ds.client.get(f"/-/scisearch/item/views/file/{file_id(db, 'example1.msa')}")
    svg = re.search(r'<svg class="scisearch-spectrum".*?</svg>', response.text, re.S)[0]
    assert ">energy loss (eV)</text>" in svg and ">counts</text>" in svg
    assert len(re.search(r'<polyline points="([^"]+)"', svg)[1].split()) == 21
    assert "Spectrum: 21 channels." in response.text


@pytest.mark.asyncio
async def test_the_item_page_plots_a_cl_spectrum_as_counts_against_wavelength_in_nm(ds, db):
    response = await ds.client.get(f"/-/scisearch/item/views/file/{file_id(db, 'test-MonarcCL_spectrum-pmt.dm4')}")
    svg = re.search(r'<svg class="scisearch-spectrum".*?</svg>', response.text, re.S)[0]
    assert ">wavelength (nm)</text>" in svg and ">counts</text>" in svg
    ticks = [float(t.replace(",", "")) for t in re.findall(r'text-anchor="middle">([\d,.]+)</text>', svg)]
    assert ticks and 160 <= min(ticks) and max(ticks) <= 330  # the ticks span 160-329 nm, not channels 0-169


@pytest.mark.asyncio
async def test_the_item_page_links_each_kept_frame_of_a_stack_and_serves_it(ds, db):
    stack = file_id(db, "dmTest_3D_int16_64,65,66.dm3")
    response = await ds.client.get(f"/-/scisearch/item/views/file/{stack}")
    links = re.findall(r'<a href="([^"]+)" data-frame-url=[^>]*>([^<]+)</a>', response.text)
    assert [label for _, label in links][:2] == ["frame 1 of 66", "frame 10 of 66"] and len(links) == 8
    assert 'type="range" name="frame" min="0" max="7"' in response.text
    frame = await ds.client.get(links[-1][0])
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/png"
    assert frame.content.startswith(b"\x89PNG")


@pytest.mark.asyncio
async def test_a_frame_that_was_not_kept_is_not_found(ds, db):
    stack = file_id(db, "dmTest_3D_int16_64,65,66.dm3")
    for url in (f"/-/scisearch/frame/views/{stack}/5.png", f"/-/scisearch/frame/views/{stack}/x.png"):
        assert (await ds.client.get(url)).status_code == 404
