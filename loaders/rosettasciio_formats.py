"""Formats ncempy does not read, through RosettaSciIO (HyperSpy's reader library).

Bruker .bcf, Phenom .elid, JEOL .pts/.asw, EDAX .spd/.spc, EMSA spectra,
TVIPS, MIB and more.  RosettaSciIO returns each signal's vendor metadata plus a
``mapping`` from vendor keys to HyperSpy's common names, which HyperSpy would
apply; we apply it here so beam energy, magnification and dates come out the
same way for every vendor.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from datasette_scisearch.ingest.loader import Dataset, FileLoader, LoaderError
from datasette_scisearch.ingest.normalize import length_to_nm, number

# Suffixes left to RosettaSciIO: those that ncempy or tifffile already read are not listed.
_SUFFIXES = (
    "bcf spx elid pts asw spd spc lsd msa ems emsa mas blo unf mib tvips de5 prz mrcz sur pro wdf app5 dens"
).split()


class RosettaSciIOLoader(FileLoader):
    name = "rosettasciio"
    version = "1"
    description = "Bruker, Phenom, JEOL, EDAX, EMSA, TVIPS, Quantum Detectors and other formats (RosettaSciIO)"
    suffixes = frozenset(f".{s}" for s in _SUFFIXES)

    def read(self, path: Path) -> Iterator[Dataset]:
        reader = _reader_for(path.suffix.lower().lstrip("."))
        try:
            signals = reader(str(path), lazy=False)
        except ImportError as error:
            raise LoaderError(f"RosettaSciIO needs an optional package to read this format: {error}") from None
        except Exception as error:  # vendor readers raise anything from struct.error to KeyError
            raise LoaderError(f"RosettaSciIO could not read it: {type(error).__name__}: {error}") from None
        for index, signal in enumerate(signals):
            yield _dataset(index, signal)


def _reader_for(extension: str):
    import rsciio

    for plugin in rsciio.IO_PLUGINS:
        if extension in {e.lower() for e in plugin["file_extensions"]}:
            module = importlib.import_module(plugin["api"])
            return module.file_reader
    raise LoaderError(f"RosettaSciIO has no reader for '.{extension}' files")


def _dataset(index: int, signal: dict) -> Dataset:
    metadata = _mapped_metadata(signal)
    general = metadata.get("General", {})
    instrument = metadata.get("Acquisition_instrument", {})
    microscope_kind, microscope = next(iter(instrument.items()), (None, {}))
    axes = signal.get("axes") or []
    units = [str(axis.get("units") or "") for axis in axes]
    scales = [axis.get("scale") for axis in axes]
    signal_type = str((metadata.get("Signal") or {}).get("signal_type") or "")
    spectroscopy = next((s for s in ("EELS", "EDS", "EDX", "CL") if s in signal_type.upper()), None)
    detectors = microscope.get("Detector", {}) if isinstance(microscope, dict) else {}
    detector = None
    if isinstance(detectors, dict) and detectors:
        kind, details = next(iter(detectors.items()))
        detector = (details or {}).get("detector_type") or kind
    elif not spectroscopy and general.get("title"):
        detector = general["title"]  # Bruker names its imaging channels after the detector (HAADF, BF)
    spatial = [(u, s) for u, s in zip(units, scales) if length_to_nm(s, u) is not None]
    return Dataset(
        data=np.asarray(signal["data"]),
        index=index,
        name=general.get("title"),
        axes_units=units,
        instrument_reported=microscope.get("microscope") if isinstance(microscope, dict) else None,
        acquired_at=_parse_general_datetime(general),
        pixel_size_nm=length_to_nm(spatial[-1][1], spatial[-1][0]) if spatial else None,
        voltage_kv=number(microscope.get("beam_energy")),  # HyperSpy's beam_energy is in keV
        magnification=number(microscope.get("magnification")),
        camera_length_mm=number(microscope.get("camera_length")),  # HyperSpy's camera_length is in mm
        mode=spectroscopy if spectroscopy in ("EELS", "EDS") else ("EDS" if spectroscopy == "EDX" else microscope_kind),
        detector=detector,
        signal=spectroscopy,
        metadata={"metadata": metadata, "original_metadata": signal.get("original_metadata", {})},
    )


def _mapped_metadata(signal: dict) -> dict:
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


def _parse_general_datetime(general: dict) -> dt.datetime | None:
    date, time = general.get("date"), general.get("time")
    if not date:
        return None
    try:
        moment = dt.datetime.fromisoformat(f"{date}T{time or '00:00:00'}")
    except ValueError:
        return None
    return moment
