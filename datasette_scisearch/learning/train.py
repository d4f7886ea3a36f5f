"""The learned tagger: a small head trained on frozen image features from experts' validated tags.

A tag set is an expert's name for a few classes ("morphology": nanoparticles, nanowires, lattice, amorphous).
Training reads what experts said about those classes, chooses by stratified k-fold cross-validation a head
(heads.py: logistic regression, nearest class mean, label propagation over the unlabelled items) and, unless told,
the vectors it learns from (CLIP where it covers the labelled items; otherwise whichever of the image-analysis
spaces, ``image_texture`` or ``image_features``, cross-validates better), compares it with the machine tags
already on the same items, and writes its predictions back as tags any search can use.

Labels.  An item is an example of class C when it carries tag C (case-insensitive, any source) with status
``accepted`` or ``added``.  A rejection says what an item is *not*, and a head that picks one of K classes needs
what it *is*: so rejections become a label only when they leave exactly one class (all the others rejected: in a
two-class set one rejection is enough); otherwise they are not training examples, but the learned tagger never
writes a tag an expert rejected on that item.  Items with two different positive classes are left out as ambiguous.

Tags written.  Each training of a tag set is a new version (previous + 1; the previous model is retired).  Its
predictions are tags with source ``learned:<tag_set>.v<version>`` (source_version ``<version>``), status
``machine``, score = the head's probability, and evidence naming the model and its cross-validated accuracy.
Re-training removes the machine tags of every older version of the set (experts' tags, including accepted learned
tags, stay).  No learned tag is written on an item an expert labelled for the set (its label is known) or where
the expert rejected that very tag, nor below ``min_probability``; every prediction, though, is kept in
``learned_predictions`` (top class, its probability, the margin over the runner-up) for the review queue.

Accuracy.  2 labels per class are the least that train (``MIN_LABELS_PER_CLASS``): cross-validation then trains
on one label a class and its figure is a rough guide (benchmarks/learning.py measures how far held-out accuracy
strays at 2, 5 and 10 labels); with 20 per class (``RELIABLE_LABELS_PER_CLASS``) it is worth quoting.  The
baseline is what the catalog said before anyone trained anything: for each labelled item, the class whose machine
tag (from clip, image analysis, filenames ...; tags experts added do not count) names it with the highest score.  A
machine tag names a class when it equals it, contains it or is contained in it ("particles" names
"nanoparticles"), or as the caller's mapping says.  An item with no such tag counts as wrong for the baseline; where
no labelled item has one, there is no baseline (``baseline_covered`` is 0) and the report does not pretend one.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import sqlite_utils

from .. import changes
from ..catalog import begin_write, now_utc
from ..errors import ScisearchError
from ..tagging import vectors
from ..tagging.experts import usual_category
from . import heads

MIN_LABELS_PER_CLASS = 2
RELIABLE_LABELS_PER_CLASS = 20
# "auto" takes CLIP where it covers the labelled items as well as any; otherwise it cross-validates the
# image-analysis spaces that cover them best and keeps the more accurate, ties broken in WEIGHT_FREE_SPACES' order.
# With 2 labels a class cross-validation often ties; benchmarks/learning.py measured image_texture (now with particle
# shapes) ahead on most class sets from 5 labels (auto at 2 / 5 labels: SEM-vs-TEM tiles 0.923 / 0.981 with ties to
# image_features, 0.974 / 1.000 with ties to image_texture; spheres vs cubes of one size 0.596 / 0.850 -> 0.691 /
# 0.941), behind by 0.01-0.02 on two sets with 2 labels.  facility_image (learning/pretrain.py) needs no downloaded
# weights either: cross-validation weighs it with the others.
FEATURE_SPACES = ("clip", "image_features", "image_texture", "facility_image")
WEIGHT_FREE_SPACES = ("image_texture", "image_features", "facility_image")
MIN_PROBABILITY = 0.5
_TAG_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,60}$")
_READ_BATCH = 5_000


class TrainingError(ScisearchError):
    """Training or prediction cannot go ahead; the message says what to do."""


@dataclass
class TrainingReport:
    """What one training did: how well the head does against the baseline, and what it wrote."""

    tag_set: str
    classes: list[str]
    feature_space: str
    head: str
    labels: int  # labelled items with features, all used for training and cross-validation
    counts: dict[str, int]
    folds: int
    cv_accuracy: float
    baseline_accuracy: float
    baseline_covered: int  # labelled items carrying a machine tag that names one of the classes
    confusion: list[list[int]]  # rows: the experts' class, columns: the head's out-of-fold prediction
    baseline_confusion: list[list[int]]  # rows: the experts' class, columns: baseline class, then "no tag"
    excluded: dict[str, int]
    labels_from_rejections: int
    heads_compared: dict[str, float] = field(default_factory=dict)  # "space: head" -> cross-validated accuracy
    # Temperature scaling of the head's probabilities (heads.py), fitted to the out-of-fold scores; None with fewer
    # than heads.MIN_CALIBRATION_LABELS labels.  log_loss: out-of-fold mean log-loss without and with it.
    temperature: float | None = None
    log_loss: list[float] | None = None
    version: int = 0
    model_id: int | None = None
    source: str = ""
    predictions: int = 0
    tags_written: int = 0
    tags_removed: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class PredictionReport:
    tag_set: str
    version: int
    source: str
    feature_space: str
    predictions: int
    tags_written: int
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Labels:
    by_item: dict[str, int]  # item id -> class index
    rejected: dict[str, set[str]]  # item id -> casefolded class texts an expert rejected there
    labelled: set[str]  # items with a positive expert label for some class of the set
    ambiguous: int
    conflicting: int
    rejected_only: int
    from_rejections: int


def learned_source(tag_set: str, version: int) -> str:
    return f"learned:{tag_set}.v{version}"


def train(
    db: sqlite_utils.Database,
    tag_set: str,
    classes: list[str],
    feature_space: str = "auto",
    actor=None,
    folds: int = 5,
    item_type: str = "file",
    baseline_tags: dict[str, list[str]] | None = None,
    min_probability: float = MIN_PROBABILITY,
    write: bool = True,
) -> TrainingReport:
    """Train the next version of ``tag_set``'s head on experts' labels and write its predictions as tags.

    ``baseline_tags`` maps a class to the machine tags that name it (default: equal or containing, either way).
    With ``write=False`` nothing is written: the report says how well a head would do.
    Raises TrainingError when the labels or features do not allow training."""
    started = time.perf_counter()
    tag_set = _checked_tag_set(tag_set)
    classes = _checked_classes(classes)
    if folds < 2:
        raise TrainingError(f"cross-validation needs at least 2 folds, not {folds}")
    labels = _read_labels(db, item_type, classes)
    if not labels.by_item:
        _check_enough(tag_set, classes, dict.fromkeys(classes, 0), missing_features=0, space="")
    candidates = _candidate_spaces(db, feature_space, item_type, list(labels.by_item), tag_set)
    compared: dict[str, float] = {}
    best = None
    for space in candidates:
        ids, features = read_features(db, space, item_type, list(labels.by_item))
        target = np.array([labels.by_item[item_id] for item_id in ids], dtype=int)
        counts = {name: int((target == index).sum()) for index, name in enumerate(classes)}
        _check_enough(tag_set, classes, counts, missing_features=len(labels.by_item) - len(ids), space=space)
        used_folds = min(folds, min(counts.values()))
        unlabelled = unlabelled_sample(db, space, item_type, set(ids))
        choice = heads.choose_head(features, target, unlabelled, used_folds)
        compared.update({f"{space}: {name}": accuracy for name, accuracy in choice.accuracy.items()})
        if best is None or choice.accuracy[choice.head] > best[1].accuracy[best[1].head]:
            best = (space, choice, ids, features, target, counts, used_folds, unlabelled)
    space, choice, ids, features, target, counts, used_folds, unlabelled = best
    out_of_fold = choice.out_of_fold
    baseline = baseline_predictions(db, item_type, ids, classes, baseline_tags)
    report = TrainingReport(
        tag_set=tag_set,
        classes=classes,
        feature_space=space,
        head=choice.head,
        labels=len(ids),
        counts=counts,
        folds=used_folds,
        cv_accuracy=round(float((out_of_fold == target).mean()), 4),
        baseline_accuracy=round(float((baseline == target).mean()), 4),
        baseline_covered=int((baseline >= 0).sum()),
        confusion=_confusion(target, out_of_fold, len(classes)).tolist(),
        baseline_confusion=_confusion(target, np.where(baseline < 0, len(classes), baseline), len(classes), 1).tolist(),
        excluded={
            "ambiguous": labels.ambiguous,
            "conflicting": labels.conflicting,
            "rejected_only": labels.rejected_only,
            "no_features": len(labels.by_item) - len(ids),
        },
        labels_from_rejections=labels.from_rejections,
        heads_compared=compared,
        temperature=choice.temperature,
        log_loss=list(choice.log_loss) if choice.log_loss else None,
    )
    thin = [f"{name} ({count})" for name, count in counts.items() if count < RELIABLE_LABELS_PER_CLASS]
    if thin:
        report.warnings.append(
            f"fewer than {RELIABLE_LABELS_PER_CLASS} labels for {', '.join(thin)}: "
            "the cross-validated accuracy is a rough guide until each class has that many"
        )
    if min(counts.values()) == 2:
        # Measured by benchmarks/learning.py (20 draws of 2 labels a class on real and demo classes): the mean
        # accuracy on the other items was 0.93-1.00 on most classes, and an unlucky draw (10th percentile) 0.05-0.2
        # below the mean; the cross-validation, which trains on one label a class, cannot tell which draw it was.
        report.warnings.append(
            "with 2 labels in a class, cross-validation trains on one label a class: how well the head does "
            "depends on which items were labelled; label a few more where the review queue points"
        )
    if write:
        weights = heads.with_temperature(fit_weights(features, target, classes, choice.head, unlabelled),
                                         choice.temperature)  # fmt: skip
        predicted = _predict_all(db, weights, space, item_type, skip=set())
        _write_version(db, report, weights, predicted, item_type, _actor_id(actor), min_probability)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def predict(
    db: sqlite_utils.Database, tag_set: str, item_type: str = "file", min_probability: float = MIN_PROBABILITY
) -> PredictionReport:
    """Apply ``tag_set``'s current head to items that have its features but no prediction yet (files tagged since
    it was trained), writing their learned tags; nothing is retrained."""
    started = time.perf_counter()
    model = current_model(db, tag_set)
    if model is None:
        raise TrainingError(
            f"no learned model for the tag set {tag_set!r} yet: train one first with "
            f"'scisearch train CATALOG --tag-set {tag_set} --classes A,B,...'"
        )
    classes = json.loads(model["classes"])
    done = {
        str(row[0])
        for row in db.execute(
            "select item_id from learned_predictions where model_id = ? and item_type = ?", [model["id"], item_type]
        )
    }
    head = _Head(
        model["id"], tag_set, model["version"], model["feature_space"], classes, load_weights(model["weights"]),
        model["cv_accuracy"], model["labels"],
    )  # fmt: skip
    predicted = _predict_all(db, head.weights, head.feature_space, item_type, skip=done)
    _begin(db)
    try:
        labels = _read_labels(db, item_type, classes)  # under the write lock: see _write_version
        tagged = _write_predictions(db, head, item_type, predicted, labels, min_probability)
        changes.refresh(db, changes.LEARNING, item_types=[item_type], ids=tagged)  # joins this transaction
        _commit(db)
    except BaseException:
        _rollback(db)
        raise
    return PredictionReport(
        tag_set=tag_set,
        version=head.version,
        source=head.source,
        feature_space=head.feature_space,
        predictions=len(predicted.ids),
        tags_written=len(tagged),
        seconds=round(time.perf_counter() - started, 3),
    )


def current_model(db: sqlite_utils.Database, tag_set: str) -> dict | None:
    rows = list(db.query("select * from learned_models where tag_set = ? and status = 'current'", [tag_set]))
    return rows[0] if rows else None


# ---------------------------------------------------------------- input


def _checked_tag_set(tag_set: str) -> str:
    tag_set = (tag_set or "").strip()
    if not _TAG_SET_NAME.match(tag_set):
        raise TrainingError(
            f"tag set name {tag_set!r} must be letters, digits, '-' and '_' (e.g. 'morphology'), at most 61 long"
        )
    return tag_set


def _checked_classes(classes: list[str]) -> list[str]:
    cleaned, seen = [], set()
    for name in classes:
        name = " ".join(str(name).split())
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            cleaned.append(name)
    if len(cleaned) < 2:
        raise TrainingError(f"a tag set needs at least two classes to choose between, got {cleaned or 'none'}")
    return cleaned


def _read_labels(db, item_type: str, classes: list[str]) -> _Labels:
    index = {name.casefold(): position for position, name in enumerate(classes)}
    positive: dict[str, set[int]] = {}
    rejected: dict[str, set[int]] = {}
    # Experts' tags are few beside the machine's; matched here with casefold, which SQLite's ASCII lower() is not.
    for item_id, text, status in db.execute(
        "select item_id, tag, status from tags where item_type = ? and status in ('accepted', 'added', 'rejected')",
        [item_type],
    ):
        position = index.get(text.casefold())
        if position is None:
            continue
        (rejected if status == "rejected" else positive).setdefault(str(item_id), set()).add(position)
    by_item: dict[str, int] = {}
    ambiguous = conflicting = rejected_only = from_rejections = 0
    for item_id in positive.keys() | rejected.keys():
        said, denied = positive.get(item_id, set()), rejected.get(item_id, set())
        if said:
            remaining = said - denied
            if len(remaining) == 1:
                by_item[item_id] = remaining.pop()
            elif remaining:
                ambiguous += 1
            else:
                conflicting += 1
        elif len(denied) == len(classes) - 1:
            by_item[item_id] = (set(range(len(classes))) - denied).pop()
            from_rejections += 1
        else:
            rejected_only += 1
    return _Labels(
        by_item=by_item,
        rejected={item_id: {classes[p].casefold() for p in denied} for item_id, denied in rejected.items()},
        labelled=set(positive),
        ambiguous=ambiguous,
        conflicting=conflicting,
        rejected_only=rejected_only,
        from_rejections=from_rejections,
    )


def _candidate_spaces(db, feature_space: str, item_type: str, labelled: list[str], tag_set: str) -> list[str]:
    """The vector spaces training compares: the one named, or for "auto" CLIP where it covers the labelled items
    as well as any, else the weight-free spaces covering the most of them."""
    known = vectors.spaces(db)
    if feature_space != "auto":
        if feature_space not in known:
            raise TrainingError(
                f"the catalog has no {feature_space!r} vectors (it has: {', '.join(sorted(known)) or 'none'}); "
                "run 'scisearch tag' with the tagger that makes them, or use --features auto"
            )
        return [feature_space]
    candidates = [space for space in FEATURE_SPACES if space in known]
    coverage = {space: len(read_features(db, space, item_type, labelled)[0]) for space in candidates}
    if not coverage or max(coverage.values()) == 0:
        raise TrainingError(
            f"none of the {len(labelled)} items labelled for {tag_set!r} has image features; run "
            "'scisearch tag CATALOG --tagger image_analysis' (or --tagger clip with CLIP weights) first"
        )
    most = max(coverage.values())
    if coverage.get("clip") == most:
        return ["clip"]
    return [space for space in WEIGHT_FREE_SPACES if coverage.get(space) == most] or [
        max(candidates, key=lambda space: coverage[space])
    ]


def unlabelled_sample(db, space: str, item_type: str, labelled: set[str]) -> np.ndarray:
    """Vectors of up to ``heads.MAX_UNLABELLED`` other items of ``space`` (every n-th, in a stable order): what the
    heads that use the catalog's structure see of it."""
    total = db.execute(f"select count(*) from [{vectors.table_for(space)}]").fetchone()[0]
    step = max(1, -(-total // heads.MAX_UNLABELLED))
    kept, seen = [], 0
    for batch_ids, features in _all_features(db, space, item_type):
        for row, item_id in enumerate(batch_ids):
            if item_id not in labelled:
                if seen % step == 0:
                    kept.append(features[row])
                seen += 1
    dimensions = (vectors.spaces(db).get(space) or {}).get("dimensions") or 0
    return np.stack(kept).astype(np.float64) if kept else np.zeros((0, dimensions))


def read_features(db, space: str, item_type: str, item_ids: list[str]) -> tuple[list[str], np.ndarray]:
    """The stored vectors of these items (those that have one), in a stable order."""
    table = vectors.table_for(space)
    found: dict[str, np.ndarray] = {}
    ordered = sorted(set(item_ids), key=_natural)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for item_id, blob in db.execute(
            f"select s.item_id, v.embedding from search_items s join [{table}] v on v.item_rowid = s.id "
            f"where s.item_type = ? and s.item_id in ({','.join('?' * len(chunk))})",
            [item_type, *chunk],
        ):
            found[str(item_id)] = np.frombuffer(blob, dtype=np.float32)
    ids = [item_id for item_id in ordered if item_id in found]
    dimensions = (vectors.spaces(db).get(space) or {}).get("dimensions") or 0
    matrix = np.stack([found[item_id] for item_id in ids]) if ids else np.zeros((0, dimensions), np.float32)
    return ids, matrix.astype(np.float64)


def _all_features(db, space: str, item_type: str) -> Iterator[tuple[list[str], np.ndarray]]:
    """Every vector of ``space`` for ``item_type``, a batch at a time (a large catalog's do not fit at once)."""
    table = vectors.table_for(space)
    cursor = db.execute(
        f"select s.item_id, v.embedding from search_items s join [{table}] v on v.item_rowid = s.id "
        "where s.item_type = ?",
        [item_type],
    )
    while rows := cursor.fetchmany(_READ_BATCH):
        yield [str(row[0]) for row in rows], np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])


