"""Multi-scale texture statistics: a weight-free image vector that a head can learn from with a few labels.

The ``image_features`` vector (image_features.py) describes what the image analysis *found* — lattice spots,
segmented objects, the signs of a diffraction pattern.  Images of two classes often agree on all of that and differ
in their texture: the grain of a carbon film against the speckle of a polycrystal, the edges of cubes against
those of spheres.  This vector describes texture at every scale, and the shapes of the particles, rotation-invariant
(a specimen has no "up") and invariant to gain and offset (the same specimen at another gain or dwell time):

====================  ====  ==============================================================================
block                 size  contents
====================  ====  ==============================================================================
scattering             33  a two-layer wavelet scattering transform (Mallat 2012; Bruna & Mallat 2013) with
                           log-Gabor wavelets over 6 octaves, averaged over 4 orientations: first-order
                           energy per octave, its anisotropy and sparsity, second-order energy per pair of
                           octaves normalised by the first (how edges are arranged into shapes)
lbp                    30  histograms of rotation-invariant uniform local binary patterns (Ojala et al. 2002)
                           at radii 1, 3 and 8 pixels
glcm                   16  grey-level co-occurrence statistics (Haralick et al. 1973) at distances 1, 2, 4 and
                           8 pixels, averaged over 4 directions: contrast, homogeneity, energy, correlation
intensity              18  histogram of the image stretched between its minimum and maximum, skewness and
                           kurtosis: bright objects on a dark ground (HAADF) or dark on bright (bright field)
particle shape         13  the outlines of the particles the analysis segmented (image_objects.py): how many,
                           quartiles of circularity, median solidity and share with dents, quartiles of
                           rectangularity, mean corners and shares of triangles and squares, median
                           eccentricity, spread of sizes: a cube's square or a prism's triangle against a
                           sphere's disc, which texture alone tells apart only from many labels
====================  ====  ==============================================================================

The texture is computed on the analysis's working image (at most 512 a side), reduced by block means to at most
``SIDE`` a side; the particle shapes come from the analysis's segmentation of the working image, and are typical
(0 once centred) where it outlined no particle.  The numbers are returned raw (logs where they span decades);
learning standardises each feature over the catalog (train.py), and the stored vector is centred on typical values
so that cosine similarity works.
A vector of an image's texture cannot tell an atomic lattice from a diffraction spot pattern of the same period:
use it beside ``image_features`` (the ``image_texture`` space holds both, see ``combined_vector``), not instead.

The scattering transform here is a compact numpy one written for this tagger (kymatio, the reference
implementation, would add a dependency for the same two layers).
"""

from __future__ import annotations

import functools

import lazy_loader
import numpy as np

from .image_objects import SHAPE_STATISTICS, Objects, shape_statistics

# At first use, not when the tagger is registered: every 'scisearch' command registers the taggers.
fft = lazy_loader.load("scipy.fft", suppress_warning=True)
feature = lazy_loader.load("skimage.feature", suppress_warning=True)

SIDE = 256
OCTAVES = 6
ORIENTATIONS = 4
LBP_RADII = (1, 3, 8)
LBP_POINTS = 8
GLCM_DISTANCES = (1, 2, 4, 8)
GLCM_LEVELS = 32
INTENSITY_BINS = 16
BLOCKS = {
    "scattering": OCTAVES * 3 + OCTAVES * (OCTAVES - 1) // 2,
    "lbp": len(LBP_RADII) * (LBP_POINTS + 2),
    "glcm": 4 * len(GLCM_DISTANCES),
    "intensity": INTENSITY_BINS + 2,
    "particle shape": len(SHAPE_STATISTICS),
}
DIMENSION = sum(BLOCKS.values())
TEXTURE_STATISTICS = DIMENSION - BLOCKS["particle shape"]  # what texture_vector returns


def texture_vector(working: np.ndarray) -> np.ndarray:
    """The texture statistics of an image scaled to 0-1 (``TEXTURE_STATISTICS`` numbers, float64, not
    normalised)."""
    image = _reduced(working, SIDE)
    spread = image.std()
    if spread == 0:
        return np.zeros(TEXTURE_STATISTICS)
    standard = (image - image.mean()) / spread
    quantised = np.clip((image - image.min()) / (np.ptp(image) or 1) * 255, 0, 255).astype(np.uint8)
    return np.concatenate(
        [scattering(standard), lbp_histograms(quantised), co_occurrence(quantised), intensity_shape(standard)]
    )


