"""The captions scisearch pretrain learns from: a file's name says what its sample is, not always what its picture
shows (learning/pretrain_data.py ``caption``, ``picture_words``).  No model is trained here; the filename vocabulary
is the built-in filenames tagger's."""

from __future__ import annotations

from datasette_scisearch.learning.pretrain_data import caption

HIGH = "magnification 100 kx-1 Mx"


def test_an_image_of_a_nanoparticle_sample_is_captioned_with_nanoparticles():
    text = caption("/data/Au_catalyst/Au_np_300kV_HAADF_0012.emd", "image", "STEM", "HAADF", HIGH, "TEAM 0.5")
    assert "nanoparticles" in text and "gold" in text


def test_a_diffraction_pattern_of_a_nanoparticle_sample_names_the_material_but_not_the_particles():
    text = caption("/data/Au_catalyst/Au_np_DP_480_0013.emd", "diffraction", "TEM", None, None, "TEAM 0.5")
    assert "nanoparticles" not in text
    assert "gold" in text and "diffraction pattern" in text


def test_a_spectrum_of_nanowires_is_not_captioned_with_nanowires():
    text = caption("/data/GaAs_NW/GaAs_NW_EDS_300kV_0004.msa", "spectrum", "EDS", None, HIGH, "Themis")
    assert "nanowires" not in text and "gallium arsenide" in text


def test_a_file_whose_kind_was_not_recorded_keeps_every_word_of_its_name():
    text = caption("/exports/GaAs_NW_SAED_480.png", None, None, None, None, None)
    assert "nanowires" in text and "diffraction" in text


def test_settings_in_the_name_give_way_to_a_recorded_magnification_band():
    with_band = caption("/data/AuCeO2_HAADF_160kx_0034.emd", "image", "STEM", "HAADF", HIGH, "Themis")
    without = caption("/data/AuCeO2_HAADF_160kx_0034.emd", "image", "STEM", "HAADF", None, "Themis")
    assert "160 kx" not in with_band and "medium magnification" not in with_band and "high magnification" in with_band
    assert "160 kx" in without


def test_a_proposal_title_names_the_sample_s_shape_only_for_real_space_pictures():
    title = "Atomic-scale structure of supported gold nanoparticle catalysts"
    pattern = caption("/data/Au_np_DP_480_0013.emd", "diffraction", "TEM", None, None, "TEAM 0.5", title)
    image = caption("/data/Au_np_300kV_HAADF_0012.emd", "image", "STEM", "HAADF", HIGH, "TEAM 0.5", title)
    assert "Atomic-scale structure of supported gold catalysts" in pattern and "nanoparticle" not in pattern
    assert title in image


def test_a_title_that_names_the_shape_twice_loses_both_for_a_diffraction_pattern():
    title = "GaAs nanowires on Si(111): NW polytypes"
    pattern = caption("/data/GaAs_NW_SAED_480.emd", "diffraction", "TEM", None, None, "Themis", title)
    assert "GaAs on Si(111): polytypes" in pattern and "nanowires" not in pattern
