"""The filenames tagger: researchers' shorthand in real and demo-style file and folder names."""

from __future__ import annotations

import os

import pytest
from scisearch_taggers.filenames import FilenameTagger

from datasette_scisearch.ingest.filerows import display_path
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.plugins import describe_plugins, get_taggers
from datasette_scisearch.search.engine import search
from datasette_scisearch.tagging.items import make_item
from datasette_scisearch.tagging.pipeline import tag_catalog
from datasette_scisearch.tagging.tagger import Result, TaggerUnavailable


@pytest.fixture(scope="module")
def real_items(em_items):
    return em_items


@pytest.fixture(scope="module")
def tagger():
    tagger = FilenameTagger()
    tagger.load({})
    return tagger


def tags_of(tagger, path: str | None, **row) -> dict:
    item = make_item("file", {"id": 1, "name": os.path.basename(path or ""), "path": path, **row})
    return tags_for_item(tagger, item)


def tags_for_item(tagger, item) -> dict:
    [(_, result)] = list(tagger.tag_batch([item]))
    assert isinstance(result, Result)
    return {tag.text: tag for tag in result.tags}


# ---------------------------------------------------------------- the real files' names


def test_sto_glued_to_image_in_a_real_tia_name_is_strontium_titanate(tagger, real_items):
    tags = tags_for_item(tagger, real_items["16_STOimage_1.ser", None])
    assert {"SrTiO3", "strontium titanate", "STO"} <= set(tags)
    assert tags["SrTiO3"].evidence == "STO in STOimage"


def test_real_stem_names_give_the_detector_and_the_camera_length(tagger, real_items):
    haadf = tags_for_item(tagger, real_items["After HAADF 130mm_1.ser", None])
    laabf = tags_for_item(tagger, real_items["After LAABF 1.5m_1.ser", None])
    assert {"HAADF", "130 mm"} <= set(haadf)
    assert {"LAABF", "1500 mm"} <= set(laabf)  # the same words the metadata tagger uses for 1.5 m


def test_gold_sample_named_in_lower_case_with_camera_length_and_magnification(tagger):
    # A real file name in ../shared/data/em (the loader cannot read the file, its name still says a lot).
    tags = tags_of(tagger, "../shared/data/em/au_145mm_68kx_microprobe_01.h5")
    assert {"Au", "gold", "145 mm", "68 kx", "microprobe"} <= set(tags)
    assert tags["gold"].score == pytest.approx(0.65)


def test_a_names_shorthand_is_grouped_as_material_setting_technique_and_feature(tagger):
    tags = tags_of(tagger, "/data/2021-03-04/Au_np_300kV_HAADF_STEM_EELS_0012.dm4")
    categories = {text: tags[text].category for text in ("gold", "nanoparticles", "300 kV", "EELS", "2021-03-04")}
    assert categories == {
        "gold": "material",
        "nanoparticles": "feature",
        "300 kV": "setting",
        "EELS": "technique",
        "2021-03-04": "date",
    }


def test_velox_stem_names_projector_diffraction_is_not_a_diffraction_tag(tagger, real_items):
    stem = tags_for_item(tagger, real_items["STEM HAADF Diffraction Micro.emd", "HAADF"])
    ceta = tags_for_item(tagger, real_items["Camera Ceta Diffraction Micro.emd", "BM-Ceta"])
    assert "diffraction" not in stem and {"STEM", "HAADF"} <= set(stem)
    assert {"diffraction", "Ceta"} <= set(ceta)


def test_each_dataset_of_a_multi_detector_velox_file_gets_only_its_own_detector(tagger, real_items):
    name = "STEM HAADF-DF4-DF2-BF Diffraction Micro.emd"
    detectors = {"HAADF", "DF4", "DF2", "BF"}
    for dataset in detectors:
        tags = tags_for_item(tagger, real_items[name, dataset])
        assert detectors & set(tags) == {dataset}
        assert "STEM" in tags


