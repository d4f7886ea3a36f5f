"""A catalogued dataset's array written as TIFF, PNG or HDF5 (Berkeley EMD), for people whose tools do not read
the instrument's own format.

The array is read again from the original file through the same chain of readers a load uses, in the reader
sandbox (``ReaderPool.read_dataset``): a file that crashes a reader costs the sandbox's worker, not the server.
Writing the array is ours and runs here, into a temporary file that the web layer streams and then removes.

- TIFF (tifffile): any shape and dtype, values exact; the axes, units and pixel size go in the shaped JSON
  description tifffile writes, so ``tifffile.imread`` gives the same array back.
- PNG (Pillow): one 2-D image.  8-bit data stays 8-bit and unsigned integers up to 65535 become 16-bit grey, both
  exact; anything else (signed, float) is stretched linearly onto 16 bits and the PNG's text chunks
  ``scisearch:offset`` and ``scisearch:scale`` give the way back (value = offset + scale × pixel).
- HDF5 as Berkeley EMD 0.2 (h5py; the layout ncempy reads: ``/data/<name>/data`` with ``dim1``… vectors carrying
  each axis's name and units, https://emdatasets.com/format/), any shape and dtype, values exact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BAD_INPUT, ScisearchError
from ..ingest.loader import Dataset

PNG_DEPTH_MAX = 65535


@dataclass(frozen=True)
class ExportFormat:
    name: str  # as the URL names it
    suffix: str
    content_type: str
    label: str  # as the item page names it


FORMATS = {
    "tiff": ExportFormat("tiff", ".tif", "image/tiff", "TIFF"),
    "png": ExportFormat("png", ".png", "image/png", "PNG"),
    "emd": ExportFormat("emd", ".emd", "application/x-hdf5", "HDF5 (EMD)"),
}


class ExportError(ScisearchError):
    """The array cannot be written in the format asked for; the message says which formats can."""

    kind = BAD_INPUT


def formats_for(shape: tuple[int, ...] | None) -> list[ExportFormat]:
    """The formats a dataset of this shape can be exported in (PNG holds one 2-D image)."""
    if not shape:
        return []
    shown = [FORMATS["tiff"]]
    if len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4)):
        shown.append(FORMATS["png"])
    shown.append(FORMATS["emd"])
    return shown


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """A files row's ``shape`` column ("1024x1024", "[64, 65, 66]") as a tuple, or None."""
    numbers = re.findall(r"\d+", text or "")
    return tuple(int(n) for n in numbers) or None


def export_name(original_name: str, dataset: int, dataset_count: int, export: ExportFormat) -> str:
    """The download's name: the original's stem, the dataset's number when the file holds several, the suffix."""
    stem = Path(original_name).stem or "dataset"
    return f"{stem}{f'_{dataset}' if dataset_count > 1 else ''}{export.suffix}"


def write_export(dataset: Dataset, export: ExportFormat, target: Path) -> Path:
    """Write ``dataset``'s array to ``target`` in ``export``'s format; ExportError when the format cannot hold it."""
    data = np.asarray(dataset.data)
    if export.name == "tiff":
        _write_tiff(dataset, data, target)
    elif export.name == "png":
        _write_png(data, target)
    elif export.name == "emd":
        _write_emd(dataset, data, target)
    else:
        raise ExportError(f"'{export.name}' is not an export format", fix=f"use one of {', '.join(FORMATS)}")
    return target


def _axes(dataset: Dataset, data: np.ndarray) -> list[dict]:
    """Each axis's name, units and step, as far as the reader knew them; the image axes (the last two) take the
    pixel size in nm when the reader gave one."""
    axes = []
    for number in range(data.ndim):
        name = dataset.axes_names[number] if len(dataset.axes_names) == data.ndim else f"axis {number}"
        units = dataset.axes_units[number] if len(dataset.axes_units) == data.ndim else ""
        axes.append({"name": name or f"axis {number}", "units": units or "", "step": 1.0})
    if dataset.pixel_size_nm and data.ndim >= 2:
        for axis in axes[-2:]:
            axis.update(units="nm", step=float(dataset.pixel_size_nm))
    return axes


def _write_tiff(dataset: Dataset, data: np.ndarray, target: Path) -> None:
    import tifffile

    description = {"axes": _axes(dataset, data)}
    if dataset.pixel_size_nm:
        description["pixel_size_nm"] = float(dataset.pixel_size_nm)
    # bigtiff only when needed: classic TIFF stops at 4 GiB.
    tifffile.imwrite(target, data, metadata=description, bigtiff=data.nbytes > 2**32 - 2**25)


def _write_png(data: np.ndarray, target: Path) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    rgb = data.ndim == 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8
    if data.ndim != 2 and not rgb:
        raise ExportError(
            f"PNG holds one 2-D image, and this dataset is {data.ndim}-D {tuple(data.shape)}",
            fix="export it as TIFF or HDF5 (EMD), which keep every axis",
        )
    if np.iscomplexobj(data):
        raise ExportError("PNG cannot hold complex values", fix="export it as TIFF or HDF5 (EMD)")
    info = PngInfo()
    if rgb or data.dtype in (np.uint8, np.bool_):
        image = Image.fromarray(data.astype(np.uint8) if data.dtype == np.bool_ else data)
    elif data.dtype.kind == "u" and (data.size == 0 or int(data.max()) <= PNG_DEPTH_MAX):
        image = Image.fromarray(data.astype(np.uint16))
    else:
        finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
        low = float(finite.min()) if finite.size else 0.0
        high = float(finite.max()) if finite.size else 0.0
        scale = (high - low) / PNG_DEPTH_MAX if high > low else 1.0
        scaled = np.nan_to_num((data.astype(np.float64) - low) / scale, nan=0.0, posinf=PNG_DEPTH_MAX, neginf=0.0)
        image = Image.fromarray(np.clip(np.rint(scaled), 0, PNG_DEPTH_MAX).astype(np.uint16))
        info.add_text("scisearch:offset", repr(low))
        info.add_text("scisearch:scale", repr(scale))
        info.add_text("scisearch:dtype", str(data.dtype))
    image.save(target, format="PNG", pnginfo=info)


def _write_emd(dataset: Dataset, data: np.ndarray, target: Path) -> None:
    import h5py

    with h5py.File(target, "w") as emd:
        emd.attrs["version_major"] = 0
        emd.attrs["version_minor"] = 2
        group = emd.create_group("data").create_group(_group_name(dataset))
        group.attrs["emd_group_type"] = 1
        group.create_dataset("data", data=data, chunks=True if data.size else None)
        for number, axis in enumerate(_axes(dataset, data), start=1):
            vector = np.arange(data.shape[number - 1], dtype=np.float64) * axis["step"]
            dim = group.create_dataset(f"dim{number}", data=vector)
            dim.attrs["name"] = axis["name"]
            dim.attrs["units"] = axis["units"]
        emd.attrs["scisearch"] = json.dumps({"kind": dataset.kind, "detector": dataset.detector})


def _group_name(dataset: Dataset) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset.name or "").strip("_")
    return name or f"dataset_{dataset.index}"
