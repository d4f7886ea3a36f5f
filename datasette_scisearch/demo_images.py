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
import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import tifffile
from ncempy.io import emd, mrc
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
        side = lambda r, c: (c - shape[1] / 2) * np.cos(normal) + (r - shape[0] / 2) * np.sin(normal) > offset
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


# ---------------------------------------------------------------- from scene to detector counts


def render(acquisition: Acquisition) -> np.ndarray:
    """The array a detector would have written for this acquisition (counts, in the format's dtype)."""
    rng = np.random.default_rng(acquisition.seed)
    a = acquisition
    shape = a.shape[-2:]
    pixel_nm = a.pixel_size_nm
    velox = a.file_format == "velox-emd"
    if a.scene == "columns_haadf":
        columns = atomic_columns(rng, shape, pixel_nm, a.crystal, grain_boundary=rng.random() < 0.4)
        return _stem_counts(rng, columns)
    if a.scene == "columns_hrtem":
        potential = atomic_columns(rng, shape, pixel_nm, a.crystal, probe_nm=0.04)
        scherzer_nm = np.sqrt(4 / 3 * 1.2e6 * electron_wavelength_nm(a.voltage_kv))
        image = phase_contrast(
            potential, pixel_nm, a.voltage_kv, scherzer_nm * rng.uniform(0.8, 1.2), strength=0.5,
            information_limit_inv_nm=6.0,
        )
        return _camera_counts(rng, image, dose=800)
    if a.scene in ("particles_haadf", "cubes_haadf"):
        mass = _particles(rng, a, cubes=a.scene == "cubes_haadf", contrast_spread=0.08)
        return _stem_counts(rng, 0.04 + 0.01 * amorphous(rng, shape, 1.5) + mass)
    if a.scene in ("particles_bf", "cubes_bf"):
        mass = _particles(rng, a, cubes=a.scene == "cubes_bf", contrast_spread=0.45)
        support = 1 + 0.04 * amorphous(rng, shape, max(1.0, 0.3 / pixel_nm))
        return _camera_counts(rng, np.exp(-0.06 * mass) * support, dose=900)
    if a.scene == "carbon_bf":
        image = phase_contrast(amorphous(rng, shape, 0.7), pixel_nm, a.voltage_kv, rng.uniform(400, 1500))
        return _camera_counts(rng, image, dose=700)
    if a.scene in ("spots", "rings"):
        if a.scene == "spots":
            pattern = spot_pattern(rng, shape, a.pixel_size_inv_nm, a.crystal, beam_stop=rng.random() < 0.3)
        else:
            pattern = ring_pattern(rng, shape, a.pixel_size_inv_nm)
        return to_counts(rng, pattern, 1.0, np.int16 if velox else np.uint16, read_noise=1.5)
    if a.scene == "particles_series":
        mass = _particles(rng, a, cubes=False, contrast_spread=0.08)
        support = 0.04 + 0.01 * amorphous(rng, shape, 1.5)
        drift = rng.normal(0, 1.2, 2)
        frames = [
            _stem_counts(rng, support + np.roll(mass, tuple(np.rint(drift * n).astype(int)), axis=(0, 1)))
            for n in range(a.shape[0])
        ]
        return np.stack(frames)
    if a.scene in ("nanowires_sem", "particles_sem", "lamella_sem", "cubes_sem"):
        return _sem_counts(rng, _sem_scene(rng, a))
    if a.scene in ("cryo_movie", "cryo_sum", "cryo_tilt"):
        return _cryo(rng, a)
    raise ValueError(f"unknown demo scene {a.scene!r}")


def _particles(rng, a: Acquisition, cubes: bool, contrast_spread: float) -> np.ndarray:
    diameter_nm = 15.0 if cubes else 4.0
    coverage = 0.2 if cubes else 0.08
    return nanoparticles(
        rng, a.shape[-2:], a.pixel_size_nm, diameter_nm, coverage, cubes, a.crystal, contrast_spread
    )


def _stem_counts(rng, intensity) -> np.ndarray:
    """A scanned image: a detector offset (the real TEAM 0.5 file sits near 5000), shot noise, line-to-line flicker."""
    scale = np.percentile(intensity, 99.9) or 1.0
    flicker = 1 + 0.02 * rng.standard_normal((intensity.shape[0], 1))
    return to_counts(rng, intensity / scale * flicker, dose=2500, dtype=np.uint16, offset=4800, read_noise=20)


