"""The learned tagger's learning curve on a demo facility whose classes are known, and active learning vs random.

Builds a demo catalog of N files per class (tests/learning_support.py: demo scenes grouped into an expert's
classes, tagged by the image-analysis tagger only), splits it into a pool an expert labels from and a held-out
test set, and prints, for 5, 10, 20 and 40 labels per class (mean over several random draws):

- the learned head's accuracy on the held-out files, and its cross-validated accuracy on the labels alone (what
  ``scisearch train`` reports, with no held-out set to check it against);
- a small MLP head (64 hidden units) on the same labels, the alternative to the logistic regression;
- the untrained baseline on the same held-out files: the machine tag that names a class (train.py's rule);
- active learning against random choice: starting from 2 labels per class, an expert labels a batch at a time,
  either the pool files the current head is least sure of (smallest margin, as the review queue orders them)
  or random ones; accuracy on the held-out files at the same total number of labels.

The simulated expert is the ground truth.  ``--wide`` groups more demo scenes into each class (SEM particles with
TEM nanoparticles, HRTEM with HAADF lattices), which is harder.  Run: .venv/bin/python benchmarks/learning.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.learning.train import (  # noqa: E402
    baseline_predictions,
    cross_validated_predictions,
    new_head,
    read_features,
)
from tests.learning_support import SCENE_CLASSES, build_scene_catalog  # noqa: E402

LABELS_PER_CLASS = (5, 10, 20, 40)
WIDE_SCENE_CLASSES = {
    "nanoparticles": ("particles_haadf", "cubes_haadf", "cubes_bf", "particles_sem", "cubes_sem"),
    "nanowires": ("nanowires_sem",),
    "lattice": ("columns_haadf", "columns_hrtem"),
    "amorphous": ("carbon_bf",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=80, help="demo files per class (default 80)")
    parser.add_argument("--draws", type=int, default=5, help="random draws averaged per point (default 5)")
    parser.add_argument("--wide", action="store_true", help="more demo scenes per class (harder)")
    arguments = parser.parse_args()
    scene_classes = WIDE_SCENE_CLASSES if arguments.wide else SCENE_CLASSES
    classes = list(scene_classes)

    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="scisearch-learning-"))
    built = build_scene_catalog(folder, arguments.per_class, scene_classes=scene_classes)
    print(f"built and tagged {len(built['truth'])} demo files in {time.perf_counter() - started:.0f} s ({folder})")
    db = open_catalog(built["path"])
    ids, features = read_features(db, "image_features", "file", list(built["truth"]))
    target = np.array([classes.index(built["truth"][item_id]) for item_id in ids])
    baseline = baseline_predictions(db, "file", ids, classes, None)
    print(
        f"{len(ids)} files with image features; classes: "
        + ", ".join(f"{name} ({', '.join(scene_classes[name])})" for name in classes)
    )

    rng = np.random.default_rng(0)
    curves = {
        n: {key: [] for key in ("held-out", "mlp", "cv", "baseline", "active", "random")} for n in LABELS_PER_CLASS
    }
    for _ in range(arguments.draws):
        pool, test = _split(rng, target, test_share=0.4)
        for n in LABELS_PER_CLASS:
            labelled = np.concatenate(
                [rng.choice(pool[target[pool] == c], n, replace=False) for c in range(len(classes))]
            )
            head = new_head().fit(features[labelled], target[labelled])
            curves[n]["held-out"].append((head.predict(features[test]) == target[test]).mean())
            mlp = _mlp_head().fit(features[labelled], target[labelled])
            curves[n]["mlp"].append((mlp.predict(features[test]) == target[test]).mean())
            out_of_fold = cross_validated_predictions(features[labelled], target[labelled], min(5, n))
            curves[n]["cv"].append((out_of_fold == target[labelled]).mean())
            curves[n]["baseline"].append((baseline[test] == target[test]).mean())
        for strategy in ("active", "random"):
            for n, accuracy in _labelling_run(rng, features, target, pool, test, len(classes), strategy).items():
                curves[n][strategy].append(accuracy)

    print()
    print(f"held-out accuracy (mean of {arguments.draws} draws; {len(test)} held-out files)")
    print("labels/class  head (random labels)  MLP head  head CV on labels  baseline  head, active  head, random")
    for n in LABELS_PER_CLASS:
        row = {key: np.mean(values) for key, values in curves[n].items()}
        print(
            f"{n:>12}  {row['held-out']:>20.3f}  {row['mlp']:>8.3f}  {row['cv']:>17.3f}  {row['baseline']:>8.3f}  "
            f"{row['active']:>12.3f}  {row['random']:>12.3f}"
        )
    print(
        "(active/random: labels chosen one batch at a time from 2 per class, same total number of labels; "
        "their classes need not be balanced)"
    )
    print(f"total {time.perf_counter() - started:.0f} s")


def _mlp_head():
    """The alternative train.py measured itself against: one hidden layer of 64 units on standardised features."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=2000, random_state=0))


def _split(rng, target: np.ndarray, test_share: float) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split into the pool an expert labels from and the held-out test files."""
    pool, test = [], []
    for c in np.unique(target):
        members = rng.permutation(np.flatnonzero(target == c))
        cut = int(round(len(members) * test_share))
        test += list(members[:cut])
        pool += list(members[cut:])
    return np.array(pool), np.array(test)


def _labelling_run(rng, features, target, pool, test, n_classes: int, strategy: str) -> dict[int, float]:
    """Label from the pool a batch at a time; held-out accuracy when the total reaches each curve point."""
    labelled = [int(i) for c in range(n_classes) for i in rng.choice(pool[target[pool] == c], 2, replace=False)]
    unlabelled = [int(i) for i in pool if i not in set(labelled)]
    batch = n_classes
    results = {}
    for n in LABELS_PER_CLASS:
        while len(labelled) < n * n_classes and unlabelled:
            head = new_head().fit(features[labelled], target[labelled])
            take = min(batch, n * n_classes - len(labelled), len(unlabelled))
            if strategy == "active":
                chances = np.sort(head.predict_proba(features[unlabelled]), axis=1)
                margins = chances[:, -1] - chances[:, -2]
                chosen = [unlabelled[i] for i in np.argsort(margins, kind="stable")[:take]]
            else:
                chosen = [int(i) for i in rng.choice(unlabelled, take, replace=False)]
            labelled += chosen
            unlabelled = [i for i in unlabelled if i not in set(chosen)]
        head = new_head().fit(features[labelled], target[labelled])
        results[n] = float((head.predict(features[test]) == target[test]).mean())
    return results


if __name__ == "__main__":
    main()
