"""The clip tagger, with a tiny open_clip model loaded through the same checkpoint option as a real one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scisearch_taggers.clip import DEFAULT_VOCABULARY, ClipTagger, stretched_square

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.tagging.items import PixelsUnavailable, iter_items
from datasette_scisearch.tagging.pipeline import tag_catalog
from datasette_scisearch.tagging.tagger import Item, ItemError, Result, TaggerUnavailable
from datasette_scisearch.tagging.vectors import spaces

from .clip_fixture import TINY_CLIP_CONFIG, TINY_CLIP_DIMENSIONS, build_tiny_clip
from .conftest import REPO, shared_data


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def tagger(tiny_clip):
    tagger = ClipTagger()
    tagger.load(tiny_clip.options(min_score=0.0), "cpu")
    yield tagger
    tagger.close()


@pytest.fixture(scope="module")
def real_files(tmp_path_factory):
    """The real instrument files of ../shared/data/em as catalog items."""
    db = open_catalog(tmp_path_factory.mktemp("em") / "catalog.db")
    load_files(db, [shared_data("em")], load_settings(REPO / "metadata.yml"), progress=False)
    items = list(iter_items(db, "file"))
    db.close()
    return items


def synthetic(item_id: str, frame: np.ndarray, kind: str = "image") -> Item:
    return Item("file", item_id, f"{item_id}.tif", item_id, {"kind": kind}, load_pixels=lambda max_side: frame)


def results_of(tagger, items) -> dict[str, Result | ItemError]:
    return {item.item_id: result for item, result in tagger.tag_batch(items)}


def test_every_real_image_gets_a_normalised_clip_vector_of_the_models_dimension(tagger, real_files):
    images = [item for item in real_files if tagger.wants(item)]
    results = results_of(tagger, images)
    assert len(images) >= 15 and set(results) == {item.item_id for item in images}
    for item_id, result in results.items():
        vector = result.vectors["clip"]
        assert vector.shape == (TINY_CLIP_DIMENSIONS,) and vector.dtype == np.float32, item_id
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)


def test_the_loaded_tagger_reports_the_models_vector_dimension(tagger):
    assert tagger.vector_spaces == {"clip": TINY_CLIP_DIMENSIONS}


def test_a_spectrum_is_not_wanted(tagger, real_files):
    spectra = [item for item in real_files if item.row["kind"] == "spectrum"]
    assert spectra and not any(tagger.wants(item) for item in spectra)


def test_the_same_image_gives_the_same_vector_alone_and_in_a_batch(tagger, real_files):
    images = [item for item in real_files if tagger.wants(item)]
    together = results_of(tagger, images)
    alone = results_of(tagger, [images[3]])
    np.testing.assert_allclose(
        alone[images[3].item_id].vectors["clip"], together[images[3].item_id].vectors["clip"], atol=1e-5
    )


def test_a_second_load_of_the_same_checkpoint_gives_the_same_vectors(tagger, tiny_clip, real_files):
    again = ClipTagger()
    again.load(tiny_clip.options(), "cpu")
    image = next(item for item in real_files if item.row["kind"] == "image")
    first = results_of(tagger, [image])[image.item_id].vectors["clip"]
    second = results_of(again, [image])[image.item_id].vectors["clip"]
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_zero_shot_labels_come_from_the_vocabulary_most_likely_first(tagger, real_files):
    results = results_of(tagger, [item for item in real_files if tagger.wants(item)][:6])
    for result in results.values():
        assert isinstance(result, Result), result.message
        assert 1 <= len(result.tags) <= 3
        assert {tag.text for tag in result.tags} <= set(DEFAULT_VOCABULARY)
        scores = [tag.score for tag in result.tags]
        assert scores == sorted(scores, reverse=True) and all(0.0 < score < 1.0 for score in scores)
        assert result.tags[0].evidence.startswith("CLIP zero-shot: 'an electron micrograph of ")


def test_labels_below_min_score_are_left_out(tiny_clip, real_files):
    strict = ClipTagger()
    strict.load(tiny_clip.options(min_score=0.99), "cpu")
    image = next(item for item in real_files if item.row["kind"] == "image")
    result = results_of(strict, [image])[image.item_id]
    assert result.tags == [] and result.vectors["clip"].shape == (TINY_CLIP_DIMENSIONS,)


def test_the_vocabulary_from_metadata_replaces_the_built_in_one(tiny_clip, real_files):
    custom = ClipTagger()
    custom.load(tiny_clip.options(vocabulary=["zeolite", "perovskite"], min_score=0.0), "cpu")
    image = next(item for item in real_files if item.row["kind"] == "image")
    labels = {tag.text for tag in results_of(custom, [image])[image.item_id].tags}
    assert labels == {"zeolite", "perovskite"}


def test_a_vocabulary_that_is_not_a_list_of_terms_is_refused(tiny_clip):
    with pytest.raises(TaggerUnavailable, match="'vocabulary' under taggers: clip: must be a list of terms"):
        ClipTagger().load(tiny_clip.options(vocabulary="nanowire"), "cpu")


def test_a_prompt_without_a_place_for_the_term_is_refused(tiny_clip):
    with pytest.raises(TaggerUnavailable, match="'prompt' under taggers: clip: must contain {term}"):
        ClipTagger().load(tiny_clip.options(prompt="a micrograph"), "cpu")


def test_a_min_score_that_is_not_a_probability_is_refused(tiny_clip):
    with pytest.raises(
        TaggerUnavailable, match="'min_score' under taggers: clip: must be a number from 0 to 1, not 'high'"
    ):
        ClipTagger().load(tiny_clip.options(min_score="high"), "cpu")


def test_a_checkpoint_folder_is_searched_for_its_weights_file(tiny_clip, tmp_path):
    (tmp_path / "open_clip_pytorch_model.bin").write_bytes(tiny_clip.checkpoint.read_bytes())
    tagger = ClipTagger()
    tagger.load(tiny_clip.options(checkpoint=str(tmp_path)), "cpu")
    assert tagger.vector_spaces == {"clip": TINY_CLIP_DIMENSIONS}


def test_a_checkpoint_folder_without_weights_says_so(tiny_clip, tmp_path):
    with pytest.raises(TaggerUnavailable, match="holds no .safetensors, .bin, .pt or .pth file"):
        ClipTagger().load(tiny_clip.options(checkpoint=str(tmp_path)), "cpu")


def test_a_text_query_is_embedded_by_clips_text_tower(tagger):
    gold = tagger.embed_query("gold nanoparticles", "clip")
    lattice = tagger.embed_query("lattice fringes", "clip")
    assert gold.shape == (TINY_CLIP_DIMENSIONS,) and np.linalg.norm(gold) == pytest.approx(1.0, abs=1e-4)
    assert not np.allclose(gold, lattice)


def test_a_query_for_another_vector_space_gets_no_vector(tagger):
    assert tagger.embed_query("gold nanoparticles", "text") is None


def test_no_checkpoint_says_how_to_provide_one():
    with pytest.raises(TaggerUnavailable) as refused:
        ClipTagger().load({}, "cpu")
    message = str(refused.value)
    assert "no CLIP checkpoint is configured" in message
    assert "checkpoint:" in message and "metadata.yml" in message and "open_clip.create_model(" in message


def test_a_checkpoint_path_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "ViT-B-32.bin"
    with pytest.raises(TaggerUnavailable, match=f"the CLIP checkpoint '{missing}' does not exist"):
        ClipTagger().load({"checkpoint": str(missing)}, "cpu")


def test_a_checkpoint_of_another_architecture_is_refused_with_the_fix(tiny_clip):
    with pytest.raises(TaggerUnavailable, match="does not fit the architecture 'ViT-B-32'.*set 'model:'"):
        ClipTagger().load({"model": "ViT-B-32", "checkpoint": str(tiny_clip.checkpoint)}, "cpu")


def test_a_file_that_is_not_a_checkpoint_is_refused(tiny_clip, tmp_path):
    garbage = tmp_path / "weights.pt"
    garbage.write_bytes(b"these are not weights" * 100)
    with pytest.raises(TaggerUnavailable, match="cannot read the CLIP checkpoint"):
        ClipTagger().load(tiny_clip.options(checkpoint=str(garbage)), "cpu")


def test_an_unknown_architecture_is_refused_with_how_to_list_them():
    with pytest.raises(TaggerUnavailable, match="open_clip has no architecture 'ViT-Q-99'.*list_models"):
        ClipTagger().load({"model": "ViT-Q-99", "checkpoint": "/models/x.bin"}, "cpu")


def test_an_unknown_pretrained_tag_is_refused_with_how_to_provide_weights(tiny_clip):
    with pytest.raises(TaggerUnavailable, match="cannot provide the weights 'no-such-tag'.*checkpoint:"):
        ClipTagger().load({"model": tiny_clip.name, "pretrained": "no-such-tag"}, "cpu")


def test_an_architecture_from_a_model_config_file_loads_its_checkpoint(tiny_clip, tmp_path):
    config = tmp_path / "facility-clip.json"
    config.write_text(tiny_clip.config.read_text())
    tagger = ClipTagger()
    tagger.load({"model_config": str(config), "checkpoint": str(tiny_clip.checkpoint)}, "cpu")
    assert tagger.vector_spaces == {"clip": TINY_CLIP_CONFIG["embed_dim"]}


def test_an_unreadable_file_is_an_item_error_and_the_rest_are_tagged(tagger):
    def gone(max_side):
        raise PixelsUnavailable("'/data/x.dm4' is no longer there; reload the folder it moved to")

    broken = Item("file", "gone", "x.dm4", "x.dm4", {"kind": "image"}, load_pixels=gone)
    results = results_of(tagger, [broken, synthetic("fine", np.random.default_rng(0).random((80, 80)))])
    assert (
        results["gone"].message
        == "cannot read its pixels: '/data/x.dm4' is no longer there; reload the folder it moved to"
    )
    assert results["fine"].vectors["clip"].shape == (TINY_CLIP_DIMENSIONS,)


def test_a_one_dimensional_frame_is_an_item_error(tagger):
    results = results_of(tagger, [synthetic("line", np.arange(500.0))])
    assert "CLIP needs a 2-D image" in results["line"].message


def test_blank_and_non_finite_images_still_get_finite_vectors(tagger):
    frame_with_nans = np.random.default_rng(1).random((64, 64))
    frame_with_nans[10:20] = np.nan
    frames = {"blank": np.zeros((64, 64)), "nans": frame_with_nans, "all-nan": np.full((64, 64), np.nan)}
    results = results_of(tagger, [synthetic(name, frame) for name, frame in frames.items()])
    assert all(np.isfinite(results[name].vectors["clip"]).all() for name in frames)


def test_a_hot_pixel_does_not_flatten_the_contrast_stretch():
    gradient = np.tile(np.linspace(0, 100, 256, dtype=np.float32), (256, 1))
    gradient[5, 5] = 1e6
    stretched = stretched_square(gradient, 64)
    assert stretched.shape == (64, 64)
    assert float(stretched.min()) == pytest.approx(0.0, abs=0.02) and float(stretched.max()) == pytest.approx(
        1.0, abs=0.02
    )
    assert float(stretched.median()) == pytest.approx(0.5, abs=0.05)


def test_a_diffraction_pattern_is_stretched_on_a_log_scale():
    pattern = 1.0 + np.random.default_rng(3).random((128, 128), dtype=np.float32)  # diffuse background
    pattern[56:72, 56:72] = 1e5  # the bright central beam
    pattern[20:28, 20:28] = 300.0  # a weak spot
    linear = stretched_square(pattern, 64, "image")
    logarithmic = stretched_square(pattern, 64, "diffraction")
    weak_spot = (slice(11, 13), slice(11, 13))
    assert float(logarithmic[weak_spot].mean()) > 0.3 > float(linear[weak_spot].mean())


def test_a_wide_frame_is_centre_cropped_to_a_square():
    frame = np.zeros((64, 192), dtype=np.float32)
    frame[:, 64:128] = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    stretched = stretched_square(frame, 32)
    assert stretched.shape == (32, 32) and float(stretched[:, 0].mean()) < 0.1 and float(stretched[:, -1].mean()) > 0.9


def test_the_tagger_runs_inference_without_tracking_gradients(tagger):
    vectors = tagger.encode_frames([np.random.default_rng(2).random((64, 64))])
    assert not vectors.requires_grad and vectors.dtype == torch.float32


def test_tagging_a_real_catalog_stores_a_clip_vector_and_labels_for_each_image(tiny_clip, tmp_path):
    settings = load_settings(REPO / "metadata.yml")
    settings.taggers["clip"] = tiny_clip.options(min_score=0.0)
    db = open_catalog(tmp_path / "catalog.db")
    load_files(db, [shared_data("em")], settings, progress=False)
    summary = tag_catalog(db, settings, tagger_names=["clip"], device="cpu", progress=False)
    [stats] = summary.taggers
    images = db.execute("select count(*) from files where kind != 'spectrum'").fetchone()[0]
    assert (stats.unavailable, stats.failed, stats.tagged) == (None, 0, images)
    assert spaces(db)["clip"]["dimensions"] == TINY_CLIP_DIMENSIONS
    assert db.execute("select count(*) from vec_clip").fetchone()[0] == images
    assert db.execute("select count(distinct item_id) from tags where source = 'clip'").fetchone()[0] == images
    db.close()


def test_tagging_without_a_checkpoint_reports_clip_unavailable_and_finishes(tmp_path):
    settings = load_settings(REPO / "metadata.yml")
    settings.taggers["clip"] = {}
    db = open_catalog(tmp_path / "catalog.db")
    load_files(db, [shared_data("em")], settings, progress=False)
    [stats] = tag_catalog(db, settings, tagger_names=["clip"], device="cpu", progress=False).taggers
    assert stats.unavailable.startswith("no CLIP checkpoint is configured")
    db.close()
