"""Every format RosettaSciIO (HyperSpy's reader library) reads: the reader chain's last resort.

Bruker .bcf/.spx, Phenom .elid, JEOL .img/.map/.pts/.eds, EDAX .spd/.spc, EMSA
spectra, TVIPS, Quantum Detectors .mib, Dectris Arina, NanoMegas .blo and more;
and, when a specialised reader (ncempy, tifffile) fails on a file RosettaSciIO
also has a reader for, that file (see ``ingest.read_file``).  RosettaSciIO returns each signal's vendor metadata plus a
``mapping`` from vendor keys to HyperSpy's common names, which HyperSpy would
apply; we apply it here so beam energy, magnification and dates come out the
same way for every vendor.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Iterator
from glob import escape as glob_escape
from pathlib import Path

import numpy as np

from datasette_scisearch.ingest.lazy import LAZY_ABOVE_BYTES, is_lazy
from datasette_scisearch.ingest.loader import Dataset, FileLoader, LoaderError, NotData
from datasette_scisearch.ingest.normalize import length_to_nm, number

# RosettaSciIO also claims suffixes that are mostly not instrument data on a facility's disks (a user log's .csv,
# an instrument PC's .xml settings, .npy scratch arrays); reading those through vendor readers that expect one
# layout would turn every such file into an error row, so they are left alone.
_GENERIC_SUFFIXES = {"csv", "xml", "npy", "nc", "txt"}

# Readers for the same suffix in the order tried: a dialect that names itself first, the general HDF5 ones last.
_HDF5_ORDER = ("Arina", "EMD", "HSPY", "NeXus", "Delmic", "Tofwerk", "USID")


def _plugins() -> dict[str, list[dict]]:
    """RosettaSciIO's plugins by lower-case suffix (from its own plugin list, so new readers come for free)."""
    import rsciio

    by_suffix: dict[str, list[dict]] = {}
    for plugin in rsciio.IO_PLUGINS:
        for suffix in {e.lower() for e in plugin["file_extensions"]}:
            if suffix not in _GENERIC_SUFFIXES:
                by_suffix.setdefault(suffix, []).append(plugin)
    for plugins in by_suffix.values():
        plugins.sort(key=lambda p: _HDF5_ORDER.index(p["name"]) if p["name"] in _HDF5_ORDER else -1)
    return by_suffix


PLUGINS_BY_SUFFIX = _plugins()


class RosettaSciIOLoader(FileLoader):
    """Every format RosettaSciIO has a reader for: the chain's last resort after the specialised readers."""

    name = "rosettasciio"
    # 2: every RosettaSciIO suffix, each of its readers for a suffix tried, time zones kept; 3: spectra's energy axes;
    # 4: CL spectra's wavelength axes, which are no pixel size
    version = "4"
    description = "Bruker, Phenom, JEOL, EDAX, EMSA, TVIPS, Quantum Detectors and every other RosettaSciIO format"
    suffixes = frozenset(f".{s}" for s in PLUGINS_BY_SUFFIX)

    def companions(self, path: Path) -> list[Path]:
        header = path.with_suffix(".hdr")  # a Merlin .mib's acquisition header
        if path.suffix.lower() == ".mib":
            return [header] if header.exists() else []
        return _arina_data_files(path)

    def read(self, path: Path) -> Iterator[Dataset]:
        if path.suffix.lower() in _HDF5_SUFFIXES:
            _check_hdf5_declarations(path)
        if _arina_master(path) is not None:
            raise NotData(f"data file of the Arina acquisition '{_arina_master(path).name}'")
        yield from read_with_rosettasciio(path)


_HDF5_SUFFIXES = {".h5", ".hdf5", ".hspy", ".emd", ".nxs"}


def _check_hdf5_declarations(path: Path) -> None:
    """HDF5 files are refused before reading when they declare more data than they can hold (see
    helpers/hdf5_declarations.py); a file HDF5 cannot open is left to the readers to say so."""
    import h5py

    from .helpers.hdf5_declarations import refuse_impossible_declarations

    try:
        handle = h5py.File(path, "r")
    except OSError:
        return
    with handle:
        refuse_impossible_declarations(handle, path)


def _arina_master(path: Path) -> Path | None:
    """Dectris Arina writes NAME_master.h5 (metadata, links) and NAME_data_000001.h5 …; the master is the file."""
    match = re.match(r"(.+)_data_\d{6}\.h5$", path.name, re.IGNORECASE)
    master = path.with_name(f"{match.group(1)}_master.h5") if match else None
    return master if master is not None and master.exists() else None


def _arina_data_files(path: Path) -> list[Path]:
    """A Dectris Arina master's data files, which hold its frames (read through the master's links, downloaded with
    it)."""
    match = re.match(r"(.+)_master\.h5$", path.name, re.IGNORECASE)
    if not match:
        return []
    return sorted(path.parent.glob(glob_escape(match.group(1)) + "_data_[0-9][0-9][0-9][0-9][0-9][0-9].h5"))


