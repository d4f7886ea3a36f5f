"""The image-analysis tagger on real instrument files, real SEM images, and bad input."""

from __future__ import annotations

import re
import shutil
import tracemalloc

import numpy as np
import pytest
from scipy import ndimage as ndi
from scisearch_taggers.helpers.image_objects import (
    MAX_OUTLINES,
    SHAPE_STATISTICS,
    find_objects,
    outline,
    shape_statistics,
)
from scisearch_taggers.image_analysis import SPACE, ImageAnalysisTagger, pixel_noise

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.demo.scenes import nanoparticles, to_counts
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.plugins import get_taggers
from datasette_scisearch.tagging.items import PixelsUnavailable, iter_items
from datasette_scisearch.tagging.tagger import Item, ItemError, Result

from .conftest import REPO, shared_data

SEM_NAMES = ["125nm_03_cropped.png", "140nm_10_cropped.png", "170nm_19_cropped.png"]


@pytest.fixture(scope="module")
def catalog_items(tmp_path_factory):
    """Items of one catalog of the real EM files and the SEM nanowire images, by file title."""
    em, sem = shared_data("em"), shared_data("sem_images", "nanowires_fullres")
    db = open_catalog(tmp_path_factory.mktemp("image_analysis") / "catalog.db")
    load_files(db, [em, sem], load_settings(REPO / "metadata.yml"), progress=False)
    items = {item.title: item for item in iter_items(db, "file")}
    yield items
    db.close()


@pytest.fixture(scope="module")
def tagger():
    tagger = ImageAnalysisTagger()
    tagger.load({}, "cpu")
    return tagger


@pytest.fixture(scope="module")
def results(catalog_items, tagger):
    """Each catalogued file's outcome, computed once, by file title."""
    return {item.title: outcome for item, outcome in tagger.tag_batch(list(catalog_items.values()))}


def outcome_of(results, title_start: str) -> Result | ItemError:
    [outcome] = [outcome for title, outcome in results.items() if title.startswith(title_start)]
    return outcome


def tag_texts(outcome: Result) -> set[str]:
    return {tag.text for tag in outcome.tags}


def evidence_of(outcome: Result, text: str) -> str:
    return next(tag.evidence for tag in outcome.tags if tag.text == text)


def tag_pixels(tagger, pixels, **row) -> Result | ItemError:
    item = Item("file", "x", "synthetic", "", row=row, load_pixels=lambda max_side: pixels)
    [(_, outcome)] = list(tagger.tag_batch([item]))
    return outcome


def recorded_diffractogram(image: np.ndarray) -> np.ndarray:
    """|Fourier transform|^2 of a real image, the Fraunhofer diffraction pattern of a thin specimen, as a 16-bit
    camera records it: background about one count, the central beam saturated."""
    side = min(image.shape) // 2 * 2
    hann = np.hanning(side)
    power = np.abs(np.fft.fftshift(np.fft.fft2(image[:side, :side] * np.outer(hann, hann)))) ** 2
    return np.minimum(power / np.median(power), 65535).astype(np.float32)


# --- diffraction pattern, real-space image, blank frame -------------------------------------------------------


@pytest.mark.parametrize("source", ["16_STOimage_1.ser", "125nm_03_cropped.png", "After HAADF 130mm_1.ser"])
def test_diffraction_pattern_of_a_real_specimen_is_told_from_its_pixels(catalog_items, tagger, source):
    pattern = recorded_diffractogram(catalog_items[source].pixels(1024))
    outcome = tag_pixels(tagger, pattern)
    assert "diffraction pattern" in tag_texts(outcome)
    assert "real-space image" not in tag_texts(outcome)


@pytest.mark.parametrize(
    "title",
    [
        "16_STOimage_1.ser",
        "Acquisition_18.emd",
        "After HAADF 130mm_1.ser",
        "After LAABF 1.5m_1.ser",
        "0.bcf — HAADF",
        *SEM_NAMES,
    ],
)
def test_real_space_images_are_not_called_diffraction_patterns(results, title):
    outcome = outcome_of(results, title)
    assert "real-space image" in tag_texts(outcome)
    assert "diffraction pattern" not in tag_texts(outcome)


