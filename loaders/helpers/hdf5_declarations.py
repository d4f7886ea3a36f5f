"""What an HDF5 file declares against what it can hold: a damaged or hostile file is refused before any array is
read.  Shared by the ncempy and RosettaSciIO readers, which both open HDF5 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasette_scisearch.ingest.loader import RefusedFile

# A dataset may declare more than its file holds (HDF5 leaves unwritten chunks to a fill value, and compression
# is real), but not without bound: a 246 KB file declaring a 30000² float32 array (3.6 GB) is damaged or
# hostile, and reading it would allocate what it declares.  Refused before any array is read.
MAX_DECLARED_BYTES = 1 * 2**30
MAX_DECLARED_PER_FILE_BYTE = 64


def refuse_impossible_declarations(handle, path: Path) -> None:
    """Raise RefusedFile when the largest dataset of the open HDF5 ``handle`` cannot fit in its file."""
    import h5py

    file_bytes = max(path.stat().st_size, 1)
    largest: list[tuple[int, str]] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.shape:
            largest.append((int(np.prod(obj.shape, dtype=np.float64)) * obj.dtype.itemsize, name))

    try:
        handle.visititems(visit)
    except (KeyError, RuntimeError, OSError):
        return
    declared, name = max(largest, default=(0, ""))
    if declared > MAX_DECLARED_BYTES and declared > MAX_DECLARED_PER_FILE_BYTE * file_bytes:
        raise RefusedFile(
            f"its dataset '{name}' declares {_size(declared)} of data in a {_size(file_bytes)} file, which cannot "
            "hold it: the file is damaged (or was written empty), so it was not read"
        )


def _size(count: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