def scattering(image: np.ndarray) -> np.ndarray:
    """Two-layer scattering coefficients of a zero-mean, unit-variance image, averaged over orientations."""
    # single precision through scipy's FFT: a third of numpy's double-precision time, and these are averages
    bank = _filter_bank(image.shape)
    spectrum = fft.fft2(image.astype(np.float32))
    first_energy, anisotropy, sparsity, envelopes = [], [], [], []
    for octave in range(OCTAVES):
        moduli = [np.abs(fft.ifft2(spectrum * bank[octave, angle])) for angle in range(ORIENTATIONS)]
        per_angle = np.array([m.mean() for m in moduli])
        envelope = np.mean(moduli, axis=0)
        energy = per_angle.mean()
        first_energy.append(np.log(energy + 1e-6))
        anisotropy.append((per_angle.max() - per_angle.min()) / (energy + 1e-9))
        # mean²/mean-square: near 1 for texture everywhere, small for a few strong edges (sparse objects)
        sparsity.append(energy**2 / ((envelope**2).mean() + 1e-12))
        envelopes.append(envelope)
    second = []
    for low in range(OCTAVES):
        envelope_spectrum = fft.fft2(envelopes[low] - envelopes[low].mean())
        for high in range(low + 1, OCTAVES):
            energy = np.mean(
                [np.abs(fft.ifft2(envelope_spectrum * bank[high, angle])).mean() for angle in range(ORIENTATIONS)]
            )
            second.append(np.log((energy + 1e-6) / (np.exp(first_energy[low]) + 1e-6)))
    return np.concatenate([first_energy, anisotropy, sparsity, second]).astype(np.float64)


