"""Files that are one acquisition together, so a watcher waits for all of them before reading any.

A reader's ``companions`` name the partner files that are already there; a watcher must also know the ones still
to come.  The formats' own conventions say which:

- FEI TIA writes ``NAME.emi`` (the microscope's settings) and ``NAME_1.ser``, ``NAME_2.ser`` … (the data); the
  .ser reader needs the .emi, and an .emi alone is an error;
- a Dectris detector writes ``NAME_master.h5`` whose external links name the data files
  (``NAME_data_000001.h5`` …); the master is the file catalogued;
- a Direct Electron camera writes a movie (MRC) and its ``…_info.txt`` sidecar; a plain MRC has none, so the
  sidecar is not waited for, but one that arrives later makes the movie be read again (``owners_of``).
"""

from __future__ import annotations

import re
from pathlib import Path

from .reading import companions_of

_SER = re.compile(r"^(?P<stem>.+)_\d+\.ser$", re.IGNORECASE)
_ARINA_DATA = re.compile(r"^(?P<stem>.+)_data_\d{6}\.h5$", re.IGNORECASE)
_MASTER = re.compile(r"^(?P<stem>.+)_master\.h5$", re.IGNORECASE)
_INFO = re.compile(r"^(?P<prefix>.+?)_info\.txt$", re.IGNORECASE)
MAX_LINK_DEPTH = 4  # Dectris masters keep their links in /entry/data


def expected_partners(path: Path) -> list[Path]:
    """The partner files ``path`` needs before it can be read in full, whether they have arrived or not; for an
    .emi, the first .ser of the series (a later one may follow, and is read on its own)."""
    name = path.name
    if match := _SER.match(name):
        return [path.with_name(match["stem"] + ".emi")]
    if path.suffix.lower() == ".emi":
        present = sorted(path.parent.glob(_glob_escape(path.stem) + "_*.ser"))
        return present[:1] or [path.with_name(path.stem + "_1.ser")]
    if _MASTER.match(name):
        return _external_files(path)
    if match := _ARINA_DATA.match(name):
        return [path.with_name(match["stem"] + "_master.h5")]
    return []


def owners_of(path: Path, claims) -> list[Path]:
    """The files whose reading includes ``path`` when ``path`` is not read on its own (a sidecar, an .emi, a data
    file of a master): the files to read again when it arrives or changes.  ``claims(path)`` gives a path's chain
    of readers."""
    name = path.name
    candidates: list[Path] = []
    if path.suffix.lower() == ".emi":
        candidates = sorted(path.parent.glob(_glob_escape(path.stem) + "_*.ser"))
    elif match := _ARINA_DATA.match(name):
        candidates = [path.with_name(match["stem"] + "_master.h5")]
    elif match := _INFO.match(name):
        stamp_and_number = "_".join(match["prefix"].split("_")[:2])  # Direct Electron: STAMP_NUMBER_…_info.txt
        candidates = sorted(path.parent.glob(_glob_escape(stamp_and_number) + "_*"))
    owners = []
    for candidate in candidates:
        if candidate == path or not candidate.is_file():
            continue
        chain = claims(candidate)
        if chain and (path in companions_of(candidate, chain) or path in expected_partners(candidate)):
            owners.append(candidate)
    return owners


def _external_files(master: Path) -> list[Path]:
    """The files a Dectris master's external links point to (in its folder); none when it cannot be opened yet."""
    try:
        import h5py

        found: list[Path] = []
        with h5py.File(master, "r") as handle:
            _collect_links(handle, h5py, found, master.parent, 0)
        return found
    except (OSError, ValueError, KeyError):  # half-written or not HDF5: its reader will say what is wrong
        return []


def _collect_links(group, h5py, found: list[Path], folder: Path, depth: int) -> None:
    if depth > MAX_LINK_DEPTH:
        return
    for key in group:
        link = group.get(key, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            target = folder / Path(link.filename).name  # never a path out of the master's folder
            if target not in found:
                found.append(target)
        elif isinstance(link, h5py.HardLink) and isinstance(group.get(key), h5py.Group):
            _collect_links(group[key], h5py, found, folder, depth + 1)


def _glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)
