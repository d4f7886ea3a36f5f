"""TIFF with FEI/Thermo or Zeiss SEM metadata (tifffile), other vendors' TIFFs, and PNG/JPEG exports (Pillow).

SEM vendors hide their metadata in private TIFF tags: FEI/Thermo an INI text in
tag 34682 (tifffile's ``fei_metadata``), Zeiss a 'key / Name = value unit' list
in tag 34118 (``sem_metadata``); those two are read here.  Every other dialect
(JEOL SightX's XML, TVIPS tags, Hamamatsu, Olympus, DM- and ImageJ-saved TIFFs)
is read through RosettaSciIO's TIFF reader, whose metadata mapping already
knows them, rather than parsed a second time by hand.  A TIFF none of them
understands keeps its pixels, and its ``DateTime`` tag (written by whatever
program saved the file) is its time, marked as such.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from datasette_scisearch.ingest.loader import Dataset, FileLoader, LoaderError
from datasette_scisearch.ingest.normalize import length_to_nm, number, parse_vendor_datetime

# FEI SEM TIFFs record the horizontal field width, not a magnification: by the
# vendors' convention magnification is relative to a 127 mm wide display (Polaroid 545).
_FEI_REFERENCE_DISPLAY_WIDTH_M = 0.127

_UNIT_FACTORS = {"": 1.0, "x": 1.0, "k x": 1e3, "kx": 1e3, "k": 1e3, "m x": 1e6, "mx": 1e6}


def _quantity(value) -> tuple[float | None, str]:
    """'20.00 K X' -> (20.0, 'k x'); 5.0 -> (5.0, '')."""
    if isinstance(value, tuple):  # tifffile's Zeiss entries: (name, value[, unit])
        unit = value[2] if len(value) > 2 else ""
        value, extra = _quantity(value[1])
        return value, (str(unit).strip().lower() or extra)
    if isinstance(value, (int, float)):
        return float(value), ""
    match = re.match(r"\s*([-+0-9.eE]+)\s*(.*)$", str(value or ""))
    if not match:
        return None, ""
    return number(match.group(1)), match.group(2).strip().lower()


def _voltage_kv(value) -> float | None:
    amount, unit = _quantity(value)
    if amount is None:
        return None
    return amount / 1e3 if unit in ("v", "") and amount > 1000 else amount if unit in ("kv", "") else None


class TiffLoader(FileLoader):
    name = "tiff"
    version = "2"  # 2: every other vendor's TIFF dialect through RosettaSciIO, the DateTime tag as a time
    description = "TIFF images: FEI/Thermo and Zeiss SEM metadata (tifffile), other dialects (RosettaSciIO)"
    suffixes = frozenset({".tif", ".tiff"})

    def read(self, path: Path) -> Iterator[Dataset]:
        import tifffile  # where a file is read: every command registers the loaders, few read files

        try:
            with tifffile.TiffFile(path) as handle:
                fei = handle.fei_metadata
                zeiss = handle.sem_metadata
                description = handle.pages.first.description
                date_tag = handle.pages.first.tags.valueof("DateTime")
                data = handle.asarray(series=0, level=0) if fei or zeiss else None
        except (tifffile.TiffFileError, ValueError) as error:
            raise LoaderError(f"not a readable TIFF ({error})") from None
        if fei:
            yield _fei_dataset(_grey(data), fei)
        elif zeiss:
            yield _zeiss_dataset(_grey(data), zeiss)
        else:
            yield from _other_dialect(path, description, date_tag)


def _grey(data) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4):  # RGB(A) export: keep the luminance
        data = data[..., :3].mean(axis=-1)
    return data


def _other_dialect(path: Path, description: str, date_tag) -> Iterator[Dataset]:
    """A TIFF without FEI or Zeiss SEM tags: RosettaSciIO's reading of its dialect, or its pixels and tags."""
    from .rosettasciio_formats import read_with_rosettasciio

    try:
        datasets = list(read_with_rosettasciio(path, plugin_names=("TIFF",)))
    except LoaderError:
        datasets = []
    if datasets:
        yield from datasets
        return
    import tifffile

    with tifffile.TiffFile(path) as handle:
        data = _grey(handle.asarray(series=0, level=0))
    metadata = {"ImageDescription": description} if description else {}
    acquired = _tiff_datetime(date_tag)
    if date_tag:
        metadata["DateTime"] = str(date_tag)
    yield Dataset(
        data=data,
        acquired_at=acquired,
        acquired_at_source="TIFF DateTime tag",
        metadata=metadata,
    )


