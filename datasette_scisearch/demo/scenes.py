"""Synthetic micrographs for the demo facility, and the instrument file formats that carry them.

Every picture is computed from the physical numbers its file reports: a lattice
image of SrTiO3 at 13.5 Mx shows 0.39 nm columns at the pixel size written in
the header, a diffraction pattern at 300 mm camera length has its spots where
the wavelength and camera constant put them.  Scenes return floats (intensity
in arbitrary units); ``to_counts`` turns them into detector counts with shot
noise.  The writers reproduce the layout of real files (see
../shared/data/em): Berkeley EMD through ncempy, Velox EMD through h5py,
FEI and Zeiss SEM TIFFs through tifffile's private tags, MRC through ncempy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from scipy.spatial import cKDTree

# Projected 2D crystals: lattice vectors (nm) and a basis of (fraction along a1,
# fraction along a2, scattering weight).  Centred cells give the right
# extinctions in diffraction because the structure factor is summed over the basis.
CRYSTALS = {
    # SrTiO3 [001]: bright Sr columns, dimmer Ti-O columns in the middle.
    "SrTiO3_001": ((0.3905, 0.0), (0.0, 0.3905), [(0, 0, 1.0), (0.5, 0.5, 0.55)]),
    # Diamond-cubic [110]: dumbbells 0.136 nm apart in a centred 0.384 x 0.543 nm cell.
    "Si_110": ((0.384, 0.0), (0.0, 0.543), [(0, 0, 1.0), (0, 0.25, 1.0), (0.5, 0.5, 1.0), (0.5, 0.75, 1.0)]),
    "GaAs_110": ((0.3997, 0.0), (0.0, 0.5653), [(0, 0, 1.0), (0, 0.25, 1.1), (0.5, 0.5, 1.0), (0.5, 0.75, 1.1)]),
    # 2H-MoS2 [001]: honeycomb of Mo and S2 columns, a = 0.316 nm.
    "MoS2_001": ((0.316, 0.0), (-0.158, 0.27368), [(0, 0, 1.0), (1 / 3, 2 / 3, 0.75)]),
    # Fluorite CeO2 [001]: Ce columns on a 0.2705 nm square (O columns barely scatter).
    "CeO2_001": ((0.2705, 0.0), (0.0, 0.2705), [(0, 0, 1.0)]),
    "Au_110": ((0.2884, 0.0), (0.0, 0.4078), [(0, 0, 1.0), (0.5, 0.5, 1.0)]),
}
# What each demo scene shows, in a researcher's words: the ground truth that text-to-image search and learned
# tags are measured against (a file's recorded labels and its name say what was done, not what is in the picture).
SHOWS: dict[str, frozenset[str]] = {
    scene: frozenset(words.split(", "))
    for scene, words in {
        "columns_haadf": "atomic columns, crystal lattice, HAADF",
        "particles_columns_haadf": "atomic columns, nanoparticles, HAADF",
        "columns_hrtem": "lattice fringes, crystal lattice, HRTEM",
        "particles_haadf": "nanoparticles, HAADF",
        "particles_bf": "nanoparticles, bright field",
        "particles_series": "nanoparticles, HAADF, time series",
        "cubes_haadf": "nanoparticles, nanocubes, HAADF",
        "cubes_bf": "nanoparticles, nanocubes, bright field",
        "cubes_sem": "nanoparticles, nanocubes, SEM",
        "carbon_bf": "amorphous carbon, bright field",
        "spots": "diffraction pattern, spot pattern",
        "rings": "diffraction pattern, ring pattern",
        "nanowires_sem": "nanowires, SEM",
        "particles_sem": "microparticles, SEM",
        "lamella_sem": "FIB lamella, SEM",
        "cryo_movie": "protein particles, vitreous ice, time series",
        "cryo_sum": "protein particles, vitreous ice",
        "cryo_tilt": "protein particles, vitreous ice, tilt series",
        "eds_spectrum": "X-ray spectrum",
        "eels_si": "spectrum image",
        "scan_4d": "4D-STEM",
    }.items()
}
# Polycrystalline gold: d-spacings (nm) and relative ring intensities of fcc 111, 200, 220, 311, 222.
GOLD_RINGS = [(0.2355, 1.0), (0.2039, 0.5), (0.1442, 0.3), (0.1230, 0.35), (0.1177, 0.1)]


@dataclass
class Acquisition:
    """One file to write: what it shows and every number its metadata will report."""

    path: Path
    file_format: str  # berkeley-emd, velox-emd, fei-tiff, zeiss-tiff, mrc
    scene: str
    kind: str  # image, diffraction, stack
    mode: str  # STEM, TEM, SEM
    detector: str | None
    acquired_at_local: dt.datetime
    acquired_at_epoch: float
    voltage_kv: float
    magnification: float | None
    camera_length_mm: float | None
    pixel_size_nm: float | None
    pixel_size_inv_nm: float | None  # diffraction patterns only
    shape: tuple[int, ...]
    sample: str
    user: str
    user_name: str
    crystal: str | None = None
    seed: int = 0


def electron_wavelength_nm(voltage_kv: float) -> float:
    """Relativistic electron wavelength: 1.969 pm at 300 kV."""
    volts = voltage_kv * 1e3
    return 1.226426 / np.sqrt(volts * (1 + 0.978476e-6 * volts))


# ---------------------------------------------------------------- scenes


def amorphous(rng, shape, correlation_px: float) -> np.ndarray:
    """Smooth noise with unit standard deviation: amorphous carbon, ice, a rough substrate."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), correlation_px, mode="wrap")
    return field / (field.std() or 1.0)