@functools.lru_cache(maxsize=8)
def _filter_bank(shape: tuple[int, int]) -> np.ndarray:
    """Log-Gabor wavelets in the Fourier domain, one octave apart from 0.35 cycles/pixel down, one-sided in angle
    (analytic), so that the modulus of a filtered image is its local envelope; no DC response."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    angle = np.arctan2(fy, fx)
    bank = np.zeros((OCTAVES, ORIENTATIONS, *shape))
    for octave in range(OCTAVES):
        centre = 0.35 / 2**octave
        radial = np.exp(-(np.log(radius / centre) ** 2) / (2 * 0.55**2))
        radial[0, 0] = 0.0
        for index in range(ORIENTATIONS):
            direction = index * np.pi / ORIENTATIONS
            difference = np.angle(np.exp(1j * (angle - direction)))
            bank[octave, index] = radial * np.exp(-(difference**2) / (2 * (np.pi / ORIENTATIONS / 1.2) ** 2))
    return bank.astype(np.float32)


def lbp_histograms(quantised: np.ndarray) -> np.ndarray:
    """Share of each rotation-invariant uniform pattern (P+1 uniform ones and "other") at each radius."""
    parts = []
    for radius in LBP_RADII:
        codes = feature.local_binary_pattern(quantised, LBP_POINTS, radius, method="uniform")
        # the border, where the circle leaves the image, would count as a pattern of its own
        inner = codes[radius:-radius, radius:-radius] if min(codes.shape) > 2 * radius + 1 else codes
        parts.append(np.bincount(inner.astype(int).ravel(), minlength=LBP_POINTS + 2)[: LBP_POINTS + 2] / inner.size)
    return np.concatenate(parts)


def co_occurrence(quantised: np.ndarray) -> np.ndarray:
    """Haralick's contrast (log), homogeneity, energy and correlation per distance, averaged over directions."""
    levels = (quantised.astype(np.uint16) * GLCM_LEVELS // 256).astype(np.uint8)
    matrix = feature.graycomatrix(
        levels, GLCM_DISTANCES, [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=GLCM_LEVELS, symmetric=True,
        normed=True,
    )  # fmt: skip
    contrast = np.log1p(feature.graycoprops(matrix, "contrast").mean(axis=1))
    homogeneity = feature.graycoprops(matrix, "homogeneity").mean(axis=1)
    energy = np.log(feature.graycoprops(matrix, "energy").mean(axis=1) + 1e-6)
    correlation = np.nan_to_num(feature.graycoprops(matrix, "correlation")).mean(axis=1)
    return np.concatenate([contrast, homogeneity, energy, correlation])


def intensity_shape(standard: np.ndarray) -> np.ndarray:
    """Where the grey levels of a zero-mean, unit-variance image lie: which of object and ground is bright."""
    # Between minimum and maximum rather than robust percentiles: measured on the real HAADF and LAABF tiles of one
    # field of view, where the bulk of the pixels sits against the extremes tells the detectors apart (0.90 accuracy
    # from 10 labels each, 0.78 with the 1st-99th percentile stretch).
    low, high = standard.min(), standard.max()
    stretched = (standard - low) / (high - low) if high > low else np.zeros_like(standard)
    histogram = np.histogram(stretched, bins=INTENSITY_BINS, range=(0, 1))[0] / standard.size
    skewness = (standard**3).mean()
    kurtosis = (standard**4).mean()
    return np.concatenate([histogram, [np.tanh(skewness / 3), np.log(max(kurtosis, 1e-3) / 3)]])


def _reduced(image: np.ndarray, side: int) -> np.ndarray:
    block = max(1, -(-max(image.shape) // side))
    if block == 1:
        return image
    height, width = image.shape[0] // block * block, image.shape[1] // block * block
    return image[:height, :width].reshape(height // block, block, width // block, block).mean(axis=(1, 3))


# Typical values and spreads of each texture and shape statistic over the real micrographs of ../shared/data (the
# 188 tiles of benchmarks/real_classes.py, each file weighted alike), so that a stored vector is centred where cosine
# similarity needs it.  Shares of local binary patterns vary by a few thousandths between those files; the floor
# keeps such a feature from outweighing the rest on images unlike them.
TYPICAL = np.array([
    -2.47, -2.14, -1.87, -1.69, -2.08, -3.04, 0.403, 0.56, 0.609, 0.538, 0.433, 0.259, 0.491, 0.47, 0.544, 0.749,
    0.875, 0.868, -2, -1.69, -1.51, -1.89, -2.68, -1.64, -1.33, -1.68, -2.5, -1.38, -1.67, -2.47, -2.01, -2.67,
    -2.82, 0.105, 0.0972, 0.044, 0.0632, 0.085, 0.0698, 0.0598, 0.103, 0.163, 0.211, 0.0796, 0.0938, 0.0497,
    0.0559, 0.0598, 0.0469, 0.0494, 0.113, 0.121, 0.331, 0.0931, 0.108, 0.0416, 0.0359, 0.0383, 0.0353, 0.0506,
    0.124, 0.126, 0.346, 2.4, 2.72, 3.43, 3.71, 0.629, 0.609, 0.539, 0.478, -1.22, -1.24, -1.32, -1.41, 0.758,
    0.664, 0.306, 0.132, 0.0194, 0.27, 0.371, 0.0487, 0.0434, 0.0437, 0.0401, 0.034, 0.0255, 0.0224, 0.0184,
    0.0169, 0.0161, 0.0118, 0.0151, 0.00375, 0.572, 0.896,
    # particle shape (over the tiles where at least MIN_SHAPE_SAMPLE particles were outlined)
    2.58, 0.445, 0.629, 0.767, 0.852, 0.591, 0.648, 0.731, 3.84, 0.242, 0.472, 0.75, 0.267,
])  # fmt: skip
SPREAD = np.maximum(
    np.array([
        0.67, 0.72, 0.656, 0.479, 0.242, 0.668, 0.169, 0.25, 0.303, 0.238, 0.178, 0.17, 0.173, 0.169, 0.14, 0.121,
        0.108, 0.0632, 0.161, 0.474, 0.712, 0.683, 0.686, 0.352, 0.586, 0.576, 0.635, 0.341, 0.331, 0.584, 0.194,
        0.561, 0.521, 0.0137, 0.00859, 0.00911, 0.00917, 0.0217, 0.0107, 0.00478, 0.00695, 0.0225, 0.0156, 0.0162,
        0.0105, 0.0137, 0.0246, 0.037, 0.0198, 0.00754, 0.0127, 0.0252, 0.043, 0.0186, 0.0244, 0.0312, 0.0459,
        0.0619, 0.0268, 0.00969, 0.0221, 0.0268, 0.0687, 0.773, 0.85, 0.917, 0.717, 0.151, 0.147, 0.133, 0.126,
        0.574, 0.575, 0.567, 0.564, 0.171, 0.191, 0.312, 0.346, 0.0914, 0.217, 0.237, 0.0725, 0.0699, 0.0697,
        0.0461, 0.0494, 0.0302, 0.0296, 0.0275, 0.0331, 0.0233, 0.0247, 0.0745, 0.0124, 0.307, 0.609,
        # particle shape
        1.09, 0.14, 0.107, 0.066, 0.0667, 0.189, 0.0659, 0.0381, 0.196, 0.0994, 0.119, 0.0582, 0.0743,
    ]),
    0.02,
)  # fmt: skip
# The texture block's z-scores are scaled so that, like the analysis vector (unit length), they add up to about
# length 1 on a typical image: each of the two halves then weighs about the same in a cosine similarity.
TEXTURE_WEIGHT = 1 / np.sqrt(DIMENSION)


def combined_vector(features: np.ndarray, working: np.ndarray, objects: Objects | None = None) -> np.ndarray:
    """The ``image_texture`` vector: the analysis's ``image_features`` vector followed by this texture block and
    the shapes of the particles the analysis segmented (``objects``; None where it found none, or atom columns)."""
    raw = np.concatenate([texture_vector(working), shape_statistics(objects)])
    # shapes not measured (no particles outlined) are NaN: typical, so that they weigh nothing
    z = np.nan_to_num(np.clip((raw - TYPICAL) / SPREAD, -5, 5), nan=0.0)
    return np.concatenate([np.asarray(features, dtype=np.float64), z * TEXTURE_WEIGHT]).astype(np.float32)
