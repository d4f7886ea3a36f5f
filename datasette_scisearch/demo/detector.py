"""From a scene to the counts a detector writes: each acquisition's picture, computed from its metadata."""

from __future__ import annotations

import numpy as np

from . import spectra
from .scenes import (
    Acquisition,
    amorphous,
    atomic_columns,
    electron_wavelength_nm,
    nanoparticles,
    particles_at_atomic_resolution,
    phase_contrast,
    ring_pattern,
    sem_lamella,
    sem_nanowires,
    sem_particles,
    spot_pattern,
    to_counts,
)


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
    if a.scene == "particles_columns_haadf":
        return _stem_counts(rng, particles_at_atomic_resolution(rng, shape, pixel_nm, a.crystal))
    if a.scene == "columns_hrtem":
        potential = atomic_columns(rng, shape, pixel_nm, a.crystal, probe_nm=0.04)
        scherzer_nm = np.sqrt(4 / 3 * 1.2e6 * electron_wavelength_nm(a.voltage_kv))
        image = phase_contrast(
            potential,
            pixel_nm,
            a.voltage_kv,
            scherzer_nm * rng.uniform(0.8, 1.2),
            strength=0.5,
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
    if a.scene == "eds_spectrum":
        return spectra.eds_spectrum(rng, a)
    if a.scene == "eels_si":
        return spectra.eels_spectrum_image(rng, a)
    if a.scene == "scan_4d":
        return spectra.scan_4d(rng, a)
    raise ValueError(f"unknown demo scene {a.scene!r}")


def _particles(rng, a: Acquisition, cubes: bool, contrast_spread: float) -> np.ndarray:
    diameter_nm = 15.0 if cubes else 4.0
    coverage = 0.2 if cubes else 0.08
    return nanoparticles(rng, a.shape[-2:], a.pixel_size_nm, diameter_nm, coverage, cubes, a.crystal, contrast_spread)


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
        [
            rng.uniform(8, shape[0] * pixel_nm - 8, count),
            rng.uniform(8, shape[1] * pixel_nm - 8, count),
            rng.uniform(-30, 30, count),
        ]
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
        [
            rng.poisson(
                np.clip(np.roll(signal, tuple(np.rint(drift * n).astype(int)), (0, 1)), 0, None) * dose_per_frame
            )
            for n in range(a.shape[0])
        ]
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