def _tiff_datetime(value) -> dt.datetime | None:
    """TIFF 6.0's DateTime tag: 'YYYY:MM:DD HH:MM:SS', local time of the machine that wrote the file."""
    try:
        return dt.datetime.strptime(str(value).strip()[:19], "%Y:%m:%d %H:%M:%S") if value else None
    except ValueError:
        return None


def _fei_dataset(data: np.ndarray, fei: dict) -> Dataset:
    beam = fei.get("Beam", {}) or {}
    ebeam = fei.get("EBeam", {}) or {}
    scan = fei.get("Scan", {}) or {}
    user = fei.get("User", {}) or {}
    system = fei.get("System", {}) or {}
    field_width_m = number(scan.get("HorFieldsize") or ebeam.get("HFW"))
    magnification = number((fei.get("Image", {}) or {}).get("Magnification"))
    if magnification is None and field_width_m:
        magnification = _FEI_REFERENCE_DISPLAY_WIDTH_M / field_width_m
    voltage = number(ebeam.get("HV") or beam.get("HV"))
    detector = (fei.get("Detectors", {}) or {}).get("Name") or (fei.get("Detectors", {}) or {}).get("Mode")
    return Dataset(
        data=data,
        axes_units=["m", "m"],
        instrument_reported=str(system.get("SystemType") or system.get("Type") or "").strip() or None,
        acquired_at=parse_vendor_datetime(user.get("Date"), user.get("Time")),
        pixel_size_nm=length_to_nm(scan.get("PixelWidth"), "m"),
        voltage_kv=voltage / 1e3 if voltage else None,
        magnification=magnification,
        mode="SEM",
        detector=str(detector).strip() if detector else None,
        metadata=fei,
    )


def _zeiss_dataset(data: np.ndarray, zeiss: dict) -> Dataset:
    def entry(*keys):
        for key in keys:
            if key in zeiss:
                return zeiss[key]
        return None

    mag, mag_unit = _quantity(entry("ap_mag"))
    if mag is not None:
        mag *= _UNIT_FACTORS.get(mag_unit, 1.0)
    pixel, pixel_unit = _quantity(entry("ap_pixel_size", "ap_image_pixel_size"))
    instrument = entry("sv_serial_number", "dp_sem", "sv_instrument_id", "ap_sem")
    detector = entry("dp_detector_type", "dp_detector_channel", "ap_detector")
    date, time = entry("ap_date"), entry("ap_time")
    metadata = {key: list(value) if isinstance(value, tuple) else value for key, value in zeiss.items() if key}
    return Dataset(
        data=data,
        axes_units=["nm", "nm"],
        instrument_reported=str(instrument[1]).strip() if instrument else None,
        acquired_at=parse_vendor_datetime(date[1] if date else None, time[1] if time else None),
        pixel_size_nm=length_to_nm(pixel, pixel_unit or "nm"),
        voltage_kv=_voltage_kv(entry("ap_actualkv", "ap_manualkv")),
        magnification=mag,
        mode="SEM",
        detector=str(detector[1]).strip() if detector else None,
        metadata=metadata,
    )


class ExportedImageLoader(FileLoader):
    """PNG and JPEG exports: pixels only, plus any text the exporting program left in the file."""

    name = "exported-image"
    version = "1"
    description = "PNG and JPEG exports (Pillow)"
    suffixes = frozenset({".png", ".jpg", ".jpeg"})

    def read(self, path: Path) -> Iterator[Dataset]:
        from PIL import Image

        try:
            with Image.open(path) as image:
                image.load()
                info = {k: v for k, v in image.info.items() if isinstance(v, (str, int, float))}
                grey = image.convert("F") if image.mode not in ("I;16", "I") else image
                data = np.asarray(grey)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise LoaderError(f"not a readable image ({error})") from None
        yield Dataset(data=data, metadata=info)
