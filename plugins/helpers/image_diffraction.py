"""Diffraction pattern, real-space image or blank frame: told from the pixels alone, never from metadata.

A diffraction pattern on a camera has a look no real-space image shares all at once:

- a bright central beam, near the middle of the detector;
- intensity falling steadily with distance from it, over decades (hence log intensity: a pattern's brightest
  pixels are hundreds of times its median, a micrograph's a few times);
- Friedel symmetry: intensities at +g and -g are equal for a thin specimen in the kinematic approximation, so the
  pattern is nearly centrosymmetric about the central beam.

Each sign alone is common (a bright particle in the middle, a centrosymmetric lattice image); a pattern shows all
of them.  The pattern's centre is found as its centre of inversion symmetry, not its brightest pixel: a saturated
beam is a flat disc, and saturated Bragg spots around it can be just as bright.

A blank frame (beam off, shutter closed, an empty detector channel) is constant, or noise around zero with
nothing brighter than the noise allows: neither a pattern nor an image, and tagged as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lazy_loader
import numpy as np

scipy = lazy_loader.load("scipy")  # scipy.fft at first use: registering the taggers must stay quick

MIN_DYNAMIC_RANGE_DECADES = 1.2
MAX_CENTRE_OFFSET = 0.25  # of the image's side, from its middle
MIN_FRIEDEL_CORRELATION = 0.4
MAX_RADIAL_RANK_CORRELATION = -0.7  # intensity against distance from the beam: steadily falling
MIN_CENTRAL_EXCESS = 1.0  # log-intensity of the beam's disc over the outer half of the pattern (e-folds)


@dataclass
class DiffractionSigns:
    dynamic_range_decades: float
    centre_offset: float  # of the side, from the middle
    friedel_correlation: float
    radial_rank_correlation: float
    central_excess: float

    def met(self) -> dict[str, bool]:
        return {
            "central beam": self.centre_offset <= MAX_CENTRE_OFFSET and self.central_excess >= MIN_CENTRAL_EXCESS,
            "high dynamic range": self.dynamic_range_decades >= MIN_DYNAMIC_RANGE_DECADES,
            "Friedel symmetry": self.friedel_correlation >= MIN_FRIEDEL_CORRELATION,
            "radial fall-off": self.radial_rank_correlation <= MAX_RADIAL_RANK_CORRELATION,
        }

    @property
    def is_diffraction(self) -> bool:
        return all(self.met().values())

    def evidence(self) -> str:
        return (
            f"brightest {self.dynamic_range_decades:.1f} decades over median; beam {self.centre_offset:.0%} "
            f"off centre, {self.central_excess:.1f} e-folds over the outer half; centrosymmetry "
            f"{self.friedel_correlation:.2f}; radial fall-off {self.radial_rank_correlation:.2f}"
        )


NOT_A_PATTERN = DiffractionSigns(0.0, 0.5, 0.0, 0.0, 0.0)


def blank_frame(image: np.ndarray, noise_sigma: float) -> str | None:
    """Why the frame holds no signal (the evidence), or None when it holds some."""
    low, median, high = np.percentile(image, [0.01, 50, 99.99])
    if high == low:
        return f"every pixel is {median:g}"
    spread = 1.4826 * np.median(np.abs(image - median))  # robust standard deviation of the values
    if spread <= 0:
        return None
    around_zero = abs(median) <= 3 * spread and (image < 0).mean() >= 0.05
    nothing_stands_out = high - median <= 6 * spread and median - low <= 6 * spread
    if around_zero and nothing_stands_out:
        return (
            f"values {low:g} to {high:g} around {median:g} (noise {max(spread, noise_sigma):.3g}); "
            "nothing stands above the noise, as in a camera frame without beam"
        )
    return None


def diffraction_signs(image: np.ndarray, noise_sigma: float) -> DiffractionSigns:
    """Measure the signs of a diffraction pattern in a (working-size) image."""
    sample = image[::2, ::2]  # quantiles of a quarter of the pixels are as good and four times cheaper
    floor, median, brightest = np.percentile(sample, [0.5, 50, 99.95])
    counts = np.clip(image - floor, 0, None)
    median, brightest = max(median - floor, 0.0), max(brightest - floor, 0.0)
    scale = max(noise_sigma, 1e-6 * brightest, 1e-30)
    dynamic_range = float(np.log10((brightest + scale) / (median + scale)))
    log_counts = np.log1p(counts / scale)
    height, width = log_counts.shape
    cy, cx = _symmetry_centre(log_counts)
    offset = float(max(abs(cy - (height - 1) / 2) / height, abs(cx - (width - 1) / 2) / width))
    reach = int(min(cy, cx, height - 1 - cy, width - 1 - cx))
    if reach < min(height, width) / 8:  # the brightest spot hugs an edge: no room for a pattern around it
        return DiffractionSigns(dynamic_range, offset, 0.0, 0.0, 0.0)
    # a square about the centre, which may lie between pixels: flipping it maps i to 2c - i exactly
    top, left = math.ceil(cy - reach), math.ceil(cx - reach)
    bottom, right = round(2 * cy) - top, round(2 * cx) - left
    around = log_counts[top : bottom + 1, left : right + 1]
    friedel = _correlation(around.ravel(), around[::-1, ::-1].ravel())
    y, x = np.indices(around.shape)
    radius = np.hypot(y + top - cy, x + left - cx).astype(np.int64).ravel()
    profile = (np.bincount(radius, around.ravel()) / np.maximum(np.bincount(radius), 1))[:reach]
    fall_off = _correlation(_ranks(np.arange(2, reach)), _ranks(profile[2:]))
    excess = float(profile[: max(2, reach // 20)].mean() - profile[reach // 2 :].mean())
    return DiffractionSigns(dynamic_range, offset, friedel, fall_off, excess)


def _symmetry_centre(log_counts: np.ndarray) -> tuple[float, float]:
    """The centre of inversion symmetry, to a pixel: where the pattern best matches itself turned by 180
    degrees.  The autoconvolution sum_x f(x) f(s - x) peaks at s = 2c for an image symmetric about c; one FFT
    finds it for every c at once.  Unlike the brightest pixel it is not fooled by a saturated beam, whose flat
    top may be shared by saturated Bragg spots around it."""
    # on 2x2 block means: a quarter of the cost, and the centre still to a pixel
    height, width = log_counts.shape[0] // 2 * 2, log_counts.shape[1] // 2 * 2
    coarse = log_counts[:height, :width].reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    centred = (coarse - coarse.mean()).astype(np.float32)
    shape = (2 * centred.shape[0], 2 * centred.shape[1])  # padded: no wrap-around
    spectrum = scipy.fft.rfft2(centred, shape)
    autoconvolution = scipy.fft.irfft2(spectrum * spectrum, shape)
    sy, sx = np.unravel_index(int(np.argmax(autoconvolution)), shape)
    # block centre i sits at pixel 2i + 0.5, so s = 2c on the blocks is 2s + 1 = 2c on the pixels
    return sy + 0.5, sx + 0.5


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values, kind="stable"), kind="stable").astype(np.float64)
