"""Scores against labels: average precision exactly as scikit-learn computes it, per-class thresholds, accuracy.

`average_precision` is `sklearn.metrics.average_precision_score` for one
class: the precision at each distinct score, weighted by the recall it adds
(no interpolation). A class with no positive example has no AP (None) and
is left out of the mean, which is said wherever the mean is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Curve:
    """Precision and recall at each distinct score, highest score first."""

    scores: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> Curve | None:
    """The precision-recall curve of one class (None without a positive example)."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.sum() <= 0:
        return None
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    last = np.r_[np.where(np.diff(s))[0], s.size - 1]  # the last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = 1 + last - tps
    return Curve(s[last], tps / (tps + fps), tps / tps[-1])


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    curve = pr_curve(y_true, scores)
    if curve is None:
        return None
    return float(np.sum(np.diff(np.r_[0.0, curve.recall]) * curve.precision))


def mean_ap(targets: np.ndarray, scores: np.ndarray) -> tuple[float, list[float | None]]:
    """Per-class AP over [N, C] arrays, and their mean over the classes that have a positive."""
    per_class = [average_precision(targets[:, c], scores[:, c]) for c in range(targets.shape[1])]
    present = [ap for ap in per_class if ap is not None]
    return (float(np.mean(present)) if present else float("nan")), per_class


def equal_error_threshold(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """The decision threshold where precision equals recall (as nearly as the scores allow).

    Returned between that score and the next lower one, so that `score > threshold` selects exactly the
    examples of that point of the curve.
    """
    curve = pr_curve(y_true, scores)
    if curve is None:
        return None
    k = int(np.argmin(np.abs(curve.precision - curve.recall)))
    lower = curve.scores[k + 1] if k + 1 < curve.scores.size else min(curve.scores[k] - 1e-6, 0.0)
    return float((curve.scores[k] + lower) / 2)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """[C, C] counts: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix
