"""Demo catalogs whose classes are known, and a simulated expert, for the learned-tagger tests and benchmark.

The demo facility's programme says which scene every acquisition shows (``Recipe.scene``), so a catalog of demo
files comes with its ground truth.  ``build_scene_catalog`` writes only the files of a few scenes (planning a big
facility costs nothing; rendering and reading only what is kept), loads them, and tags them with the
image-analysis tagger alone, which gives both the machine tags of the baseline and the ``image_features`` vectors
the head learns from.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.demo.facility import plan_sessions
from datasette_scisearch.demo.formats import write_acquisition
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.tagging import experts
from datasette_scisearch.tagging.pipeline import tag_catalog

REPO = Path(__file__).resolve().parent.parent

# The expert's classes and the demo scenes that show them.
SCENE_CLASSES = {
    "nanoparticles": ("particles_haadf", "cubes_haadf"),
    "nanowires": ("nanowires_sem",),
    "lattice": ("columns_haadf", "columns_hrtem"),
    "amorphous": ("carbon_bf",),
}


def build_scene_catalog(
    folder: Path,
    per_class: int,
    classes: list[str] | None = None,
    seed: int = 0,
    held_back: int = 0,
    scene_classes: dict[str, tuple[str, ...]] = SCENE_CLASSES,
) -> dict:
    """Write ``per_class`` demo files of each class under ``folder``/data, catalog and tag them; write another
    ``held_back`` per class under ``folder``/later without cataloguing them (files that arrive after training).

    Returns {"path": catalog path, "truth": {file id: class}, "later": folder, "later_truth": {file path: class}}."""
    classes = classes or list(scene_classes)
    data_dir, later_dir = Path(folder) / "data", Path(folder) / "later"
    chosen, later = [], []
    for acquisition, name in _choose_acquisitions(data_dir, per_class + held_back, classes, seed, scene_classes):
        if sum(1 for _, c in chosen if c == name) < per_class:
            chosen.append((acquisition, name))
        else:
            acquisition.path = later_dir / acquisition.path.relative_to(data_dir)
            later.append((acquisition, name))
    for acquisition, _ in chosen + later:
        write_acquisition(acquisition)
    path = Path(folder) / "scenes.db"
    db = open_catalog(path)
    settings = load_settings(REPO / "metadata.yml")
    load_files(db, [data_dir], settings, progress=False)
    tag_catalog(db, settings, ["image_analysis"], progress=False)
    by_path = {str(acquisition.path): name for acquisition, name in chosen}
    truth = {str(file_id): by_path[file_path] for file_id, file_path in db.execute("select id, path from files")}
    db.close()
    later_truth = {str(acquisition.path): name for acquisition, name in later}
    return {"path": path, "truth": truth, "later": later_dir, "later_truth": later_truth}


def _choose_acquisitions(data_dir: Path, per_class: int, classes: list[str], seed: int, scene_classes) -> list[tuple]:
    """The first ``per_class`` planned acquisitions of each class, taking its scenes in turn.

    One demo facility holds only so many files of a rare scene (and a bigger one runs out of free days to book),
    so facilities of further seeds are planned, each in a folder of its own, until every class has enough."""
    by_scene: dict[str, list] = {}
    for plan in range(50):
        for session in plan_sessions(1500, seed + plan, data_dir / f"facility{plan}"):
            for acquisition in session.acquisitions:
                by_scene.setdefault(acquisition.scene, []).append(acquisition)
        chosen = []
        for name in classes:
            # Alternate the class's scenes so that each is represented, then top up from whichever has more.
            queues = [by_scene.get(scene, []) for scene in scene_classes[name]]
            mixed = [a for group in itertools.zip_longest(*queues) for a in group if a is not None]
            chosen += [(a, name) for a in mixed[:per_class]]
        if len(chosen) == per_class * len(classes):
            return chosen
    raise ValueError(f"the demo programme does not make {per_class} files of each of {classes}")


def label_as_expert(db, item_ids, tag: str, actor: str = "expert-in-test") -> None:
    """An expert adds ``tag`` to these files, through datasette_scisearch.tagging.experts as the pages do."""
    result = experts.bulk_change(db, "add", tag, [("file", str(item_id)) for item_id in item_ids], actor)
    assert not result.skipped, result.skipped


def reject_as_expert(db, item_id, tag: str, actor: str = "expert-in-test") -> None:
    """An expert rejects ``tag`` on the file: the machine's tag where it has one, else a slip of the expert's own
    (added by mistake, then rejected) — either way a rejection is what the catalog keeps."""
    result = experts.bulk_change(db, "reject", tag, [("file", str(item_id))], actor)
    if result.skipped:
        experts.reject(db, experts.add(db, "file", str(item_id), tag, actor).tag["id"], actor)
