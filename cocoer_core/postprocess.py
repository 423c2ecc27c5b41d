"""From probabilities to labels: thresholds (multi-label) or argmax (single-label)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The official inference script's thresholds.
FINAL_THRESHOLD = 0.26
LEVEL_THRESHOLD = 0.6


@dataclass(frozen=True)
class LabelRule:
    """How a model's probabilities become labels.

    A threshold of None means single-label: the argmax is the label.
    """

    final_threshold: float | None
    level_threshold: float | None

    def final_labels(self, labels: tuple[str, ...], probs: np.ndarray) -> tuple[str, ...]:
        return select_labels(labels, probs, self.final_threshold)

    def level_labels(self, labels: tuple[str, ...], probs: np.ndarray) -> tuple[str, ...]:
        return select_labels(labels, probs, self.level_threshold)


def select_labels(labels: tuple[str, ...], probs: np.ndarray, threshold: float | None) -> tuple[str, ...]:
    """Labels whose probability is strictly above the threshold, in index order (argmax if None)."""
    if threshold is None:
        return (labels[int(np.argmax(probs))],)
    return tuple(label for label, p in zip(labels, probs, strict=True) if p > threshold)


def labels_with_hysteresis(
    labels: tuple[str, ...],
    probs: np.ndarray,
    threshold: float | None,
    previous: tuple[str, ...] | None,
    margin: float,
) -> tuple[str, ...]:
    """Labels that don't flicker when a score hovers around the decision boundary.

    Multi-label: a label turns on above threshold + margin and off below
    threshold - margin. Single-label: the shown label changes only when
    another class beats it by more than `margin`. With no previous labels
    (a new track) the plain rule applies.
    """
    if previous is None:
        return select_labels(labels, probs, threshold)
    index = {label: i for i, label in enumerate(labels)}
    if threshold is None:
        best = int(np.argmax(probs))
        if previous and previous[0] in index:
            held = index[previous[0]]
            if probs[best] - probs[held] <= margin:
                return (labels[held],)
        return (labels[best],)
    shown = set(previous)
    return tuple(
        label
        for label, p in zip(labels, probs, strict=True)
        if p > threshold + margin or (label in shown and p > threshold - margin)
    )


#: The official names of the three competing levels, by index (head, body, context).
SEQUENCE_NAMES = ("head-level", "body-level", "context-level")


def exclusion_names(order: list[int]) -> list[str]:
    """Level indices (first excluded first) -> the official `emo_process` strings."""
    return [SEQUENCE_NAMES[i] for i in order]