def _camera_counts(rng, intensity, dose) -> np.ndarray:
    """A CMOS camera frame (Ceta writes signed 16-bit with the dark level subtracted)."""
    return to_counts(rng, intensity, dose=dose, dtype=np.int16, read_noise=3)


def _sem_scene(rng, a: Acquisition) -> np.ndarray:
    shape, pixel_nm = a.shape[-2:], a.pixel_size_nm
    if a.scene == "nanowires_sem":
        return sem_nanowires(rng, shape, pixel_nm, count=int(rng.integers(15, 60)))
    if a.scene == "lamella_sem":
        return sem_lamella(rng, shape, pixel_nm)
    if a.scene == "cubes_sem":
        return sem_particles(rng, shape, pixel_nm, diameter_nm=18.0, coverage=0.35, grains=False)
    return sem_particles(rng, shape, pixel_nm, diameter_nm=9000.0, coverage=0.3)


def _sem_counts(rng, intensity) -> np.ndarray:
    """8-bit SEM frame: few electrons per pixel at fast scan, contrast stretched as the operator would."""
    noisy = rng.poisson(np.clip(intensity, 0, None) * 60).astype(float)
    noisy += rng.normal(0, 2.0, (noisy.shape[0], 1))  # line-to-line flicker of a fast scan
    low, high = np.percentile(noisy, [0.5, 99.8])
    return np.clip((noisy - low) / max(high - low, 1e-9) * 235 + 10, 0, 255).astype(np.uint8)


def _cryo(rng, a: Acquisition) -> np.ndarray:
    """Low-dose micrographs of apoferritin in ice: weak phase contrast under heavy shot noise."""
    shape, pixel_nm = a.shape[-2:], a.pixel_size_nm
    count = int(0.25 * shape[0] * shape[1] * pixel_nm**2 / 144)
    centres = np.column_stack(
        [rng.uniform(8, shape[0] * pixel_nm - 8, count), rng.uniform(8, shape[1] * pixel_nm - 8, count),
         rng.uniform(-30, 30, count)]
    )
    defocus_nm = rng.uniform(800, 2500)
    ice = 0.15 * amorphous(rng, shape, 6.0)
    pixel_area_a2 = (pixel_nm * 10) ** 2
    if a.scene == "cryo_tilt":
        frames = []
        for tilt in np.radians(np.linspace(-60, 60, a.shape[0])):
            # Spheres look the same from every side: tilting only moves them, about the image's middle column.
            middle_nm = shape[1] * pixel_nm / 2
            across_nm = (centres[:, 1] - middle_nm) * np.cos(tilt) + centres[:, 2] * np.sin(tilt) + middle_nm
            mass = apoferritin_mass(shape, pixel_nm, np.column_stack([centres[:, 0], across_nm]) / pixel_nm)
            # Thicker ice at high tilt: the path length grows as 1/cos(tilt) and fewer electrons get through.
            signal = phase_contrast(mass + ice, pixel_nm, a.voltage_kv, defocus_nm, cs_mm=2.7, strength=0.15)
            dose = 2.5 * pixel_area_a2 * np.cos(tilt)
            frames.append(rng.poisson(np.clip(signal, 0, None) * dose).astype(np.float32) / dose)
        return np.stack(frames).astype(np.float32)
    mass = apoferritin_mass(shape, pixel_nm, centres[:, :2] / pixel_nm)
    signal = phase_contrast(mass + ice, pixel_nm, a.voltage_kv, defocus_nm, cs_mm=2.7, strength=0.12)
    total_dose = 40.0 * pixel_area_a2  # 40 e/A^2 in all, as a single-particle dataset uses
    if a.scene == "cryo_sum":
        # A motion-corrected sum of Poisson frames is one Poisson draw at the total dose.
        return (rng.poisson(np.clip(signal, 0, None) * total_dose) / total_dose)[None].astype(np.float32)
    dose_per_frame = total_dose / a.shape[0]
    drift = rng.normal(0, 0.6, 2)  # px per frame: the stage and the ice creep while the movie runs
    return np.stack(
        [rng.poisson(np.clip(np.roll(signal, tuple(np.rint(drift * n).astype(int)), (0, 1)), 0, None) * dose_per_frame)
         for n in range(a.shape[0])]
    ).astype(np.int16)


