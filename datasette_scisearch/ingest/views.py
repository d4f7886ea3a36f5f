"""What the item page shows of a dataset beyond its preview: a spectrum to plot, and frames to step through.

Made at load, while the data is in memory, so the web server never reads an instrument file: a spectrum (or a
spectrum image's spectrum summed over its scan, or a line profile) is kept as at most ``MAX_SPECTRUM_POINTS``
points with its axis and units; a stack of images, or a 4D scan's diffraction patterns at a few probe positions,
as ``MAX_FRAMES`` small PNGs.  Nothing here may fail a file: the caller keeps the row when a view cannot be made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .lazy import compute, is_lazy
from .loader import Dataset
from .preview import exact_sum_dtype, grey_thumbnail, png_bytes

MAX_SPECTRUM_POINTS = 1024  # a plot 1,000 px wide shows no more; EDS peaks survive as bin maxima (see _binned)
MAX_FRAMES = 8
FRAME_PX = 256
SPECTRUM_KINDS = frozenset({"spectrum", "spectrum image", "line profile"})
FRAME_KINDS = frozenset({"stack", "4D"})
LAZY_SCAN_SAMPLE = 64  # scan positions per axis a large spectrum image's spectrum is summed over


@dataclass
class Spectrum:
    """A 1-D signal ready to plot: ``x`` in ``x_unit`` ('' for channels), ``y`` in ``y_unit``."""

    x: list[float]
    y: list[float]
    x_label: str
    x_unit: str
    y_label: str
    y_unit: str = "counts"
    summed_over: int = 1  # how many scan positions were added up (a spectrum image's sum)
    channels: int = 0  # how many channels the data had before binning


@dataclass
class Frame:
    index: int  # the frame's number in the dataset (0-based), or the probe position's for 4D
    label: str  # "frame 12 of 40", "probe at (3, 7)"
    png: bytes
    width: int
    height: int


@dataclass
class Views:
    spectrum: Spectrum | None = None
    frames: list[Frame] = field(default_factory=list)
    frames_total: int = 0  # frames in the dataset, of which ``frames`` are a sample


def dataset_views(dataset: Dataset, kind: str) -> Views:
    """The spectrum and frames of one dataset that the item page can show (both may be missing)."""
    data = dataset.data if is_lazy(dataset.data) else np.asarray(dataset.data)  # a large one: read in pieces
    views = Views()
    if kind in SPECTRUM_KINDS or data.ndim == 1:
        views.spectrum = spectrum_of(data, kind, dataset)
    if kind in FRAME_KINDS and data.ndim >= 3:
        views.frames, views.frames_total = frames_of(data, kind)
    return views


def spectrum_of(data: np.ndarray, kind: str, dataset: Dataset) -> Spectrum | None:
    if is_lazy(data):  # a large spectrum image: summed over a regular sample of its scan, the rest never read
        data = data.squeeze()
        data = compute(data[tuple(slice(None, None, max(1, n // LAZY_SCAN_SAMPLE)) for n in data.shape[:-1])])
    data = np.squeeze(data)
    if data.ndim == 0 or data.size < 2:
        return None
    channels = data.shape[-1]
    summed_over = int(data.size // channels)
    # A spectrum image is (scan y, scan x, energy): its spectrum is the sum over the scan, as DigitalMicrograph
    # and HyperSpy show it; a stack of spectra likewise.
    if data.ndim > 1:
        values = _summed_over_scan(data.reshape(-1, channels)).astype(np.float64)
    else:
        values = data.astype(np.float64)
    energy, wavelength = dataset.energy_axis_ev, dataset.wavelength_axis_nm
    calibrated = energy is not None and np.asarray(energy).size == channels
    if wavelength is not None and np.asarray(wavelength).size == channels and not calibrated:
        # Cathodoluminescence is light: its spectrum is read against wavelength, in nm.
        x, x_unit, x_label = np.asarray(wavelength, dtype=np.float64), "nm", "wavelength"
    elif calibrated:
        x = np.asarray(energy, dtype=np.float64)
        # EDS spans tens of keV and is read in keV; EELS edges are named in eV.
        in_kev = bool(np.nanmax(np.abs(x)) >= 2000 and (dataset.mode or "").upper() != "EELS")
        x, x_unit = (x / 1000, "keV") if in_kev else (x, "eV")
        x_label = "energy loss" if _is_eels(dataset) else "energy"
    else:
        x, x_unit, x_label = np.arange(channels, dtype=np.float64), "", "channel"
        if kind == "line profile" and dataset.pixel_size_nm:
            x, x_unit, x_label = x * dataset.pixel_size_nm, "nm", "position"
    x, values = _binned(x, values)
    finite = np.isfinite(values)
    if not finite.any():
        return None
    y_label = "intensity" if kind == "line profile" else "counts"
    return Spectrum(
        x=[round(float(v), 6) for v in x],
        y=[float(v) if np.isfinite(v) else 0.0 for v in values],
        x_label=x_label,
        x_unit=x_unit,
        y_label=y_label,
        y_unit="" if kind == "line profile" else "counts",
        summed_over=summed_over if data.ndim > 1 else 1,
        channels=int(channels),
    )


def _summed_over_scan(spectra: np.ndarray) -> np.ndarray:
    """The sum of a (positions, channels) array's rows, exact.  One-byte counts (Bruker's EDS maps) are added 257
    rows at a time in 16 bits, which cannot overflow there and is 2.5x faster than adding all in 32."""
    if spectra.dtype != np.uint8:
        return spectra.sum(axis=0, dtype=exact_sum_dtype(spectra.dtype, spectra.shape[0]))
    total = np.zeros(spectra.shape[1], dtype=np.uint64)
    for start in range(0, spectra.shape[0], 257):
        total += spectra[start : start + 257].sum(axis=0, dtype=np.uint16)
    return total


def _is_eels(dataset: Dataset) -> bool:
    said = f"{dataset.mode or ''} {dataset.signal or ''}".upper()
    return "EELS" in said


def _binned(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_SPECTRUM_POINTS points: each bin's first x and its largest value, so a one-channel peak
    (an EDS line) still shows at its height rather than averaged away."""
    if y.size <= MAX_SPECTRUM_POINTS:
        return x, y
    step = -(-y.size // MAX_SPECTRUM_POINTS)
    usable = y.size - y.size % step
    head = y[:usable].reshape(-1, step)
    peaks = np.nanmax(np.where(np.isfinite(head), head, -np.inf), axis=1)
    xs = x[:usable:step]
    if usable < y.size:
        peaks = np.append(peaks, np.nanmax(y[usable:]))
        xs = np.append(xs, x[usable])
    return xs, peaks


def frames_of(data: np.ndarray, kind: str) -> tuple[list[Frame], int]:
    """Up to MAX_FRAMES evenly spaced frames of a stack (first and last included), or a 4D scan's diffraction
    patterns at probe positions along its diagonal (log scale, as diffraction is shown)."""
    if kind == "4D" and data.ndim == 4:
        rows, columns = data.shape[:2]
        steps = min(MAX_FRAMES, max(rows, columns))
        positions = sorted({(round(i * (rows - 1) / max(1, steps - 1)), round(i * (columns - 1) / max(1, steps - 1)))
                            for i in range(steps)})  # fmt: skip
        frames = [_frame(data[r, c], r * columns + c, f"probe at ({r}, {c})", log=True) for r, c in positions]
        return frames, rows * columns
    while data.ndim > 3:  # a series of stacks: step through the first axis of the first stack
        data = data[0]
    total = data.shape[0]
    chosen = sorted({round(i * (total - 1) / max(1, MAX_FRAMES - 1)) for i in range(min(MAX_FRAMES, total))})
    return [_frame(data[i], i, f"frame {i + 1} of {total}", log=False) for i in chosen], total


def _frame(frame: np.ndarray, index: int, label: str, log: bool) -> Frame:
    steps = [max(1, n // (2 * FRAME_PX)) for n in frame.shape]
    frame = compute(frame[:: steps[0], :: steps[1]])  # of a lazy dataset, only this frame's pixels are read
    image = grey_thumbnail(frame, FRAME_PX, log=log)
    return Frame(index, label, png_bytes(image), image.width, image.height)


def write_views(db, file_id: int, views: Views | None) -> None:
    """Replace a file row's spectrum and frames (in the caller's transaction); None removes them."""
    db.execute("delete from spectra where file_id = ?", [file_id])
    db.execute("delete from frames where file_id = ?", [file_id])
    if views is None:
        return
    if views.spectrum is not None:
        spectrum = views.spectrum
        db.execute(
            "insert into spectra (file_id, x, y, x_label, x_unit, y_label, y_unit, summed_over, channels) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                file_id,
                json.dumps(spectrum.x),
                json.dumps(spectrum.y),
                spectrum.x_label,
                spectrum.x_unit,
                spectrum.y_label,
                spectrum.y_unit,
                spectrum.summed_over,
                spectrum.channels,
            ],
        )
    for frame in views.frames:
        db.execute(
            "insert into frames (file_id, frame, label, png, width, height, frames_total) values (?, ?, ?, ?, ?, ?, ?)",
            [file_id, frame.index, frame.label, frame.png, frame.width, frame.height, views.frames_total],
        )
