"""Objects in an image: particles and elongated objects (rods, wires, fibres) found by thresholding.

Objects are whatever stands apart from the background: the image is lightly smoothed, split at Otsu's threshold,
and the minority side taken as the objects (bright particles on a dark support in HAADF and SEM, dark ones on a
bright background in bright-field TEM).  The split is only trusted when the two sides differ by several times
the pixel noise, else noise would be cut into a froth of meaningless "particles".

Shape comes from each region's second moments: the axes of the equivalent ellipse (as
``skimage.measure.regionprops`` defines them) give length, width and aspect ratio.  Regions cut by the image
border are counted but left out of size statistics, since their size is unknown.

The outlines of the compact particles inside the image (at most ``MAX_OUTLINES``) are measured too
(``Outline``): circularity, solidity, rectangularity and a corner count, all rotation-invariant, which tell a cube's
square projection or a prism's triangle from a sphere's disc.  ``shape_statistics`` sums them up over the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lazy_loader
import numpy as np

# Loaded at first use, not when the plugin is registered: every 'scisearch' command registers the taggers.
ndi = lazy_loader.load("scipy.ndimage", suppress_warning=True)
spatial = lazy_loader.load("scipy.spatial", suppress_warning=True)
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
# Outlines: at most this many particles an image, spread over their sizes (the cost is a contour each: 0.1-0.2 ms),
# each of at least this many pixels (a smaller blob's outline is its pixels' staircase rather than its shape)
MAX_OUTLINES = 48
MIN_OUTLINE_AREA_PX = 20
# The binary mask is smoothed this much before its outline is traced at half height: without it, the staircase
# edge of a turned square makes the circularity of a 16-pixel square vary by 0.07 with its angle (0.03 with it).
OUTLINE_SMOOTHING_PX = 0.7
# Corners (the k-cosine corner detector of Rosenfeld & Johnston 1973): the outline is resampled at CORNER_SAMPLES
# points equally spaced along it, and a corner is where the chords to the points CORNER_CHORD samples behind and
# ahead meet at more than CORNER_TURN, the most within a chord's length.  A disc turns by 28 degrees over such
# chords everywhere, a square by 90 at its corners, a triangle 120, a hexagon 60: 0, 4 and 3 corners from 8 pixels
# across up and 6 from 20, at any angle (an ellipse 1.5 times as long as wide has 2, at its ends).
CORNER_SAMPLES = 64
CORNER_CHORD = 5
CORNER_TURN = np.radians(45)


@dataclass(frozen=True)
class Outline:
    """The shape of a particle's outline; every number is unchanged when the particle is turned."""

    # of ideal shapes (pixels round the corners of small ones):
    circularity: float  # 4 pi area / perimeter^2: 1 for a disc, 0.785 for a square, 0.605 for a triangle
    solidity: float  # area over the area of its convex hull: below 1 where it has dents (touching particles)
    rectangularity: float  # area over the smallest rectangle around it at any angle: 1 square, 0.785 disc
    corners: int  # where it turns sharply: 3 triangle, 4 square, 6 hexagon, 0 disc
    diameter_px: float  # equivalent circular diameter of the area inside the outline


@dataclass
class Region:
    length_px: float  # major axis of the equivalent ellipse
    width_px: float  # minor axis
    diameter_px: float  # equivalent circular diameter
    on_border: bool
    outline: Outline | None = None  # measured for compact particles inside the image (see _outline_particles)

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
        labels = measure.label(mask, connectivity=2)
        objects.regions = _regions(labels)
        _outline_particles(labels, objects.regions)
    return objects


def outline(mask: np.ndarray) -> Outline | None:
    """The outline of the one object of a boolean mask (its outer boundary: holes inside it are ignored), or None
    when it is too small to have one."""
    return _outlines([mask])[0]


