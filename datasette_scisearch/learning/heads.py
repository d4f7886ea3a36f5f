"""The heads a learned tagger can put on frozen image vectors, and how one is chosen from a few labels.

Three heads, each a different bet on what a handful of labels can support:

- ``logistic regression``: features standardised on the labelled items, a balanced L2-regularised logistic
  regression — the most flexible, and the best of the three on average in benchmarks/learning.py;
- ``nearest class mean``: each class is the mean of its labelled vectors (features standardised over the whole
  catalog), an item belongs to the nearest — nothing to fit, so nothing to overfit with one or two labels;
- ``label propagation``: the labels spread to the unlabelled items along the catalog's nearest-neighbour graph
  (Zhou et al. 2004, scikit-learn's LabelSpreading), then a logistic regression is fitted to labelled and
  propagated items alike, so that new files can be predicted without rebuilding the graph.  It uses the
  structure of the unlabelled items, which helps where classes are well-separated clusters.

Which one a tag set gets is decided by stratified cross-validation on its labels (ties go to the earlier head in
``HEADS``).  With 2 labels per class that is 2 folds trained on one label each: a rough guide, and the report
says so.

Every head ends as the same linear softmax model — ``mean``, ``scale``, ``coef``, ``intercept`` — so that
predicting from stored weights (train.probabilities) does not care which head was chosen.

Probabilities.  A head's softmax says how sure it is on the items it was fitted to, which is not how often it is
right on others (benchmarks/learning.py --part calibration, HAADF vs LAABF tiles, 10 labels a class: a mean top
probability of 0.86 where it is right 67 % of the time).  With enough labels (``MIN_CALIBRATION_LABELS``) the
chosen head is calibrated by temperature scaling (Guo et al. 2017): one number T, fitted to the out-of-fold scores
of the cross-validation by log-likelihood (with a prior that keeps T near 1), divides its scores.  That is the
same linear model with ``coef`` and ``intercept`` divided by T, stored as any head is (T beside it, for the
record); it changes no prediction, only the probability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

HEADS = ("logistic regression", "nearest class mean", "label propagation")
MIN_CALIBRATION_LABELS = 20  # out-of-fold scores of fewer labelled items do not pin a temperature down
TEMPERATURES = np.geomspace(0.05, 20, 121)  # searched for the best log-likelihood
# A prior on log T, normal around 0 (the head's own probabilities) with this spread: a few dozen out-of-fold scores
# that are all right would otherwise drive T to its floor and the probabilities to 1.00 (benchmarks/learning.py
# --part calibration: T = 0.05 on every easy class set), a certainty 20 labels cannot show.
LOG_TEMPERATURE_SPREAD = np.log(4.0)
NEIGHBOURS = 7
MAX_UNLABELLED = 3_000  # label propagation builds a k-NN graph over at most this many unlabelled items


@dataclass
class Choice:
    """Which head cross-validation chose, how each did, and the chosen head's out-of-fold predictions."""

    head: str
    accuracy: dict[str, float]  # head -> cross-validated accuracy
    out_of_fold: np.ndarray
    # The temperature that calibrates the chosen head's probabilities (None: too few labels to fit one), and the
    # out-of-fold log-likelihood per item without and with it.
    temperature: float | None = None
    log_loss: tuple[float, float] | None = None


def choose_head(features: np.ndarray, target: np.ndarray, unlabelled: np.ndarray, folds: int, heads=HEADS) -> Choice:
    """Cross-validate each head on the labelled ``features`` (the ``unlabelled`` vectors help the heads that use
    the catalog's structure), keep the most accurate and fit its temperature."""
    accuracy, out_of_fold = {}, {}
    for name in heads:
        out_of_fold[name] = cross_validated_scores(features, target, folds, name, unlabelled)
        accuracy[name] = round(float((_predicted(out_of_fold[name], target) == target).mean()), 4)
    best = max(heads, key=lambda name: (accuracy[name], -heads.index(name)))
    choice = Choice(best, accuracy, _predicted(out_of_fold[best], target))
    if len(target) >= MIN_CALIBRATION_LABELS:
        choice.temperature, choice.log_loss = fit_temperature(out_of_fold[best], target)
    return choice


def cross_validated_predictions(
    features: np.ndarray, target: np.ndarray, folds: int, head: str = HEADS[0], unlabelled: np.ndarray | None = None
) -> np.ndarray:
    """Each labelled item's class as predicted by ``head`` fitted on the other folds."""
    return _predicted(cross_validated_scores(features, target, folds, head, unlabelled), target)


def cross_validated_scores(
    features: np.ndarray, target: np.ndarray, folds: int, head: str = HEADS[0], unlabelled: np.ndarray | None = None
) -> np.ndarray:
    """Each labelled item's class scores (columns: the classes of ``target`` in sorted order) from ``head`` fitted
    on the other folds (stratified, shuffled with a fixed seed: labels often arrive in runs of one class, as an
    expert works folder by folder).  A class missing from a fold's training part scores -inf there."""
    from sklearn.model_selection import StratifiedKFold

    unlabelled = _none_to_empty(unlabelled, features.shape[1])
    every_class = np.unique(target)
    out_of_fold = np.full((len(target), len(every_class)), -np.inf)
    for train_rows, test_rows in StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(features, target):
        # The held-out items are unlabelled as far as this fold's head knows.
        pool = np.vstack([unlabelled, features[test_rows]])
        weights = fit(head, features[train_rows], target[train_rows], pool)
        columns = np.searchsorted(every_class, np.unique(target[train_rows]))
        out_of_fold[np.ix_(test_rows, columns)] = scores(weights, features[test_rows])
    return out_of_fold


