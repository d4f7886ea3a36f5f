"""Labels for files that lack them: mode, kind and magnification band predicted from the pixels.

An exported PNG, TIFF or JPEG carries no metadata: the catalog cannot say whether it shows a TEM, STEM or SEM
image, a diffraction pattern, or at what magnification.  Every other file in the catalog says so for free — its
instrument wrote it — and that is supervision: a head (heads.py, chosen by cross-validation as for experts'
labels) learns each of these from the image vectors of the files whose metadata has it, and predicts it for the
files whose metadata does not.

Each label is a tag set of its own (``metadata-mode``, ``metadata-kind``, ``metadata-magnification``), versioned
in ``learned_models`` like any learned tag set; its predictions are machine tags with source
``learned:metadata-mode.vN``, the head's probability (calibrated by temperature scaling, heads.py) as score, and
evidence naming the model and its cross-validated accuracy — which is the accuracy on images whose metadata was
hidden from it.  Only files missing the label get a tag, and only at p >= 0.5.

What it learns from.  An export has lost its pixel size, and the analysis vector records the pixel size where it is
known (one feature, 0 when unknown): a head trained with it learns "pixel size known" along with the mode, and on
exports it fails (6 of 9 demo PNG exports given the right mode, tests/test_metadata_labels.py).  So the heads learn
with that feature set to 0 on every file, as it is on exports, and from the ``image_texture`` vector by default,
whose texture statistics do not depend on gain, offset or bit depth (9 of 9).

Which files lack a label: ``mode`` and ``magnification`` where the column is empty; ``kind`` for files read by the
exported-image loader (it calls any 2-D picture an image, so a diffraction pattern saved as PNG is one too).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..tagging import vectors
from . import heads
from . import train as training

LABELS = ("mode", "kind", "magnification")
PREFERRED_SPACES = ("clip", "image_texture", "image_features")
# Where the pixel size sits in the image-analysis vectors (plugins/helpers/image_features.py: the 7th "order"
# feature, after 16 + 24 + 8 + 16 + 12 others; image_texture starts with the same 88).
PIXEL_SIZE_FEATURE = {"image_features": 82, "image_texture": 82}
MIN_EXAMPLES = 5  # a value seen on fewer files is not predicted (too few to learn it, or a typo in metadata)
EXPORT_LOADERS = ("exported-image",)
# Bands a researcher would name: overview (SEM, low-mag TEM), particles and grains, lattice fringes, atomic columns.
MAGNIFICATION_BANDS = ((1e4, "magnification below 10 kx"), (1e5, "magnification 10-100 kx"),
                       (1e6, "magnification 100 kx-1 Mx"), (math.inf, "magnification above 1 Mx"))  # fmt: skip


@dataclass
class LabelReport:
    label: str
    tag_set: str
    classes: list[str] = field(default_factory=list)
    feature_space: str = ""
    head: str = ""
    known: int = 0  # files whose metadata has the label (training examples)
    unknown: int = 0  # files lacking it, with image vectors
    cv_accuracy: float | None = None  # on files whose label was hidden from the head
    temperature: float | None = None  # that calibrates its probabilities (heads.py); None: too few files
    log_loss: list[float] | None = None  # out-of-fold mean log-loss without and with the temperature
    version: int = 0
    tags_written: int = 0
    skipped: str = ""  # why this label was not predicted
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def predict_metadata(db, labels=LABELS, space: str = "auto", folds: int = 5, actor=None) -> list[LabelReport]:
    """Train one head per label on the files whose metadata has it and tag the files that lack it."""
    reports = []
    for label in labels:
        if label not in LABELS:
            raise training.TrainingError(f"cannot predict {label!r}", fix=f"choose among {', '.join(LABELS)}")
        reports.append(_predict_label(db, label, space, folds, actor))
    return reports


def _predict_label(db, label: str, space: str, folds: int, actor) -> LabelReport:
    started = time.perf_counter()
    tag_set = f"metadata-{label}"
    report = LabelReport(label, tag_set)
    known, unknown = _known_and_unknown(db, label)
    space = _space(db, space)
    if space is None:
        report.skipped = "no image vectors: run 'scisearch tag CATALOG --tagger image_analysis' first"
        return report
    report.feature_space = space
    ids, features = training.read_features(db, space, "file", list(known))
    values = [known[item_id] for item_id in ids]
    counts = {value: values.count(value) for value in set(values)}
    classes = sorted(value for value, count in counts.items() if count >= MIN_EXAMPLES)
    keep = [row for row, value in enumerate(values) if value in classes]
    unknown_ids, unknown_features = training.read_features(db, space, "file", list(unknown))
    report.known, report.unknown, report.classes = len(keep), len(unknown_ids), classes
    if len(classes) < 2:
        report.skipped = f"fewer than two values seen on {MIN_EXAMPLES} or more files ({counts or 'none'})"
        return report
    if not unknown_ids:
        report.skipped = "every file with image vectors has it already"
        return report
    features = _as_exports_see_them(space, features[keep])
    unknown_features = _as_exports_see_them(space, unknown_features)
    target = np.array([classes.index(values[row]) for row in keep])
    used_folds = max(2, min(folds, int(np.bincount(target).min())))
    choice = heads.choose_head(features, target, unknown_features, used_folds)
    report.head, report.cv_accuracy = choice.head, choice.accuracy[choice.head]
    report.temperature, report.log_loss = choice.temperature, list(choice.log_loss) if choice.log_loss else None
    weights = heads.with_temperature(training.fit_weights(features, target, classes, choice.head, unknown_features),
                                     choice.temperature)  # fmt: skip
    summary = training.TrainingReport(
        tag_set=tag_set, classes=classes, feature_space=space, head=choice.head, labels=len(keep),
        counts={c: int((target == i).sum()) for i, c in enumerate(classes)}, folds=used_folds,
        cv_accuracy=report.cv_accuracy, baseline_accuracy=0.0, baseline_covered=0,
        confusion=training._confusion(target, choice.out_of_fold, len(classes)).tolist(), baseline_confusion=[],
        excluded={}, labels_from_rejections=0, heads_compared=choice.accuracy, temperature=report.temperature,
        log_loss=report.log_loss,
    )  # fmt: skip
    # Predictions only for the files lacking the label: those with it are the examples, not candidates.
    predicted = training._predict_all(db, weights, space, "file", skip=set(known))
    training._write_version(db, summary, weights, predicted, "file", training._actor_id(actor),
                            training.MIN_PROBABILITY)  # fmt: skip
    report.version, report.tags_written = summary.version, summary.tags_written
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _known_and_unknown(db, label: str) -> tuple[dict[str, str], set[str]]:
    """File id -> the label's value where the metadata has it; the ids of files lacking it."""
    known, unknown = {}, set()
    for file_id, mode, kind, magnification, loader in db.execute(
        "select id, mode, kind, magnification, loader from files"
    ):
        is_export = (loader or "").split(":")[0] in EXPORT_LOADERS  # stored as name:version
        if label == "mode":
            value = mode or None
        elif label == "kind":
            value = None if is_export else kind
        else:
            value = _band(magnification)
        if value is None:
            unknown.add(str(file_id))
        else:
            known[str(file_id)] = value
    return known, unknown


def _as_exports_see_them(space: str, features: np.ndarray) -> np.ndarray:
    """The vectors with the pixel-size feature at 0, its value where the pixel size is unknown.  A head fitted on
    a feature that is constant ignores it, so stored vectors can be given to it unchanged."""
    column = PIXEL_SIZE_FEATURE.get(space)
    if column is None or features.shape[1] <= column:
        return features
    features = features.copy()
    features[:, column] = 0.0
    return features


def _band(magnification) -> str | None:
    if not isinstance(magnification, (int, float)) or not math.isfinite(magnification) or magnification <= 0:
        return None
    return next(name for upper, name in MAGNIFICATION_BANDS if magnification < upper)


def _space(db, space: str) -> str | None:
    known = vectors.spaces(db)
    if space != "auto":
        if space not in known:
            raise training.TrainingError(
                f"the catalog has no {space!r} vectors (it has: {', '.join(known) or 'none'})",
                fix="run 'scisearch tag CATALOG --tagger image_analysis', or use --features auto",
            )
        return space
    return next((name for name in PREFERRED_SPACES if name in known), None)