@pytest.mark.parametrize("title", ["Camera Ceta Diffraction Micro.emd", "Camera Ceta Imaging Micro.emd"])
def test_ceta_frames_recorded_without_beam_are_blank_frames_not_images(results, title):
    # Both Velox Ceta files hold dark frames (counts -10..7 around -2): nothing in their pixels says pattern or image
    outcome = outcome_of(results, title)
    assert tag_texts(outcome) == {"blank frame"}
    assert "nothing stands above the noise" in evidence_of(outcome, "blank frame")
    assert outcome.vectors == {}


def test_an_empty_detector_channel_is_a_blank_frame(results):
    outcome = outcome_of(results, "STEM HAADF-DF4-DF2-BF Diffraction Micro.emd — BF")
    assert tag_texts(outcome) == {"blank frame"}
    assert evidence_of(outcome, "blank frame") == "every pixel is 0"


# --- lattice ---------------------------------------------------------------------------------------------------


def spacings_nm(evidence: str) -> list[float]:
    listed = re.search(r"FFT peaks at ([\d., ]+) nm", evidence).group(1)
    return [float(value) for value in listed.split(",")]


def test_srtio3_haadf_image_shows_atomic_resolution_at_its_lattice_spacings(results):
    outcome = outcome_of(results, "16_STOimage_1.ser")
    assert {"lattice fringes", "atomic resolution"} <= tag_texts(outcome)
    spacings = spacings_nm(evidence_of(outcome, "atomic resolution"))
    # SrTiO3 is cubic, a = 0.3905 nm: {100} at 0.39 nm and {110} at 0.276 nm
    assert any(abs(d - 0.3905) < 0.025 for d in spacings), spacings
    assert any(abs(d - 0.276) < 0.015 for d in spacings), spacings


def test_a_noisy_atomic_resolution_image_still_shows_its_lattice(results):
    outcome = outcome_of(results, "Acquisition_18.emd")
    assert {"atomic resolution", "noisy"} <= tag_texts(outcome)


def test_atom_columns_are_not_counted_as_particles(results):
    assert "particles" not in tag_texts(outcome_of(results, "16_STOimage_1.ser"))


@pytest.mark.parametrize("title", SEM_NAMES)
def test_sem_nanowire_images_have_no_lattice_fringes(results, title):
    assert not {"lattice fringes", "atomic resolution"} & tag_texts(outcome_of(results, title))


def test_random_noise_from_a_real_mrc_file_has_no_lattice_and_no_objects(results):
    outcome = outcome_of(results, "temp.mrc")
    assert not {"lattice fringes", "atomic resolution", "periodic structure", "particles"} & tag_texts(outcome)
    assert "noisy" in tag_texts(outcome)


def test_gaussian_noise_has_no_lattice_and_no_objects(tagger):
    noise = np.random.default_rng(7).normal(100, 10, size=(1024, 1024))
    outcome = tag_pixels(tagger, noise, pixel_size_nm=0.01, shape="1024×1024")
    assert tag_texts(outcome) == {"real-space image", "noisy"}


# --- objects ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("title", SEM_NAMES)
def test_sem_nanowire_images_are_tagged_with_elongated_objects_and_particles(results, title):
    outcome = outcome_of(results, title)
    assert {"elongated objects", "particles"} <= tag_texts(outcome)
    count = int(evidence_of(outcome, "elongated objects").split()[0])
    assert count >= 100


def test_object_sizes_are_given_in_nm_when_the_pixel_size_is_known(catalog_items, tagger):
    pixels = catalog_items["125nm_03_cropped.png"].pixels(1024)
    in_px = tag_pixels(tagger, pixels, shape="688×1024")
    in_nm = tag_pixels(tagger, pixels, shape="688×1024", pixel_size_nm=2.0)
    median_px = float(re.search(r"median diameter ([\d.]+) px", evidence_of(in_px, "particles")).group(1))
    median_nm = float(re.search(r"median diameter ([\d.]+) nm", evidence_of(in_nm, "particles")).group(1))
    assert median_nm == pytest.approx(2 * median_px, rel=0.01)


# --- particle shapes -----------------------------------------------------------------------------------------


