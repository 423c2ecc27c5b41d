"""The emotion-model interface the pipeline calls once per batch.

`cocoer_core` imports nothing from the rest of the project: the pipeline hands
in full BGR frames plus one `PersonRegion` per tracked person and gets one
`EmotionResult` (or None) back per person, in the same order. One call may
mix the persons of several frames (several streams): each person's context
is its own frame.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from cocoer_core.postprocess import LabelRule


class Level(enum.Enum):
    """Prediction levels. Values are the keys used in JSON output."""

    FINAL = "final"
    VI = "vi"
    HEAD = "head"
    BODY = "body"
    CONTEXT = "context"

    @property
    def sequence_name(self) -> str:
        """The string the official code uses in the exclusion sequence."""
        return f"{self.value}-level"


#: The three levels that compete, in the official tie-break order.
COMPETING_LEVELS: tuple[Level, ...] = (Level.HEAD, Level.BODY, Level.CONTEXT)


@dataclass(frozen=True)
class PersonRegion:
    """One person's boxes in full-frame pixel coordinates (x1, y1, x2, y2).

    `head_xyxy` is None when no face was found for this person.
    """

    body_xyxy: tuple[float, float, float, float]
    head_xyxy: tuple[float, float, float, float] | None


@dataclass(frozen=True, eq=False)
class FramePersons:
    """One frame's image and the persons to predict in it: one item of a cross-frame batch."""

    image_bgr: np.ndarray
    persons: tuple[PersonRegion, ...]


@dataclass(frozen=True, eq=False)
class EmotionResult:
    """One person's emotion prediction.

    Attributes:
        model_name: which model produced it (shown on screen and in JSON).
        labels: class names, in score index order.
        scores: per-level probabilities, float32 arrays of len(labels).
        pred: the final labels (thresholded, or argmax for single-label models).
        level_pred: per-level labels for the other levels (thresholded).
        exclusion: competition order, first excluded level first, kept level
            last; empty when the model has no competition step.
        level_losses: the per-level losses that ordered `exclusion`.
        uncertain: the top label is a guess, not an answer (`ConfidenceRule`);
            set on smoothed results, which are what is shown.
    """

    model_name: str
    labels: tuple[str, ...]
    scores: dict[Level, np.ndarray]
    pred: tuple[str, ...]
    level_pred: dict[Level, tuple[str, ...]] = field(default_factory=dict)
    exclusion: tuple[Level, ...] = ()
    level_losses: dict[Level, float] = field(default_factory=dict)
    uncertain: bool = False

    def __post_init__(self) -> None:
        if Level.FINAL not in self.scores:
            raise ValueError("an EmotionResult needs final scores")
        for level, values in self.scores.items():
            if values.shape != (len(self.labels),):
                raise ValueError(f"{level.value} scores have shape {values.shape}, expected ({len(self.labels)},)")

    def top(self, k: int, level: Level = Level.FINAL) -> list[tuple[str, float]]:
        """The k highest-scoring (label, probability) pairs of one level."""
        values = self.scores[level]
        order = np.argsort(-values, kind="stable")[:k]
        return [(self.labels[i], float(values[i])) for i in order]


@runtime_checkable
class EmotionModel(Protocol):
    """What the pipeline needs from an emotion model."""

    name: str
    description: str
    labels: tuple[str, ...]
    levels: tuple[Level, ...]
    label_rule: LabelRule

    def predict(self, image_bgr: np.ndarray, persons: Sequence[PersonRegion]) -> list[EmotionResult | None]:
        """Predict for every person of one frame in one batched call."""
        ...

    def predict_frames(self, frames: Sequence[FramePersons]) -> list[list[EmotionResult | None]]:
        """Predict for the persons of several frames in one batched call; one list per frame."""
        ...
