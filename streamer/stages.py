"""Stage logic: plain classes that the pipeline runs in threads, testable without them.

- `DetectTrackStage.process(frame) -> TrackedFrame`, one per source.
- `EmotionStage`, one per source, splits the emotion step in two so that the
  shared inference worker can batch persons of many sources into one model
  call: `plan` picks the persons due for inference, `finish` folds the
  model's answers into the source's smoothing. `process` does both for one
  frame (the same code the worker runs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cocoer_core.api import EmotionModel, EmotionResult, FramePersons, PersonRegion
from streamer.detectors.base import PersonDetector
from streamer.smoothing import SmoothingBank
from streamer.types import Frame, FrameResult, Person, TrackedFrame
from trackers.base import Tracker

logger = logging.getLogger(__name__)


class DetectTrackStage:
    """Finds people and faces, then keeps their identities across frames.

    After a live source's reconnect gap longer than `keep_tracks_s`, the
    tracker starts afresh (people have moved on); shorter gaps keep the ids.

    With `interval` k > 1 the detector runs on every k-th frame this stage
    gets (counted in frames it processed, so live drops don't shift it) and
    the tracker predicts the boxes in between, as DeepStream's `interval`;
    the first frame after a gap is always detected.
    """

    def __init__(
        self, detector: PersonDetector, tracker: Tracker, keep_tracks_s: float = 5.0, interval: int = 1
    ) -> None:
        self.detector = detector
        self.tracker = tracker
        self.keep_tracks_s = keep_tracks_s
        self.interval = max(1, interval)
        self._since_detect: int | None = None  # frames since the detector last ran

    def process(self, frame: Frame) -> TrackedFrame:
        if frame.gap_s > self.keep_tracks_s:
            logger.info("%.1f s gap: starting new tracks", frame.gap_s)
            self.tracker.reset()
        if self._since_detect is not None and not frame.gap_before and self._since_detect + 1 < self.interval:
            self._since_detect += 1
            update = self.tracker.predict(frame)
            tracked = TrackedFrame(frame, update.persons, update.ended, detected=False)
        else:
            self._since_detect = 0
            update = self.tracker.update(frame, self.detector.detect(frame.image))
            tracked = TrackedFrame(frame, update.persons, update.ended)
        if frame.is_last and hasattr(self.detector, "close"):
            self.detector.close()  # a shared detector's lane: stop waiting for this source's frames
        return tracked


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


class EmotionStage:
    """One source's side of the inference worker: who is due, then smoothing.

    A track is inferred when it is new, and then every `stride`-th frame the
    worker processes for it (frames a live source dropped don't count);
    between inferences its smoothed result is carried. Persons whose face is
    smaller than `min_face_px` are not inferred.
    """

    def __init__(
        self,
        model: EmotionModel | None,
        bank: SmoothingBank,
        stride: int = 1,
        min_face_px: int = 0,
        batch_size: int = 16,
    ) -> None:
        self.model = model
        self.bank = bank
        self.stride = stride
        self.min_face_px = min_face_px
        self.batch_size = batch_size

    def _due(self, person: Person) -> bool:
        if self.min_face_px and (person.head_box is None or person.head_box.height < self.min_face_px):
            return False
        since = self.bank.frames_since_inference(person.track_id)
        return since is None or since + 1 >= self.stride

    def plan(self, tracked: TrackedFrame) -> tuple[int, ...]:
        """Indices of the persons to infer on this frame (none without a model)."""
        if self.model is None:
            return ()
        return tuple(i for i, p in enumerate(tracked.persons) if self._due(p))

    @staticmethod
    def request(tracked: TrackedFrame, due: Sequence[int]) -> FramePersons:
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
        return FrameResult(frame, tracked.persons, tuple(raw), smoothed, events, tracked.detected)

    def process(self, tracked: TrackedFrame) -> FrameResult:
        """Plan, infer and finish one frame on its own."""
        due = self.plan(tracked)
        inferred: list[EmotionResult | None] = []
        if due and self.model is not None:
            inferred = infer_batched(self.model, [self.request(tracked, due)], self.batch_size)[0]
        return self.finish(tracked, due, inferred)