def _splat(shape, rows, cols, weights) -> np.ndarray:
    """Point masses at sub-pixel positions, shared bilinearly between the four nearest pixels."""
    image = np.zeros(shape)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    for dr, dc, share in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        inside = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        np.add.at(image, (rr[inside], cc[inside]), (weights * share)[inside])
    return image


def _lattice_positions(shape, pixel_nm, crystal, angle, shift_px=(0.0, 0.0)):
    """Row, column (px) and weight of every projected atom column covering the image."""
    a1, a2, basis = CRYSTALS[crystal]
    a1, a2 = np.array(a1), np.array(a2)
    if min(np.linalg.norm(a1), np.linalg.norm(a2)) < 2 * pixel_nm:
        return np.empty(0), np.empty(0), np.empty(0)  # columns this close are not resolved at this pixel size
    cells = int(np.hypot(*shape) * pixel_nm / min(np.linalg.norm(a1), np.linalg.norm(a2))) // 2 + 2
    i, j = np.meshgrid(np.arange(-cells, cells + 1), np.arange(-cells, cells + 1))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rows, cols, weights = [], [], []
    for f1, f2, weight in basis:
        xy = ((i.ravel() + f1)[:, None] * a1 + (j.ravel() + f2)[:, None] * a2) @ rotation.T / pixel_nm
        cols.append(xy[:, 0] + shape[1] / 2 + shift_px[1])
        rows.append(xy[:, 1] + shape[0] / 2 + shift_px[0])
        weights.append(np.full(len(xy), weight))
    rows, cols, weights = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    keep = (rows > -2) & (rows < shape[0] + 1) & (cols > -2) & (cols < shape[1] + 1)
    return rows[keep], cols[keep], weights[keep]


def atomic_columns(rng, shape, pixel_nm, crystal, grain_boundary=False, probe_nm=0.06) -> np.ndarray:
    """Projected potential of a crystal as Gaussian columns; two grains meet at a straight boundary if asked."""
    angle = rng.uniform(0, np.pi)
    rows, cols, weights = _lattice_positions(shape, pixel_nm, crystal, angle)
    if grain_boundary:
        # A symmetric tilt boundary (36.9 deg is the Sigma-5 bicrystal people buy) through the field of view.
        normal = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.2, 0.2) * shape[0]

        def side(r, c):
            return (c - shape[1] / 2) * np.cos(normal) + (r - shape[0] / 2) * np.sin(normal) > offset

        keep = ~side(rows, cols)
        r2, c2, w2 = _lattice_positions(shape, pixel_nm, crystal, angle + np.radians(36.87), (0.3, 0.7))
        other = side(r2, c2)
        rows, cols = np.concatenate([rows[keep], r2[other]]), np.concatenate([cols[keep], c2[other]])
        weights = np.concatenate([weights[keep], w2[other]])
    # Thermal and static displacements: columns are never exactly on the lattice.
    jitter = 0.008 / pixel_nm
    rows, cols = rows + rng.normal(0, jitter, rows.shape), cols + rng.normal(0, jitter, cols.shape)
    sigma_px = max(0.7, probe_nm / pixel_nm)
    columns = ndimage.gaussian_filter(_splat(shape, rows, cols, weights), sigma_px) * 2 * np.pi * sigma_px**2
    return columns + 0.04 * amorphous(rng, shape, max(1.0, 0.15 / pixel_nm))


