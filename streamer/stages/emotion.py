"""The emotion stage of one source, split in two so that one model call can take the persons of many sources.

`plan` picks the persons due for inference on a frame; the backend batches
them with other sources' (see `streamer.stages.batching`) and runs the model
(`infer_batched`); `finish` folds the answers into the source's smoothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from cocoer_core.api import EmotionModel, EmotionResult, FramePersons, PersonRegion
from cocoer_core.postprocess import LabelRule
from streamer.stages.smoothing import SmoothingBank
from streamer.types import FrameResult, NoEmotion, Person, TrackedFrame

logger = logging.getLogger(__name__)


def region_of(person: Person) -> PersonRegion:
    """The model-side view of a tracked person."""
    return PersonRegion(
        person.body_box.as_tuple(),
        person.head_box.as_tuple() if person.head_box is not None else None,
    )


def infer_batched(
    model: EmotionModel, requests: Sequence[FramePersons], batch_size: int
) -> list[list[EmotionResult | None]]:
    """Run the persons of many frames through the model in calls of at most `batch_size` persons.

    Frames are packed in order; a frame with more persons than fit is split
    across calls (its context is simply computed in each).
    """
    results: list[list[EmotionResult | None]] = [[] for _ in requests]
    chunk: list[tuple[int, FramePersons]] = []
    room = batch_size

    def flush() -> None:
        nonlocal chunk, room
        if chunk:
            for (k, _), got in zip(chunk, model.predict_frames([r for _, r in chunk]), strict=True):
                results[k].extend(got)
        chunk, room = [], batch_size

    for k, request in enumerate(requests):
        persons = request.persons
        while persons:
            take, persons = persons[:room], persons[room:]
            chunk.append((k, FramePersons(request.image_bgr, take)))
            room -= len(take)
            if room == 0:
                flush()
    flush()
    return results


@dataclass(frozen=True)
class ModelCard:
    """What a source needs to know of the emotion model without running it (the Ray driver never does)."""

    name: str
    description: str
    label_rule: LabelRule

    @property
    def present(self) -> bool:
        return self.name != NO_MODEL.name

    @classmethod
    def of(cls, model: EmotionModel | None) -> ModelCard:
        return cls(model.name, model.description, model.label_rule) if model is not None else NO_MODEL


NO_MODEL = ModelCard("none", "no emotion model", LabelRule(None, None))


class EmotionStage:
    """One source's side of the emotion step: who is due, then smoothing.

    A track is inferred when it is new, and then every `stride`-th frame
    processed for it (frames a live source dropped don't count); between
    inferences its smoothed result is carried. Persons whose face is smaller
    than `min_face_px` are not inferred.
    """

    def __init__(self, model: ModelCard, bank: SmoothingBank, stride: int = 1, min_face_px: int = 0) -> None:
        self.model = model
        self.bank = bank
        self.stride = stride
        self.min_face_px = min_face_px

    def _due(self, person: Person) -> bool:
        if self.min_face_px and (person.head_box is None or person.head_box.height < self.min_face_px):
            return False
        since = self.bank.frames_since_inference(person.track_id)
        return since is None or since + 1 >= self.stride

    def plan(self, tracked: TrackedFrame) -> tuple[int, ...]:
        """Indices of the persons to infer on this frame (none without a model)."""
        if not self.model.present:
            return ()
        return tuple(i for i, p in enumerate(tracked.persons) if self._due(p))

    @staticmethod
    def request(tracked: TrackedFrame, due: Sequence[int]) -> FramePersons:
        """The model's input for the due persons of one frame."""
        return FramePersons(tracked.frame.image, tuple(region_of(tracked.persons[i]) for i in due))

    def finish(
        self, tracked: TrackedFrame, due: Sequence[int], inferred: Sequence[EmotionResult | None]
    ) -> FrameResult:
        """Fold the model's answers for the `due` persons into smoothing; the frame's result."""
        frame = tracked.frame
        raw: list[EmotionResult | None] = [None] * len(tracked.persons)
        for i, result in zip(due, inferred, strict=True):
            raw[i] = result
        smoothed, events = self.bank.update(
            frame.pts_s, frame.index, tracked.persons, raw, ended=tracked.ended, final=frame.is_last
        )
        reasons = tuple(
            self.why_not(person) if shown is None else None
            for person, shown in zip(tracked.persons, smoothed, strict=True)
        )
        return FrameResult(
            frame, tracked.persons, tuple(raw), smoothed, events, tracked.detected, reasons, tracked.faces
        )

    def why_not(self, person: Person) -> str:
        """Why a person has no emotion to show (asked only of those who have none)."""
        if not self.model.present:
            return NoEmotion.NO_MODEL.value
        if person.head_box is None:
            return NoEmotion.NO_FACE.value
        if self.min_face_px and person.head_box.height < self.min_face_px:
            return NoEmotion.FACE_TOO_SMALL.value
        return NoEmotion.NOT_INFERRED.value