def drawn_polygon(corners: int, across_px: float, turned: float) -> np.ndarray:
    """A regular polygon drawn as pixels, ``across_px`` between opposite corners, turned by ``turned`` radians."""
    side = int(across_px) + 8
    y, x = np.mgrid[:side, :side] - side / 2 + 0.37  # off the pixel grid, as a particle would be
    inside = np.ones((side, side), dtype=bool)
    for k in range(corners):
        normal = turned + (2 * k + 1) * np.pi / corners
        inside &= x * np.cos(normal) + y * np.sin(normal) <= across_px / 2 * np.cos(np.pi / corners)
    return inside


def drawn_disc(across_px: float) -> np.ndarray:
    side = int(across_px) + 8
    y, x = np.mgrid[:side, :side] - side / 2 + 0.37
    return np.hypot(x, y) <= across_px / 2


TURNS = np.linspace(0, np.pi / 2, 7)


def test_a_drawn_square_has_four_corners_and_fills_its_smallest_rectangle_at_any_angle():
    outlines = [outline(drawn_polygon(4, 40, turned)) for turned in TURNS]
    assert [o.corners for o in outlines] == [4] * len(TURNS)
    assert min(o.rectangularity for o in outlines) > 0.93  # the rectangle turns with it: upright, 0.5 at 45 degrees
    circularities = [o.circularity for o in outlines]
    assert np.mean(circularities) == pytest.approx(np.pi / 4, abs=0.05) and np.ptp(circularities) < 0.05


def test_a_drawn_disc_is_round_without_corners_and_fills_pi_over_4_of_its_smallest_rectangle():
    for across in (10, 20, 40):
        disc = outline(drawn_disc(across))
        assert disc.corners == 0
        assert disc.circularity > 0.95 and disc.solidity > 0.97
        assert disc.rectangularity == pytest.approx(np.pi / 4, abs=0.03)
        assert disc.diameter_px == pytest.approx(across, rel=0.05)


def test_a_drawn_triangle_has_three_corners_at_any_angle():
    outlines = [outline(drawn_polygon(3, 30, turned)) for turned in TURNS]
    assert [o.corners for o in outlines] == [3] * len(TURNS)
    assert max(o.circularity for o in outlines) < 0.72  # 0.605 for a perfect one
    assert max(o.rectangularity for o in outlines) < 0.62  # 0.5


def test_two_touching_discs_outlined_as_one_are_dented_and_far_from_round():
    disc = drawn_disc(22)
    pair = np.zeros((disc.shape[0], disc.shape[1] + 21), dtype=bool)
    pair[:, : disc.shape[1]] |= disc
    pair[:, 21:] |= disc
    merged = outline(pair)
    assert merged.solidity < 0.92 and merged.circularity < 0.75  # one disc: above 0.97 and 0.95


def demo_particles(cubes: bool, seed: int, haadf: bool = True) -> np.ndarray:
    """A demo scene of spheres or cubes about 12 nm across at 0.4 nm a pixel, with shot and read noise."""
    rng = np.random.default_rng(seed)
    mass = nanoparticles(rng, (512, 512), 0.4, 12.0, 0.1, cubes=cubes)
    if haadf:
        return to_counts(rng, 0.04 + mass / mass.max(), 2500, np.uint16, offset=4800, read_noise=20)
    return to_counts(rng, np.exp(-0.06 * mass), 900, np.int16, read_noise=3)


@pytest.mark.parametrize("haadf", [True, False], ids=["haadf", "bright field"])
def test_cubes_and_spheres_of_one_size_differ_in_their_outlines(haadf):
    def shapes(cubes):
        frame = demo_particles(cubes, seed=3, haadf=haadf)
        working = (frame - frame.min()) / np.ptp(frame)  # as the analysis sees a 512-pixel image
        return dict(zip(SHAPE_STATISTICS, shape_statistics(find_objects(working, pixel_noise(working)))))

    spheres, cubes = shapes(cubes=False), shapes(cubes=True)
    assert spheres["outlined particles (log)"] > np.log(20) and cubes["outlined particles (log)"] > np.log(20)
    assert spheres["circularity, median"] > 0.93 and cubes["circularity, median"] < 0.85
    assert spheres["rectangularity, median"] < 0.83 and cubes["rectangularity, median"] > 0.9
    assert spheres["corners, mean (at most 8 each)"] < 1 and cubes["corners, mean (at most 8 each)"] > 3.5
    assert spheres["share with 4 corners"] < 0.1 and cubes["share with 4 corners"] > 0.7


