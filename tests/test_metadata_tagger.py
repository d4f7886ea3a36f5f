"""The metadata tagger on the rows the loaders make of the real files in ../shared/data/em."""

from __future__ import annotations

import json

import pytest
from scisearch_taggers.metadata import MetadataTagger

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
    tagger = MetadataTagger()
    tagger.load({})
    return tagger


def tags_of(tagger, item) -> dict:
    [(_, result)] = list(tagger.tag_batch([item]))
    assert isinstance(result, Result)
    return {tag.text: tag for tag in result.tags}


def row_item(**row):
    return make_item("file", {"id": 1, "name": "x.tif", "path": "/data/x.tif", **row})


def test_sto_image_is_an_80kv_stem_image_at_13_5_mx_on_the_titancubed(tagger, real_items):
    tags = tags_of(tagger, real_items["16_STOimage_1.ser", None])
    assert {"STEM", "80 kV", "13.5 Mx", "high magnification", "TitanCubed", "image"} <= set(tags)
    assert tags["80 kV"].evidence == "voltage_kv = 80"


def test_sto_image_names_its_haadf_detector(tagger, real_items):
    item = real_items["16_STOimage_1.ser", None]
    if not item.row["detector"]:
        pytest.skip(
            "the TIA loader does not record the detector yet: 16_STOimage.emi names it only in its display "
            "object 'Acquire HAADF', which ncempy's read_emi does not return"
        )
    assert tags_of(tagger, item)["HAADF"].score == 1.0


def test_sto_image_sampled_at_a_hundredth_of_a_nanometre_is_atomic_resolution(tagger, real_items):
    tags = tags_of(tagger, real_items["16_STOimage_1.ser", None])
    assert "pixel 0.01–0.1 nm" in tags
    assert tags["atomic resolution"].score == pytest.approx(0.9)


def test_carbon_dm3_is_an_eels_spectrum(tagger, real_items):
    tags = tags_of(tagger, real_items["08_carbon.dm3", None])
    assert {"EELS", "spectrum", "300 kV", "EF-CCD"} <= set(tags)


def test_a_spectrum_has_no_magnification_or_pixel_band(tagger, real_items):
    tags = tags_of(tagger, real_items["08_carbon.dm3", None])
    assert not {"18.5 kx", "medium magnification"} & set(tags)
    assert not [text for text in tags if text.startswith("pixel")]


def test_a_gatan_spectrum_with_an_energy_axis_is_eels_even_when_no_mode_was_recorded(tagger, real_items):
    row = dict(real_items["08_carbon.dm3", None].row, mode=None)
    metadata = json.loads(row["metadata"])
    del metadata["Meta Data Signal"]
    tags = tags_of(tagger, make_item("file", dict(row, metadata=json.dumps(metadata))))
    assert tags["EELS"].score == pytest.approx(0.9)
    assert "Calibrations Dimension 1 Units" in tags["EELS"].evidence


def test_velox_ceta_files_are_300kv_tem_with_the_ceta_camera(tagger, real_items):
    for name in ("Camera Ceta Imaging Micro.emd", "Camera Ceta Diffraction Micro.emd"):
        tags = tags_of(tagger, real_items[name, "BM-Ceta"])
        assert {"300 kV", "Ceta", "TEM", "Themis"} <= set(tags)
        assert tags["Ceta"].evidence == "detector = BM-Ceta"


def test_velox_diffraction_pattern_is_tagged_diffraction_with_its_camera_length(tagger, real_items):
    tags = tags_of(tagger, real_items["Camera Ceta Diffraction Micro.emd", "BM-Ceta"])
    assert {"diffraction", "diffraction pattern", "378 mm"} <= set(tags)


def test_tem_imaging_does_not_get_the_camera_length_the_software_writes_anyway(tagger, real_items):
    tags = tags_of(tagger, real_items["Camera Ceta Imaging Micro.emd", "BM-Ceta"])
    assert "378 mm" not in tags


def test_each_velox_stem_detector_is_spelled_one_way(tagger, real_items):
    name = "STEM HAADF-DF4-DF2-BF Diffraction Micro.emd"
    detectors = {dataset: tags_of(tagger, real_items[name, dataset]) for dataset in ("HAADF", "DF4", "DF2", "BF")}
    assert all(dataset in tags and "STEM" in tags for dataset, tags in detectors.items())
    assert "high-angle annular dark-field" in detectors["HAADF"]
    assert "HAADF" not in detectors["BF"]


def test_bruker_eds_map_is_an_eds_spectrum_image_from_the_superx_detector(tagger, real_items):
    tags = tags_of(tagger, real_items["0.bcf", "EDX"])
    assert {"EDS", "spectrum image", "SuperX", "200 kV"} <= set(tags)
    assert tags["EDS"].evidence == "mode = EDS"


