"""Every number on the pages carries its unit, in the words of what it counts (the units audit of the pages issue)."""

from __future__ import annotations

import pytest

from datasette_scisearch.web.present import format_value, hit_facts, listed_columns, shape_text


def test_a_diffraction_patterns_result_shows_its_camera_length_in_mm():
    facts = {"kind": "diffraction", "instrument": "Themis", "voltage_kv": 300.0, "camera_length_mm": 480.0}
    assert hit_facts("file", facts) == ["diffraction", "Themis", "300 kV", "480 mm"]


def test_an_images_result_shows_its_magnification_not_its_camera_length():
    facts = {"kind": "image", "voltage_kv": 300.0, "magnification": 2.5e6, "camera_length_mm": 115.0}
    assert hit_facts("file", facts) == ["image", "300 kV", "2.5 Mx"]


@pytest.mark.parametrize(
    ("kind", "shape", "said"),
    [
        ("spectrum", "2048", "2,048 channels"),
        ("spectrum image", "24×24×512", "24×24 px × 512 channels"),
        ("stack", "10×256×256", "10 frames of 256×256 px"),
        ("4D", "16×16×64×64", "16×16 px scan × 64×64 px patterns"),
    ],
)
def test_a_shape_is_said_in_what_its_axes_count(kind, shape, said):
    assert shape_text(kind, shape) == said


def test_an_images_magnification_is_written_both_ways_on_its_page():
    listed = {label: value for _, label, value in listed_columns({"kind": "image", "magnification": 68000.0})}
    assert listed["Magnification"] == "68 kx (68,000×)"


def test_a_4d_scans_pixel_size_is_named_its_scan_step():
    listed = {label: value for _, label, value in listed_columns({"kind": "4D", "pixel_size_nm": 0.5})}
    assert listed["Scan step"] == "0.5 nm"


@pytest.mark.parametrize(
    ("nanometres", "shown"), [(0.0123, "12.3 pm"), (0.25, "0.25 nm"), (12.4, "12.4 nm"), (2500.0, "2.5 µm")]
)
def test_a_pixel_size_is_shown_in_the_unit_that_reads_best(nanometres, shown):
    assert format_value("pixel_size_nm", nanometres) == shown


def test_a_low_magnification_is_written_with_a_times_sign():
    assert format_value("magnification", 500.0) == "500×"