@pytest.mark.parametrize("title", SEM_NAMES)
def test_real_sem_wire_tangles_are_outlined_as_dented_and_round_stubs_as_convex(catalog_items, title):
    pixels = np.asarray(catalog_items[title].pixels(1024), dtype=np.float64)
    working = (pixels - pixels.min()) / np.ptp(pixels)
    working = working[: working.shape[0] // 2 * 2].reshape(working.shape[0] // 2, 2, -1, 2).mean(axis=(1, 3))
    regions = [r for r in find_objects(working, pixel_noise(working)).regions if r.outline is not None]
    assert len(regions) == MAX_OUTLINES  # hundreds of compact objects: a sample of them across their sizes
    circularity = np.array([r.outline.circularity for r in regions])
    solidity = np.array([r.outline.solidity for r in regions])
    assert (circularity > 0.8).sum() >= 10 and solidity[circularity > 0.8].min() > 0.9  # a wire seen end-on
    assert circularity[solidity < 0.6].max(initial=0) < 0.4  # crossing wires segmented as one region
    assert 0.85 < np.median(solidity) < 1


def test_atom_columns_are_not_outlined_as_particles(results):
    combined = outcome_of(results, "16_STOimage_1.ser").vectors["image_texture"]
    assert np.all(combined[-len(SHAPE_STATISTICS) + 1 :] == 0)  # the shapes of no particles: typical
    assert combined[-len(SHAPE_STATISTICS)] < 0  # and fewer outlined particles than usual


# --- focus and noise -------------------------------------------------------------------------------------------


def blur_value(outcome: Result, text: str) -> float:
    return float(re.search(r"blur effect ([\d.]+)", evidence_of(outcome, text)).group(1))


def test_sem_image_is_sharp_and_the_same_image_out_of_focus_is_blurred(catalog_items, tagger):
    pixels = catalog_items["140nm_10_cropped.png"].pixels(1024)
    defocused = np.round(ndi.gaussian_filter(pixels, 8)).astype(np.uint8)  # as an 8-bit export would keep it
    sharp, blurred = tag_pixels(tagger, pixels), tag_pixels(tagger, defocused)
    assert "sharp" in tag_texts(sharp) and "blurred" not in tag_texts(sharp)
    assert "blurred" in tag_texts(blurred) and "sharp" not in tag_texts(blurred)
    assert blur_value(blurred, "blurred") > blur_value(sharp, "sharp")


# --- spectra -----------------------------------------------------------------------------------------------------


def test_eels_spectrum_is_tagged_spectrum_and_nothing_else(results):
    outcome = outcome_of(results, "08_carbon.dm3")
    assert tag_texts(outcome) == {"spectrum"}
    assert outcome.vectors == {}


# --- feature vectors ---------------------------------------------------------------------------------------------


def test_feature_vectors_are_unit_length_with_the_declared_dimension(results, tagger):
    vector = outcome_of(results, "16_STOimage_1.ser").vectors[SPACE]
    assert vector.shape == (tagger.vector_spaces[SPACE],)
    assert vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_images_of_a_kind_are_more_alike_than_images_of_different_kinds(results):
    def vector(title):
        return outcome_of(results, title).vectors[SPACE]

    sem_a, sem_b, sem_c = (vector(name) for name in SEM_NAMES)
    sto, sto_noisy = vector("16_STOimage_1.ser"), vector("Acquisition_18.emd")
    assert min(sem_a @ sem_b, sem_a @ sem_c) > max(sem_a @ sto, sem_a @ sto_noisy)
    assert sto @ sto_noisy > max(sto @ sem_a, sto @ sem_b)


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 42.0])
def test_a_constant_image_is_a_blank_frame(tagger, value):
    outcome = tag_pixels(tagger, np.full((512, 512), value, dtype=np.float32))
    assert tag_texts(outcome) == {"blank frame"}