def read_with_rosettasciio(path: Path, plugin_names: tuple[str, ...] | None = None) -> Iterator[Dataset]:
    """The datasets RosettaSciIO reads from ``path``: each of its readers for the suffix is tried in turn."""
    plugins = [
        p
        for p in PLUGINS_BY_SUFFIX.get(path.suffix.lower().lstrip("."), [])
        if plugin_names is None or p["name"] in plugin_names
    ]
    if not plugins:
        raise LoaderError(f"RosettaSciIO has no reader for '{path.suffix}' files")
    failures: list[tuple[str, str]] = []
    missing_packages: list[tuple[str, str]] = []
    for plugin in plugins:
        try:
            reader = importlib.import_module(plugin["api"]).file_reader
            signals = _read(reader, path)
        except ImportError as error:
            missing_packages.append((plugin["name"], error.name or str(error)))
            continue
        except MemoryError:
            raise
        except Exception as error:  # vendor readers raise anything from struct.error to KeyError
            failures.append((plugin["name"], f"{type(error).__name__}: {error}"))
            continue
        if signals:
            for index, signal in enumerate(signals):
                yield dataset_from_signal(index, signal, plugin["name"])
            return
        failures.append((plugin["name"], "no data in the file"))
    raise LoaderError(_why_not(path, failures, missing_packages))


def _read(reader, path: Path) -> list[dict]:
    """A large file is read lazily (dask arrays, read only where the preview needs them: ``ingest/lazy.py``); a
    reader that cannot read lazily reads it whole, within the sandbox's memory limit."""
    if path.stat().st_size > LAZY_ABOVE_BYTES:
        try:
            return reader(str(path), lazy=True)
        except TypeError as error:
            if "lazy" not in str(error):
                raise
    return reader(str(path), lazy=False)


def _why_not(path: Path, failures: list[tuple[str, str]], missing: list[tuple[str, str]]) -> str:
    """What RosettaSciIO's readers said, in one sentence: the one reader's reason, or that none recognised it."""
    if missing and not failures:
        name, package = missing[0]
        return (
            f"RosettaSciIO's {name} reader needs the optional package '{package}': pip install {package}, "
            "then load again with --retry-errors"
        )
    if len(failures) == 1:
        name, message = failures[0]
        return f"RosettaSciIO's {name} reader could not read it: {message[:300]}"
    names = ", ".join(name for name, _ in failures + missing)
    return f"none of RosettaSciIO's readers for '{path.suffix}' files ({names}) recognises it"


# HyperSpy's camera_length is in mm, but RosettaSciIO's block-file mapping scales the header's 0.1 mm units by
# 1e-4, which gives metres (a NanoMegas camera length of '0.2' is 20 cm): those readers' values are converted.
CAMERA_LENGTH_IN_METRES = {"Blockfile"}


def camera_length_mm(value, plugin_name: str | None) -> float | None:
    length = number(value)
    if length is not None and plugin_name in CAMERA_LENGTH_IN_METRES:
        length *= 1e3
    return length


def dataset_from_signal(index: int, signal: dict, plugin_name: str | None = None) -> Dataset:
    """One RosettaSciIO signal as a Dataset, its vendor metadata mapped to HyperSpy's common names first."""
    metadata = mapped_metadata(signal)
    general = metadata.get("General", {})
    instruments = metadata.get("Acquisition_instrument") or {}
    microscope_kind, microscope = next(
        ((k, v) for k, v in instruments.items() if k in ("TEM", "SEM") and isinstance(v, dict)), (None, {})
    )
    axes = signal.get("axes") or []
    units = [_unit(axis.get("units")) for axis in axes]
    scales = [axis.get("scale") for axis in axes]
    signal_type = str((metadata.get("Signal") or {}).get("signal_type") or "")
    spectroscopy = next((s for s in ("EELS", "EDS", "EDX", "CL") if s in signal_type.upper()), None)
    detectors = microscope.get("Detector", {})
    detector = None
    if isinstance(detectors, dict) and detectors:
        kind, details = next(iter(detectors.items()))
        detector = (details or {}).get("detector_type") if isinstance(details, dict) else None
        detector = detector or kind
    elif not spectroscopy and general.get("title"):
        detector = general["title"]  # Bruker names its imaging channels after the detector (HAADF, BF)
    wavelength = _wavelength_axis_nm(axes, np.shape(signal["data"]), spectroscopy)
    # A CL spectrum's wavelength axis is in nm too, but it is no pixel: only the other axes can be.
    lengths = list(zip(units, scales))[: -1 if wavelength is not None else None]
    spatial = [(u, s) for u, s in lengths if length_to_nm(s, u) is not None]
    acquired, time_source = _acquired(general, signal.get("original_metadata") or {})
    return Dataset(
        data=_plain_array(signal["data"]),
        index=index,
        name=general.get("title"),
        axes_units=units,
        axes_names=[str(axis.get("name") or "") for axis in axes],
        navigate=[axis.get("navigate") for axis in axes],
        instrument_reported=_text(microscope.get("microscope")),
        acquired_at=acquired,
        acquired_at_source=time_source,
        pixel_size_nm=length_to_nm(spatial[-1][1], spatial[-1][0]) if spatial else None,
        voltage_kv=number(microscope.get("beam_energy")),  # HyperSpy's beam_energy is in keV
        magnification=number(microscope.get("magnification")),
        camera_length_mm=camera_length_mm(microscope.get("camera_length"), plugin_name),
        mode=spectroscopy if spectroscopy in ("EELS", "EDS") else ("EDS" if spectroscopy == "EDX" else microscope_kind),
        detector=detector,
        signal=spectroscopy or signal_type or None,
        energy_axis_ev=_energy_axis_ev(axes, np.shape(signal["data"])),
        wavelength_axis_nm=wavelength,
        metadata={"metadata": metadata, "original_metadata": signal.get("original_metadata", {})},
    )