def test_bruker_eds_map_names_the_elements_it_was_set_up_for(tagger, real_items):
    tags = tags_of(tagger, real_items["0.bcf", "EDX"])
    assert {"Pt", "platinum", "Ti", "titanium"} <= set(tags)
    assert tags["Pt"].evidence == "metadata Sample.elements"


def test_bruker_haadf_image_filed_under_tem_is_a_stem_image(tagger, real_items):
    item = real_items["0.bcf", "HAADF"]
    assert item.row["mode"] == "TEM"  # RosettaSciIO's Acquisition_instrument.TEM names the kind of instrument
    tags = tags_of(tagger, item)
    assert "STEM" in tags and "TEM" not in tags
    assert "annular STEM detector" in tags["STEM"].evidence


def test_sample_name_typed_into_the_software_is_decoded_like_a_file_name(tagger, real_items):
    tags = tags_of(tagger, real_items["Acquisition_18.emd", "single"])
    assert tags["SrTiO3"].score == pytest.approx(0.85)
    assert tags["SrTiO3"].evidence == "sample name 'STO laser cut': STO"


def test_a_4d_dataset_and_a_stack_say_what_they_are(tagger, real_items):
    assert "4D" in tags_of(tagger, real_items["emd_type1_stringDims.h5", "emd_data"])
    assert "stack" in tags_of(tagger, real_items["temp.mrc", None])


def test_a_test_array_with_tiny_pixels_but_no_microscope_is_not_atomic_resolution(tagger, real_items):
    tags = tags_of(tagger, real_items["dmTest_3D_int16_64,65,66.dm3", None])
    assert "pixel < 0.01 nm" in tags
    assert "atomic resolution" not in tags


@pytest.mark.parametrize(
    ("magnification", "label", "band"),
    [
        (5000, "5 kx", "low magnification"),
        (68000, "68 kx", "medium magnification"),
        (1e6, "1 Mx", "high magnification"),
    ],
)
def test_magnification_is_labelled_and_banded(tagger, magnification, label, band):
    tags = tags_of(tagger, row_item(kind="image", magnification=magnification))
    assert {label, band} <= set(tags)


def test_an_sem_is_recognised_by_its_name_when_no_mode_was_recorded(tagger):
    tags = tags_of(tagger, row_item(kind="image", instrument="Helios", instrument_reported="Helios NanoLab 660"))
    assert tags["SEM"].score == pytest.approx(0.95)
    assert tags["SEM"].evidence == "instrument Helios is a scanning electron microscope"


def test_the_facility_can_name_its_own_sems(tagger):
    own = MetadataTagger()
    own.load({"sem_instruments": ["Hitachi-1"]})
    assert "SEM" in tags_of(own, row_item(kind="image", instrument="Hitachi-1"))
    assert "SEM" not in tags_of(tagger, row_item(kind="image", instrument="Hitachi-1"))


def test_sem_instruments_that_are_not_a_list_is_a_clear_message():
    with pytest.raises(TaggerUnavailable, match="sem_instruments: must be a list"):
        MetadataTagger().load({"sem_instruments": "Helios"})


def test_an_unknown_detector_is_tagged_as_written(tagger):
    assert tags_of(tagger, row_item(kind="image", detector="Timepix3"))["Timepix3"].evidence == "detector = Timepix3"


def test_unreadable_metadata_json_still_gives_the_column_tags(tagger):
    tags = tags_of(tagger, row_item(kind="image", voltage_kv=200.0, metadata="{not json"))
    assert {"image", "200 kV"} <= set(tags)


def test_every_real_dataset_is_tagged_with_scores_from_0_85_to_1(tagger, real_items):
    results = list(tagger.tag_batch(list(real_items.values())))
    assert all(isinstance(result, Result) and result.tags for _, result in results)
    assert all(0.85 <= tag.score <= 1.0 and tag.evidence for _, result in results for tag in result.tags)


def test_a_tagged_catalog_finds_the_carbon_spectrum_by_tag_eels(em_dir, settings, catalog):
    load_files(catalog, [em_dir], settings, progress=False)
    summary = tag_catalog(catalog, settings, tagger_names=["metadata"], progress=False)
    assert summary.taggers[0].failed == 0
    hits = search(catalog, "tag:EELS", settings=settings).hits
    assert [hit.title for hit in hits] == ["08_carbon.dm3"]
    assert "tag EELS (metadata)" in hits[0].why


def test_the_metadata_tagger_is_found_through_its_entry_point():
    assert "metadata" in {tagger.name for tagger in get_taggers()}
    assert "tagger:metadata" in {p.name: p for p in describe_plugins()}["metadata"].provides
