"""What a loader is: the contract between a file format or record source and the catalog.

Loaders only read.  They turn one instrument file into ``Dataset`` objects, or
one log / proposal / bibliography file into plain record dicts; the core
(``ingest`` and ``records``) hashes, normalises times, makes previews, writes
rows, records errors and links context.  Raise ``LoaderError`` with a sentence
a person can act on; anything else a loader raises is reported too, but with
less grace.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScisearchError


class LoaderError(ScisearchError):
    """A file or record that cannot be read; the message is shown to the user as is."""


class RefusedFile(LoaderError):
    """A file a reader refuses before reading it (it declares more data than it can hold): no other reader of the
    chain is tried, since each would allocate what the file declares."""


class NotData(ScisearchError):
    """The file is not data on its own (a metadata companion such as a TIA .emi); skip it quietly."""


@dataclass
class Dataset:
    """One dataset inside an instrument file, with its metadata normalised.

    A file may hold several (one per Velox detector, a Bruker file's image and
    its EDS map).  Units are in the field names; ``None`` means not recorded.
    ``energy_axis_ev`` labels a spectrum's channels, or ``wavelength_axis_nm`` a light spectrum's (cathodoluminescence
    is recorded against wavelength).
    ``acquired_at`` is timezone-aware when the format stores UTC, naive when the
    instrument wrote local time (the core applies the facility's time zone);
    ``acquired_at_source`` says where it was found when that is weaker than the
    instrument's own metadata (a TIFF ``DateTime`` tag, which the exporting
    program may have written).  ``navigate`` marks, per axis, the scan or frame
    axes (True) and the detector's (False), as RosettaSciIO does; ``kind`` is
    decided from the axes (``datasette_scisearch.ingest.kinds``) unless the reader knows
    better.  Placeholders (magnification 0 or 1, 0 kV) are turned into None by
    the core, so readers may pass what the file says.
    """

    data: np.ndarray
    index: int = 0
    name: str | None = None
    axes_units: list[str] = field(default_factory=list)
    axes_names: list[str] = field(default_factory=list)
    navigate: list[bool | None] = field(default_factory=list)
    kind: str | None = None
    instrument_reported: str | None = None
    acquired_at: dt.datetime | None = None
    acquired_at_source: str = "metadata"
    pixel_size_nm: float | None = None
    voltage_kv: float | None = None
    magnification: float | None = None
    camera_length_mm: float | None = None
    mode: str | None = None
    detector: str | None = None
    signal: str | None = None
    energy_axis_ev: np.ndarray | None = None
    wavelength_axis_nm: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class FileLoader:
    """Reads instrument files.  Subclasses set the class attributes and implement ``read``."""

    name: str = ""
    version: str = "1"
    description: str = ""
    suffixes: frozenset[str] = frozenset()

    def claims(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes

    def companions(self, path: Path) -> list[Path]:
        """Other files read together with ``path`` (their bytes join its content hash)."""
        return []

    def read(self, path: Path) -> Iterator[Dataset]:
        raise NotImplementedError


@dataclass
class RecordError:
    """A record that could not be loaded; ``line`` is 1-based in the source file (0: the whole file)."""

    line: int
    message: str


class RecordLoader:
    """Reads records of one kind: ``userlog`` (sessions), ``proposals`` or ``papers``.

    ``read`` yields dicts whose keys are columns of the kind's table (see
    ``catalog.RECORD_TABLES``), each with ``"_line"`` set to its line number,
    or ``RecordError`` for a record it could not use.
    """

    name: str = ""
    version: str = "1"
    description: str = ""
    kind: str = ""
    suffixes: frozenset[str] = frozenset()

    def claims(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes

    def read(self, path: Path, options: dict[str, Any]) -> Iterator[dict | RecordError]:
        raise NotImplementedError