def nanoparticles(rng, shape, pixel_nm, diameter_nm, coverage, cubes=False, crystal=None, contrast_spread=0.1):
    """Projected mass (nm, times a per-particle contrast factor) of spheres or cubes on a support.

    Diffraction contrast makes some particles much darker than others in bright
    field; HAADF contrast follows thickness, so ``contrast_spread`` is small there.
    """
    height, width = shape
    mean_area_px = (diameter_nm / pixel_nm) ** 2
    count = int(min(900, max(2, coverage * height * width / mean_area_px)))
    mass = np.zeros(shape)
    period_px = None
    if crystal is not None:
        period_px = min(np.linalg.norm(CRYSTALS[crystal][0]), np.linalg.norm(CRYSTALS[crystal][1])) / pixel_nm
    for _ in range(count):
        size_px = diameter_nm * rng.lognormal(0, 0.3) / pixel_nm
        r0, c0 = rng.uniform(0, height), rng.uniform(0, width)
        half = int(size_px * 0.75) + 2
        top, left = max(0, int(r0) - half), max(0, int(c0) - half)
        bottom, right = min(height, int(r0) + half + 1), min(width, int(c0) + half + 1)
        if bottom <= top or right <= left:
            continue
        yy, xx = np.mgrid[top:bottom, left:right]
        dy, dx = yy - r0, xx - c0
        theta = rng.uniform(0, np.pi)
        u, v = dx * np.cos(theta) + dy * np.sin(theta), -dx * np.sin(theta) + dy * np.cos(theta)
        if cubes:
            inside = (np.abs(u) < size_px / 2) & (np.abs(v) < size_px / 2)
            thickness = np.where(inside, size_px * pixel_nm, 0.0)
        else:
            radius = size_px / 2
            thickness = 2 * np.sqrt(np.clip(radius**2 - dx**2 - dy**2, 0, None)) * pixel_nm
        if period_px is not None and period_px >= 3:
            # Lattice fringes inside each crystallite, in its own orientation.
            thickness *= 0.45 + 0.55 * (np.cos(2 * np.pi * u / period_px) * np.cos(2 * np.pi * v / period_px)) ** 2
        factor = max(0.1, 1 + contrast_spread * rng.standard_normal())
        patch = mass[top:bottom, left:right]
        np.maximum(patch, thickness * factor, out=patch)
    return mass


def particles_at_atomic_resolution(rng, shape, pixel_nm, crystal, diameter_nm=4.0, coverage=0.12, probe_nm=0.06):
    """HAADF of crystalline nanoparticles on a thin amorphous support at atomic resolution (what a gold catalyst
    looks like at 2 Mx): each particle a rounded crystallite in its own orientation, its atom columns brighter
    where it is thicker, the support a faint grainy haze between them."""
    height, width = shape
    count = int(max(2, coverage * height * width / (diameter_nm / pixel_nm) ** 2))
    rows, cols, weights = [], [], []
    for _ in range(count):
        radius_px = diameter_nm * rng.lognormal(0, 0.3) / pixel_nm / 2
        r0, c0 = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        shift = tuple(rng.uniform(0, 3, 2))
        r, c, w = _lattice_positions(shape, pixel_nm, crystal, rng.uniform(0, np.pi), shift)
        # A slightly faceted outline: the radius wobbles with the angle around the centre.
        angle = np.arctan2(r - r0, c - c0)
        edge = radius_px * (1 + 0.06 * np.cos(4 * angle + rng.uniform(0, np.pi)))
        squared = (r - r0) ** 2 + (c - c0) ** 2
        inside = squared < edge**2
        # HAADF intensity follows the column's length through a sphere.
        rows.append(r[inside])
        cols.append(c[inside])
        weights.append(w[inside] * np.sqrt(1 - squared[inside] / edge[inside] ** 2))
    rows, cols, weights = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    jitter = 0.008 / pixel_nm
    rows, cols = rows + rng.normal(0, jitter, rows.shape), cols + rng.normal(0, jitter, cols.shape)
    sigma_px = max(0.7, probe_nm / pixel_nm)
    columns = ndimage.gaussian_filter(_splat(shape, rows, cols, weights), sigma_px) * 2 * np.pi * sigma_px**2
    support = 0.06 + 0.02 * amorphous(rng, shape, max(1.0, 0.15 / pixel_nm))
    return columns + support


