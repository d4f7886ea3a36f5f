"""Reading one instrument file through its chain of readers: the specialised reader first, RosettaSciIO after.

A facility's disks hold files one reader gets wrong and another reads: a TIA
file without an acquire date that ncempy trips over, an HDF5 file that is not
EMD but a Dectris Arina master.  Every installed loader that claims a file's
suffix is tried in the order the loaders were registered (ncempy and tifffile
before RosettaSciIO); the first that returns datasets serves the file, and the
row's ``loader`` says which.  When a fallback served, the earlier readers'
errors go into the row's metadata (``reader_fallback``), so nobody wonders why
a .dm3 was read by RosettaSciIO.  A file is an error only when no reader in the
chain can read it, and the message names each reader and what it said.

Nothing here touches the database, so it runs in-process or on a Dask worker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from .filerows import dataset_row
from .loader import Dataset, FileLoader, LoaderError, NotData, RefusedFile
from .views import Views, dataset_views


@dataclass
class FileResult:
    """What reading one file produced: rows and previews to write, or why there are none."""

    path: Path
    loader: str
    size_bytes: int
    modified_at: dt.datetime
    sha256: str
    rows: list[dict] = field(default_factory=list)
    previews: list[tuple[bytes, int, int] | None] = field(default_factory=list)
    views: list[Views] = field(default_factory=list)  # per row: its spectrum and frames for the item page
    error: str | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    replaces_existing: bool = False


def loader_id(loader: FileLoader) -> str:
    return f"{loader.name}:{loader.version}"


def loaders_for(path: Path, loaders: list[FileLoader]) -> list[FileLoader]:
    """Every loader that claims ``path``, in the order they were registered: the reader chain for the file."""
    return [loader for loader in loaders if loader.claims(path)]


def companions_of(path: Path, chain: list[FileLoader]) -> list[Path]:
    """The files read together with ``path`` by any reader of its chain (their bytes join its content hash)."""
    found: list[Path] = []
    for loader in chain:
        found.extend(p for p in loader.companions(path) if p not in found)
    return found


def sha256_of(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def file_format(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or "none"


def read_file(
    path: Path, chain: list[FileLoader] | FileLoader, settings: Settings, sha256: str | None = None
) -> FileResult:
    """Read one file with the first reader of its chain that can, and turn each dataset into a row; never raises
    for a bad file."""
    chain = [chain] if isinstance(chain, FileLoader) else list(chain)
    try:
        stat = path.stat()
    except OSError as error:  # gone or unreadable since the walk
        unknown_time = dt.datetime.fromtimestamp(0, dt.UTC)
        return FileResult(
            path, loader_id(chain[0]), 0, unknown_time, sha256 or "", error=f"cannot read it: {error.strerror}"
        )
    modified_at = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
    if stat.st_size == 0:
        return FileResult(
            path,
            loader_id(chain[0]),
            0,
            modified_at,
            sha256 or "",
            error="the file is empty (0 bytes); it was probably not copied completely: copy it again",
        )
    try:
        digest = sha256 or sha256_of([path, *companions_of(path, chain)])
    except OSError as error:
        return FileResult(path, loader_id(chain[0]), stat.st_size, modified_at, "", error=f"cannot read it: {error}")
    failures: list[tuple[FileLoader, str]] = []
    for loader in chain:
        result = FileResult(path, loader_id(loader), stat.st_size, modified_at, digest)
        refused = _read_with(loader, path, settings, result)
        if result.skipped or (result.rows and not result.error):
            if failures:
                _record_fallback(result, failures)
            _backfill_times(result)
            return result
        failures.append((loader, result.error or "it found no datasets in the file"))
        if refused:
            break
    result = FileResult(path, loader_id(chain[0]), stat.st_size, modified_at, digest)
    result.error = _no_reader_could(failures)
    return result


@dataclass
class DatasetRead:
    """One dataset of a file read again for its array (an export), or why it could not be."""

    dataset: Dataset | None
    loader: str | None = None
    error: str | None = None


def read_dataset(path: Path, chain: list[FileLoader], index: int) -> DatasetRead:
    """The dataset numbered ``index`` of ``path``, from the first reader of the chain that gives it; never raises
    for a bad file.  Its raw metadata is left behind: an export carries the array and its axes."""
    failures = []
    for loader in chain:
        try:
            for dataset in loader.read(path):
                if dataset.index == index:
                    dataset.metadata = {}
                    return DatasetRead(dataset, loader_id(loader))
            failures.append(f"{loader.name}: it has no dataset #{index}")
        except MemoryError:
            failures.append(f"{loader.name}: ran out of memory reading it")
        except Exception as error:  # a reader library's own failure; the next reader may do better
            failures.append(f"{loader.name}: {type(error).__name__}: {error}"[:300])
    return DatasetRead(None, error="; ".join(failures) or "no installed reader claims this file")


def _read_with(loader: FileLoader, path: Path, settings: Settings, result: FileResult) -> bool:
    """Fill ``result`` from one reader; True when the reader refused the file (no other should try)."""
    refused = False
    try:
        for dataset in loader.read(path):
            row, preview, note = dataset_row(dataset, path, file_format(path), settings, result.modified_at)
            result.rows.append(row)
            result.previews.append(preview)
            try:
                result.views.append(dataset_views(dataset, row["kind"]))
            except Exception as error:  # the row and its preview are worth keeping without a plot or frames
                result.views.append(Views())
                note = note or f"no spectrum or frames: {type(error).__name__}: {error}"
            if note:
                result.notes.append(f"{path.name} #{dataset.index}: {note}")
    except NotData as reason:
        result.skipped = str(reason)
    except RefusedFile as error:
        result.error, refused = str(error), True
    except LoaderError as error:
        result.error = str(error)
    except MemoryError:
        result.error = "ran out of memory reading it; load it on a machine with more memory"
    except Exception as error:  # a reader library's own failure on a truncated or odd file
        result.error = f"{type(error).__name__}: {error}"
    if result.error or result.skipped:
        result.rows, result.previews, result.views = [], [], []
    return refused


def _record_fallback(result: FileResult, failures: list[tuple[FileLoader, str]]) -> None:
    """The evidence of a fallback: which readers failed first and why, kept in each row's metadata."""
    import json

    evidence = [{"reader": loader_id(loader), "error": message[:500]} for loader, message in failures]
    for row in result.rows:
        try:
            metadata = json.loads(row["metadata"] or "{}")
        except ValueError:
            metadata = {}
        if not isinstance(metadata, dict):
            metadata = {"metadata": metadata}
        metadata["reader_fallback"] = evidence
        row["metadata"] = json.dumps(metadata, ensure_ascii=False, sort_keys=True)
    first, message = failures[0]
    result.notes.append(f"read by {result.loader} after {first.name} failed ({message[:120]}): {result.path.name}")


def _no_reader_could(failures: list[tuple[FileLoader, str]]) -> str:
    """Which readers were tried and what each said, the specialised reader's reason first, and whether trying
    again can help (it is not tried again until the file changes)."""
    if len(failures) == 1:
        loader, message = failures[0]
        said = (
            message if message.startswith("RosettaSciIO") else f"the {loader.name} reader could not read it: {message}"
        )
    else:
        said = "no installed reader could read it — " + "; ".join(
            m if m.startswith("RosettaSciIO") else f"{loader.name}: {m}" for loader, m in failures
        )
    if "--retry-errors" in said:
        return said
    return said.rstrip(".") + " (not read again until the file changes; once it is fixed, load with --retry-errors)"


def _backfill_times(result: FileResult) -> None:
    """A dataset without a time of its own takes its sibling's (one acquisition, one clock): a Bruker
    file records the date with its EDS map, not with the HAADF image taken alongside."""
    times = [r for r in result.rows if r["acquired_at_source"] == "metadata"]
    for row in result.rows:
        if row["acquired_at_source"] == "file modification time" and times:
            row["acquired_at"] = times[0]["acquired_at"]
            row["acquired_local"] = times[0]["acquired_local"]
            row["acquired_at_source"] = "metadata of another dataset in the file"
