"""Faults injected into real runs, the same way on every backend (importable by Ray's actors too)."""

from __future__ import annotations

from collections.abc import Sequence

from cocoer_core.api import EmotionModel, EmotionResult, FramePersons
from cocoer_core.baseline import FaceExpressionBaseline
from streamer.config import EmotionConfig


class FailingModel:
    """The real baseline, until its `fail_at`-th model call raises."""

    def __init__(self, fail_at: int) -> None:
        self.inner = FaceExpressionBaseline()
        self.name, self.description = self.inner.name, self.inner.description
        self.labels, self.levels, self.label_rule = self.inner.labels, self.inner.levels, self.inner.label_rule
        self.fail_at = fail_at
        self.calls = 0

    def predict(self, image, persons):  # type: ignore[no-untyped-def]
        return self.predict_frames([FramePersons(image, tuple(persons))])[0]

    def predict_frames(self, frames: Sequence[FramePersons]) -> list[list[EmotionResult | None]]:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("the emotion model failed (injected)")
        return self.inner.predict_frames(frames)


def model_failing_at_fifth_call(config: EmotionConfig, device: str) -> EmotionModel:
    """A `model_factory`: the baseline whose fifth call raises."""
    return FailingModel(5)