def apoferritin_mass(shape, pixel_nm, centres_px) -> np.ndarray:
    """Projected mass of hollow protein shells (12 nm outside, 8 nm inside) at the given centres (px)."""
    mass = np.zeros(shape)
    outer, inner = 6.0 / pixel_nm, 4.0 / pixel_nm
    span = int(2 * outer) + 3
    for r0, c0 in centres_px:
        top, left = int(r0 - outer) - 1, int(c0 - outer) - 1
        yy, xx = np.mgrid[top : top + span, left : left + span]
        inside = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
        rho2 = (yy - r0) ** 2 + (xx - c0) ** 2
        shell = np.sqrt(np.clip(outer**2 - rho2, 0, None)) - np.sqrt(np.clip(inner**2 - rho2, 0, None))
        np.maximum.at(mass, (yy[inside], xx[inside]), shell[inside] * pixel_nm)
    return mass


# ---------------------------------------------------------------- file formats


def write_acquisition(acquisition: Acquisition) -> None:
    """Render the acquisition and write it in its instrument's format; the file's mtime is the acquisition time."""
    data = render(acquisition)
    acquisition.path.parent.mkdir(parents=True, exist_ok=True)
    acquisition.path.unlink(missing_ok=True)
    {
        "berkeley-emd": _write_berkeley_emd,
        "velox-emd": _write_velox_emd,
        "fei-tiff": _write_fei_tiff,
        "zeiss-tiff": _write_zeiss_tiff,
        "mrc": _write_mrc,
    }[acquisition.file_format](acquisition, data)
    # Berkeley EMD and MRC keep no acquisition time a reader can rely on: readers fall back to the mtime.
    os.utime(acquisition.path, (acquisition.acquired_at_epoch, acquisition.acquired_at_epoch))


def _write_berkeley_emd(a: Acquisition, data: np.ndarray) -> None:
    """Berkeley EMD v0.2 through ncempy, with the groups and attributes of TEAM 0.5's own files (Acquisition_18.emd)."""
    diffraction = a.kind == "diffraction"
    step, unit = (a.pixel_size_inv_nm, "1/nm") if diffraction else (a.pixel_size_nm, "n_m")  # TEAM writes 'n_m'
    frame_time_s = 0.5
    dims = [(np.arange(n, dtype=np.float32) * np.float32(step), name, np.bytes_(unit.encode()))
            for n, name in zip(data.shape[-2:], ("Y", "X"))]
    if data.ndim == 3:
        dims.insert(0, (np.arange(data.shape[0], dtype=np.float32) * frame_time_s, "time", np.bytes_(b"s")))
    with emd.fileEMD(a.path, readonly=False) as handle:
        group = handle.put_emdgroup("series" if data.ndim == 3 else "single", data, dims)
        if group is None:
            raise RuntimeError(f"ncempy could not write the EMD group of '{a.path}'")
        handle.data.attrs["filename"] = a.path.stem
        times = a.acquired_at_epoch + frame_time_s * np.arange(data.shape[0]) if data.ndim == 3 else a.acquired_at_epoch
        group.create_dataset("acquisition times", data=np.float64(times))
        microscope = handle.microscope.attrs
        microscope["name"] = "TEAM 0.5"
        microscope["high tension"] = np.float64(a.voltage_kv * 1e3)  # volts
        microscope["camera length"] = np.float64(a.camera_length_mm / 1e3)  # metres
        microscope["binning"] = np.int32(4 if diffraction else 1)
        microscope["max binning"] = np.int32(4096)
        microscope["spot size"] = np.int32(7)
        if not diffraction:
            microscope["magnification"] = np.float64(a.magnification)
            microscope["dwell time"] = np.float64(1e-6)  # scanned: readers take a dwell time to mean STEM
            microscope["convergence angle"] = np.float64(0.0249 if a.voltage_kv >= 200 else 0.030)
            microscope["defocus"] = np.float64(np.random.default_rng(a.seed).normal(0, 5e-9))
        handle.user.attrs["User name"] = a.user_name
        handle.sample.attrs["sample name"] = a.sample
        stage = handle.file_hdl.create_group("stage")
        stage.attrs["position"] = np.random.default_rng(a.seed + 1).uniform(-50, 50, 5)
        stage.attrs["type"] = "NCEM TEAM Stage"


def _velox_number(value: float) -> str:
    return f"{value:.17g}"  # Velox writes every number as a string with 17 significant digits