def phase_contrast(
    potential, pixel_nm, voltage_kv, defocus_nm, cs_mm=1.2, amplitude=0.07, strength=0.3, information_limit_inv_nm=12.0
):
    """Bright-field phase-contrast image of a weak-phase object through the objective lens's CTF.

    Positive ``defocus_nm`` is underfocus (Kirkland's chi with the sign flipped),
    so Scherzer focus is +sqrt(4/3 Cs lambda), about 56 nm at 300 kV and Cs 1.2 mm.
    """
    wavelength = electron_wavelength_nm(voltage_kv)
    ky = np.fft.fftfreq(potential.shape[0], pixel_nm)
    kx = np.fft.rfftfreq(potential.shape[1], pixel_nm)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    chi = np.pi * wavelength * defocus_nm * k2 - 0.5 * np.pi * cs_mm * 1e6 * wavelength**3 * k2**2
    envelope = np.exp(-((k2 / information_limit_inv_nm**2) ** 2))
    transfer = (np.sin(chi) + amplitude * np.cos(chi)) * envelope
    signal = np.fft.irfft2(np.fft.rfft2(potential) * transfer, s=potential.shape)
    return 1.0 - strength * signal / (np.abs(signal).max() or 1.0)


def spot_pattern(rng, shape, pixel_inv_nm, crystal, beam_stop=False) -> np.ndarray:
    """Zone-axis diffraction: a saturating direct beam and reciprocal-lattice spots fading with |g|."""
    a1, a2, basis = CRYSTALS[crystal]
    reciprocal = np.linalg.inv(np.array([a1, a2]).T).T  # rows b1, b2 with a_i . b_j = delta_ij
    g_max = np.hypot(*shape) / 2 * pixel_inv_nm
    n = int(g_max / np.linalg.norm(reciprocal, axis=1).min()) + 1
    h, k = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    h, k = h.ravel(), k.ravel()
    g = np.outer(h, reciprocal[0]) + np.outer(k, reciprocal[1])
    structure = sum(w * np.exp(2j * np.pi * (h * f1 + k * f2)) for f1, f2, w in basis)
    g_len = np.linalg.norm(g, axis=1)
    # Debye-Waller-like fall-off and random excitation errors from a slight mistilt.
    intensity = np.abs(structure) ** 2 * np.exp(-0.04 * g_len**2) * rng.uniform(0.3, 1.0, g_len.shape)
    intensity[g_len == 0] = 0
    angle = rng.uniform(0, np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = g @ rotation.T / pixel_inv_nm
    centre = np.array(shape) / 2 + rng.normal(0, 3, 2)
    spots = ndimage.gaussian_filter(_splat(shape, xy[:, 1] + centre[0], xy[:, 0] + centre[1], intensity), 1.3)
    pattern = 3e4 * spots / (spots.max() or 1.0) + _direct_beam(shape, centre)
    return _with_beam_stop(rng, pattern, centre) if beam_stop else pattern


def ring_pattern(rng, shape, pixel_inv_nm, rings=GOLD_RINGS) -> np.ndarray:
    """Polycrystalline rings, spotty along their circumference as in a nanoparticle film."""
    centre = np.array(shape) / 2 + rng.normal(0, 3, 2)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    radius_px = np.hypot(yy - centre[0], xx - centre[1])
    azimuth = np.arctan2(yy - centre[0], xx - centre[1])
    bins = ((azimuth + np.pi) / (2 * np.pi) * 720).astype(int) % 720
    pattern = np.zeros(shape)
    for spacing_nm, weight in rings:
        grains = ndimage.gaussian_filter1d(rng.gamma(0.6, 1.0, 720), 1.5, mode="wrap")
        ring_px = 1 / spacing_nm / pixel_inv_nm
        pattern += weight * np.exp(-0.5 * ((radius_px - ring_px) / 1.6) ** 2) * grains[bins]
    return 2e3 * pattern / (pattern.max() or 1.0) + _direct_beam(shape, centre)


def _direct_beam(shape, centre) -> np.ndarray:
    """Unscattered beam (far above the spots: diffraction spans four or five decades) and its inelastic halo."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    return 5e6 * np.exp(-r2 / (2 * 2.0**2)) + 150 / (1 + r2 / 25.0**2) ** 1.5 + 2.0


def _with_beam_stop(rng, pattern, centre) -> np.ndarray:
    """A beam stop: a dark rod from the edge that covers the direct beam."""
    yy, xx = np.mgrid[: pattern.shape[0], : pattern.shape[1]]
    angle = rng.uniform(0, 2 * np.pi)
    along = (xx - centre[1]) * np.cos(angle) + (yy - centre[0]) * np.sin(angle)
    across = -(xx - centre[1]) * np.sin(angle) + (yy - centre[0]) * np.cos(angle)
    shadow = ((along > -8) & (np.abs(across) < 7)) | (along**2 + across**2 < 12**2)
    return np.where(shadow, 0.05 * pattern.min() + 1.0, pattern)


def sem_nanowires(rng, shape, pixel_nm, diameter_nm=90.0, length_nm=2500.0, count=40) -> np.ndarray:
    """Secondary-electron image of nanowires on a substrate: bright edges, brighter tips (seen at 30-45 deg tilt)."""
    image = 0.22 + 0.03 * amorphous(rng, shape, 3.0)
    height, width = shape
    for _ in range(count):
        width_px = max(2.0, diameter_nm * rng.lognormal(0, 0.15) / pixel_nm)
        length_px = length_nm * rng.lognormal(0, 0.35) / pixel_nm
        angle = np.radians(rng.normal(-90, 12))  # mostly 'up' in a tilted view of vertical wires
        r0, c0 = rng.uniform(0, height * 1.2), rng.uniform(0, width)
        r1, c1 = r0 + length_px * np.sin(angle), c0 + length_px * np.cos(angle)
        top, bottom = int(max(0, min(r0, r1) - width_px)), int(min(height, max(r0, r1) + width_px + 1))
        left, right = int(max(0, min(c0, c1) - width_px)), int(min(width, max(c0, c1) + width_px + 1))
        if bottom <= top or right <= left:
            continue
        yy, xx = np.mgrid[top:bottom, left:right]
        direction = np.array([np.sin(angle), np.cos(angle)])
        t = np.clip(((yy - r0) * direction[0] + (xx - c0) * direction[1]) / length_px, 0, 1)
        distance = np.hypot(yy - (r0 + t * length_px * direction[0]), xx - (c0 + t * length_px * direction[1]))
        edge = np.clip(distance / (width_px / 2), 0, 1)
        wire = 0.5 + 0.35 * edge**4 + 0.15 * t  # edge effect: more secondaries escape near the sides
        patch = image[top:bottom, left:right]
        np.copyto(patch, np.maximum(patch, wire), where=distance < width_px / 2)
    return ndimage.gaussian_filter(image, 0.7)


def sem_particles(rng, shape, pixel_nm, diameter_nm, coverage, grains=True) -> np.ndarray:
    """Secondary-electron image of rounded particles (agglomerates of primary grains) on a substrate."""
    image = 0.18 + 0.03 * amorphous(rng, shape, 2.0)
    height, width = shape
    radius_mean = diameter_nm / 2 / pixel_nm
    count = int(min(400, max(1, coverage * height * width / (np.pi * radius_mean**2))))
    for _ in range(count):
        radius = max(2.0, radius_mean * rng.lognormal(0, 0.3))
        r0, c0 = rng.uniform(0, height), rng.uniform(0, width)
        top, bottom = max(0, int(r0 - radius)), min(height, int(r0 + radius) + 1)
        left, right = max(0, int(c0 - radius)), min(width, int(c0 + radius) + 1)
        if bottom <= top or right <= left:
            continue
        yy, xx = np.mgrid[top:bottom, left:right]
        rho = np.hypot(yy - r0, xx - c0) / radius
        inside = rho < 1
        particle = 0.45 + 0.4 * rho**3  # rims are bright: the beam meets the surface at a grazing angle
        if grains and radius > 12:
            seeds = rng.uniform([top, left], [bottom, right], (int(radius**2 / 40) + 4, 2))
            _, grain = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1))
            particle = particle + rng.uniform(-0.12, 0.12, len(seeds))[grain].reshape(yy.shape)
        patch = image[top:bottom, left:right]
        np.copyto(patch, particle, where=inside)
    return ndimage.gaussian_filter(image, 0.6)


def sem_lamella(rng, shape, pixel_nm) -> np.ndarray:
    """A FIB lamella seen at 52 deg: milled trenches either side of a thin wall with curtaining and a Pt cap."""
    height, width = shape
    image = 0.32 + 0.03 * amorphous(rng, shape, 2.0)
    yy, xx = np.mgrid[:height, :width]
    left, right = int(width * rng.uniform(0.18, 0.28)), int(width * rng.uniform(0.72, 0.82))
    wall_top, wall_bottom = int(height * 0.42), int(height * 0.56)
    across = (xx >= left) & (xx < right)
    for trench_top, trench_bottom in ((int(height * 0.15), wall_top), (wall_bottom, int(height * 0.85))):
        trench = across & (yy >= trench_top) & (yy < trench_bottom)
        depth = (yy - trench_top) / max(1, trench_bottom - trench_top)
        image[trench] = (0.08 + 0.12 * depth)[trench]
    curtains = 1 + 0.15 * ndimage.gaussian_filter(rng.standard_normal((1, width)), (0, 1.5))
    wall = across & (yy >= wall_top) & (yy < wall_bottom)
    image[wall] = (0.55 * np.broadcast_to(curtains, shape))[wall]
    cap = across & (yy >= wall_top - max(2, height // 60)) & (yy < wall_top)
    image[cap] = 0.85
    return ndimage.gaussian_filter(image, 0.8)


def to_counts(rng, intensity, dose, dtype, offset=0.0, read_noise=0.0) -> np.ndarray:
    """Detector counts: Poisson shot noise on ``intensity * dose``, an offset, read noise, clipped to the dtype."""
    counts = rng.poisson(np.clip(intensity, 0, None) * dose).astype(float) + offset
    if read_noise:
        counts += rng.normal(0, read_noise, counts.shape)
    info = np.iinfo(dtype)
    return np.clip(np.rint(counts), info.min, info.max).astype(dtype)


def with_databar(image8: np.ndarray, fields: list[str], scale_bar_px: int, scale_label: str) -> np.ndarray:
    """SEM software burns a strip of acquisition settings and a scale bar under the image."""
    height, width = image8.shape
    bar_height = max(48, height // 8)
    canvas = Image.new("L", (width, height + bar_height), 0)
    canvas.paste(Image.fromarray(image8), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=bar_height // 4)
    columns = (len(fields) + 1) // 2
    column_width = (width - scale_bar_px - 24) // columns
    for index, text in enumerate(fields):
        row, column = divmod(index, columns)
        draw.text((6 + column * column_width, height + 6 + row * bar_height // 2), text, fill=255, font=font)
    x0 = width - scale_bar_px - 12
    draw.text((x0, height + 6), scale_label, fill=255, font=font)
    draw.rectangle((x0, height + bar_height - 14, x0 + scale_bar_px, height + bar_height - 10), fill=255)
    return np.asarray(canvas)
