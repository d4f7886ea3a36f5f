"""The image's feature vector: what the analysis measured, as one fixed-length vector for similarity search.

Without CLIP weights this is the catalog's picture of an image: "more like this" ranks by its cosine similarity,
and a trained head can learn tags from it.  It is made of blocks, each about one aspect of the image:

====================  ====  ==============================================================================
block                 size  contents
====================  ====  ==============================================================================
intensity               16  histogram of the contrast-stretched image, skewness, kurtosis, saturation, range
spectrum                24  radial power spectrum: log power in log-spaced frequency bands
orientation              8  share of power per orientation, sorted (aligned wires vs isotropic texture)
texture                 16  gradient-magnitude histogram, coherence, blur, noise, smoothness, autocorrelation
objects                 12  counts, sizes, shapes and contrast of segmented objects
order                   12  lattice spots, the signs of a diffraction pattern, the pixel size (0 if unknown)
====================  ====  ==============================================================================

Every feature is centred on a typical value, so that "nothing there" is a negative value rather than a zero that
cosine similarity cannot see, and each block is weighted so that none outweighs another because it happens to
hold more numbers or larger ones.  One feature is physical: the pixel size where it is known, since an
atomic-resolution image and an SEM overview are different kinds of image however alike their textures.

On the real files of ../shared/data the SEM nanowire images are 0.96 alike, the two SrTiO3 HAADF images 0.90,
and a nanowire image and a SrTiO3 image 0.3.
"""

from __future__ import annotations

import numpy as np

from .image_diffraction import DiffractionSigns
from .image_fourier import Lattice, Spectrum, anisotropy, radial_profile
from .image_objects import Objects

BLOCKS = {"intensity": 16, "spectrum": 24, "orientation": 8, "texture": 16, "objects": 12, "order": 12}
DIMENSION = sum(BLOCKS.values())
# Block weights chosen so that on the real EM and SEM images of ../shared/data each block carries about the same
# share of a vector's length (orientation shares differ from 1/8 by a few hundredths; spectra by decades).
BLOCK_SCALE = {"intensity": 1.0, "spectrum": 0.6, "orientation": 6.0, "texture": 1.4, "objects": 1.0, "order": 1.0}