def _outlines(masks: list[np.ndarray]) -> list[Outline | None]:
    """The outline of each mask's one object (corners counted for all of them at once)."""
    traced = [_trace(mask) for mask in masks]
    found = [t for t in traced if t is not None]
    if not found:
        return [None] * len(masks)
    corners = iter(_corners(np.stack([t[-1] for t in found])))
    outlines = []
    for t in traced:
        if t is None:
            outlines.append(None)
            continue
        area, perimeter, hull_area, rectangle, _ = t
        outlines.append(
            Outline(
                circularity=float(min(1.0, 4 * np.pi * area / perimeter**2)),
                solidity=float(min(1.0, area / hull_area)),
                rectangularity=float(min(1.0, area / rectangle)),
                corners=int(next(corners)),
                diameter_px=float(np.sqrt(4 * area / np.pi)),
            )
        )
    return outlines


def _trace(mask: np.ndarray) -> tuple[float, float, float, float, np.ndarray] | None:
    """A mask's outer boundary traced at half height after smoothing (sub-pixel, so that a turned square is as
    square as an upright one): its area, length, convex-hull area, smallest enclosing rectangle's area, and
    ``CORNER_SAMPLES`` points equally spaced along it."""
    padded = np.zeros((mask.shape[0] + 4, mask.shape[1] + 4))
    padded[2:-2, 2:-2] = mask
    contours = measure.find_contours(ndi.gaussian_filter(padded, OUTLINE_SMOOTHING_PX), 0.5)
    points = max(contours, key=len) if contours else None  # the outer boundary is the longest
    if points is None or len(points) < 4:
        return None
    y, x = points[:, 0], points[:, 1]
    area = 0.5 * abs(x[:-1] @ y[1:] - x[1:] @ y[:-1])
    along = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(y), np.diff(x)))])
    try:
        hull = spatial.ConvexHull(points)
    except spatial.QhullError:  # all on one line
        return None
    if area <= 0 or hull.volume <= 0:
        return None
    at = np.linspace(0.0, along[-1], CORNER_SAMPLES, endpoint=False)
    samples = np.column_stack([np.interp(at, along, y), np.interp(at, along, x)])
    # a 2-D hull's "volume" is its area
    return area, along[-1], hull.volume, _smallest_rectangle_area(points[hull.vertices]), samples


def _smallest_rectangle_area(hull: np.ndarray) -> float:
    """Area of the smallest rectangle around a convex polygon ((y, x) vertices): one of its sides lies on an edge
    of the polygon (Freeman & Shapira 1975), so try each edge's direction (rotating calipers, all at once)."""
    edges = np.roll(hull, -1, axis=0) - hull
    unit = edges / np.hypot(edges[:, 0], edges[:, 1])[:, None]  # (sin, cos) of each edge's direction
    along = hull @ unit.T  # y sin + x cos
    across = hull @ np.stack([unit[:, 1], -unit[:, 0]])  # y cos - x sin
    return float((np.ptp(along, axis=0) * np.ptp(across, axis=0)).min())


def _corners(samples: np.ndarray) -> np.ndarray:
    """How many corners each closed outline has, where it turns either way; ``samples`` holds each outline's
    ``CORNER_SAMPLES`` equally spaced (y, x) points.  Touching particles outlined as one have several: their arcs
    are short for the length of the outline.

    Not the vertices of skimage.measure.approximate_polygon: its Douglas-Peucker loop costs 0.5-0.8 ms a particle
    in Python, more than the rest of an outline, and it gives a disc 8 vertices, where this gives it none."""
    y, x = samples[..., 0], samples[..., 1]
    behind = np.arctan2(y - np.roll(y, CORNER_CHORD, -1), x - np.roll(x, CORNER_CHORD, -1))
    ahead = np.arctan2(np.roll(y, -CORNER_CHORD, -1) - y, np.roll(x, -CORNER_CHORD, -1) - x)
    turn = np.abs(np.angle(np.exp(1j * (ahead - behind))))
    sharpest = ndi.maximum_filter1d(turn, 2 * CORNER_CHORD + 1, axis=-1, mode="wrap")
    return np.count_nonzero((turn > CORNER_TURN) & (turn >= sharpest), axis=-1)


