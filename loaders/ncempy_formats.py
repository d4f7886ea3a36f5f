"""Instrument files that ncempy reads: TIA .ser/.emi, Gatan .dm3/.dm4, Berkeley and Velox .emd, .mrc.

Each format keeps voltage, magnification and time in its own place (see
../shared/data/README.md); the readers below go to that place and hand the
core normalised values in the units their names say.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datasette_scisearch.ingest.lazy import (
    LAZY_ABOVE_BYTES,
    FramesOnDisk,
    declared_bytes,
    from_hdf5,
    is_lazy,
    on_disk,
)
from datasette_scisearch.ingest.loader import Dataset, FileLoader, LoaderError, NotData
from datasette_scisearch.ingest.normalize import length_to_nm, number, parse_vendor_datetime

from .helpers.hdf5_declarations import refuse_impossible_declarations

if TYPE_CHECKING:
    import h5py

# ncempy (which imports matplotlib) and h5py are imported where a file is read, not when the plugin is
# registered: every 'scisearch' command registers the loaders, and most never read a file.


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SU":
        value = value.tolist()
    text = str(value).strip()
    return text or None


def _mode_from_words(*texts: str | None) -> str | None:
    """TEM or STEM from an instrument's free-text mode, e.g. TIA's ' STEM nP Mh Zoom Diffraction'.

    In STEM the projector is in 'Diffraction' whatever the detector records, so
    the word Diffraction alone does not make a dataset a diffraction pattern.
    """
    joined = " ".join(t for t in texts if t).upper()
    if re.search(r"\bSTEM\b", joined):
        return "STEM"
    if re.search(r"\bTEM\b|\bIMAGING\b", joined):
        return "TEM"
    return None


class TiaSerLoader(FileLoader):
    """FEI TIA series files: data in NAME_N.ser, microscope metadata in the NAME.emi partner."""

    name = "tia-ser"
    version = "3"  # 2: the detector channel from the .emi; 3: the microscope without its label, patterns by mode
    description = "FEI/Thermo TIA .ser data with its .emi metadata (ncempy)"
    suffixes = frozenset({".ser"})

    def companions(self, path: Path) -> list[Path]:
        emi = _emi_partner(path)
        return [emi] if emi else []

    def read(self, path: Path) -> Iterator[Dataset]:
        if _emi_partner(path) is None:
            expected = re.sub(r"_\d+$", "", path.stem) + ".emi"
            raise LoaderError(f"its metadata file '{expected}' is missing; TIA writes voltage and magnification there")
        from ncempy.io import ser

        if path.stat().st_size <= LAZY_ABOVE_BYTES:  # the file holds the data: a small file is read whole
            yield self._dataset(path, ser.serReader(str(path)))
            return
        with ser.fileSER(str(path)) as handle:  # open while a large series' frames are read, one at a time
            yield self._dataset(path, _ser_on_disk(handle, path) or ser.serReader(str(path)))

    def _dataset(self, path: Path, result: dict) -> Dataset:
        data = result["data"] if is_lazy(result["data"]) else np.asarray(result["data"])
        meta = {k: v for k, v in (result.get("metadata") or {}).items()}
        if "eLoss" in result:  # TIA spectra: energy axis from the calibration
            units = [""] * (data.ndim - 1) + ["eV"]
            pixel_size_nm = None
        else:
            units = list(result.get("pixelUnit") or [])
            sizes = list(result.get("pixelSize") or [])
            pixel_size_nm = length_to_nm(sizes[-1], units[-1]) if sizes and units else None
        mode_text = _text(meta.get("Mode []"))
        acquired = meta.get("AcquireDate")
        detector = _tia_detector(_emi_partner(path))
        if detector:
            meta["TIA detector channel"] = detector
        return Dataset(
            data=data,
            axes_units=units,
            instrument_reported=_tia_microscope(meta.get("Microscope []")),
            acquired_at=_parse_tia_date(acquired),
            pixel_size_nm=pixel_size_nm,
            voltage_kv=number(meta.get("High tension [kV]")) or _scaled(meta.get("AcceleratingVoltage"), 1e-3),
            magnification=number(meta.get("Magnification [x]")) or number(meta.get("Magnification")),
            camera_length_mm=_scaled(meta.get("Camera length [m]"), 1e3),
            mode=_mode_from_words(mode_text),
            detector=detector,
            kind=_tia_diffraction(mode_text, _emi_partner(path), data, "eLoss" in result),
            energy_axis_ev=np.asarray(result["eLoss"]) if "eLoss" in result else None,
            metadata=meta,
        )


def _ser_on_disk(handle, path: Path) -> dict | None:
    """A large series (a 4D scan or a long stack) as ncempy's serReader returns it, its data a lazy array that
    reads a frame at a time (``FramesOnDisk``) instead of every frame at once; None for a series read whole.
    TIA keeps a header before each element, so there is no memory map of the whole series to take."""
    count = int(handle.head["ValidNumberElements"])
    if count < 1:
        return None
    first, first_meta = handle.getDataset(0)
    if declared_bytes((count, *first.shape), first.dtype) <= LAZY_ABOVE_BYTES:
        return None
    frames = on_disk(FramesOnDisk(count, first.shape, first.dtype, lambda index: handle.getDataset(index)[0]))
    result = {"filename": str(path), "metadata": handle._emi or {}}
    calibrations = first_meta["Calibration"]
    if handle.head["DataTypeID"] == 0x4120:  # spectra: a spectrum image (scan y, scan x, energy) or a line
        dimensions = handle.head["Dimensions"]
        if handle.head["NumberDimensions"] > 1:
            frames = frames.reshape((dimensions[1]["DimensionSize"], dimensions[0]["DimensionSize"], first.shape[0]))
        delta, offset = calibrations[0]["CalibrationDelta"], calibrations[0]["CalibrationOffset"]
        return {**result, "data": frames.squeeze(), "eLoss": np.arange(first.shape[0]) * delta + offset}
    return {
        **result,
        "data": frames.squeeze(),
        "pixelSize": [c["CalibrationDelta"] for c in calibrations],
        "pixelUnit": ["m"] * len(calibrations),
        "pixelOrigin": [c["CalibrationOffset"] for c in calibrations],
    }


# TIA names the acquiring detector channel only in its display setup ("Acquire HAADF Scanning Display1"),
# which ncempy's read_emi does not return; it is the channel's name, so a LAABF image taken on the HAADF
# channel at a long camera length still reads "HAADF".
_TIA_ACQUIRE = re.compile(rb"Acquire ([A-Za-z][A-Za-z0-9-]{0,15}) Scanning")


def _tia_detector(emi: Path | None) -> str | None:
    if emi is None:
        return None
    try:
        found = _TIA_ACQUIRE.search(emi.read_bytes()[: 1 << 20])
    except OSError:
        return None
    return found.group(1).decode("ascii") if found else None


def _tia_diffraction(mode_text: str | None, emi: Path | None, data: np.ndarray, spectrum: bool) -> str | None:
    """'diffraction' for a TIA pattern, else None (the axes decide).  TIA writes its calibrations in metres
    whatever the projector did, so the .emi decides, as RosettaSciIO's TIA reader does: in TEM a projector in
    Diffraction records patterns; in STEM the projector is always in Diffraction, and only a camera (the .emi
    names its CameraNamePath) records patterns rather than a scanned image."""
    if spectrum or data.ndim < 2 or not mode_text or "DIFFRACTION" not in mode_text.upper():
        return None
    if _mode_from_words(mode_text) != "STEM":
        return "diffraction" if data.ndim == 2 else None
    try:
        camera = emi is not None and b"CameraNamePath" in emi.read_bytes()[: 1 << 20]
    except OSError:
        camera = False
    return "diffraction" if camera and data.ndim == 2 else None


def _tia_microscope(value) -> str | None:
    """'Microscope Tecnai 300 kV D248 SuperTwin' -> 'Tecnai 300 kV D248 SuperTwin' (ncempy keeps TIA's label)."""
    text = _text(value)
    return re.sub(r"^Microscope\s+", "", text) if text else None


def _emi_partner(ser_path: Path) -> Path | None:
    stem = re.sub(r"_\d+$", "", ser_path.stem)
    emi = ser_path.with_name(stem + ".emi")
    return emi if emi.exists() else None


def _parse_tia_date(value) -> dt.datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%a %b %d %H:%M:%S %Y")  # TIA writes local time, ctime() style
    except ValueError:
        return None


def _scaled(value, factor: float) -> float | None:
    n = number(value)
    return None if n is None or n == 0 else n * factor


class TiaEmiLoader(FileLoader):
    """A TIA .emi holds only metadata: it is read with its .ser partner, or is an error without one."""

    name = "tia-emi"
    version = "1"
    description = "FEI/Thermo TIA .emi metadata files (read with their .ser partner)"
    suffixes = frozenset({".emi"})

    def read(self, path: Path) -> Iterator[Dataset]:
        partners = sorted(path.parent.glob(glob_escape(path.stem) + "_*.ser"))
        if partners:
            raise NotData(f"metadata partner of '{partners[0].name}'")
        raise LoaderError(
            f"its data file '{path.stem}_1.ser' is missing; TIA keeps the image data in .ser files "
            "next to the .emi, so copy them together"
        )
        yield  # pragma: no cover - makes this a generator like every loader


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


class GatanDMLoader(FileLoader):
    name = "gatan-dm"
    # 2: acquisition times from the SI, EELS, EDS and CL tag groups too; 3: spectra calibrated in energy or (CL)
    # wavelength, and a spectrum's pixel size from its scan axis, never its spectral one
    version = "3"
    description = "Gatan DigitalMicrograph .dm3/.dm4 (ncempy)"
    suffixes = frozenset({".dm3", ".dm4"})

    def read(self, path: Path) -> Iterator[Dataset]:
        # ncempy's memory map, not its reading through the file: parsing the tags is a few thousand small reads, each
        # a system call through the file (4-7x slower on ../shared/data/em's DM files).  Nothing handed on may be a
        # view into the map, or closing it fails while a consumer (a Dask worker's pickling) still holds one: ncempy
        # copies the data out, _detached copies the rest, and a close that still finds a view leaves the map to go
        # with it rather than fail the file.
        from ncempy.io import dm

        handle = dm.fileDM(str(path), on_memory=True)
        try:
            count = handle.numObjects - (1 if handle.thumbnail else 0)
            for index in range(count):
                result = _dm_on_disk(handle, index) or _detached(handle.getDataset(index))
                meta = _detached(handle.getMetadata(index, metadata_keys=list(_DM_TIME_GROUPS)))
                yield self._dataset(index, result, meta)
        finally:
            _close_map(handle)

    def _dataset(self, index: int, result: dict, meta: dict) -> Dataset:
        data = result["data"] if is_lazy(result["data"]) else np.asarray(result["data"])
        units = [_text(u) or "" for u in result.get("pixelUnit", [])]
        sizes = list(result.get("pixelSize", []))
        signal = _text(meta.get("Meta Data Signal"))
        voltage = _scaled(meta.get("Microscope Info Voltage"), 1e-3)
        illumination = _text(meta.get("Microscope Info Illumination Mode"))
        operation = _text(meta.get("Microscope Info Operation Mode") or meta.get("Microscope Info Imaging Mode"))
        mode = "EELS" if (signal or "").upper() == "EELS" else _mode_from_words(illumination)
        in_diffraction = bool(operation and "DIFFRACTION" in operation.upper() and mode == "TEM")
        camera_length = number(meta.get("Microscope Info STEM Camera Length"))
        spectral = _spectral_last_axis(meta, units)
        # A spectrum's last axis is its energy or wavelength: the pixel, where there is one, is the scan's step.
        step = -2 if spectral else -1
        spatial = (sizes[step], units[step]) if len(sizes) >= -step and len(units) >= -step else None
        return Dataset(
            data=data,
            index=index,
            axes_units=units,
            instrument_reported=_text(meta.get("Microscope Info Microscope"))
            or _text(meta.get("Microscope Info Name")),
            acquired_at=_dm_acquired(meta),
            pixel_size_nm=length_to_nm(*spatial) if spatial else None,
            voltage_kv=voltage,
            magnification=number(meta.get("Microscope Info Indicated Magnification")) or None,
            camera_length_mm=camera_length or None,  # DM records the STEM camera length in mm
            mode=mode,
            detector=_text(meta.get("Acquisition Device Name")) or _text(meta.get("DataBar Device Name")),
            signal=signal,
            kind="diffraction" if in_diffraction and data.ndim == 2 else None,
            energy_axis_ev=_energy_axis(result, units),
            wavelength_axis_nm=_calibrated_last_axis(result) if spectral and units[-1] == "nm" else None,
            metadata=meta,
        )


def _detached(values: dict) -> dict:
    """``values`` with every array that is a view into another buffer (ncempy's memory map) copied out of it."""
    return {
        key: np.array(value) if isinstance(value, np.ndarray) and value.base is not None else value
        for key, value in values.items()
    }


def _close_map(handle) -> None:
    """Close ncempy's memory map of a DM file; one still viewed is left to close when its last view goes."""
    import gc

    for attempt in range(2):
        try:
            handle.fid.close()
            return
        except BufferError:  # a view in a reference cycle not yet collected: collect, then try once more
            if attempt == 0:
                gc.collect()
        except (AttributeError, OSError, ValueError):  # never opened, or closed already
            return


def _dm_on_disk(handle, index: int) -> dict | None:
    """A large dataset as ncempy's getDataset returns it, its data a lazy array over a read-only memory map of the
    file (ncempy's getMemmap) rather than read whole; None for a dataset read whole."""
    number = index if handle.numObjects == 1 else index + 1  # the thumbnail comes first
    shape = (handle.zSize2[number], handle.zSize[number], handle.ySize[number], handle.xSize[number])
    if declared_bytes(shape, handle._DM2NPDataType(handle.dataType[number])) <= LAZY_ABOVE_BYTES:
        return None
    first, dimensions = sum(handle.dataShape[:number]), handle.dataShape[number]
    # getMemmap drops every axis of length 1; getDataset keeps an image's (y, x) and a stack's (z, y, x).
    z2, z, y, x = shape
    kept = (y, x) if z == 1 else (z2, z, y, x) if z2 > 1 else (z, y, x)
    kept = tuple(n for n in kept if n > 1) if len(kept) > dimensions else kept
    return {
        "data": on_disk(handle.getMemmap(index).reshape(kept)),
        "pixelUnit": handle.scaleUnit[first : first + dimensions][::-1],
        "pixelSize": handle.scale[first : first + dimensions][::-1],
        "pixelOrigin": handle.origin[first : first + dimensions][::-1],
    }


# DM writes the acquisition time in the tag group of whatever acquired the data: DataBar for images, SI for
# spectrum images, EELS/EDS/CL for spectra (as RosettaSciIO's DM reader maps them), 'Start time' beside 'Date'.
_DM_TIME_GROUPS = ("SI", "EDS", "CL")  # tag groups ncempy's getMetadata leaves out unless asked
_DM_TIME_KEYS = (
    ("DataBar Acquisition Date", "DataBar Acquisition Time"),
    ("SI Acquisition Date", "SI Acquisition Start time"),
    ("EELS Acquisition Date", "EELS Acquisition Start time"),
    ("EDS Acquisition Date", "EDS Acquisition Start time"),
    ("CL Acquisition Date", "CL Acquisition Start time"),
    ("CL Acquisition Date", "CL Acquisition Start_time"),
)


def _dm_acquired(meta: dict) -> dt.datetime | None:
    for date_key, time_key in _DM_TIME_KEYS:
        moment = parse_vendor_datetime(meta.get(date_key), meta.get(time_key))
        if moment is not None:
            return moment
    return None


def _spectral_last_axis(meta: dict, units: list[str]) -> bool:
    """Whether the last axis is a spectrum's: DM says 'Spectrum' or 'Spectrum image' as the data's format, or the
    axis is in energy units."""
    described = str(meta.get("Meta Data Format") or "").lower()
    return bool(units) and (described.startswith("spectrum") or units[-1] in ("eV", "keV"))


def _calibrated_last_axis(result: dict) -> np.ndarray | None:
    """The last axis's calibrated values: DM calibrates a channel ``i`` as ``(i - origin) * scale`` (ncempy's
    ``pixelOrigin`` and ``pixelSize``)."""
    sizes, origins = result.get("pixelSize") or [], result.get("pixelOrigin") or []
    shape = np.shape(result["data"])
    if not sizes or len(origins) != len(sizes) or not shape:
        return None
    scale, origin = float(sizes[-1]), float(origins[-1])
    if not np.isfinite(scale) or scale == 0 or not np.isfinite(origin):
        return None
    return (np.arange(shape[-1], dtype=np.float64) - origin) * scale


def _energy_axis(result: dict, units: list[str]) -> np.ndarray | None:
    if not units or units[-1] not in ("eV", "keV"):
        return None
    axis = _calibrated_last_axis(result)
    return None if axis is None else axis * (1e3 if units[-1] == "keV" else 1.0)


class EMDLoader(FileLoader):
    """Berkeley EMD (HDF5 groups tagged emd_group_type) and Thermo Fisher Velox EMD (/Data/Image).

    Berkeley EMD keeps the microscope's settings as attributes of a `microscope`
    group and, from NCEM's own software, Unix acquisition times beside the data.
    """

    name = "emd"
    # 2: a Velox microscope's class (Titan, Talos) leads its reported name; 3: Velox series frames first
    version = "3"
    description = "Berkeley EMD and Velox .emd, and EMD in .h5/.hdf5 (ncempy)"
    suffixes = frozenset({".emd", ".h5", ".hdf5"})

    def read(self, path: Path) -> Iterator[Dataset]:
        import h5py

        try:
            handle = h5py.File(path, "r")
        except OSError as error:
            raise LoaderError(f"not a readable HDF5 file ({error})") from None
        with handle:
            refuse_impossible_declarations(handle, path)
            missing = _missing_external_files(handle, path)
            if missing:
                raise LoaderError(
                    f"its external data file '{missing[0]}' is missing; this HDF5 file only links to the data"
                )
            is_velox = "Data" in handle and "Image" in handle["Data"]
            is_berkeley = bool(_berkeley_groups(handle))
        if is_velox:
            yield from self._read_velox(path)
        elif is_berkeley:
            yield from self._read_berkeley(path)
        else:
            raise LoaderError(
                "HDF5 file, but not EMD: no group tagged 'emd_group_type' and no Velox /Data/Image "
                f"(top-level groups: {', '.join(sorted(_top_level(path))) or 'none'})"
            )

    def _read_velox(self, path: Path) -> Iterator[Dataset]:
        from ncempy.io import emdVelox

        with emdVelox.fileEMDVelox(str(path)) as handle:
            for index in range(len(handle.list_data)):
                stored, _ = handle.get_dataset(index, memmap=True)
                meta = handle.metaDataJSON or {}
                yield _velox_dataset(index, _velox_frames(stored), meta)

    def _read_berkeley(self, path: Path) -> Iterator[Dataset]:
        from ncempy.io import emd

        with emd.fileEMD(str(path), readonly=True) as handle:
            microscope = _attrs(handle.microscope)
            user = _attrs(handle.user)
            sample = _attrs(handle.sample)
            for index, group in enumerate(handle.list_emds):
                data, dims = _berkeley_data(handle, group)
                units = [_text(dim[2]) or "" for dim in dims]
                scales = [_dim_step(dim[0]) for dim in dims]
                meta = {"microscope": microscope, "user": user, "sample": sample, "group": group.name}
                voltage = number(microscope.get("high tension"))
                acquired = _berkeley_time(group)
                # Berkeley EMD names no mode; a dwell time means the beam was scanned.
                scanned = (number(microscope.get("dwell time")) or 0) > 0
                yield Dataset(
                    data=data,
                    index=index,
                    name=group.name.rsplit("/", 1)[-1],
                    axes_units=units,
                    instrument_reported=_text(microscope.get("name")),
                    acquired_at=acquired,
                    pixel_size_nm=length_to_nm(scales[-1], units[-1]) if scales and units else None,
                    voltage_kv=voltage / 1e3 if voltage else None,
                    magnification=number(microscope.get("magnification")),
                    camera_length_mm=_scaled(microscope.get("camera length"), 1e3),
                    mode=_mode_from_words(_text(microscope.get("mode"))) or ("STEM" if scanned else None),
                    detector=_text(microscope.get("detector")),
                    metadata=meta,
                )


def _berkeley_data(handle, group: h5py.Group):
    """A group's data and dimensions; a large dataset (a multi-GB 4D scan) as a lazy array read only where a preview
    needs it (``ingest/lazy.py``), since ncempy's ``get_emdgroup`` reads it whole."""
    stored = group["data"]
    if declared_bytes(stored.shape, stored.dtype) > LAZY_ABOVE_BYTES:
        return from_hdf5(stored), handle.get_emddims(group)
    data, dims = handle.get_emdgroup(group)
    return np.asarray(data), dims


def _berkeley_time(group: h5py.Group) -> dt.datetime | None:
    """NCEM's acquisition software stores Unix times (UTC) per frame in 'acquisition times'; older files have none."""
    if "acquisition times" not in group:
        return None
    times = np.asarray(group["acquisition times"][()], dtype=float).ravel()
    finite = times[np.isfinite(times) & (times > 0)]
    return dt.datetime.fromtimestamp(float(finite[0]), dt.UTC) if finite.size else None


def _berkeley_groups(handle: h5py.File) -> list[str]:
    import h5py

    found: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and "emd_group_type" in obj.attrs:
            found.append(name)

    try:
        handle.visititems(visit)
    except (KeyError, RuntimeError):
        pass
    return found


def _top_level(path: Path) -> list[str]:
    import h5py

    with h5py.File(path, "r") as handle:
        return list(handle.keys())


def _missing_external_files(handle: h5py.File, path: Path) -> list[str]:
    """External links whose target file is absent (e.g. a Dectris master without its data files)."""
    import h5py

    missing: list[str] = []

    def walk(group: h5py.Group, depth: int) -> None:
        if depth > 4:
            return
        for key in group:
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                if not (path.parent / link.filename).exists():
                    missing.append(link.filename)
            elif isinstance(link, h5py.HardLink):
                child = group.get(key)
                if isinstance(child, h5py.Group):
                    walk(child, depth + 1)

    walk(handle, 0)
    return missing


def _attrs(group) -> dict:
    if group is None:
        return {}
    return {key: _plain(value) for key, value in group.attrs.items()}


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _dim_step(values) -> float | None:
    values = np.asarray(values)
    if values.ndim != 1 or values.size < 2 or values.dtype.kind not in "fiu":
        return None
    return float(values[1] - values[0])


_DE_MOVIE = re.compile(r"^(?P<stamp>\d{8})_(?P<number>\d+)(?:_.+?)?_movie\.mrc$", re.IGNORECASE)


def _direct_electron_sidecar(path: Path) -> Path | None:
    """The ``*_info.txt`` a Direct Electron camera writes beside its movie, if there is one."""
    match = _DE_MOVIE.match(path.name)
    if not match:
        return None
    prefix = f"{match.group('stamp')}_{match.group('number')}_"
    found = sorted(path.parent.glob(glob_escape(prefix) + "info.txt")) or sorted(
        path.parent.glob(glob_escape(prefix) + "*_info.txt")
    )
    return found[0] if found else None


def _velox_frames(stored: h5py.Dataset):
    """A Velox image dataset with its frames first, as RosettaSciIO gives it: Velox stores (y, x, frame), one
    frame for a single image.  ncempy reads it whole and keeps that order, so a 100-frame series came out as a
    512-row "stack" of 512 x 100 slices, and a multi-GB one did not fit in memory; a large one is read lazily,
    one frame per chunk.  FFT and DPC results are stored as pairs of floats and become complex numbers."""
    fields = stored.dtype.names or ()
    if declared_bytes(stored.shape, stored.dtype) > LAZY_ABOVE_BYTES:
        import dask.array as da

        chunks = (*stored.shape[:2], 1) if stored.ndim == 3 else "auto"
        data = da.from_array(stored, chunks=chunks, asarray=True, fancy=False)
    else:
        data = stored[()]
    if len(fields) == 2:
        data = data[fields[0]] + 1j * data[fields[1]]
    if data.ndim == 3:
        data = data[..., 0] if data.shape[-1] == 1 else data.transpose(2, 0, 1)
    return data


def _velox_dataset(index: int, data, meta: dict) -> Dataset:
    optics = meta.get("Optics", {})
    instrument = meta.get("Instrument", {})
    binary = meta.get("BinaryResult", {})
    pixel = binary.get("PixelSize", {}) or {}
    unit = binary.get("PixelUnitX", "")
    operating_mode = {"1": "TEM", "2": "STEM"}.get(str(optics.get("OperatingMode", "")))
    # The instrument's class (Titan, Talos) first, as RosettaSciIO names the microscope, then what tells two of
    # a class apart: the model (Spectra, Themis), the instrument id and the computer's name.
    parts = [
        _text(instrument.get(key)) for key in ("InstrumentClass", "InstrumentModel", "InstrumentId", "ComputerName")
    ]
    reported = " ".join(dict.fromkeys(part for part in parts if part))
    epoch = number(((meta.get("Acquisition") or {}).get("AcquisitionStartDatetime") or {}).get("DateTime"))
    magnification = number(optics.get("NominalMagnification"))
    if operating_mode == "STEM":
        magnification = (
            number(((meta.get("CustomProperties") or {}).get("StemMagnification") or {}).get("value")) or magnification
        )
    return Dataset(
        data=data,
        index=index,
        name=_text(binary.get("Detector")),
        axes_units=[unit] * min(data.ndim, 2),
        instrument_reported=reported or None,
        acquired_at=dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch else None,  # Velox stores UTC epoch
        pixel_size_nm=length_to_nm(pixel.get("width"), unit),
        voltage_kv=_scaled(optics.get("AccelerationVoltage"), 1e-3),
        magnification=magnification,
        camera_length_mm=_scaled(optics.get("CameraLength"), 1e3),
        mode=operating_mode,
        detector=_text(binary.get("Detector")),
        metadata=meta,
    )


class MRCLoader(FileLoader):
    """MRC volumes and movies; a Direct Electron movie with its ``*_info.txt`` sidecar is read with the sidecar.

    Direct Electron cameras write ``YYYYMMDD_NNNNN[_suffix]_movie.mrc`` and beside it ``YYYYMMDD_NNNNN_info.txt``
    ('key = value' lines): the scan size that makes a 4D-STEM scan of the movie's frames, the magnification, the
    time (seconds since the epoch).  RosettaSciIO's MRC reader knows that layout, so such a movie is read through
    it rather than by parsing the sidecar a second time here.
    """

    name = "mrc"
    version = "2"  # 2: Direct Electron movies with their info sidecar (4D scans, time, magnification)
    description = "MRC / CCP4 volumes and stacks (.mrc, .rec, .ali, .st) (ncempy); Direct Electron movies"
    suffixes = frozenset({".mrc", ".mrcs", ".rec", ".ali", ".st"})

    def companions(self, path: Path) -> list[Path]:
        sidecar = _direct_electron_sidecar(path)
        return [sidecar] if sidecar else []

    def read(self, path: Path) -> Iterator[Dataset]:
        if _direct_electron_sidecar(path):
            from .rosettasciio_formats import read_with_rosettasciio

            yield from read_with_rosettasciio(path, plugin_names=("MRC",))
            return
        from ncempy.io import mrc

        with mrc.fileMRC(str(path)) as handle:
            large = declared_bytes(handle.dataSize, handle.dataType) > LAZY_ABOVE_BYTES
            # A large volume or movie through a read-only memory map of the file, only its preview's frames read.
            result = {"data": on_disk(handle.getMemmap()), "pixelSize": handle.voxelSize} if large else None
            result = result or handle.getDataset()
            header = {
                "dataSize": handle.dataSize,
                "voxelSize": handle.voxelSize,
                "gridSize": handle.gridSize,
                "cellAngles": handle.cellAngles,
                "mrcType": handle.mrcType,
                "FEIinfo": getattr(handle, "FEIinfo", {}),
            }
        data = result["data"] if is_lazy(result["data"]) else np.asarray(result["data"])
        voxel = np.asarray(result.get("pixelSize", [None]))
        fei = header.get("FEIinfo") or {}
        # MRC voxel sizes are in ångström; 0 or 1 usually means 'not set'.
        pixel_size_nm = length_to_nm(voxel[-1], "A") if voxel.size and voxel[-1] not in (0, 1) else None
        yield Dataset(
            data=data,
            axes_units=["A"] * data.ndim,
            pixel_size_nm=pixel_size_nm,
            voltage_kv=_scaled(fei.get("ht"), 1e-3) if fei else None,
            magnification=number(fei.get("magnification")) if fei else None,
            metadata=header,
        )
