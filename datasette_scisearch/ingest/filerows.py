"""From a loader's Dataset to a catalog row: kinds, instruments, UTC times, preview, searchable text.

Pure functions with no database, so the same code runs in-process or on a
worker far from the catalog.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np

from ..catalog import to_json
from ..config import Settings
from .kinds import kind_from_axes
from .lazy import is_lazy
from .loader import Dataset
from .normalize import (
    honest_camera_length,
    honest_magnification,
    honest_time,
    honest_voltage,
    iso_local,
    iso_utc,
    magnification_label,
    to_utc,
)
from .preview import render_png

MAX_METADATA_JSON_CHARS = 1_000_000
MAX_METADATA_SEARCH_CHARS = 4_000


def display_path(path: Path | str) -> str:
    """The path as text for the catalog; undecodable bytes of non-UTF-8 names become \\xNN escapes."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def dataset_row(
    dataset: Dataset,
    path: Path,
    file_format: str,
    settings: Settings,
    modified_at: dt.datetime,
) -> tuple[dict, tuple[bytes, int, int] | None, str | None]:
    """The files-table row for one dataset, its preview, and a note if the preview failed."""
    data = dataset.data if is_lazy(dataset.data) else np.asarray(dataset.data)  # a lazy one is never read whole
    kind = dataset.kind or kind_from_axes(
        data.shape, dataset.axes_units, dataset.navigate, dataset.signal, dataset.axes_names
    )
    zone = settings.zone
    acquired = to_utc(honest_time(dataset.acquired_at), zone)
    source = dataset.acquired_at_source
    if acquired is None:
        acquired, source = modified_at, "file modification time"
    row = {
        "name": display_path(path.name),
        "path": display_path(path),
        "folder": display_path(path.parent),
        "dataset": dataset.index,
        "dataset_name": dataset.name,
        "format": file_format,
        "kind": kind,
        "instrument": settings.instrument_for(dataset.instrument_reported, path),
        "instrument_reported": dataset.instrument_reported,
        "acquired_at": iso_utc(acquired),
        "acquired_local": iso_local(acquired, zone),
        "acquired_at_source": source,
        "mode": dataset.mode,
        "detector": dataset.detector,
        "voltage_kv": _rounded(honest_voltage(dataset.voltage_kv)),
        "magnification": _rounded(honest_magnification(dataset.magnification)),
        "camera_length_mm": _rounded(honest_camera_length(dataset.camera_length_mm)),
        "pixel_size_nm": _rounded(dataset.pixel_size_nm),
        "shape": "×".join(str(n) for n in data.shape),
        "dtype": str(data.dtype),
    }
    metadata_json = to_json(dataset.metadata)
    if len(metadata_json) > MAX_METADATA_JSON_CHARS:
        metadata_json = to_json({"truncated": True, "keys": sorted(map(str, dataset.metadata))})
    row["metadata"] = metadata_json
    row["search_text"] = search_text(row, path, dataset.metadata)
    preview, note = None, None
    try:
        preview = render_png(data, kind, dataset.energy_axis_ev)
        row["preview"] = f"{preview[1]}x{preview[2]}"
    except Exception as error:  # a dataset without a preview is still worth cataloguing
        note = f"no preview: {type(error).__name__}: {error}"
        row["preview"] = None
    return row, preview, note


def _rounded(value: float | None) -> float | None:
    if value is None:
        return None
    return float(f"{value:.6g}")


_SPLIT = re.compile(r"[\s_\-.,;:()\[\]{}/\\]+")


def name_tokens(text: str) -> list[str]:
    """'Au_np_300kV_HAADF_0012' -> ['Au', 'np', '300kV', 'HAADF', '0012', '300', 'kV']: shorthand made searchable."""
    tokens: list[str] = []
    for token in _SPLIT.split(text):
        if not token:
            continue
        tokens.append(token)
        parts = re.findall(r"\d+(?:\.\d+)?|[A-Za-z]+", token)
        if len(parts) > 1:
            tokens.extend(parts)
    return tokens


def search_text(row: dict, path: Path, metadata: dict) -> str:
    """The words full-text search sees for a file: its name and folders, normalised values, metadata text."""
    words = name_tokens(display_path(path.stem)) + name_tokens(display_path(path.parent))
    for key in ("format", "kind", "instrument", "instrument_reported", "mode", "detector", "dataset_name"):
        if row.get(key):
            words.append(str(row[key]))
    if row.get("voltage_kv"):
        words.append(f"{row['voltage_kv']:g} kV {row['voltage_kv']:g}kV")
    if row.get("magnification"):
        label = magnification_label(row["magnification"])  # '13.5 Mx', also searchable as '13.5Mx'
        words.append(f"{label} {label.replace(' ', '')}")
    words.append(_metadata_words(metadata))
    return " ".join(words)


def _metadata_words(metadata, limit: int = MAX_METADATA_SEARCH_CHARS) -> str:
    """Short text values of the raw metadata (sample names, operators, modes); numbers are left out."""
    found: list[str] = []
    size = 0

    def walk(node, depth: int) -> None:
        nonlocal size
        if size > limit or depth > 6:
            return
        if isinstance(node, dict):
            for value in node.values():
                walk(value, depth + 1)
        elif isinstance(node, (list, tuple)) and len(node) < 50:
            for value in node:
                walk(value, depth + 1)
        elif isinstance(node, (str, bytes)):
            text = node.decode("utf-8", "replace") if isinstance(node, bytes) else node
            text = text.strip()
            if 1 < len(text) <= 200 and re.search(r"[A-Za-z]{2}", text):
                found.append(text)
                size += len(text) + 1

    walk(metadata, 0)
    return " ".join(found)[:limit]