def _natural(item_id: str):
    return (0, int(item_id), "") if item_id.isdigit() else (1, 0, item_id)


def _check_enough(tag_set: str, classes: list[str], counts: dict[str, int], missing_features: int, space: str) -> None:
    short = {name: MIN_LABELS_PER_CLASS - count for name, count in counts.items() if count < MIN_LABELS_PER_CLASS}
    if not short:
        return
    have = ", ".join(f"{name} {count}" for name, count in counts.items())
    need = ", ".join(f"{name} ({more} more)" for name, more in short.items())
    message = (
        f"too few labels to train {tag_set!r}: {have}. Training needs at least {MIN_LABELS_PER_CLASS} labelled items "
        f"per class ({RELIABLE_LABELS_PER_CLASS} per class give a reliable accuracy); label more items as {need} "
        "by accepting or adding those tags"
    )
    if missing_features:
        message += (
            f". {missing_features} labelled items have no {space} vector and do not count: "
            "tag them with the image taggers first"
        )
    raise TrainingError(message)


# ---------------------------------------------------------------- the head


def new_head():
    """The logistic-regression head as a scikit-learn pipeline (standardise on the labels, balanced logistic
    regression): heads.fit("logistic regression", ...) gives its weights."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000))


def cross_validated_predictions(
    features: np.ndarray, target: np.ndarray, folds: int, head: str = heads.HEADS[0], unlabelled=None
) -> np.ndarray:
    """Each item's class as predicted by ``head`` trained on the other folds (see heads.py)."""
    return heads.cross_validated_predictions(features, target, folds, head, unlabelled)