def test_nan_and_infinite_pixels_are_filled_and_the_image_still_analysed(catalog_items, tagger):
    pixels = catalog_items["16_STOimage_1.ser"].pixels(1024).copy()
    pixels[::97, :] = np.nan
    pixels[5, 5] = np.inf
    pixels[6, 6] = -np.inf
    outcome = tag_pixels(tagger, pixels, pixel_size_nm=0.0100127, shape="1024×1024")
    assert "atomic resolution" in tag_texts(outcome)
    assert np.isfinite(outcome.vectors[SPACE]).all()


def test_an_image_of_only_nan_is_an_item_error(tagger):
    outcome = tag_pixels(tagger, np.full((64, 64), np.nan))
    assert isinstance(outcome, ItemError)
    assert "NaN or infinite" in outcome.message


@pytest.mark.parametrize("pixels", [np.ones((1, 1)), np.ones(1), np.float32(3.0)], ids=["1x1", "length-1", "scalar"])
def test_a_single_pixel_is_an_item_error(tagger, pixels):
    outcome = tag_pixels(tagger, pixels)
    assert isinstance(outcome, ItemError)
    assert "single value" in outcome.message


def test_an_image_too_small_to_analyse_is_an_item_error_saying_so(results):
    outcome = outcome_of(results, "emd_type1_stringDims.h5")  # its 4-D data has 5 x 6 frames
    assert isinstance(outcome, ItemError)
    assert "too small to analyse" in outcome.message


def test_text_instead_of_pixels_is_an_item_error(tagger):
    outcome = tag_pixels(tagger, np.array([["a", "b"], ["c", "d"]]))
    assert isinstance(outcome, ItemError)
    assert "not numbers" in outcome.message


def test_a_huge_array_is_strided_before_any_copy(tagger):
    # 30,000 x 30,000 float64 would be 7.2 GB; broadcast_to makes it a view of one row
    row = np.sin(np.arange(30_000) / 3.0)
    huge = np.broadcast_to(row, (30_000, 30_000))
    tracemalloc.start()
    try:
        outcome = tag_pixels(tagger, huge, shape="30000×30000")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(outcome, Result)
    assert peak < 500 * 2**20  # numpy's allocations are traced: a copy of the whole would be 7.2 GB


def test_a_stack_is_analysed_by_its_middle_frame(catalog_items, tagger):
    frame = catalog_items["16_STOimage_1.ser"].pixels(1024)
    stack = np.stack([np.zeros_like(frame), frame, np.zeros_like(frame)])
    outcome = tag_pixels(tagger, stack, pixel_size_nm=0.0100127, shape="3×1024×1024")
    assert "atomic resolution" in tag_texts(outcome)


def test_a_file_gone_since_cataloguing_is_an_item_error_naming_it(tmp_path, tagger):
    copy = tmp_path / "16_STOimage_1.ser"
    shutil.copy(shared_data("em", "16_STOimage_1.ser"), copy)
    shutil.copy(shared_data("em", "16_STOimage.emi"), tmp_path / "16_STOimage.emi")
    db = open_catalog(tmp_path / "catalog.db")
    load_files(db, [tmp_path], load_settings(REPO / "metadata.yml"), progress=False)
    [item] = list(iter_items(db, "file"))
    copy.unlink()
    with pytest.raises(PixelsUnavailable):
        item.pixels(1024)
    [(_, outcome)] = list(tagger.tag_batch([item]))
    assert isinstance(outcome, ItemError)
    assert "16_STOimage_1.ser" in outcome.message and "no longer there" in outcome.message


# --- speed and registration ----------------------------------------------------------------------------------------


def test_the_tagger_registers_through_its_entry_point():
    [tagger] = [t for t in get_taggers() if t.name == "image_analysis"]
    assert tagger.needs_pixels and tagger.applies_to == {"file"}
    assert tagger.vector_spaces == {SPACE: 88, "image_texture": 88 + 110}


def test_the_texture_vector_is_the_analysis_vector_followed_by_the_texture_statistics(catalog_items, tagger):
    [(_, result)] = list(tagger.tag_batch([catalog_items["16_STOimage_1.ser"]]))
    combined = result.vectors["image_texture"]
    assert combined.shape == (198,) and np.isfinite(combined).all()
    assert np.array_equal(combined[:88], result.vectors[SPACE])
    assert np.abs(combined[88:]).max() > 0.01  # the texture block says something about a real lattice image