def _predicted(out_of_fold: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.unique(target)[out_of_fold.argmax(axis=1)]


def fit_temperature(out_of_fold: np.ndarray, target: np.ndarray) -> tuple[float, tuple[float, float]]:
    """The temperature T that makes softmax(scores / T) most likely on the out-of-fold scores, under the prior on
    log T; and the mean log-loss per item at T = 1 and at T."""
    rows = np.searchsorted(np.unique(target), target)
    losses = [_log_loss(out_of_fold / t, rows) for t in TEMPERATURES]
    prior = np.log(TEMPERATURES) ** 2 / (2 * LOG_TEMPERATURE_SPREAD**2 * len(rows))
    best = int(np.argmin(np.asarray(losses) + prior))
    return float(TEMPERATURES[best]), (round(_log_loss(out_of_fold, rows), 4), round(float(losses[best]), 4))


def _log_loss(scores: np.ndarray, rows: np.ndarray) -> float:
    finite = np.where(np.isfinite(scores), scores, -1e9)
    shifted = finite - finite.max(axis=1, keepdims=True)
    log_probability = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probability[np.arange(len(rows)), rows].mean())


def calibration_words(temperature: float | None, log_loss) -> str:
    """How a head's probabilities were calibrated, in words (for reports)."""
    if temperature is None:
        return f"as the head gives them (calibrated from {MIN_CALIBRATION_LABELS} labels on)"
    return f"calibrated, temperature {temperature:.2f} (out-of-fold log-loss {log_loss[0]:.3f} → {log_loss[1]:.3f})"


def with_temperature(weights: dict, temperature: float | None) -> dict:
    """``weights`` whose probabilities are softmax(scores / ``temperature``): the same predictions."""
    if temperature is None:
        return weights
    return {**weights, "coef": weights["coef"] / temperature, "intercept": weights["intercept"] / temperature,
            "temperature": np.array(temperature)}  # fmt: skip


def fit(head: str, features: np.ndarray, target: np.ndarray, unlabelled: np.ndarray | None = None) -> dict:
    """Fit ``head`` on labelled ``features`` (classes: the sorted distinct values of ``target``) and return its
    linear weights: ``mean``, ``scale`` (standardisation), ``coef`` and ``intercept`` (one row per class, or one
    row for the second of two classes, as scikit-learn's binary logistic regression)."""
    unlabelled = _none_to_empty(unlabelled, features.shape[1])
    return _FITTERS[head](features, target, unlabelled)


def scores(weights: dict, features: np.ndarray) -> np.ndarray:
    """Class scores (rows: items); for two classes given as one logit, the columns are (-logit, +logit)/2."""
    raw = ((features - weights["mean"]) / weights["scale"]) @ weights["coef"].T + weights["intercept"]
    return np.column_stack([-raw[:, 0], raw[:, 0]]) / 2 if raw.shape[1] == 1 else raw


# ---------------------------------------------------------------- the heads


def _logistic_regression(features, target, unlabelled) -> dict:
    from sklearn.linear_model import LogisticRegression

    mean, scale = _standardiser(features)
    model = LogisticRegression(class_weight="balanced", max_iter=5000).fit((features - mean) / scale, target)
    return {"mean": mean, "scale": scale, "coef": model.coef_, "intercept": model.intercept_}


def _nearest_class_mean(features, target, unlabelled) -> dict:
    mean, scale = _standardiser(np.vstack([features, unlabelled]))
    standard = (features - mean) / scale
    classes = np.unique(target)
    centres = np.stack([standard[target == c].mean(axis=0) for c in classes])
    # -|x - c|^2 / 2T is linear in x once |x|^2, the same for every class, is dropped.  The temperature T is the
    # labels' mean squared distance to their own centre (or the dimension, with one label a class), which gives
    # probabilities on the scale of how spread out a class is.
    spread = np.mean([np.sum((row - centres[list(classes).index(c)]) ** 2) for row, c in zip(standard, target)])
    temperature = spread if spread > 1e-9 else float(features.shape[1])
    return {
        "mean": mean,
        "scale": scale,
        "coef": centres / temperature,
        "intercept": -np.sum(centres**2, axis=1) / (2 * temperature),
    }


def _label_propagation(features, target, unlabelled) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelSpreading

    if len(unlabelled) > MAX_UNLABELLED:
        unlabelled = unlabelled[np.random.default_rng(0).choice(len(unlabelled), MAX_UNLABELLED, replace=False)]
    mean, scale = _standardiser(np.vstack([features, unlabelled]))
    standard = (np.vstack([features, unlabelled]) - mean) / scale
    everything = np.concatenate([target, np.full(len(unlabelled), -1)])
    neighbours = max(1, min(NEIGHBOURS, len(standard) - 1))
    spread = LabelSpreading(kernel="knn", n_neighbors=neighbours, alpha=0.2, max_iter=100).fit(standard, everything)
    # The expert's labels stay as they are; the unlabelled items take the class the graph gave them.
    propagated = np.concatenate([target, spread.transduction_[len(target) :]])
    model = LogisticRegression(max_iter=5000).fit(standard, propagated)
    return {"mean": mean, "scale": scale, "coef": model.coef_, "intercept": model.intercept_}


_FITTERS: dict[str, Callable] = {
    "logistic regression": _logistic_regression,
    "nearest class mean": _nearest_class_mean,
    "label propagation": _label_propagation,
}


def _standardiser(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale < 1e-12] = 1.0  # a constant feature: scikit-learn's StandardScaler leaves it unscaled too
    return mean, scale


def _none_to_empty(unlabelled: np.ndarray | None, dimensions: int) -> np.ndarray:
    return np.zeros((0, dimensions)) if unlabelled is None or len(unlabelled) == 0 else unlabelled
