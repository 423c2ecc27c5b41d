"""From probabilities to labels: thresholds (multi-label) or argmax (single-label)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The official inference script's thresholds.
FINAL_THRESHOLD = 0.26
LEVEL_THRESHOLD = 0.6


#: A decision threshold: one for every class, one per class (in label order), or None for single-label (argmax).
Threshold = float | tuple[float, ...] | None


def limits(threshold: float | tuple[float, ...], size: int) -> np.ndarray:
    """The threshold of each of `size` classes."""
    return np.broadcast_to(np.asarray(threshold, dtype=np.float64), (size,))


@dataclass(frozen=True)
class LabelRule:
    """How a model's probabilities become labels.

    A threshold of None means single-label: the argmax is the label. A tuple
    is one threshold per class (chosen on a validation split by
    `python -m cocoer_core.evaluate`).
    """

    final_threshold: Threshold
    level_threshold: Threshold

    def final_labels(self, labels: tuple[str, ...], probs: np.ndarray) -> tuple[str, ...]:
        return select_labels(labels, probs, self.final_threshold)

    def level_labels(self, labels: tuple[str, ...], probs: np.ndarray) -> tuple[str, ...]:
        return select_labels(labels, probs, self.level_threshold)


@dataclass(frozen=True)
class ConfidenceRule:
    """When a prediction is sure enough to be shown as an answer rather than a guess.

    Single-label models (argmax over classes that sum to 1): sure when the top
    probability is at least `min_top` and beats the second by at least
    `min_margin`. Multi-label models (a threshold per label, as CocoER on
    EMOTIC): sure when the top probability clears the threshold by at least
    `min_margin`; a close second there is a second label, not doubt.
    """

    min_top: float = 0.5
    min_margin: float = 0.15

    def uncertain(self, probs: np.ndarray, threshold: Threshold) -> bool:
        if probs.size == 0:
            return True
        ranked = np.sort(probs.astype(np.float64))[::-1]
        top = float(ranked[0])
        if threshold is not None:  # the label that clears its own threshold most
            return float(np.max(probs - limits(threshold, probs.size))) < self.min_margin
        second = float(ranked[1]) if ranked.size > 1 else 0.0
        return top < self.min_top or top - second < self.min_margin


def select_labels(labels: tuple[str, ...], probs: np.ndarray, threshold: Threshold) -> tuple[str, ...]:
    """Labels whose probability is strictly above their threshold, in index order (argmax if None)."""
    if threshold is None:
        return (labels[int(np.argmax(probs))],)
    above = probs > limits(threshold, len(labels))
    return tuple(label for label, on in zip(labels, above, strict=True) if on)


def labels_with_hysteresis(
    labels: tuple[str, ...],
    probs: np.ndarray,
    threshold: Threshold,
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
        for label, p, t in zip(labels, probs, limits(threshold, len(labels)), strict=True)
        if p > t + margin or (label in shown and p > t - margin)
    )


#: The official names of the three competing levels, by index (head, body, context).
SEQUENCE_NAMES = ("head-level", "body-level", "context-level")


def exclusion_names(order: list[int]) -> list[str]:
    """Level indices (first excluded first) -> the official `emo_process` strings."""
    return [SEQUENCE_NAMES[i] for i in order]