def fit_weights(
    features: np.ndarray,
    target: np.ndarray,
    classes: list[str],
    head: str = heads.HEADS[0],
    unlabelled: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Fit ``head`` on all labels and keep what predicting needs (stored as .npz in learned_models.weights)."""
    weights = heads.fit(head, features, target, unlabelled)
    return {**weights, "classes": np.array(classes), "head": np.array(head)}


def dump_weights(weights: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **weights)
    return buffer.getvalue()


def load_weights(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def probabilities(weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Class probabilities (rows: items, columns: classes) from stored weights, as scikit-learn's predict_proba."""
    scores = ((features - weights["mean"]) / weights["scale"]) @ weights["coef"].T + weights["intercept"]
    if scores.shape[1] == 1:  # two classes: one logit for the second class
        second = 1 / (1 + np.exp(-scores[:, 0]))
        return np.column_stack([1 - second, second])
    scores -= scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- the baseline


def baseline_predictions(db, item_type, ids, classes, mapping: dict[str, list[str]] | None) -> np.ndarray:
    """Per item, the class its best machine tag names, or -1 where no machine tag names one."""
    names = _naming_rule(classes, mapping)
    best: dict[str, tuple[float, int]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for item_id, text, score in db.execute(
            "select item_id, tag, score from tags where item_type = ? and status != 'added' and source != 'expert' "
            f"and source not like 'learned:%' and item_id in ({','.join('?' * len(chunk))})",
            [item_type, *chunk],
        ):
            for position in names(text.casefold()):
                candidate = (score if score is not None else 0.0, -position)
                if str(item_id) not in best or candidate > best[str(item_id)]:
                    best[str(item_id)] = candidate
    return np.array([-best[item_id][1] if item_id in best else -1 for item_id in ids], dtype=int)


def _naming_rule(classes: list[str], mapping: dict[str, list[str]] | None):
    """A function from a machine tag's text to the positions of the classes it names."""
    if mapping:
        lookup: dict[str, list[int]] = {}
        for position, name in enumerate(classes):
            for text in mapping.get(name, [name]):
                lookup.setdefault(text.casefold(), []).append(position)
        return lambda text: lookup.get(text, [])
    folded = [name.casefold() for name in classes]
    return lambda text: [p for p, name in enumerate(folded) if text == name or text in name or name in text]


def _confusion(truth: np.ndarray, predicted: np.ndarray, size: int, extra_columns: int = 0) -> np.ndarray:
    matrix = np.zeros((size, size + extra_columns), dtype=int)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


# ---------------------------------------------------------------- writing


@dataclass
class _Head:
    """A trained head as the writer needs it: where its tags come from and what their evidence says."""

    model_id: int
    tag_set: str
    version: int
    feature_space: str
    classes: list[str]
    weights: dict[str, np.ndarray]
    cv_accuracy: float
    labels: int

    @property
    def source(self) -> str:
        return learned_source(self.tag_set, self.version)

    def evidence(self, probability: float) -> str:
        kind = str(self.weights["head"]) if "head" in self.weights else heads.HEADS[0]
        calibrated = " calibrated" if "temperature" in self.weights else ""
        return (
            f"learned head {self.tag_set} v{self.version} ({kind}) on {self.feature_space},{calibrated} "
            f"p={probability:.2f}; CV accuracy {self.cv_accuracy:.2f} from {self.labels} labels"
        )


def _write_version(
    db, report: TrainingReport, weights, predicted: _Predictions, item_type, actor, min_probability
) -> None:
    """One transaction: the new model, the old versions retired and their tags removed, the new predictions and
    tags, and the search documents of every item whose tags changed."""
    _begin(db)
    try:
        # Read again under the write lock: an expert may have rejected or labelled an item while the vectors
        # were read, and the tags written must respect that.
        labels = _read_labels(db, item_type, report.classes)
        (previous,) = db.execute(
            "select coalesce(max(version), 0) from learned_models where tag_set = ?", [report.tag_set]
        ).fetchone()
        report.version = previous + 1
        report.source = learned_source(report.tag_set, report.version)
        for (model_id,) in db.execute(
            "select id from learned_models where tag_set = ? and status = 'current'", [report.tag_set]
        ).fetchall():
            # Old predictions only ordered the review queue, which follows the current model.
            db.execute("delete from learned_predictions where model_id = ?", [model_id])
            db.execute("update learned_models set status = 'retired' where id = ?", [model_id])
        untagged, report.tags_removed = _remove_learned_tags(db, report.tag_set, item_type)
        summary = {key: value for key, value in report.as_dict().items() if key not in ("version", "model_id")}
        model_id = _insert(
            db,
            "learned_models",
            {
                "tag_set": report.tag_set,
                "version": report.version,
                "classes": json.dumps(report.classes),
                "feature_space": report.feature_space,
                "labels": report.labels,
                "cv_accuracy": report.cv_accuracy,
                "baseline_accuracy": report.baseline_accuracy,
                "report": json.dumps(summary),
                "weights": dump_weights(weights),
                "status": "current",
                "trained_at": now_utc(),
                "trained_by": actor,
            },
        )
        report.model_id = model_id
        head = _Head(
            model_id, report.tag_set, report.version, report.feature_space, report.classes, weights,
            report.cv_accuracy, report.labels,
        )  # fmt: skip
        tagged = _write_predictions(db, head, item_type, predicted, labels, min_probability)
        report.predictions, report.tags_written = len(predicted.ids), len(tagged)
        changes.refresh(
            db, changes.LEARNING, item_types=[item_type], ids=sorted(set(untagged) | set(tagged))
        )  # joins this transaction: a kill leaves the old model or all of the new one
        _commit(db)
    except BaseException:
        _rollback(db)
        raise


def _remove_learned_tags(db, tag_set: str, item_type: str) -> tuple[list[str], int]:
    """Remove the machine tags of every version of ``tag_set``; experts' judgements of them stay."""
    prefix = f"learned:{tag_set}.v"  # tag set names hold no '.', so no other set's source starts so
    where = "item_type = ? and status = 'machine' and substr(source, 1, ?) = ?"
    parameters = [item_type, len(prefix), prefix]
    items = [str(row[0]) for row in db.execute(f"select distinct item_id from tags where {where}", parameters)]
    return items, db.execute(f"delete from tags where {where}", parameters).rowcount


def _insert(db, table: str, row: dict) -> int:
    # Plain SQL rather than sqlite-utils' insert, which commits: this must stay inside the caller's transaction.
    columns = ", ".join(row)
    return db.execute(
        f"insert into {table} ({columns}) values ({', '.join('?' * len(row))})", list(row.values())
    ).lastrowid


@dataclass
class _Predictions:
    ids: list[str]
    best: np.ndarray  # class index per item
    probability: np.ndarray  # of the best class
    margin: np.ndarray  # best minus runner-up


def _predict_all(db, weights: dict[str, np.ndarray], space: str, item_type: str, skip: set[str]) -> _Predictions:
    """Apply the head to every item with a vector in ``space`` (but those in ``skip``).  Done before the write
    transaction opens, so experts' edits do not wait while a large catalog's vectors are read."""
    expected = weights["mean"].shape[0]
    ids, best, probability, margin = [], [], [], []
    for batch_ids, features in _all_features(db, space, item_type):
        if features.shape[1] != expected:
            raise TrainingError(
                f"the {space!r} vectors are {features.shape[1]}-d but the head was trained on {expected}-d ones "
                "(the model behind them changed): train the tag set again"
            )
        keep = [row for row, item_id in enumerate(batch_ids) if item_id not in skip]
        if not keep:
            continue
        chances = probabilities(weights, features[keep].astype(np.float64))
        ranked = np.sort(chances, axis=1)
        ids += [batch_ids[row] for row in keep]
        best.append(chances.argmax(axis=1))
        probability.append(ranked[:, -1])
        margin.append(ranked[:, -1] - ranked[:, -2])
    joined = [np.concatenate(parts) if parts else np.zeros(0) for parts in (best, probability, margin)]
    return _Predictions(ids, joined[0].astype(int), joined[1], joined[2])


def _write_predictions(
    db, head: _Head, item_type: str, predicted: _Predictions, labels: _Labels, min_probability: float
) -> list[str]:
    """Store the head's predictions and the learned tags they give; returns the items that got a tag."""
    now, tagged = now_utc(), []
    prediction_rows, tag_rows = [], []
    # A learned tag joins the group its label's words have elsewhere (a morphology label with the features).
    categories = {label: usual_category(db, label) for label in head.classes}
    for item_id, best, p, margin in zip(predicted.ids, predicted.best, predicted.probability, predicted.margin):
        label, p = head.classes[best], float(p)
        prediction_rows.append((head.model_id, item_type, item_id, label, round(p, 4), round(float(margin), 4)))
        if p < min_probability or item_id in labels.labelled:
            continue  # too unsure to tag, or the expert's own label is already there
        if label.casefold() in labels.rejected.get(item_id, set()):
            continue  # the expert said it is not this
        tag_rows.append(
            (item_type, item_id, label, round(p, 4), head.source, str(head.version), head.evidence(p))
            + (categories[label], now, now)
        )
        tagged.append(item_id)
    db.conn.executemany(
        "insert or replace into learned_predictions (model_id, item_type, item_id, label, probability, margin) "
        "values (?, ?, ?, ?, ?, ?)",
        prediction_rows,
    )
    db.conn.executemany(
        "insert into tags (item_type, item_id, tag, score, source, source_version, status, evidence, "
        "category, created_at, updated_at) values (?, ?, ?, ?, ?, ?, 'machine', ?, ?, ?, ?)",
        tag_rows,
    )
    return tagged


def _actor_id(actor) -> str | None:
    if isinstance(actor, dict):
        return str(actor.get("id")) if actor.get("id") is not None else None
    return None if actor is None else str(actor)


def _begin(db) -> None:
    if db.conn.in_transaction:
        # The caller's own uncommitted writes would be committed with ours.
        raise RuntimeError("commit or roll back the connection's open transaction before training")
    begin_write(db)


def _commit(db) -> None:
    if db.conn.in_transaction:
        db.conn.commit()


def _rollback(db) -> None:
    if db.conn.in_transaction:
        db.conn.rollback()
