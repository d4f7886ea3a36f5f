"""PNG previews: what a researcher sees of a dataset before opening it.

Images get a robust contrast stretch (percentiles, so one hot pixel does not
turn the rest black); diffraction patterns a log scale first (their central
beam is orders of magnitude brighter than the spots); spectra a plot; stacks
their middle frame; spectrum images their summed intensity; 4D data its mean
diffraction pattern.  Huge arrays are strided down before any arithmetic, so a
30,000 x 30,000 image never gets copied at full size, and a lazy (dask) array is
reduced chunk by chunk before anything is computed.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .lazy import compute, is_lazy

MAX_PREVIEW_PX = 512
MIN_PREVIEW_PX = 128  # tiny datasets are enlarged with visible pixels rather than shown as a speck


def representative_frame(data: np.ndarray, kind: str) -> np.ndarray:
    """The 2-D array that stands for the dataset (or 1-D for a spectrum).  A lazy dataset (``lazy.py``) is reduced
    lazily and only the frame is read: a 4D scan's strided mean reads 32x32 scan positions, never the whole scan."""
    if is_lazy(data):
        frame = _representative(data.squeeze(), kind)
        if frame.ndim == 2:  # a huge 2-D image: only every n-th pixel is read
            frame = frame[tuple(slice(None, None, max(1, n // (4 * MAX_PREVIEW_PX))) for n in frame.shape)]
        return compute(frame)
    return _representative(np.squeeze(np.asarray(data)), kind)


def _representative(data, kind: str):
    if kind == "spectrum" or data.ndim == 1:
        return data.reshape(-1) if data.ndim <= 1 else data.reshape(-1, data.shape[-1]).mean(axis=0)
    if data.ndim == 2:
        return data
    if kind == "spectrum image":
        return _strided(data, 3).sum(axis=-1, dtype=np.float64)
    if kind == "4D" and data.ndim == 4:
        scan = data[:: max(1, data.shape[0] // 32), :: max(1, data.shape[1] // 32)]
        return scan.mean(axis=(0, 1), dtype=np.float64)
    while data.ndim > 2:  # stacks and anything deeper: the middle frame
        data = data[data.shape[0] // 2]
    return data


def _strided(data: np.ndarray, dims: int) -> np.ndarray:
    """Take every n-th pixel of the first two axes so they are at most 2x the preview size."""
    steps = [max(1, n // (2 * MAX_PREVIEW_PX)) for n in data.shape[:2]]
    return data[:: steps[0], :: steps[1]] if dims >= 2 else data


def render_png(data: np.ndarray, kind: str, energy_axis_ev: np.ndarray | None = None) -> tuple[bytes, int, int]:
    """PNG bytes and their width and height for a dataset of the given kind."""
    frame = representative_frame(data, kind)
    if frame.ndim == 1:
        return _spectrum_png(frame, energy_axis_ev)
    frame = _strided(frame, 2).astype(np.float64, copy=False)
    if kind in ("diffraction", "4D"):
        frame = np.log1p(np.clip(frame - np.nanmin(frame) if np.isfinite(frame).any() else frame, 0, None))
    grey = _stretch(frame)
    image = Image.fromarray(grey, mode="L")
    image.thumbnail((MAX_PREVIEW_PX, MAX_PREVIEW_PX), Image.Resampling.LANCZOS)
    if max(image.size) < MIN_PREVIEW_PX:
        factor = -(-MIN_PREVIEW_PX // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return _png_bytes(image), image.width, image.height


def _stretch(frame: np.ndarray) -> np.ndarray:
    """Map the 0.5-99.5 percentile range to 0-255; NaN/inf and constant images become mid-grey."""
    finite = np.isfinite(frame)
    if not finite.any():
        return np.full(frame.shape, 128, dtype=np.uint8)
    values = frame[finite]
    # Percentiles of a regular sample of at most ~65k pixels are as good for a preview and 4x cheaper.
    sample = values[:: max(1, values.size // 65_536)]
    low, high = np.percentile(sample, [0.5, 99.5])
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.full(frame.shape, 128, dtype=np.uint8)
    scaled = (np.where(finite, frame, low) - low) / (high - low)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def _spectrum_png(values: np.ndarray, energy_axis_ev: np.ndarray | None) -> tuple[bytes, int, int]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    values = np.where(np.isfinite(values), values, np.nan)
    figure = Figure(figsize=(5.12, 2.56), dpi=100)
    axes = figure.add_subplot()
    calibrated = energy_axis_ev is not None and energy_axis_ev.size == values.size
    x = energy_axis_ev if calibrated else np.arange(values.size)
    axes.plot(x, values, linewidth=0.8, color="#1f4e79")
    axes.set_xlabel("energy (eV)" if calibrated else "channel")
    axes.set_ylabel("counts")
    axes.margins(x=0)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    image = Image.open(io.BytesIO(buffer.getvalue()))
    return buffer.getvalue(), image.width, image.height


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Noisy micrographs barely compress: zlib's fastest level is 25% quicker and 3% larger than its default.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
