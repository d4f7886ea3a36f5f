"""What an image's Fourier transform says: lattice periodicities, how noisy it is, a radial profile.

One windowed power spectrum of the image's central square (at most 512 px, at full resolution) serves four
readers:

- lattice peaks: a crystal imaged at atomic resolution puts sharp, isolated spots into its power spectrum at the
  reciprocals of its lattice spacings (SrTiO3 [001]: 0.39 nm and 0.28 nm).  A spot must stand far above the
  background of its own frequency ring *and* above the power a few pixels away in every direction, so the
  streaks that aligned objects, scan lines or image edges draw through the spectrum are not mistaken for spots;
- noise share: the white-noise floor (the power near Nyquist, where little else reaches) spread over all
  frequencies, as a share of the image's variance;
- a radial profile (log power in log-spaced frequency bands) and the share of power per orientation, for the
  feature vector.

The Hann window keeps the image's edges from drawing a bright cross through the spectrum.  Transforms run in
float32 through ``scipy.fft`` (a 1024² transform costs about 3 ms here; numpy's float64 one about 20 ms).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import lazy_loader
import numpy as np

scipy = lazy_loader.load("scipy")  # scipy.fft at first use: registering the taggers must stay quick

# A spot must carry this many times its ring's background power: white-noise speckle averaged over 3x3 passes
# 4x about once in fifty million pixels, so 40x asks for a real periodicity, not luck...
SPOT_OVER_RING = 40.0
# ... and this many times the power found 4 px away in the second-brightest of 8 directions (a streak keeps
# its power along itself, so two of the eight probes sit on it).
SPOT_OVER_SURROUNDINGS = 6.0
# Spots at fewer than this many cycles across the crop are large-scale shading, not a lattice.
MIN_CYCLES = 6
PROFILE_BANDS = 24


@dataclass
class Spectrum:
    power: np.ndarray  # fftshifted |F|^2 of the windowed central square, float64
    side: int  # the square's side in pixels: a spot r pixels from the centre has period side / r
    radius: np.ndarray  # integer ring index of every spectrum pixel
    ring_mean: np.ndarray  # background power per ring (spots left out), indexed by ring


@dataclass
class LatticeSpot:
    period_px: float
    angle_deg: float  # direction of the spot in the spectrum, 0-180
    strength: float  # power over its ring's mean


@dataclass
class Lattice:
    spots: list[LatticeSpot] = field(default_factory=list)

    @property
    def directions(self) -> int:
        """Independent lattice directions (spots more than 15 degrees apart)."""
        angles: list[float] = []
        for spot in self.spots:
            if all(min(abs(spot.angle_deg - a), 180 - abs(spot.angle_deg - a)) > 15 for a in angles):
                angles.append(spot.angle_deg)
        return len(angles)

    def periods_px(self, tolerance: float = 0.04) -> list[float]:
        """Distinct periods, largest first (spots within ``tolerance`` of each other count once)."""
        distinct: list[float] = []
        for period in sorted((s.period_px for s in self.spots), reverse=True):
            if not distinct or abs(period - distinct[-1]) > tolerance * distinct[-1]:
                distinct.append(period)
        return distinct


def power_spectrum(image: np.ndarray, max_side: int = 512) -> Spectrum:
    """The power spectrum of the image's central square (at most ``max_side``), Hann-windowed."""
    side = min(min(image.shape), max_side) // 2 * 2
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    square = image[top : top + side, left : left + side].astype(np.float32)
    square -= square.mean()
    hann = np.hanning(side).astype(np.float32)
    square *= hann[:, None] * hann[None, :]
    power = np.abs(scipy.fft.fftshift(scipy.fft.fft2(square))).astype(np.float64) ** 2
    radius = _ring_index(side)
    return Spectrum(power=power, side=side, radius=radius, ring_mean=_ring_background(power, radius))


