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
import threading
import zlib

import numpy as np
from PIL import Image

from .lazy import compute, is_lazy

MAX_PREVIEW_PX = 512
MIN_PREVIEW_PX = 128  # tiny datasets are enlarged with visible pixels rather than shown as a speck
# Micrographs are noise at the pixel level, and zlib's string matching finds little in them: Huffman coding alone
# gives smaller previews than zlib's fastest level (-9% on ../shared/data/em) in three quarters of the time.
PNG_OPTIONS = {"compress_level": 1, "compress_type": zlib.Z_HUFFMAN_ONLY}


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
        return _strided(data, 3).sum(axis=-1, dtype=exact_sum_dtype(data.dtype, data.shape[-1]))
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
    image = grey_thumbnail(_strided(frame, 2), MAX_PREVIEW_PX, log=kind in ("diffraction", "4D"))
    if max(image.size) < MIN_PREVIEW_PX:
        factor = -(-MIN_PREVIEW_PX // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return png_bytes(image), image.width, image.height


def grey_thumbnail(frame: np.ndarray, max_px: int, log: bool = False) -> Image.Image:
    """A 2-D frame as a greyscale image at most ``max_px`` on a side: a log scale first when ``log`` (diffraction),
    then the 0.5-99.5 percentile range mapped to 0-255; NaN/inf and constant frames become mid-grey.

    The frame is clipped to that range at full size but resampled (Lanczos) before it is scaled to grey levels:
    the same picture as stretching first, to within a grey level, for a quarter of the arithmetic; and the work is
    done in place on one float32 copy (float64 data stays float64, which float32 could overflow)."""
    work = np.array(frame, dtype=np.float64 if np.asarray(frame).dtype == np.float64 else np.float32)
    finite = np.isfinite(work)
    if log:  # counts above the faintest, on a log scale; what is not finite counts as the faintest
        if finite.any():
            floor = work[finite].min()
            work[~finite] = floor
            work -= floor
        np.clip(work, 0, None, out=work)
        np.log1p(work, out=work)
        finite = np.isfinite(work)
    every_value_finite = bool(finite.all())
    if not every_value_finite and not finite.any():
        return _mid_grey(work.shape, max_px)
    values = work.reshape(-1) if every_value_finite else work[finite]
    # Percentiles of a regular sample of at most ~65k pixels are as good for a preview and 4x cheaper.
    sample = values[:: max(1, values.size // 65_536)]
    low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        return _mid_grey(work.shape, max_px)
    low, high = float(np.float32(low)), float(np.float32(high))  # exact in the float32 image: its ends stay 0 and 255
    if high <= low:
        return _mid_grey(work.shape, max_px)
    if not every_value_finite:
        work[~finite] = low
    np.clip(work, low, high, out=work)
    image = Image.fromarray(work.astype(np.float32, copy=False), mode="F")
    image.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    scaled = (np.asarray(image, dtype=np.float64) - low) / (high - low)  # Lanczos overshoots the range: clip again
    return Image.fromarray((np.clip(scaled, 0, 1) * 255).astype(np.uint8), mode="L")


def _mid_grey(shape: tuple[int, ...], max_px: int) -> Image.Image:
    image = Image.new("L", (shape[1], shape[0]), 128)
    image.thumbnail((max_px, max_px), Image.Resampling.NEAREST)
    return image


def exact_sum_dtype(dtype: np.dtype, count: int) -> np.dtype:
    """The cheapest accumulator that adds ``count`` values of ``dtype`` exactly: 32-bit integers for 8- and 16-bit
    detector counts (a spectrum image's 134 MB of uint8 sums 2.5x faster than through float64), float64 else."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ub" and int(np.iinfo(dtype).max if dtype.kind == "u" else 1) * count < 2**32:
        return np.dtype(np.uint32)
    return np.dtype(np.float64)


def _spectrum_png(values: np.ndarray, energy_axis_ev: np.ndarray | None) -> tuple[bytes, int, int]:
    values = np.where(np.isfinite(values), values, np.nan)
    calibrated = energy_axis_ev is not None and energy_axis_ev.size == values.size
    figure, axes, line = _spectrum_plot()
    line.set_data(energy_axis_ev if calibrated else np.arange(values.size), values)
    axes.set_xlabel("energy (eV)" if calibrated else "channel")
    axes.relim()
    axes.autoscale_view()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})  # a plot is mostly white: zlib's fastest
    width, height = figure.canvas.get_width_height()
    return buffer.getvalue(), width, height


_plots = threading.local()


def _spectrum_plot():
    """This thread's figure for spectrum previews, made once: a new matplotlib figure, its axes and their ticks
    cost more than drawing a spectrum into them.  Fixed margins fit the labels and five-digit ticks (tight_layout
    measured them anew for every spectrum)."""
    if not hasattr(_plots, "spectrum"):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(5.12, 2.56), dpi=100)
        figure.subplots_adjust(left=0.17, right=0.95, bottom=0.19, top=0.95)
        axes = figure.add_subplot()
        (line,) = axes.plot([], [], linewidth=0.8, color="#1f4e79")
        axes.set_ylabel("counts")
        axes.margins(x=0)
        _plots.spectrum = figure, axes, line
    return _plots.spectrum


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **PNG_OPTIONS)
    return buffer.getvalue()