def _velox_metadata(a: Acquisition, data: np.ndarray) -> dict:
    """The JSON Velox stores next to each image, with the keys of the real Themis files in ../shared/data/em."""
    stem = a.mode == "STEM"
    diffraction = a.kind == "diffraction"
    height, width = data.shape[:2]
    if diffraction:
        pixel, unit = a.pixel_size_inv_nm * 1e9, "1/m"
    else:
        pixel, unit = a.pixel_size_nm * 1e-9, "m"
    optics = {
        "GunLensSetting": "3", "ExtractorVoltage": "4050", "AccelerationVoltage": _velox_number(a.voltage_kv * 1e3),
        "SpotIndex": "9" if stem else "3", "Focus": "0", "StemFocus": "0", "Defocus": "0",
        "HighMagnificationMode": "None" if stem else "SA",
        "OperatingMode": "2" if stem else "1",  # 1 TEM, 2 STEM
        "TemOperatingSubMode": "None" if stem else "BrightField",
        "ProjectorMode": "1" if stem or diffraction else "2",  # 1 diffraction, 2 imaging
        "EFTEMOn": "false", "ObjectiveLensMode": "HM", "IlluminationMode": "Free", "ProbeMode": "2",
        "CameraLength": _velox_number(a.camera_length_mm / 1e3),
    }
    if a.magnification is not None:
        optics["NominalMagnification"] = _velox_number(a.magnification)
    if stem:
        field = _velox_number(a.pixel_size_nm * 1e-9 * width)
        optics["FullScanFieldOfView"] = {"x": field, "y": field}
    detectors = {}
    for index, (name, kind) in enumerate(
        [("BF", "ScanningDetector"), ("BM-Ceta", "ImagingDetector"), ("DF2", "ScanningDetector"),
         ("DF4", "ScanningDetector"), ("HAADF", "ScanningDetector")]
    ):
        detectors[f"Detector-{index}"] = {
            "DetectorName": name, "DetectorType": kind,
            "Inserted": "true" if name == a.detector else "false", "Enabled": "true",
        }
    detector_index = next(i for i, d in detectors.items() if d["DetectorName"] == a.detector).split("-")[1]
    custom = {"Aperture[C2].Name": {"type": "string", "value": "50" if stem else "150"}}
    if stem:
        custom["StemMagnification"] = {"type": "double", "value": _velox_number(a.magnification)}
    epoch = str(int(a.acquired_at_epoch))
    return {
        "Core": {"MetadataDefinitionVersion": "7.9", "MetadataSchemaVersion": "v1/2013/07",
                 "guid": "00000000000000000000000000000000"},
        "Instrument": {"ControlSoftwareVersion": "2.9.1", "Manufacturer": "FEI Company", "InstrumentId": "3580",
                       "InstrumentClass": "Titan", "InstrumentModel": "Titan", "ComputerName": "THEMISX"},
        "Acquisition": {"AcquisitionStartDatetime": {"DateTime": epoch}, "AcquisitionDatetime": {"DateTime": epoch},
                        "BeamType": "", "SourceType": "XFEG"},
        "Optics": optics,
        "EnergyFilter": {"EntranceApertureType": ""},
        "Stage": {"Position": {"x": "0", "y": "0", "z": "0"}, "AlphaTilt": "0", "BetaTilt": "0",
                  "HolderType": "Single Tilt"},
        "Scan": ({"ScanSize": {"width": str(width), "height": str(height)}, "DwellTime": "1.0000000000000001e-05",
                  "FrameTime": _velox_number(1e-5 * width * height)} if stem else
                 {"ScanSize": {"width": "0", "height": "0"}, "FrameTime": "0.40000000000000002"}),
        "Vacuum": {"VacuumMode": "Ready"},
        "Detectors": detectors,
        "BinaryResult": {
            "AcquisitionUnit": "" if stem else "CameraImage", "CompositionType": "",
            "DetectorIndex": detector_index, "Detector": a.detector,
            "PixelSize": {"width": _velox_number(pixel), "height": _velox_number(pixel)},
            "PixelUnitX": unit, "PixelUnitY": unit,
            "Offset": {"x": _velox_number(-pixel * width / 2), "y": _velox_number(-pixel * height / 2)},
            "Encoding": "" if stem else "Signed",
        },
        "Sample": "", "GasInjectionSystems": "", "CustomProperties": custom,
    }