@functools.cache
def _ring_index(side: int) -> np.ndarray:
    y, x = np.indices((side, side))
    radius = np.hypot(y - side // 2, x - side // 2).round().astype(np.int64)
    radius.flags.writeable = False
    return radius


def _ring_background(power: np.ndarray, radius: np.ndarray, reach: int = 4) -> np.ndarray:
    """The power a ring would have without its spots: the running median, over nine neighbouring rings, of
    each ring's mean log power.  At low frequency a ring is only a hundred pixels round, and the four spots
    of a square lattice (smeared along the scan's slow axis) would otherwise raise its mean to their own
    height; a spot's few rings are outvoted by the rings around them."""
    rings = radius.ravel()
    counts = np.maximum(np.bincount(rings), 1)
    log_mean = np.bincount(rings, weights=np.log(power.ravel() + 1e-300)) / counts
    padded = np.pad(log_mean, reach, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1)
    # the mean log of exponentially distributed power (speckle) lies Euler's gamma below the log of its mean
    return np.exp(np.median(windows, axis=1) + np.euler_gamma)


def lattice(spectrum: Spectrum, max_spots: int = 12) -> Lattice:
    """The isolated spots of the spectrum: periodicities of the image, one per Friedel pair."""
    power, side, centre = spectrum.power, spectrum.side, spectrum.side // 2
    if side < 4 * MIN_CYCLES:
        return Lattice()
    smooth = _box3(power)
    over_ring = smooth / np.maximum(spectrum.ring_mean[spectrum.radius], 1e-300)
    nyquist = side // 2
    usable = (spectrum.radius >= MIN_CYCLES) & (spectrum.radius <= int(0.9 * nyquist))
    usable[:centre, :] = False  # one of each Friedel pair: the spectrum of a real image is centrosymmetric
    usable[centre, :centre] = False
    candidates = np.argwhere(usable & (over_ring >= SPOT_OVER_RING))
    if len(candidates) > 5000:  # a spectrum this busy is not a lattice's handful of spots
        candidates = candidates[np.argsort(over_ring[tuple(candidates.T)])[-5000:]]
    spots: list[LatticeSpot] = []
    taken: list[tuple[int, int]] = []
    for y, x in sorted(candidates.tolist(), key=lambda p: -over_ring[p[0], p[1]]):
        if any(abs(y - ty) <= 3 and abs(x - tx) <= 3 for ty, tx in taken):
            continue
        if not _isolated(smooth, y, x):
            continue
        taken.append((y, x))
        fy, fx = _centroid(power, y, x)
        radius = np.hypot(fy - centre, fx - centre)
        spots.append(
            LatticeSpot(
                period_px=side / radius,
                angle_deg=float(np.degrees(np.arctan2(centre - fy, fx - centre)) % 180),
                strength=float(over_ring[y, x]),
            )
        )
        if len(spots) == max_spots:
            break
    return Lattice(spots=spots)


def radial_profile(spectrum: Spectrum, bands: int = PROFILE_BANDS) -> np.ndarray:
    """Log power in log-spaced frequency bands (2 px to Nyquist) against a 1/f^2 spectrum, minus its mean.

    Most micrographs fall off roughly as 1/f^2 (edges and shapes at every scale), so what tells images apart is
    how they depart from it: a blurred image falls faster, a noisy one levels off, a lattice bulges.
    """
    nyquist = spectrum.side // 2
    edges = np.unique(np.geomspace(2, nyquist + 1, bands + 1).astype(int))
    rings = spectrum.ring_mean
    values = np.array(
        [np.log10(rings[a:b].mean() + 1e-30) + 2 * np.log10((a + b) / 2) for a, b in zip(edges[:-1], edges[1:])]
    )
    if len(values) < bands:  # a small image has fewer distinct bands: stretch to the fixed length
        values = np.interp(np.linspace(0, 1, bands), np.linspace(0, 1, max(len(values), 1)), values)
    return values - values.mean()


def anisotropy(spectrum: Spectrum, sectors: int = 8) -> np.ndarray:
    """Share of mid-frequency power in each orientation sector, sorted largest first (rotation does not matter)."""
    band, sector = _sectors(spectrum.side, sectors)
    totals = np.bincount(sector, weights=spectrum.power[band], minlength=sectors)
    shares = totals / max(totals.sum(), 1e-300)
    return np.sort(shares)[::-1]


@functools.cache
def _sectors(side: int, sectors: int) -> tuple[np.ndarray, np.ndarray]:
    """The mid-frequency band (3 px to a quarter of the side) and each of its pixels' orientation sector."""
    centre = side // 2
    y, x = np.indices((side, side))
    angle = np.arctan2(centre - y, x - centre) % np.pi
    band = (_ring_index(side) >= 3) & (_ring_index(side) <= side // 4)
    sector = np.minimum((angle[band] / np.pi * sectors).astype(np.int64), sectors - 1)
    band.flags.writeable = sector.flags.writeable = False
    return band, sector


def _box3(power: np.ndarray) -> np.ndarray:
    """Mean over each 3x3 neighbourhood: a windowed spot spreads over about that much."""
    padded = np.pad(power, 1, mode="edge")
    total = np.zeros_like(power)
    for dy in range(3):
        for dx in range(3):
            total += padded[dy : dy + power.shape[0], dx : dx + power.shape[1]]
    return total / 9


def _isolated(smooth: np.ndarray, y: int, x: int, reach: int = 4) -> bool:
    if not (reach <= y < smooth.shape[0] - reach and reach <= x < smooth.shape[1] - reach):
        return False
    # a local maximum of its own neighbourhood...
    if smooth[y, x] < smooth[y - 2 : y + 3, x - 2 : x + 3].max():
        return False
    # ... standing above what lies a few pixels away in all but one direction
    probes = sorted(smooth[y + dy * reach, x + dx * reach] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
    return smooth[y, x] >= SPOT_OVER_SURROUNDINGS * probes[-2]


def _centroid(power: np.ndarray, y: int, x: int) -> tuple[float, float]:
    window = power[y - 1 : y + 2, x - 1 : x + 2]
    total = window.sum()
    if total <= 0:
        return float(y), float(x)
    dy, dx = np.indices(window.shape) - 1
    return y + float((window * dy).sum() / total), x + float((window * dx).sum() / total)


def noise_share(spectrum: Spectrum) -> float:
    """The share of the image's variance that is white noise: the floor near Nyquist, spread over all frequencies
    (Parseval: the power spectrum sums to the pixel count times the windowed image's sum of squares)."""
    nyquist = spectrum.side // 2
    total = spectrum.power.sum()
    if nyquist < 8 or total <= 0:
        return 0.0
    floor = np.median(spectrum.ring_mean[int(0.85 * nyquist) : nyquist + 1])
    return float(min(1.0, floor * spectrum.power.size / total))