def test_a_different_pixel_size_inside_a_camel_case_name_is_not_diffraction(tagger, real_items):
    assert tags_for_item(tagger, real_items["dmTest_float32_nonSquare_diffPixelSize.dm3", None]) == {}


def test_every_real_name_is_tagged_without_error_and_scores_stay_between_0_6_and_0_8(tagger, real_items):
    results = list(tagger.tag_batch(list(real_items.values())))
    assert all(isinstance(result, Result) for _, result in results)
    assert all(0.6 <= tag.score <= 0.8 and tag.evidence for _, result in results for tag in result.tags)


# ---------------------------------------------------------------- shorthand


def test_gold_nanoparticle_shorthand_reads_as_gold_nanoparticles_at_300kv_in_haadf(tagger):
    tags = tags_of(tagger, "/data/team05/2021/achen/Au_catalyst/Au_np_300kV_HAADF_0012.dm4", instrument="TEAM 0.5")
    assert {"Au", "gold", "nanoparticles", "300 kV", "HAADF", "catalyst"} <= set(tags)
    assert tags["300 kV"].evidence == "300kV"
    assert tags["nanoparticles"].evidence == "np"


def test_frame_counters_are_not_tags(tagger):
    tags = tags_of(tagger, "/x/y/Au_np_300kV_HAADF_0012.dm4")
    assert not any("12" in text for text in tags)


def test_formulas_are_tagged_with_their_names(tagger):
    tags = tags_of(tagger, "/x/y/MoS2_on_TiO2_GaN.dm4")
    assert {"MoS2", "molybdenum disulfide", "TiO2", "titania", "GaN", "gallium nitride"} <= set(tags)


def test_a_formula_nobody_listed_is_still_a_formula_with_its_metals_named(tagger):
    tags = tags_of(tagger, "/x/y/La0.7Sr0.3MnO3_film.dm4")
    assert tags["La0.7Sr0.3MnO3"].score == pytest.approx(0.7)
    assert {"lanthanum", "strontium", "manganese", "thin film"} <= set(tags)
    assert "oxygen" not in tags


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AuNP_01", {"Au", "gold", "nanoparticles"}),  # Au + NP, not the formula Au-N-P
        ("AuCeO2_02", {"Au", "gold", "CeO2", "ceria"}),  # gold on ceria
        ("GaAsNW_03", {"GaAs", "gallium arsenide", "nanowires"}),
        ("STOImage_04", {"SrTiO3"}),
        ("apoferritin_grid3", {"apoferritin", "grid"}),
    ],
)
def test_glued_shorthand_is_cut_where_case_and_digits_change(tagger, name, expected):
    assert expected <= set(tags_of(tagger, f"/x/y/{name}.mrc"))


def test_an_alloy_stays_one_formula(tagger):
    tags = tags_of(tagger, "/x/y/PtCo_alloy.dm4")
    assert {"PtCo", "platinum", "cobalt", "alloy"} <= set(tags)


@pytest.mark.parametrize(
    ("token", "tag"),
    [
        ("300kV", "300 kV"),
        ("200keV", "200 kV"),
        ("13.5Mx", "13.5 Mx"),
        ("13,5Mx", "13.5 Mx"),
        ("68kx", "68 kx"),
        ("200nm", "200 nm"),
        ("5um", "5 µm"),
        ("145mm", "145 mm"),
        ("1.5m", "1500 mm"),
        ("20mrad", "20 mrad"),
        ("532eV", "532 eV"),
    ],
)
def test_units_are_written_the_one_way_people_search_for_them(tagger, token, tag):
    assert tag in tags_of(tagger, f"/x/y/sample_{token}_01.dm4")


def test_a_magnification_in_a_name_gets_its_band(tagger):
    assert "high magnification" in tags_of(tagger, "/x/y/Si_20Mx.dm4")


def test_an_image_size_and_a_binning_are_not_magnifications(tagger):
    tags = tags_of(tagger, "/x/y/frame_1024x1024_bin_2x.dm4")
    assert not [text for text in tags if "kx" in text or "magnification" in text]