def _write_velox_emd(a: Acquisition, data: np.ndarray) -> None:
    """Velox EMD as h5py sees the real files: /Data/Image/<uuid>/{Data (H,W,frames), Metadata (JSON bytes, n x 1)}."""
    ids = np.random.default_rng(a.seed + 2)
    image_id, text_id = ids.bytes(16).hex(), ids.bytes(16).hex()
    text = h5py.string_dtype()
    frames = data[..., None]
    metadata = np.zeros((60000, 1), dtype=np.uint8)  # Velox pads the JSON to a fixed 60000 bytes
    encoded = np.frombuffer(json.dumps(_velox_metadata(a, data), indent=4).encode(), dtype=np.uint8)
    metadata[: len(encoded), 0] = encoded
    started = a.acquired_at_local  # the log is written in the microscope PC's local time
    log = "".join(
        f"{(started + dt.timedelta(seconds=delay)):%Y-%m-%d %H:%M:%S} {what} acquisition for experiment of type "
        f"{'Stem' if a.mode == 'STEM' else 'Camera'}\n"
        for delay, what in ((0, "Started"), (2, "Finished"))
    )
    with h5py.File(a.path, "w") as handle:
        group = handle.create_group(f"Data/Image/{image_id}")
        group.create_dataset("Data", data=frames, chunks=frames.shape, maxshape=(*frames.shape[:2], None))
        group.create_dataset("Metadata", data=metadata, chunks=metadata.shape, maxshape=(60000, None))
        group.create_dataset("FrameLookupTable", data=np.zeros(1, np.uint32), maxshape=(None,))
        quoted = json.dumps({"text": log.replace(" ", "%20").replace(":", "%3A").replace("\n", "%0A")})
        handle.create_dataset(f"Data/Text/{text_id}", data=[quoted], dtype=text)
        handle.create_dataset("Experiment", data=[json.dumps({"log": f"/Data/Text/{text_id}"})], dtype=text)
        handle.create_dataset("Version", data=['{\n    "version": "8",\n    "format": "Velox"\n}\n'], dtype=text)
        handle.create_dataset("Info", data=['{\n    "applicationVersion": "2.11.0.899"\n}\n'], dtype=text)


def _scale_bar(field_width_nm: float, width_px: int) -> tuple[int, str]:
    """A round length near a fifth of the field of view, in pixels, with its label."""
    target = field_width_nm / 5
    exponent = 10 ** np.floor(np.log10(target))
    length_nm = max(step * exponent for step in (1, 2, 5) if step * exponent <= target)
    label = f"{length_nm / 1000:g} um" if length_nm >= 1000 else f"{length_nm:g} nm"
    return round(length_nm / field_width_nm * width_px), label


def _write_fei_tiff(a: Acquisition, image8: np.ndarray) -> None:
    """FEI/Thermo SEM TIFF: an INI text in private tag 34682 (FEI_HELIOS) and a databar under the image."""
    height, width = image8.shape
    pixel_m = a.pixel_size_nm * 1e-9
    field_width_m = pixel_m * width  # equals 0.127 m / magnification: FEI files store no magnification
    moment = a.acquired_at_local
    working_distance_m = float(np.random.default_rng(a.seed + 3).uniform(3.8, 4.3)) * 1e-3
    sections = {
        "User": {"Date": f"{moment:%m/%d/%Y}", "Time": f"{moment:%I:%M:%S %p}", "User": a.user, "UserText": ""},
        "System": {"Type": "DualBeam", "Source": "FEG", "Column": "Elstar", "FinalLens": "Elstar",
                   "Chamber": "xT-SDB", "Stage": "5AxesMotorized", "Scan": "PIA 2.0", "Acq": "PIA 2.0",
                   "EucWD": "0.004", "SystemType": "Helios NanoLab 660", "DisplayWidth": "0.124",
                   "DisplayHeight": "0.0931"},
        "Beam": {"HV": f"{a.voltage_kv * 1e3:g}", "Beam": "EBeam", "Scan": "EScan", "ImageMode": "Normal"},
        "EBeam": {"Source": "FEG", "ColumnType": "Elstar", "HV": f"{a.voltage_kv * 1e3:g}",
                  "HFW": repr(field_width_m), "VFW": repr(pixel_m * height), "WD": repr(working_distance_m),
                  "BeamCurrent": "1.0000000000000001e-10", "BeamMode": "1"},
        "Scan": {"InternalScan": "true", "Dwelltime": "1e-06", "PixelWidth": repr(pixel_m),
                 "PixelHeight": repr(pixel_m), "HorFieldsize": repr(field_width_m),
                 "VerFieldsize": repr(pixel_m * height), "FrameTime": f"{1e-6 * width * height:g}"},
        "Stage": {"StageX": "0.00213", "StageY": "-0.00102", "StageZ": repr(working_distance_m),
                  "StageR": "0", "StageT": "0.9076", "WorkingDistance": repr(working_distance_m)},
        "Image": {"ResolutionX": str(width), "ResolutionY": str(height), "DigitalContrast": "1",
                  "MagCanvasRealWidth": "0.127", "MagnificationMode": "4", "ZoomFactor": "1"},
        "Detectors": {"Number": "1", "Name": a.detector, "Mode": "SE"},
    }
    text = "\r\n".join(
        f"[{section}]\r\n" + "\r\n".join(f"{key}={value}" for key, value in entries.items()) + "\r\n"
        for section, entries in sections.items()
    )
    bar_px, bar_label = _scale_bar(field_width_m * 1e9, width)
    fields = [f"HV {a.voltage_kv:.2f} kV", f"mag {a.magnification:,.0f} x".replace(",", " "),
              f"HFW {field_width_m * 1e6:.2f} um", f"det {a.detector}", f"WD {working_distance_m * 1e3:.1f} mm"]
    image = with_databar(image8, fields, bar_px, bar_label)
    tifffile.imwrite(a.path, image, extratags=[(34682, "s", 0, text, True)])


