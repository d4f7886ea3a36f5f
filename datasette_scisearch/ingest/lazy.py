"""Large datasets read lazily: a multi-GB 4D scan is never loaded whole, only the pieces its preview needs.

A reader hands the core a dask array instead of a numpy one when a dataset is large (``LAZY_ABOVE_BYTES``):
RosettaSciIO's own lazy signals, or an HDF5 dataset wrapped by ``from_hdf5``.  The core then takes the shape and
dtype from it without reading, and ``preview.representative_frame`` reduces it chunk by chunk (a 4D scan's mean
diffraction pattern over every n-th scan position, a stack's middle frame), computing only the small frame.  The
reader's memory then stays near one chunk (``CHUNK_BYTES``) whatever the file holds, inside the sandbox's memory
limit (``--reader-memory``).
"""

from __future__ import annotations

import numpy as np

# Below this a dataset is read whole: one read is faster than many small ones, and it fits any sensible limit.
LAZY_ABOVE_BYTES = 256 * 2**20
CHUNK_BYTES = 32 * 2**20


def is_lazy(data) -> bool:
    """A dask array (computed only when asked), as lazy readers return."""
    return hasattr(data, "dask") and hasattr(data, "compute")


def declared_bytes(shape, dtype) -> int:
    return int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize


def from_hdf5(dataset):
    """An h5py dataset as a dask array read a slab of its first axes at a time (a 4D scan: some scan rows, each
    frame whole), each chunk at most about CHUNK_BYTES.  The file must stay open while the array is used."""
    return on_disk(dataset)


def on_disk(stored):
    """Data on disk that reads only what is sliced (an h5py dataset, a read-only numpy memmap, ``FramesOnDisk``)
    as a dask array read a slab of its first axes at a time, each chunk at most about CHUNK_BYTES.  A memmap's
    pages are the file's, not the reader's heap, so the sandbox's memory limit does not count them."""
    import dask.array as da

    if isinstance(stored, np.ndarray):  # dask copies an array it is given: a memory map's copy is the whole file
        stored = _SlicedOnly(stored)
    return da.from_array(stored, chunks=slab_chunks(stored.shape, stored.dtype), asarray=True, fancy=False)


class _SlicedOnly:
    """A memory map seen only through slicing, each slice copied out of the map (so no chunk keeps it open)."""

    def __init__(self, mapped: np.ndarray):
        self.mapped, self.shape, self.dtype, self.ndim = mapped, mapped.shape, mapped.dtype, mapped.ndim

    def __getitem__(self, key):
        return np.array(self.mapped[key])


class FramesOnDisk:
    """A series of equally shaped frames read one at a time by ``read_frame(index)``: what a format that keeps a
    header before each frame (TIA .ser) offers in place of a memory map.  Sliced like an array along its first
    axis, it reads only the frames asked for."""

    def __init__(self, count: int, frame_shape: tuple[int, ...], dtype, read_frame):
        self.shape = (int(count), *map(int, frame_shape))
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.read_frame = read_frame

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = (key[0] if key else slice(None)), key[1:]
        if not isinstance(first, slice):
            return np.asarray(self.read_frame(int(first)))[rest]
        indices = range(self.shape[0])[first]
        frames = np.empty((len(indices), *self.shape[1:]), self.dtype)
        for position, index in enumerate(indices):
            frames[position] = self.read_frame(index)
        return frames[(slice(None), *rest)]


def slab_chunks(shape, dtype) -> tuple[int, ...]:
    """Chunks that keep the last axes whole and split the first ones, so a chunk is at most about CHUNK_BYTES."""
    chunks = list(shape)
    for axis in range(len(shape)):
        size = declared_bytes(chunks, dtype)
        if size <= CHUNK_BYTES:
            break
        per_step = size // max(1, shape[axis])
        chunks[axis] = max(1, CHUNK_BYTES // max(1, per_step))
    return tuple(chunks)


def compute(data) -> np.ndarray:
    """A lazy result computed one chunk at a time in this thread (a thread pool would hold a chunk per thread)."""
    return np.asarray(data.compute(scheduler="synchronous")) if is_lazy(data) else np.asarray(data)