def _energy_axis_ev(axes: list[dict], shape: tuple[int, ...]) -> np.ndarray | None:
    """A spectrum's channels in eV, from its last axis's offset and scale (RosettaSciIO's uniform axes), when that
    axis is an energy; None otherwise."""
    if not axes or len(axes) != len(shape):
        return None
    axis = axes[-1]
    unit = _unit(axis.get("units"))
    if unit not in ("eV", "keV") or axis.get("navigate"):
        return None
    scale, offset = number(axis.get("scale")), number(axis.get("offset")) or 0.0
    if not scale:
        return None
    return (offset + scale * np.arange(shape[-1])) * (1e3 if unit == "keV" else 1.0)


def _wavelength_axis_nm(axes: list[dict], shape: tuple[int, ...], spectroscopy: str | None) -> np.ndarray | None:
    """A light spectrum's channels in nm (cathodoluminescence, as RosettaSciIO's readers give its 'Wavelength'
    axis): the last axis, a signal axis in a length unit, on a CL signal or named for wavelength."""
    if not axes or len(axes) != len(shape):
        return None
    axis = axes[-1]
    named = "wavelength" in str(axis.get("name") or "").lower()
    if axis.get("navigate") or not (named or spectroscopy == "CL"):
        return None
    scale, offset = number(axis.get("scale")), number(axis.get("offset")) or 0.0
    in_nm = length_to_nm(1.0, _unit(axis.get("units")))
    if not scale or in_nm is None:
        return None
    return (offset + scale * np.arange(shape[-1])) * in_nm


def _plain_array(data) -> np.ndarray:
    """RosettaSciIO returns colour images as a structured array (one field per channel): keep the luminance."""
    data = data if is_lazy(data) else np.asarray(data)
    if data.dtype.names:
        data = np.mean([data[name].astype(np.float32) for name in data.dtype.names[:3]], axis=0)
    return data


def _unit(value) -> str:
    text = str(value or "").strip()
    return "" if text in ("<undefined>", "None") else text


def _text(value) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def mapped_metadata(signal: dict) -> dict:
    """The signal's metadata with RosettaSciIO's vendor-key mapping applied, as HyperSpy would."""
    metadata = _copy(signal.get("metadata") or {})
    original = signal.get("original_metadata") or {}
    for source, (target, convert) in (signal.get("mapping") or {}).items():
        value = _get_path(original, source)
        if value is None:
            continue
        try:
            value = convert(value) if convert else value
        except Exception:  # a vendor value the mapping cannot convert stays only in original_metadata
            continue
        _set_path(metadata, target, value)
    return metadata


def _copy(tree):
    return {k: _copy(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def _get_path(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set_path(tree: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value


def _acquired(general: dict, original: dict) -> tuple[dt.datetime | None, str]:
    """The acquisition time HyperSpy's metadata gives (aware when it names a time zone), and where it came from:
    the instrument's metadata, or a TIFF ``DateTime`` tag (written by whatever program saved the file)."""
    date, time = general.get("date"), general.get("time")
    stamp = number(general.get("timestamp"))  # Direct Electron: seconds since the epoch, in the sidecar
    if not date and stamp:
        return dt.datetime.fromtimestamp(stamp, dt.UTC), "metadata"
    if not date:
        return None, "metadata"
    try:
        moment = dt.datetime.fromisoformat(f"{date}T{str(time or '00:00:00')[:15]}")
    except ValueError:
        return None, "metadata"
    zone = str(general.get("time_zone") or "").strip()
    if zone in ("UTC", "GMT", "Z"):
        moment = moment.replace(tzinfo=dt.UTC)
    elif re.fullmatch(r"[+-]\d\d:?\d\d", zone):
        moment = dt.datetime.fromisoformat(f"{moment.isoformat()}{zone[:3]}:{zone[-2:]}")
    tag = original.get("DateTime")
    from_tag = isinstance(tag, str) and not zone and tag.replace(":", "-", 2) == f"{date} {str(time)[:8]}"
    return moment, ("TIFF DateTime tag" if from_tag else "metadata")