def test_a_crystal_glued_to_its_zone_axis(tagger):
    tags = tags_of(tagger, "/x/y/Si110_HAADF.emd")
    assert {"Si", "silicon", "zone axis [110]"} <= set(tags)


def test_tilt_series_dose_weighting_and_diffraction_shorthand(tagger):
    assert {"tilt series", "tomography"} <= set(tags_of(tagger, "/x/y/apoferritin_grid3_TS_0028.mrc"))
    assert "dose-weighted" in tags_of(tagger, "/x/y/apoferritin_grid3_0024_DW.mrc")
    assert {"diffraction", "diffraction pattern"} <= set(tags_of(tagger, "/x/y/MoS2_DP_600mm_026.emd"))
    assert "diffraction" in tags_of(tagger, "/x/y/Au_diff_01.dm3")


def test_shorthand_with_a_separator_inside(tagger):
    assert "amorphous carbon" in tags_of(tagger, "/x/y/aC_ref_300kx_0034.emd")
    assert "amorphous carbon" in tags_of(tagger, "/x/y/a-C_film.emd")
    assert "in situ" in tags_of(tagger, "/x/y/Au_np_in-situ_heating.emd")


# ---------------------------------------------------------------- traps


def test_lone_word_like_and_single_letter_symbols_are_not_elements(tagger):
    assert tags_of(tagger, "/x/y/In_As_I_B_C_S_At_No.dm3") == {}


def test_word_like_symbols_among_other_elements_are_elements(tagger):
    tags = tags_of(tagger, "/x/y/Cu_In_Ga_Se_absorber.dm3")
    assert {"Cu", "In", "indium", "Ga", "Se"} <= set(tags)
    assert tags["indium"].score == pytest.approx(0.6)


def test_word_like_symbols_inside_a_formula_are_elements(tagger):
    assert {"InAs", "indium arsenide"} <= set(tags_of(tagger, "/x/y/InAs_NW.dm3"))


def test_capitalised_words_are_not_read_as_element_symbols(tagger):
    assert tags_of(tagger, "/x/y/After_Camera_Test_Scan_Auto_Cs_corrected.dm3") == {}


def test_acronyms_that_spell_element_symbols_are_not_formulas(tagger):
    tags = tags_of(tagger, "/x/y/SI_CBS_NaN.dm3")
    assert "spectrum image" in tags and "CBS" in tags
    assert not {"SI", "NaN", "sulfur", "iodine", "sodium"} & set(tags)


# ---------------------------------------------------------------- folders


def test_demo_facility_layout_gives_user_year_and_date(tagger):
    path = "demo-facility/data/themis/2023/sbrooks/2023-05-12/230512_MoS2_DP_600mm_026.emd"
    tags = tags_of(tagger, path, instrument="Themis")
    assert {"sbrooks", "2023", "2023-05-12", "MoS2", "600 mm"} <= set(tags)
    assert tags["sbrooks"].evidence == "folder sbrooks after instrument folder themis"


def test_user_folder_between_instrument_and_date(tagger):
    tags = tags_of(tagger, "/data/titanx/jdoe/2019-03-04/STO_HAADF_001.ser", instrument="TitanX")
    assert {"jdoe", "2019-03-04", "2019"} <= set(tags)


def test_an_instrument_folder_the_facility_names_differently(tagger):
    own = FilenameTagger()
    own.load({"instrument_folders": ["titan-old"]})
    assert "mlee" in tags_of(own, "/data/titan-old/mlee/20200102/x.ser")
    assert "mlee" not in tags_of(tagger, "/data/titan-old/mlee/20200102/x.ser")


def test_project_folder_is_decoded_not_taken_for_a_user(tagger):
    tags = tags_of(tagger, "/data/team05/2021/Au_catalyst/x.emd", instrument="TEAM 0.5")
    assert {"Au", "catalyst"} <= set(tags)
    assert "Au_catalyst" not in tags


def test_no_user_without_an_instrument_folder(tagger, real_items):
    tags = tags_for_item(tagger, real_items["16_STOimage_1.ser", None])
    assert not {"em", "data", "shared"} & set(tags)