def _outline_particles(labels: np.ndarray, regions: list[Region]) -> None:
    """Outline at most ``MAX_OUTLINES`` of the compact particles inside the image that are big enough to have a
    shape, spread evenly over their sizes (the largest alone would favour touching particles outlined as one)."""
    min_diameter = np.sqrt(4 * MIN_OUTLINE_AREA_PX / np.pi)
    chosen = sorted(
        (r.diameter_px, index)
        for index, r in enumerate(regions)
        if not r.on_border and r.aspect <= COMPACT_ASPECT and r.diameter_px >= min_diameter
    )
    if len(chosen) > MAX_OUTLINES:
        chosen = [chosen[round(i)] for i in np.linspace(0, len(chosen) - 1, MAX_OUTLINES)]
    boxes = ndi.find_objects(labels)
    masks = [labels[boxes[index]] == index + 1 for _, index in chosen]
    for (_, index), found in zip(chosen, _outlines(masks)):
        regions[index].outline = found


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


# What ``shape_statistics`` returns, in order.  Corners are summed up by their mean and the shares of triangles
# and squares rather than a share of each count: a share that is almost always 0 (round outlines, in the real
# micrographs of ../shared/data) made heads learning from 5 labels worse on SEM-vs-TEM tiles (1.000 to 0.991).
# The shapes of fewer particles than this are not summed up: on the real HAADF and LAABF tiles of one field of
# view (1 to 6 particles each) they were noise that heads learning from 5 labels took for signal (0.605 accuracy
# without the shapes, 0.550 with them, 0.602 with this minimum).
MIN_SHAPE_SAMPLE = 5
SHAPE_STATISTICS = (
    "outlined particles (log)",
    "circularity, lower quartile",
    "circularity, median",
    "circularity, upper quartile",
    "solidity, median",
    "share with dents (solidity below 0.9)",
    "rectangularity, median",
    "rectangularity, upper quartile",
    "corners, mean (at most 8 each)",
    "share with 3 corners",
    "share with 4 corners",
    "eccentricity of the equivalent ellipse, median",
    "coefficient of variation of the diameters",
)


def shape_statistics(objects: Objects | None) -> np.ndarray:
    """The outlined particles' shapes over the image (``SHAPE_STATISTICS``): quartiles and shares rather than
    means, so that a few touching particles outlined as one do not move them.  With fewer than
    ``MIN_SHAPE_SAMPLE`` outlined particles every number but their count is NaN: not known rather than zero."""
    regions = [r for r in objects.regions if r.outline is not None] if objects else []
    statistics = np.full(len(SHAPE_STATISTICS), np.nan)
    statistics[0] = np.log1p(len(regions))
    if len(regions) < MIN_SHAPE_SAMPLE:
        return statistics
    outlines = [r.outline for r in regions]
    circularity = np.array([o.circularity for o in outlines])
    solidity = np.array([o.solidity for o in outlines])
    rectangularity = np.array([o.rectangularity for o in outlines])
    corners = np.array([o.corners for o in outlines])
    diameters = np.array([o.diameter_px for o in outlines])
    eccentricity = [np.sqrt(1 - min(1.0, r.width_px / max(r.length_px, 1e-9)) ** 2) for r in regions]
    statistics[1:] = [
        *np.percentile(circularity, [25, 50, 75]),
        np.median(solidity),
        (solidity < 0.9).mean(),
        *np.percentile(rectangularity, [50, 75]),
        np.minimum(corners, 8).mean(),
        (corners == 3).mean(),
        (corners == 4).mean(),
        np.median(eccentricity),
        diameters.std() / diameters.mean(),
    ]
    return statistics
