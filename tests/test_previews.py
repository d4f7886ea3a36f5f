"""Previews made cheaply must look as they did: contrast, non-finite pixels, spectrum images' sums, spectrum plots."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from datasette_scisearch.ingest.preview import (
    MAX_PREVIEW_PX,
    _spectrum_png,
    exact_sum_dtype,
    grey_thumbnail,
    render_png,
)

from .conftest import shared_data


def grey(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16)


def stretched_then_resampled(frame: np.ndarray) -> np.ndarray:
    """The preview as it was made before: the full frame stretched to grey levels, then resampled."""
    frame = frame.astype(np.float64)
    low, high = np.percentile(frame.reshape(-1)[:: max(1, frame.size // 65_536)], [0.5, 99.5])
    levels = (np.clip((frame - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(levels, mode="L")
    image.thumbnail((MAX_PREVIEW_PX, MAX_PREVIEW_PX), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.int16)


def test_a_real_micrograph_previews_as_when_it_was_stretched_before_resampling():
    from scisearch_loaders.ncempy_formats import TiaSerLoader

    dataset = next(iter(TiaSerLoader().read(shared_data("em", "16_STOimage_1.ser"))))
    frame = np.asarray(dataset.data)
    preview = np.asarray(grey_thumbnail(frame, MAX_PREVIEW_PX), dtype=np.int16)
    difference = np.abs(preview - stretched_then_resampled(frame))
    assert preview.shape == (512, 512)
    assert difference.mean() < 0.5 and np.percentile(difference, 99.9) <= 2


def test_a_hot_pixel_does_not_flatten_a_preview():
    gradient = np.tile(np.linspace(0, 100, 1024, dtype=np.float32), (1024, 1))
    gradient[5, 5] = 1e6
    levels = grey(render_png(gradient, "image")[0])
    assert levels.min() == 0 and levels.max() == 255 and abs(float(np.median(levels)) - 128) < 4


def test_pixels_that_are_not_finite_show_as_the_darkest_level():
    frame = np.tile(np.linspace(0, 100, 256), (256, 1))
    frame[:64] = np.nan
    frame[64:80] = np.inf
    levels = np.asarray(grey_thumbnail(frame, 256))
    assert (levels[:60] == 0).all() and (levels[68:76] == 0).all() and levels[128:].max() == 255


def test_a_frame_with_no_finite_pixel_is_mid_grey():
    levels = np.asarray(grey_thumbnail(np.full((600, 300), np.nan), MAX_PREVIEW_PX))
    assert levels.shape == (512, 256) and (levels == 128).all()


def test_a_diffraction_preview_shows_a_weak_spot_beside_a_bright_beam():
    pattern = 1.0 + np.random.default_rng(3).random((512, 512))  # diffuse background
    pattern[224:288, 224:288] = 1e5  # the bright central beam
    pattern[80:112, 80:112] = 300.0  # a weak spot
    spot = (slice(84, 108), slice(84, 108))
    assert (
        grey(render_png(pattern, "diffraction")[0])[spot].mean()
        > 0.3 * 255
        > grey(render_png(pattern, "image")[0])[spot].mean()
    )


@pytest.mark.parametrize(
    ("dtype", "count", "accumulator"),
    [(np.uint8, 256 * 256, np.uint32), (np.uint16, 65_537, np.uint32), (np.uint16, 65_538, np.float64),
     (np.int16, 10, np.float64), (np.float32, 10, np.float64)],
)  # fmt: skip
def test_sums_use_32_bit_integers_only_where_they_cannot_overflow(dtype, count, accumulator):
    assert exact_sum_dtype(np.dtype(dtype), count) == np.dtype(accumulator)


def test_a_spectrum_image_of_full_uint8_channels_sums_exactly():
    from datasette_scisearch.ingest.loader import Dataset
    from datasette_scisearch.ingest.views import spectrum_of

    cube = np.full((256, 256, 64), 255, dtype=np.uint8)
    spectrum = spectrum_of(cube, "spectrum image", Dataset(data=cube, index=0))
    assert spectrum.y == [255.0 * 256 * 256] * 64 and spectrum.summed_over == 256 * 256


def test_a_spectrum_preview_does_not_depend_on_the_spectrum_drawn_before_it():
    channels = np.linspace(100, 10, 2048) + np.random.default_rng(5).random(2048)
    alone = _spectrum_png(channels, None)
    _spectrum_png(np.linspace(0, 40_000, 300), np.linspace(-50, 2000, 300))  # calibrated, other range and length
    again = _spectrum_png(channels, None)
    assert again == alone and alone[1:] == (512, 256)