def _zeiss_magnification(value: float) -> str:
    return f"{value / 1e3:.2f} K X" if value >= 1e3 else f"{value:.0f} X"


def _write_zeiss_tiff(a: Acquisition, image8: np.ndarray) -> None:
    """Zeiss SmartSEM TIFF: 'AP_KEY' lines each followed by 'Label = value unit' in private tag 34118 (CZ_SEM)."""
    width = image8.shape[1]
    moment = a.acquired_at_local
    working_distance_mm = float(np.random.default_rng(a.seed + 3).uniform(2.5, 6.0))
    entries = [
        ("SV_SERIAL_NUMBER", "Serial No. = GeminiSEM 500"),
        ("SV_USER_NAME", f"User Name = {a.user}"),
        ("AP_MAG", f"Mag = {_zeiss_magnification(a.magnification)}"),
        ("AP_ACTUALKV", f"EHT = {a.voltage_kv:.2f} kV"),
        ("AP_MANUALKV", f"EHT Target = {a.voltage_kv:.2f} kV"),
        ("AP_WD", f"WD = {working_distance_mm:.1f} mm"),
        ("AP_PIXEL_SIZE", f"Pixel Size = {a.pixel_size_nm:.4g} nm"),
        ("AP_IPROBE", "I Probe = 200.0 pA"),
        ("DP_DETECTOR_CHANNEL", f"Signal A = {a.detector}"),
        ("DP_DETECTOR_TYPE", f"Detector = {a.detector}"),
        ("DP_SCANRATE", "Scan Speed = 7"),
        ("AP_DATE", f"Date :{moment:%d %b %Y}"),
        ("AP_TIME", f"Time :{moment:%H:%M:%S}"),
    ]
    text = "0\r\n0\r\n" + "".join(f"{key}\r\n{line}\r\n" for key, line in entries)
    bar_px, bar_label = _scale_bar(a.pixel_size_nm * width, width)
    fields = [f"EHT = {a.voltage_kv:.2f} kV", f"WD = {working_distance_mm:.1f} mm", f"Signal A = {a.detector}",
              f"Mag = {_zeiss_magnification(a.magnification)}", f"Date :{moment:%d %b %Y}"]
    image = with_databar(image8, fields, bar_px, bar_label)
    tifffile.imwrite(a.path, image, extratags=[(34118, "s", 0, text, True)])


def _write_mrc(a: Acquisition, data: np.ndarray) -> None:
    """MRC through ncempy: the header holds the voxel size in ångström and nothing else a catalog could use."""
    voxel_a = a.pixel_size_nm * 10
    mrc.mrcWriter(str(a.path), np.ascontiguousarray(data), (voxel_a, voxel_a, voxel_a))
    if not a.path.exists() or a.path.stat().st_size < 1024 + data.nbytes:
        raise RuntimeError(f"ncempy could not write '{a.path}' (dtype {data.dtype})")
