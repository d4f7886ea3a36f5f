"""Image analysis without model weights: what numpy and scikit-image can tell from a file's pixels.

For each image the tagger says, from the pixels alone (metadata only gives the scale):

- whether it is a diffraction pattern, a real-space image or a blank frame (``image_diffraction``);
- lattice periodicities from the spots of its power spectrum, with their spacings in nm where the pixel size is
  known: "lattice fringes", "atomic resolution", or "periodic structure" for longer periods (``image_fourier``);
- particles and elongated objects found by segmentation, with counts and sizes (``image_objects``);
- how sharp, blurred or noisy it is;
- a feature vector in the ``image_features`` space for similarity search (``image_features``), and the same
  followed by multi-scale texture statistics in the ``image_texture`` space, for heads learning from few labels
  (``image_texture``).

A spectrum (1-D) is tagged "spectrum" and nothing more.  Bad input is answered with tags or a clear ``ItemError``,
never a crash: NaN and infinite pixels are filled, huge arrays are strided down before any copy is made.

Working sizes: pixels are read at up to 1024 a side; the power spectrum takes the central 512 square at that
full resolution (cropping keeps the high frequencies a lattice lives at, where striding would alias them), while
segmentation, the diffraction signs and the texture measures run on a 2x2 block mean of at most 512 a side.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import lazy_loader
import numpy as np

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest.loader import LoaderError
from datasette_scisearch.tagging.items import PixelsUnavailable
from datasette_scisearch.tagging.tagger import Item, ItemError, Result, Tag, Tagger

from .helpers.image_diffraction import blank_frame, diffraction_signs
from .helpers.image_features import DIMENSION, feature_vector
from .helpers.image_fourier import Lattice, lattice, noise_share, power_spectrum
from .helpers.image_objects import Objects, find_objects
from .helpers.image_texture import DIMENSION as TEXTURE_DIMENSION
from .helpers.image_texture import combined_vector

# Loaded at first use, not when the plugin is registered: every 'scisearch' command registers the taggers.
measure = lazy_loader.load("skimage.measure", suppress_warning=True)

SPACE = "image_features"
TEXTURE_SPACE = "image_texture"
PIXELS_SIDE = 1024
WORKING_SIDE = 512
MIN_SIDE = 16
MIN_SPECTRUM_CHANNELS = 8
# Crystal lattice spacings run from 0.1 nm to about 1.5 nm (layered clays); longer periods are superlattices,
# patterned arrays or gratings.
LATTICE_MAX_NM = 1.5
MIN_PARTICLES = 5
MIN_ELONGATED = 5
SHARP_BELOW = 0.3  # blur effect (Crete-Roffet et al. 2007): 0 is sharp, 1 is blurred
BLURRED_ABOVE = 0.6
NOISY_ABOVE = 0.5  # share of the variance that is white noise


class ImageAnalysisTagger(Tagger):
    name = "image_analysis"
    version = "4"  # 2: adds the image_texture vector; 3: tags name their category; 4: particle shapes in image_texture
    tag_category = "feature"  # particles, lattice fringes, periodic structure; the kind of frame says "kind" below
    description = "diffraction vs real-space, lattice spacings, particles, focus, and a feature vector (no weights)"
    applies_to = frozenset({"file"})
    needs_pixels = True
    batch_size = 16
    vector_spaces = {SPACE: DIMENSION, TEXTURE_SPACE: DIMENSION + TEXTURE_DIMENSION}

    def tag_batch(self, items: list[Item]) -> Iterator[tuple[Item, Result | ItemError]]:
        for item in items:
            yield item, self.tag_item(item)

    def tag_item(self, item: Item) -> Result | ItemError:
        try:
            pixels = item.pixels(max_side=PIXELS_SIDE)
        except (PixelsUnavailable, LoaderError, OSError) as error:
            return ItemError(f"cannot read its pixels: {error}")
        frame = _bounded_frame(pixels)
        if isinstance(frame, ItemError):
            return frame
        if frame.ndim == 1:
            return Result(tags=[Tag("spectrum", 1.0, f"1-D signal of {frame.size} channels", "kind")])
        stride = _frame_stride(item.row, pixels.shape, frame.shape)
        nominal = item.row.get("pixel_size_nm")
        known = isinstance(nominal, (int, float)) and math.isfinite(nominal) and nominal > 0 and stride
        return analyse_image(frame, float(nominal) * stride if known else None, stride or 1)


def analyse_image(frame: np.ndarray, pixel_size_nm: float | None = None, frame_stride: int = 1) -> Result:
    """Tags and feature vector of a finite 2-D float64 frame whose pixels are ``pixel_size_nm`` apart.

    ``frame_stride``: how many of the dataset's own pixels one frame pixel stands for, so that sizes in pixels
    are reported in the dataset's pixels.
    """
    # every pixel of a blank frame is noise, so a sample of at most 256 a side shows it as well as all of them
    sample = frame[(slice(None, None, max(1, -(-max(frame.shape) // 256))),) * 2]
    blank = blank_frame(sample, pixel_noise(sample))
    if blank:
        return Result(tags=[Tag("blank frame", 0.95, blank, "kind")])
    image = _unit_range(frame)
    working, block = _block_mean(image, WORKING_SIDE)
    noise = pixel_noise(working)
    spectrum = power_spectrum(image)
    spots = lattice(spectrum)
    signs = diffraction_signs(working, noise)
    tags: list[Tag] = []
    objects = None
    blur = float(measure.blur_effect(working))
    noisiness = noise_share(spectrum)
    if signs.is_diffraction:
        tags.append(Tag("diffraction pattern", 0.9, signs.evidence(), "kind"))
    else:
        met = sum(signs.met().values())
        missing = ", ".join(sign for sign, ok in signs.met().items() if not ok)
        tags.append(Tag("real-space image", round(0.9 - 0.1 * met, 2), f"no {missing}: {signs.evidence()}", "kind"))
        lattice_tags = _lattice_tags(spots, pixel_size_nm, frame_stride)
        tags += lattice_tags
        atomic = any(tag.text == "atomic resolution" for tag in lattice_tags)
        # at atomic resolution the "particles" are atom columns
        objects = None if atomic else find_objects(working, noise)
        if objects is not None:
            tags += _object_tags(objects, pixel_size_nm * block if pixel_size_nm else None, block * frame_stride)
        tags += _focus_tags(blur, noisiness)
    vector = feature_vector(working, spectrum, spots, objects, signs, blur, noisiness, pixel_size_nm)
    return Result(tags=tags, vectors={SPACE: vector, TEXTURE_SPACE: combined_vector(vector, working, objects)})


def pixel_noise(image: np.ndarray) -> float:
    """Standard deviation of the pixel noise, from the median absolute difference of horizontal neighbours
    (differences cancel the image's own slow variation; the median ignores its edges)."""
    if image.shape[-1] < 2:
        return 0.0
    differences = np.diff(image[::2], axis=-1).ravel()  # every other row is plenty for a median
    deviations = np.abs(differences - np.median(differences))
    return float(1.4826 * np.median(deviations) / math.sqrt(2))


def _bounded_frame(pixels) -> np.ndarray | ItemError:
    """A finite float64 copy of the frame, at most ``PIXELS_SIDE`` a side; strided before anything is copied."""
    array = np.asanyarray(pixels)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        return ItemError(f"pixels of type {array.dtype} are not numbers")
    array = array.squeeze()
    while array.ndim > 2:  # a stack where a frame was expected: its middle frame
        array = array[array.shape[0] // 2]
    if array.ndim == 0 or array.size <= 1:
        return ItemError(f"a single value ({array.size} pixel) is not an image or a spectrum")
    step = max(1, -(-max(array.shape) // PIXELS_SIDE))
    if step > 1:
        array = array[(slice(None, None, step),) * array.ndim]
    if np.iscomplexobj(array):
        array = np.abs(array)
    frame = np.array(array, dtype=np.float64)
    if frame.ndim == 1 and frame.size < MIN_SPECTRUM_CHANNELS:
        return ItemError(f"a 1-D signal of {frame.size} channels is too short to be a spectrum")
    if frame.ndim == 2 and min(frame.shape) < MIN_SIDE:
        return ItemError(
            f"image is {frame.shape[0]}×{frame.shape[1]} pixels: too small to analyse "
            f"(needs at least {MIN_SIDE} pixels a side)"
        )
    finite = np.isfinite(frame)
    if not finite.all():
        if finite.mean() < 0.5:
            return ItemError(f"{1 - finite.mean():.0%} of its pixels are NaN or infinite")
        frame[~finite] = np.median(frame[finite])
    return frame


def _unit_range(frame: np.ndarray) -> np.ndarray:
    """The frame scaled to 0-1 (halved first where its range would overflow float64)."""
    low, high = frame.min(), frame.max()
    if not np.isfinite(high - low):
        frame, low, high = frame / 2, low / 2, high / 2
    return (frame - low) / (high - low)


def _block_mean(image: np.ndarray, side: int) -> tuple[np.ndarray, int]:
    """Mean over n x n blocks so the longer side is at most ``side`` (anti-aliased, unlike striding), and n."""
    block = max(1, -(-max(image.shape) // side))
    if block == 1 or min(image.shape) // block < MIN_SIDE:
        return image, 1
    height, width = image.shape[0] // block * block, image.shape[1] // block * block
    blocks = image[:height, :width].reshape(height // block, block, width // block, block)
    return blocks.mean(axis=(1, 3)), block


def _frame_stride(row: dict, read_shape: tuple, frame_shape: tuple) -> int | None:
    """How many of the dataset's pixels one pixel of the analysed frame spans, or None where unknown.

    Found by matching the frame against the dataset's catalogued shape ("1024×1024", "66×65×64"); where it
    cannot be matched the scale is unknown rather than guessed.
    """
    height, width = frame_shape
    dims = [int(d) for d in re.findall(r"\d+", str(row.get("shape") or ""))]
    for a, b in zip(dims, dims[1:]):
        stride = max(a, b) / max(height, width)
        if stride >= 0.99 and abs(a / stride - height) <= 1 and abs(b / stride - width) <= 1:
            return max(1, round(stride))
    if not dims and max(read_shape) < PIXELS_SIDE:  # nothing to match, but a frame this small was not strided
        return 1
    return None


def _lattice_tags(spots: Lattice, pixel_size_nm: float | None, frame_stride: int) -> list[Tag]:
    periods = spots.periods_px()
    if not periods:
        return []
    strongest = max(spot.strength for spot in spots.spots)
    score = round(min(0.95, 0.5 + 0.15 * math.log10(strongest / 40)), 3)
    if pixel_size_nm:
        spacings = ", ".join(f"{p * pixel_size_nm:.3g}" for p in periods[:4])
        evidence = f"FFT peaks at {spacings} nm ({_directions(spots)}, strongest {strongest:.0f}x its ring)"
        atomic = [spot for spot in spots.spots if spot.period_px * pixel_size_nm <= LATTICE_MAX_NM]
        if atomic:
            tags = [Tag("lattice fringes", score, evidence)]
            if Lattice(atomic).directions >= 2:
                tags.append(Tag("atomic resolution", score, evidence))
            return tags
    else:
        spacings = ", ".join(f"{p * frame_stride:.3g}" for p in periods[:4])
        evidence = f"FFT peaks at periods of {spacings} px ({_directions(spots)}; pixel size unknown)"
    return [Tag("periodic structure", score, evidence)]


def _directions(spots: Lattice) -> str:
    return "1 direction" if spots.directions == 1 else f"{spots.directions} directions"


def _object_tags(objects: Objects, working_nm: float | None, working_px: int) -> list[Tag]:
    """Particle and elongated-object tags, with sizes in nm where the scale is known, else in the dataset's px."""
    tags = []
    unit, scale = ("nm", working_nm) if working_nm else ("px", working_px)
    particles = objects.particles()
    if len(particles) >= MIN_PARTICLES:
        low, median, high = np.percentile([p.diameter_px * scale for p in particles], [25, 50, 75])
        evidence = (
            f"{len(particles)} particles, median diameter {median:.3g} {unit} (quartiles {low:.3g}–{high:.3g} {unit})"
        )
        tags.append(Tag("particles", _count_score(len(particles)), evidence))
    elongated = objects.elongated()
    if len(elongated) >= MIN_ELONGATED and len(elongated) >= 0.2 * len(objects.regions):
        length = np.median([r.length_px for r in elongated]) * scale
        width = np.median([r.width_px for r in elongated]) * scale
        aspect = np.median([r.aspect for r in elongated])
        evidence = (
            f"{len(elongated)} elongated objects, median length {length:.3g} {unit}, width {width:.3g} {unit} "
            f"(aspect ratio {aspect:.1f})"
        )
        tags.append(Tag("elongated objects", _count_score(len(elongated)), evidence))
        if working_nm and width <= 500 and aspect >= 4:
            tags.append(Tag("nanowires", _count_score(len(elongated)) * 0.9, evidence))
    return tags


def _count_score(count: int) -> float:
    """More objects, more confidence that they are a real population: 0.5 at 5, 0.95 from about 120."""
    return round(min(0.95, 0.5 + 0.1 * math.log2(count / 5)), 3)


def _focus_tags(blur: float, noisiness: float) -> list[Tag]:
    if noisiness >= NOISY_ABOVE:
        return [Tag("noisy", round(noisiness, 3), f"white noise is {noisiness:.0%} of the image's variance")]
    evidence = f"blur effect {blur:.2f} (0 sharp, 1 blurred; Crete-Roffet et al. 2007)"
    if blur <= SHARP_BELOW:
        return [Tag("sharp", round(1 - blur, 3), evidence)]
    if blur >= BLURRED_ABOVE:
        return [Tag("blurred", round(blur, 3), evidence)]
    return []


@hookimpl
def register_taggers(register):
    register(ImageAnalysisTagger())