def feature_vector(
    working: np.ndarray,
    spectrum: Spectrum,
    lattice: Lattice,
    objects: Objects | None,
    signs: DiffractionSigns,
    blur: float,
    noise_share: float,
    pixel_size_nm: float | None,
) -> np.ndarray:
    """The image's unit-length feature vector (float32, ``DIMENSION`` long); ``working`` is scaled to 0-1."""
    blocks = {
        "intensity": _intensity(working),
        "spectrum": radial_profile(spectrum),
        "orientation": anisotropy(spectrum) - 1 / 8,
        "texture": _texture(working, blur, noise_share),
        "objects": _objects(objects, min(working.shape)),
        "order": _order(lattice, spectrum.side, signs, pixel_size_nm),
    }
    parts = []
    for name, size in BLOCKS.items():
        block = np.nan_to_num(np.asarray(blocks[name], dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        assert block.shape == (size,), (name, block.shape)
        parts.append(block * BLOCK_SCALE[name])
    vector = np.concatenate(parts)
    norm = np.linalg.norm(vector)
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def _intensity(working: np.ndarray) -> np.ndarray:
    low, median, high = np.percentile(working[::2, ::2], [1, 50, 99])
    stretched = np.clip((working - low) / (high - low), 0, 1) if high > low else np.zeros_like(working)
    histogram = np.histogram(stretched, bins=12, range=(0, 1))[0] / stretched.size
    centred = working - working.mean()
    squared = centred * centred
    spread = np.sqrt(squared.mean())
    skew = (squared * centred).mean() / spread**3 if spread > 0 else 0.0
    kurtosis = (squared * squared).mean() / spread**4 if spread > 0 else 3.0
    saturated = (working >= working.max()).mean() if spread > 0 else 1.0
    decades = np.log10((high - low) / max(median - working.min(), 1e-6)) if high > low else 0.0
    return np.concatenate(
        [
            (histogram - 1 / 12) * 4,
            [np.tanh(skew / 3), np.tanh(np.log(kurtosis / 3)), np.tanh(saturated * 20) - 0.2, np.tanh(decades) - 0.3],
        ]
    )


def _texture(working: np.ndarray, blur: float, noise_share: float) -> np.ndarray:
    gy, gx = np.gradient(working)
    magnitude = np.hypot(gx, gy)
    sample = magnitude[::2, ::2]
    histogram = np.histogram(np.log10(sample + 1e-4), bins=8, range=(-4, 0))[0] / sample.size
    jxx, jyy, jxy = (gx * gx).mean(), (gy * gy).mean(), (gx * gy).mean()
    # structure-tensor coherence: 1 for stripes in one direction, 0 for isotropic texture
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy) if jxx + jyy > 0 else 0.0
    spread = working.var()
    # how much contrast survives averaging over 2x2 and 8x8 blocks: fine texture vs large shapes
    survives = [_block_mean(working, size).var() / spread if spread > 0 else 0.0 for size in (2, 8)]
    correlation = [_autocorrelation(working, lag) for lag in (1, 4, 16)]
    return np.concatenate(
        [
            (histogram - 1 / 8) * 3,
            [
                coherence - 0.2,
                blur - 0.4,
                noise_share - 0.2,
                survives[0] - 0.7,
                survives[1] - 0.4,
            ],
            np.array(correlation) - 0.5,
        ]
    )


def _block_mean(image: np.ndarray, block: int) -> np.ndarray:
    height, width = image.shape[0] // block * block, image.shape[1] // block * block
    if height == 0 or width == 0:
        return image
    return image[:height, :width].reshape(height // block, block, width // block, block).mean(axis=(1, 3))


def _autocorrelation(image: np.ndarray, lag: int) -> float:
    if lag >= min(image.shape):
        return 0.0
    a, b = image[:, :-lag] - image.mean(), image[:, lag:] - image.mean()
    denominator = np.sqrt((a * a).mean() * (b * b).mean())
    return float((a * b).mean() / denominator) if denominator > 0 else 0.0


def _objects(objects: Objects | None, side: int) -> np.ndarray:
    if objects is None or not objects.regions:
        separability = objects.separability if objects else 0.0
        return np.array([-1, -1, -1, -0.5, -1, 0, 0, 0, 0, separability - 0.7, -1, 0])
    particles, elongated, inside = objects.particles(), objects.elongated(), objects.inside()
    diameters = np.array([r.diameter_px for r in inside] or [0.0])
    aspects = np.array([r.aspect for r in objects.regions])
    return np.array(
        [
            (np.log1p(len(objects.regions)) - 3) / 3,
            (np.log1p(len(particles)) - 3) / 3,
            (np.log1p(len(elongated)) - 3) / 3,
            objects.area_fraction - 0.25,
            np.log10(max(np.median(diameters), 1) / side) + 1.5,
            np.log(np.percentile(diameters, 75) + 1) - np.log(np.percentile(diameters, 25) + 1),
            np.log(np.median(aspects)) - 0.5,
            (aspects >= 3).mean() - 0.3,
            1.0 if objects.bright else -1.0,
            objects.separability - 0.7,
            np.tanh(np.log10(max(objects.contrast_to_noise, 1e-3)) - 1),
            1 - len(inside) / len(objects.regions),
        ]
    )


def _order(lattice: Lattice, side: int, signs: DiffractionSigns, pixel_size_nm: float | None) -> np.ndarray:
    spots = lattice.spots
    periods = lattice.periods_px()
    strongest = max((s.strength for s in spots), default=1.0)
    return np.array(
        [
            np.log1p(len(spots)) / 2 - 0.5,
            lattice.directions / 3 - 0.3,
            np.log10(strongest) / 4 - 0.3,
            np.log10(periods[0] / side) + 1.5 if periods else -1.0,
            np.log10(periods[-1] / side) + 1.5 if periods else -1.0,
            np.tanh(signs.dynamic_range_decades) - 0.5,
            np.log10(pixel_size_nm) / 2 if pixel_size_nm else 0.0,
            signs.friedel_correlation - 0.3,
            -signs.radial_rank_correlation - 0.5,
            np.tanh(signs.central_excess / 3) - 0.3,
            1.0 if signs.is_diffraction else -1.0,
            sum(signs.met().values()) / 4 - 0.5,
        ]
    )
