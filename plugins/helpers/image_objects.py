"""Objects in an image: particles and elongated objects (rods, wires, fibres) found by thresholding.

Objects are whatever stands apart from the background: the image is lightly smoothed, split at Otsu's threshold,
and the minority side taken as the objects (bright particles on a dark support in HAADF and SEM, dark ones on a
bright background in bright-field TEM).  The split is only trusted when the two sides differ by several times
the pixel noise, else noise would be cut into a froth of meaningless "particles".

Shape comes from each region's second moments: the axes of the equivalent ellipse (as
``skimage.measure.regionprops`` defines them) give length, width and aspect ratio.  Regions cut by the image
border are counted but left out of size statistics, since their size is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lazy_loader
import numpy as np

# Loaded at first use, not when the plugin is registered: every 'scisearch' command registers the taggers.
ndi = lazy_loader.load("scipy.ndimage", suppress_warning=True)
filters = lazy_loader.load("skimage.filters", suppress_warning=True)
measure = lazy_loader.load("skimage.measure", suppress_warning=True)
morphology = lazy_loader.load("skimage.morphology", suppress_warning=True)

# objects must differ from their background by this many times the pixel noise (noise split at Otsu's
# threshold gives about 0.5)
MIN_CONTRAST_TO_NOISE = 4.0
MIN_AREA_PX = 12  # smaller blobs are noise at the working size
COMPACT_ASPECT = 2.0  # particles: equivalent ellipse at most twice as long as wide
ELONGATED_ASPECT = 3.0
MIN_LENGTH_PX = 10


@dataclass
class Region:
    length_px: float  # major axis of the equivalent ellipse
    width_px: float  # minor axis
    diameter_px: float  # equivalent circular diameter
    on_border: bool

    @property
    def aspect(self) -> float:
        return self.length_px / max(self.width_px, 1.0)


@dataclass
class Objects:
    separability: float  # Otsu's between-class over total variance: 2/pi for one Gaussian population
    contrast_to_noise: float
    bright: bool  # objects brighter than the background
    area_fraction: float
    regions: list[Region] = field(default_factory=list)

    def inside(self) -> list[Region]:
        return [r for r in self.regions if not r.on_border]

    def particles(self) -> list[Region]:
        return [r for r in self.inside() if r.aspect <= COMPACT_ASPECT]

    def elongated(self) -> list[Region]:
        return [r for r in self.regions if r.aspect >= ELONGATED_ASPECT and r.length_px >= MIN_LENGTH_PX]


def find_objects(image: np.ndarray, noise_sigma: float) -> Objects | None:
    """Objects standing apart from the background, or None when the image is not objects on a background.

    ``noise_sigma`` is the pixel noise of ``image``: objects must differ from the background by several times
    it, or what Otsu's threshold cut out is noise.
    """
    smooth = ndi.gaussian_filter(image, 1.0)
    low, high = np.percentile(smooth[::2, ::2], [0.1, 99.9])
    if not high > low:
        return None
    smooth = np.clip(smooth, low, high)  # a few hot pixels must not stretch the histogram
    above = smooth > filters.threshold_otsu(smooth)
    if above.all() or not above.any():
        return None
    contrast = abs(smooth[above].mean() - smooth[~above].mean())
    bright = above.mean() <= 0.5
    mask = morphology.remove_small_objects(above if bright else ~above, max_size=MIN_AREA_PX - 1)
    objects = Objects(
        separability=_otsu_separability(smooth, above),
        contrast_to_noise=float(contrast / max(noise_sigma, 1e-12)),
        bright=bool(bright),
        area_fraction=float(mask.mean()),
    )
    if objects.contrast_to_noise >= MIN_CONTRAST_TO_NOISE:
        objects.regions = _regions(measure.label(mask, connectivity=2))
    return objects


def _regions(labels: np.ndarray) -> list[Region]:
    """Each labelled region's equivalent ellipse, from its second moments (all regions at once: a region at a
    time through regionprops costs 100 ms for the 900 wires of an SEM image)."""
    count = int(labels.max())
    if count == 0:
        return []
    y, x = np.nonzero(labels)  # only object pixels: a fifth of the image, or less
    flat = labels[y, x]
    y, x = y.astype(np.float64), x.astype(np.float64)

    def per_region(values):
        return np.bincount(flat, weights=values, minlength=count + 1)[1:]

    area = np.bincount(flat, minlength=count + 1)[1:].astype(np.float64)
    mean_y, mean_x = per_region(y) / area, per_region(x) / area
    # central second moments; the 1/12 is a pixel's own extent, so a one-pixel-wide line has a width
    var_y = per_region(y * y) / area - mean_y**2 + 1 / 12
    var_x = per_region(x * x) / area - mean_x**2 + 1 / 12
    cov = per_region(x * y) / area - mean_x * mean_y
    spread = np.sqrt(((var_y - var_x) / 2) ** 2 + cov**2)
    major = 4 * np.sqrt(np.maximum((var_y + var_x) / 2 + spread, 0))
    minor = 4 * np.sqrt(np.maximum((var_y + var_x) / 2 - spread, 0))
    border = np.zeros(count + 1, dtype=bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        border[edge] = True
    return [
        Region(length_px=float(a), width_px=float(b), diameter_px=float(np.sqrt(4 * n / np.pi)), on_border=bool(e))
        for a, b, n, e in zip(major, minor, area, border[1:])
    ]


def _otsu_separability(values: np.ndarray, above: np.ndarray) -> float:
    total = values.var()
    if total <= 0:
        return 0.0
    share = above.mean()
    between = share * (1 - share) * (values[above].mean() - values[~above].mean()) ** 2
    return float(between / total)
