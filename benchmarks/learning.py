"""How well the learned tagger learns from few labels, and whether the review queue picks labels better than chance.

Three parts (``--part``, default all):

``few-labels``: accuracy with 2, 5 and 10 labels per class, over ``--draws`` random draws of the labels (the same
draws for every column), on every item not labelled, for

- ``classical``: a textbook classical-feature baseline coded here — Haralick co-occurrence statistics, a uniform
  LBP histogram and an intensity histogram, standardised, then logistic regression;
- ``today``: the head scisearch train fitted before heads were chosen (logistic regression on ``image_features``);
- ``features``/``texture``: the head ``scisearch train`` chooses by cross-validation (learning/heads.py) on the
  ``image_features`` vector (88-d) or the ``image_texture`` vector (the 88 followed by 97 texture statistics and
  13 particle-shape statistics);
- ``auto``: what ``scisearch train`` does with ``--features auto``: space and head chosen by cross-validation;

and, for ``auto``, the 10th percentile over draws (how bad an unlucky draw is) and which head won how often.
Datasets: real classes cut from the micrographs of ../shared/data (benchmarks/real_classes.py; pixel sizes
withheld), demo classes (tests/learning_support.py: five classes, including two nanoparticle shapes, where the demo's
cubes are also four times the size of its spheres), and spheres against cubes of one size rendered here with the
demo's scene and detector models, where shape is all that tells them apart.

``queue``: the review queue's picks against random ones on the demo classes.  Cold start: 2 labels per class'
worth of items picked as the queue picks them before any model exists (a typical item of each k-means cluster)
or at random, then the head trained on them; and from 2 random labels per class, a batch at a time, the items
the current head is least sure of or random ones, up to 5 and 10 labels per class.  The simulated expert is the
ground truth.

``calibration``: whether a learned tag's probability says how often it is right.  With 10 and 20 labels per class,
the head ``scisearch train`` chooses on ``image_texture``, its probabilities on the unlabelled items as fitted and
after temperature scaling (learning/heads.py): expected calibration error (10 bins of the top probability: the gap
between mean confidence and accuracy, weighted by the bin's items), mean log-loss, and mean top probability
against accuracy.

Run: .venv/bin/python benchmarks/learning.py [--draws 20] [--per-class 30] [--part few-labels|queue|calibration]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_classes  # noqa: E402

from datasette_scisearch.catalog import open_catalog  # noqa: E402
from datasette_scisearch.demo.scenes import amorphous, nanoparticles, to_counts  # noqa: E402
from datasette_scisearch.learning import heads  # noqa: E402
from datasette_scisearch.learning.active import typical_of_clusters  # noqa: E402
from datasette_scisearch.learning.train import WEIGHT_FREE_SPACES, new_head, read_features  # noqa: E402
from datasette_scisearch.tagging.items import iter_items  # noqa: E402
from plugins.image_analysis import analyse_image  # noqa: E402
from tests.learning_support import build_scene_catalog  # noqa: E402

LABELS_PER_CLASS = (2, 5, 10)
DEMO_CLASSES = {
    "spheres": ("particles_haadf", "particles_bf"),
    "cubes": ("cubes_haadf", "cubes_bf"),
    "nanowires": ("nanowires_sem",),
    "lattice": ("columns_haadf", "columns_hrtem"),
    "amorphous": ("carbon_bf",),
}
DEMO_TASKS = {"demo five classes": list(DEMO_CLASSES), "demo particle shapes": ["spheres", "cubes"]}
COLUMNS = ("classical", "today", "features", "texture", "auto")


@dataclass
class Dataset:
    name: str
    classes: list[str]
    target: np.ndarray
    spaces: dict[str, np.ndarray]  # "classical", "image_features", "image_texture"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=20, help="random draws of the labels per point (default 20)")
    parser.add_argument("--per-class", type=int, default=30, help="demo files per class (default 30)")
    parser.add_argument("--part", choices=("few-labels", "queue", "calibration", "all"), default="all")
    arguments = parser.parse_args()
    started = time.perf_counter()
    demo = demo_datasets(arguments.per_class)
    print(f"demo classes built and tagged in {time.perf_counter() - started:.0f} s")
    if arguments.part in ("few-labels", "all"):
        datasets = real_datasets() + demo + [same_size_shapes(arguments.per_class)]
        for dataset in datasets:
            few_labels(dataset, arguments.draws)
    if arguments.part in ("queue", "all"):
        queue_against_random(demo[0], arguments.draws)
    if arguments.part in ("calibration", "all"):
        for dataset in real_datasets() + demo:
            calibration(dataset, arguments.draws)
    print(f"total {time.perf_counter() - started:.0f} s")


# ---------------------------------------------------------------- data


def real_datasets() -> list[Dataset]:
    if not real_classes.available():
        print("../shared/data is absent: real classes skipped")
        return []
    started = time.perf_counter()
    tiles = real_classes.real_tiles()
    spaces = {"classical": [], "image_features": [], "image_texture": []}
    analysed = []
    for row, frame in enumerate(tiles.frames):
        vectors = analyse_image(np.asarray(frame, dtype=np.float64)).vectors  # pixel size withheld
        if not vectors:  # a blank tile gets a tag and no vector, as in the catalog
            continue
        analysed.append(row)
        spaces["classical"].append(classical_features(frame))
        for space in ("image_features", "image_texture"):
            spaces[space].append(_unit(vectors[space]))  # as the catalog stores them
    matrices = {name: np.array(rows) for name, rows in spaces.items()}
    position = {row: index for index, row in enumerate(analysed)}
    print(
        f"{len(tiles.frames)} real tiles of {tiles.group[-1] + 1} files analysed in "
        f"{time.perf_counter() - started:.0f} s; {len(tiles.frames) - len(analysed)} blank tiles left out"
    )
    datasets = []
    for task in real_classes.TASKS:
        rows, target, classes = real_classes.task_target(tiles, task)
        keep = [index for index, row in enumerate(rows) if row in position]
        picked = [position[row] for row in rows[keep]]
        datasets.append(Dataset(f"real {task}", classes, target[keep], {k: m[picked] for k, m in matrices.items()}))
    return datasets


def demo_datasets(per_class: int) -> list[Dataset]:
    folder = Path(tempfile.mkdtemp(prefix="scisearch-learning-"))
    built = build_scene_catalog(folder, per_class, scene_classes=DEMO_CLASSES)
    db = open_catalog(built["path"])
    ids, _ = read_features(db, "image_texture", "file", list(built["truth"]))
    spaces = {space: read_features(db, space, "file", ids)[1] for space in ("image_features", "image_texture")}
    frames = {item.item_id: item.pixels(1024) for item in iter_items(db, "file", ids)}
    spaces["classical"] = np.array([classical_features(np.asarray(frames[i], dtype=np.float64)) for i in ids])
    db.close()
    truth = np.array([built["truth"][i] for i in ids])
    datasets = []
    for name, classes in DEMO_TASKS.items():
        rows = np.flatnonzero(np.isin(truth, classes))
        target = np.array([classes.index(t) for t in truth[rows]])
        datasets.append(Dataset(name, classes, target, {k: m[rows] for k, m in spaces.items()}))
    return datasets


def same_size_shapes(per_class: int) -> Dataset:
    """Spheres and cubes of one size (8-16 nm across, 0.25-0.6 nm a pixel, 512 pixels a side), half seen in HAADF
    and half in bright field, analysed with their pixel size as the catalog would: only their shape differs."""
    rng = np.random.default_rng(7)
    spaces = {"classical": [], "image_features": [], "image_texture": []}
    target = []
    for index in range(2 * per_class):
        cubes, haadf = index % 2 == 1, index % 4 < 2
        pixel_nm, shape = rng.uniform(0.25, 0.6), (512, 512)
        mass = nanoparticles(rng, shape, pixel_nm, rng.uniform(8, 16), rng.uniform(0.06, 0.15), cubes=cubes,
                             contrast_spread=0.08 if haadf else 0.45)  # fmt: skip
        if haadf:
            intensity = 0.04 + 0.01 * amorphous(rng, shape, 1.5) + mass
            frame = to_counts(rng, intensity / np.percentile(intensity, 99.9), 2500, np.uint16, 4800, read_noise=20)
        else:
            support = 1 + 0.04 * amorphous(rng, shape, max(1.0, 0.3 / pixel_nm))
            frame = to_counts(rng, np.exp(-0.06 * mass) * support, 900, np.int16, read_noise=3)
        frame = frame.astype(np.float64)
        vectors = analyse_image(frame, pixel_nm).vectors
        spaces["classical"].append(classical_features(frame))
        for space in ("image_features", "image_texture"):
            spaces[space].append(_unit(vectors[space]))
        target.append(int(cubes))
    return Dataset(
        "demo spheres vs cubes of one size", ["spheres", "cubes"], np.array(target),
        {name: np.array(rows) for name, rows in spaces.items()},
    )  # fmt: skip


def classical_features(frame: np.ndarray) -> np.ndarray:
    """The textbook baseline's features: Haralick statistics (distances 1, 2, 4; four directions averaged),
    a uniform LBP histogram (8 neighbours, radius 1) and a 16-bin intensity histogram, on the min-max scaled image."""
    from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

    frame = np.nan_to_num(np.asarray(frame, dtype=np.float64))
    unit = (frame - frame.min()) / (np.ptp(frame) or 1)
    grey = (unit * 255).astype(np.uint8)
    matrix = graycomatrix(grey // 8, [1, 2, 4], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=32, normed=True,
                          symmetric=True)  # fmt: skip
    haralick = [graycoprops(matrix, p).mean(axis=1) for p in ("contrast", "dissimilarity", "homogeneity", "energy",
                                                              "correlation", "ASM")]  # fmt: skip
    codes = local_binary_pattern(grey, 8, 1, "uniform")
    lbp = np.bincount(codes.astype(int).ravel(), minlength=10) / codes.size
    histogram = np.histogram(unit, bins=16, range=(0, 1))[0] / unit.size
    return np.concatenate([np.nan_to_num(np.concatenate(haralick)), lbp, histogram])


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / (np.linalg.norm(vector) or 1)


# ---------------------------------------------------------------- few labels


def few_labels(dataset: Dataset, draws: int) -> None:
    counts = np.bincount(dataset.target)
    print()
    print(
        f"{dataset.name}: "
        + ", ".join(f"{name} {count}" for name, count in zip(dataset.classes, counts))
        + f"; accuracy on the unlabelled items, mean of {draws} draws"
    )
    print("labels/class  " + "  ".join(f"{c:>9}" for c in COLUMNS) + "  auto p10  auto's heads")
    rng = np.random.default_rng(0)
    for n in LABELS_PER_CLASS:
        if n >= counts.min():
            continue
        results = {column: [] for column in COLUMNS}
        chosen: dict[str, int] = {}
        for _ in range(draws):
            labelled = np.concatenate(
                [rng.choice(np.flatnonzero(dataset.target == c), n, replace=False) for c in range(len(counts))]
            )
            rest = np.setdiff1d(np.arange(len(dataset.target)), labelled)
            truth, known = dataset.target[rest], dataset.target[labelled]

            def accuracy(model, features, rest=rest, truth=truth):
                return float((model.predict(features[rest]) == truth).mean())

            classical = dataset.spaces["classical"]
            results["classical"].append(accuracy(new_head().fit(classical[labelled], known), classical))
            features = dataset.spaces["image_features"]
            results["today"].append(accuracy(new_head().fit(features[labelled], known), features))
            outcomes = {}
            for column, space in (("features", "image_features"), ("texture", "image_texture")):
                vectors = dataset.spaces[space]
                # As train.py: the unlabelled items are the catalog's other items, the head chosen by CV.
                choice = heads.choose_head(vectors[labelled], known, vectors[rest], min(5, n))
                weights = heads.fit(choice.head, vectors[labelled], known, vectors[rest])
                score = float((heads.scores(weights, vectors[rest]).argmax(axis=1) == truth).mean())
                results[column].append(score)
                outcomes[space] = (choice.accuracy[choice.head], score, f"{column}: {choice.head}")
            best = None
            for space in (s for s in WEIGHT_FREE_SPACES if s in outcomes):  # train.py's order: ties go to the first
                if best is None or outcomes[space][0] > best[0]:
                    best = outcomes[space]
            results["auto"].append(best[1])
            chosen[best[2]] = chosen.get(best[2], 0) + 1
        means = "  ".join(f"{np.mean(results[c]):>9.3f}" for c in COLUMNS)
        winners = ", ".join(f"{name} {count}" for name, count in sorted(chosen.items(), key=lambda kv: -kv[1]))
        print(f"{n:>12}  {means}  {np.percentile(results['auto'], 10):>8.3f}  {winners}")


# ---------------------------------------------------------------- calibration


def calibration(dataset: Dataset, draws: int) -> None:
    counts = np.bincount(dataset.target)
    vectors = dataset.spaces["image_texture"]
    print()
    print(f"{dataset.name}: calibration on the unlabelled items (image_texture, head chosen by CV), mean of {draws}")
    print("labels/class  temperature  ECE raw  ECE calibrated  log-loss raw  calibrated  confidence raw  "
          "calibrated  accuracy")  # fmt: skip
    rng = np.random.default_rng(2)
    for n in (10, 20):
        if n >= counts.min():
            continue
        rows = []
        for _ in range(draws):
            labelled = np.concatenate(
                [rng.choice(np.flatnonzero(dataset.target == c), n, replace=False) for c in range(len(counts))]
            )
            rest = np.setdiff1d(np.arange(len(dataset.target)), labelled)
            known, truth = dataset.target[labelled], dataset.target[rest]
            choice = heads.choose_head(vectors[labelled], known, vectors[rest], 5)
            weights = heads.fit(choice.head, vectors[labelled], known, vectors[rest])
            raw = _softmax(heads.scores(weights, vectors[rest]))
            calibrated = _softmax(heads.scores(heads.with_temperature(weights, choice.temperature), vectors[rest]))
            right = raw.argmax(axis=1) == truth
            rows.append([choice.temperature or 1.0, _ece(raw, right), _ece(calibrated, right), _nll(raw, truth),
                         _nll(calibrated, truth), raw.max(axis=1).mean(), calibrated.max(axis=1).mean(),
                         right.mean()])  # fmt: skip
        mean = np.mean(rows, axis=0)
        print(f"{n:>12}  {mean[0]:>11.2f}  {mean[1]:>7.3f}  {mean[2]:>14.3f}  {mean[3]:>12.3f}  {mean[4]:>10.3f}  "
              f"{mean[5]:>14.3f}  {mean[6]:>10.3f}  {mean[7]:>8.3f}")  # fmt: skip


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _ece(probabilities: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    confidence = probabilities.max(axis=1)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gaps = [abs(confidence[which == b].mean() - right[which == b].mean()) * (which == b).mean()
            for b in range(bins) if (which == b).any()]  # fmt: skip
    return float(sum(gaps))


def _nll(probabilities: np.ndarray, truth: np.ndarray) -> float:
    return float(-np.log(np.clip(probabilities[np.arange(len(truth)), truth], 1e-12, 1)).mean())


# ---------------------------------------------------------------- the review queue


def queue_against_random(dataset: Dataset, draws: int) -> None:
    features, target = dataset.spaces["image_texture"], dataset.target
    k = len(dataset.classes)
    print()
    print(f"review queue against random picks on {dataset.name} (image_texture vectors, logistic regression head)")
    # Cold start: the queue's picks do not depend on a draw; the random ones do.
    picks = [row for row, _ in typical_of_clusters(features, 2 * k)]
    queue_score = _head_accuracy(features, target, picks)
    rng = np.random.default_rng(1)
    random_scores = [
        _head_accuracy(features, target, list(rng.choice(len(target), 2 * k, replace=False))) for _ in range(draws)
    ]
    covered = len(set(target[picks]))
    print(
        f"  cold start, {2 * k} labels: queue (typical item of each cluster) {queue_score:.3f}, covering {covered} "
        f"of {k} classes; random {np.mean(random_scores):.3f} (mean of {draws}), covering "
        f"{np.mean([len(set(target[rng.choice(len(target), 2 * k, replace=False)])) for _ in range(draws)]):.1f}"
    )
    curves = {"least certain": {5: [], 10: []}, "random": {5: [], 10: []}}
    for _ in range(draws):
        for strategy in curves:
            for n, accuracy in _labelling_run(rng, features, target, k, strategy).items():
                curves[strategy][n].append(accuracy)
    for n in (5, 10):
        print(
            f"  {n * k} labels from 2 a class, {k} at a time: least certain first "
            f"{np.mean(curves['least certain'][n]):.3f}, random {np.mean(curves['random'][n]):.3f} (mean of {draws})"
        )


def _head_accuracy(features, target, labelled) -> float:
    labelled = list(labelled)
    rest = np.setdiff1d(np.arange(len(target)), labelled)
    if len(set(target[labelled])) < 2:
        return float((target[rest] == target[labelled][0]).mean())
    return float((new_head().fit(features[labelled], target[labelled]).predict(features[rest]) == target[rest]).mean())


def _labelling_run(rng, features, target, k: int, strategy: str) -> dict[int, float]:
    """From 2 random labels per class, label k items at a time; accuracy on the never-labelled items when the
    total reaches 5 and 10 per class (measured on the same items for both strategies: the last 40%)."""
    order = rng.permutation(len(target))
    test = order[: int(0.4 * len(target))]
    pool = order[int(0.4 * len(target)) :]
    labelled = [int(i) for c in range(k) for i in rng.choice(pool[target[pool] == c], 2, replace=False)]
    unlabelled = [int(i) for i in pool if i not in set(labelled)]
    results = {}
    for n in (5, 10):
        while len(labelled) < n * k and unlabelled:
            head = new_head().fit(features[labelled], target[labelled])
            take = min(k, n * k - len(labelled), len(unlabelled))
            if strategy == "least certain":
                chances = np.sort(head.predict_proba(features[unlabelled]), axis=1)
                chosen = [unlabelled[i] for i in np.argsort(chances[:, -1] - chances[:, -2], kind="stable")[:take]]
            else:
                chosen = [int(i) for i in rng.choice(unlabelled, take, replace=False)]
            labelled += chosen
            unlabelled = [i for i in unlabelled if i not in set(chosen)]
        head = new_head().fit(features[labelled], target[labelled])
        results[n] = float((head.predict(features[test]) == target[test]).mean())
    return results


if __name__ == "__main__":
    main()
