"""Real image classes built from ../shared/data, for the few-label benchmarks (there is no labelled image set there).

Each real micrograph is cut into non-overlapping 256 x 256 tiles, and a tile's class is what its source file is:

- ``sem nanowires``: the 15 SEM images of MBE-grown nanowires at 8 kx (``sem_images/nanowires_fullres``);
- ``sto lattice``, ``team lattice``: two atomic-resolution STEM images at 0.010 and 0.012 nm/pixel
  (``16_STOimage_1.ser``, SrTiO3; ``Acquisition_18.emd``, TEAM 0.5);
- ``haadf overview``, ``laabf overview``: one field of view at 3.3 nm/pixel seen by two STEM detectors;
- ``tem overview``: the Ceta TEM image at 3.1 nm/pixel.

Four tasks (``TASKS``) group them: SEM against TEM/STEM, three kinds of image, HAADF against LAABF, and the two
lattices.
Tiles of one file are alike, so a draw that labels one tile of a file makes its sibling tiles easy: the benchmark
reports a *leave-files-out* figure too, where no test tile shares a file with a labelled tile.

Pixel sizes are withheld from the features (as for an exported PNG), so that a class is told by its pixels alone.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasette_scisearch.tagging.items import file_pixels  # noqa: E402

DATA = REPO.parent / "shared" / "data"
TILE = 256
SOURCES = {
    "sem nanowires": [],  # every PNG of sem_images/nanowires_fullres
    "sto lattice": ["em/16_STOimage_1.ser"],
    "team lattice": ["em/Acquisition_18.emd"],
    "haadf overview": ["em/After HAADF 130mm_1.ser"],
    "laabf overview": ["em/After LAABF 1.5m_1.ser"],
    "tem overview": ["em/Camera Ceta Imaging Micro.emd"],
}
TEM = ["sto lattice", "team lattice", "haadf overview", "laabf overview", "tem overview"]
TASKS = {
    "sem-vs-tem": {"sem nanowires": ["sem nanowires"], "tem/stem": TEM},
    "three-kinds": {
        "sem nanowires": ["sem nanowires"],
        "atomic lattice": ["sto lattice", "team lattice"],
        "stem/tem overview": ["haadf overview", "laabf overview", "tem overview"],
    },
    # same specimen and field of view, two STEM detectors (high-angle dark field, low-angle bright field)
    "haadf-vs-laabf": {"haadf": ["haadf overview"], "laabf": ["laabf overview"]},
    # two atomic-resolution STEM images of different specimens and microscopes at about the same scale
    "two-lattices": {"sto": ["sto lattice"], "team": ["team lattice"]},
}


@dataclass
class Tiles:
    frames: list[np.ndarray]
    source: list[str]  # the kind of source file, a key of SOURCES
    group: list[int]  # which file each tile came from


def available() -> bool:
    return (DATA / "em" / "16_STOimage_1.ser").exists() and (DATA / "sem_images" / "nanowires_fullres").is_dir()


def real_tiles() -> Tiles:
    """Every tile of every source file (read with the project's own loaders)."""
    from datasette_scisearch.ingest.files import file_loaders

    loaders = file_loaders()
    sources = dict(SOURCES)
    sources["sem nanowires"] = sorted(
        str(path.relative_to(DATA)) for path in (DATA / "sem_images" / "nanowires_fullres").glob("*.png")
    )
    tiles = Tiles([], [], [])
    for kind, relative_paths in sources.items():
        for relative in relative_paths:
            frame = _read(DATA / relative, loaders)
            group = tiles.group[-1] + 1 if tiles.group else 0
            for top in range(0, frame.shape[0] - TILE + 1, TILE):
                for left in range(0, frame.shape[1] - TILE + 1, TILE):
                    tiles.frames.append(frame[top : top + TILE, left : left + TILE])
                    tiles.source.append(kind)
                    tiles.group.append(group)
    return tiles


def _read(path: Path, loaders) -> np.ndarray:
    from datasette_scisearch.ingest.files import loader_for

    loader = loader_for(path, loaders)
    for dataset in loader.read(path) if loader else ():
        if dataset.kind in ("image", None) and np.ndim(dataset.data) == 2:
            row = {"path": str(path), "loader": loader.name, "dataset": dataset.index, "kind": "image"}
            return np.asarray(file_pixels(row, max_side=1024), dtype=np.float64)
    raise FileNotFoundError(f"no loader reads an image from {path}")


def task_target(tiles: Tiles, task: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The task's tiles (indices into ``tiles``), their class indices, and the class names."""
    classes = list(TASKS[task])
    lookup = {source: index for index, name in enumerate(classes) for source in TASKS[task][name]}
    rows = np.array([row for row, source in enumerate(tiles.source) if source in lookup])
    return rows, np.array([lookup[tiles.source[row]] for row in rows]), classes