def test_leading_six_digit_date_in_a_file_name(tagger):
    tags = tags_of(tagger, "/x/y/220310_GaAs_NW_HRTEM_1.5Mx_047.emd")
    assert tags["2022-03-10"].score == pytest.approx(0.6)
    assert {"GaAs", "nanowires", "HRTEM", "1.5 Mx"} <= set(tags)


def test_proposal_ids_in_folders(tagger):
    tags = tags_of(tagger, "/data/themis/P-2021-0042/proposal_12345/x.emd", instrument="Themis")
    assert tags["P-2021-0042"].score == pytest.approx(0.8)
    assert "12345" in tags


# ---------------------------------------------------------------- the facility's dictionary


def test_the_facility_dictionary_adds_words_and_overrides_built_in_ones():
    tagger = FilenameTagger()
    tagger.load({"dictionary": {"LNO": ["LaNiO3", "lanthanum nickelate"], "STO": "our STO substrate"}})
    tags = tags_of(tagger, "/x/y/LNO_on_STO_01.dm4")
    assert tags["LaNiO3"].score == pytest.approx(0.8) and tags["LaNiO3"].evidence == "LNO"
    assert "our STO substrate" in tags and "SrTiO3" not in tags


def test_dictionary_entries_with_separators_match_however_they_are_joined():
    tagger = FilenameTagger()
    tagger.load({"dictionary": {"Ti-6Al-4V": ["titanium alloy"]}})
    assert "titanium alloy" in tags_of(tagger, "/x/y/Ti6Al4V_weld.dm4")
    assert "titanium alloy" in tags_of(tagger, "/x/y/Ti_6Al_4V_weld.dm4")


def test_ignored_tokens_are_never_tagged():
    tagger = FilenameTagger()
    tagger.load({"ignore": ["np", "Au"]})
    assert tags_of(tagger, "/x/y/Au_np_300kV.dm4").keys() == {"300 kV"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dictionary": ["LNO"]}, "dictionary: must map a token to a list of tags"),
        ({"dictionary": {"LNO": [1, 2]}}, "'LNO' maps to"),
        ({"ignore": "np"}, "ignore: must be a list"),
        ({"id_patterns": ["BAG-(\\d"]}, "id_patterns: not a regular expression"),
    ],
)
def test_a_malformed_option_is_a_clear_message(options, message):
    with pytest.raises(TaggerUnavailable, match=message):
        FilenameTagger().load(options)


# ---------------------------------------------------------------- odd names


def test_a_non_utf8_name_is_decoded_around_its_escaped_bytes(tagger, tmp_path):
    name = os.fsdecode(b"Au_np_\xff\xfe_300kV.dm3")
    (tmp_path / name).write_bytes(b"")
    path = display_path(tmp_path / name)
    assert "\\xff" in path
    assert {"Au", "nanoparticles", "300 kV"} <= set(tags_of(tagger, path))


def test_unicode_names_are_read(tagger):
    assert tags_of(tagger, "/x/y/Probe_ü_Au_5µm.tif").keys() == {"Au", "gold", "5 µm"}


@pytest.mark.parametrize("path", ["", None, "/", "/x/y/.hidden", "/x/y/0012.dm4", "_" * 500, "A" * 5000])
def test_empty_and_meaningless_names_give_no_tags_and_no_error(tagger, path):
    assert tags_of(tagger, path) == {}


def test_a_tagged_catalog_finds_the_sto_image_by_the_name_of_its_material(em_dir, settings, catalog):
    load_files(catalog, [em_dir], settings, progress=False)
    summary = tag_catalog(catalog, settings, tagger_names=["filenames"], progress=False)
    assert summary.taggers[0].failed == 0
    titles = [hit.title for hit in search(catalog, "strontium titanate", settings=settings).hits]
    assert "16_STOimage_1.ser" in titles


def test_the_filenames_tagger_is_found_through_its_entry_point():
    assert "filenames" in {tagger.name for tagger in get_taggers()}
    assert "tagger:filenames" in {p.name: p for p in describe_plugins()}["filenames"].provides
