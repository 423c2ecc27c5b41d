"""Stage logic: plain `process(item) -> item` classes that the pipeline runs in threads."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from cocoer_core.api import EmotionModel, EmotionResult, PersonRegion
from streamer.detectors.base import PersonDetector
from streamer.smoothing import SmoothingBank
from streamer.types import Frame, FrameResult, Person, TrackedFrame
from trackers.base import Tracker

logger = logging.getLogger(__name__)


class DetectTrackStage:
    """Finds people and faces, then keeps their identities across frames.

    After a live source's reconnect gap longer than `keep_tracks_s`, the
    tracker starts afresh (people have moved on); shorter gaps keep the ids.
    """

    def __init__(self, detector: PersonDetector, tracker: Tracker, keep_tracks_s: float = 5.0) -> None:
        self.detector = detector
        self.tracker = tracker
        self.keep_tracks_s = keep_tracks_s

    def process(self, frame: Frame) -> TrackedFrame:
        if frame.gap_s > self.keep_tracks_s:
            logger.info("%.1f s gap: starting new tracks", frame.gap_s)
            self.tracker.reset()
        started = time.perf_counter()
        detections = self.detector.detect(frame.image)
        detected = time.perf_counter()
        update = self.tracker.update(frame, detections)
        tracked = time.perf_counter()
        return TrackedFrame(frame, update.persons, update.ended, detected - started, tracked - detected)


def region_of(person: Person) -> PersonRegion:
    """The model-side view of a tracked person."""
    return PersonRegion(
        person.body_box.as_tuple(),
        person.head_box.as_tuple() if person.head_box is not None else None,
    )


class EmotionStage:
    """The inference worker: one batched model call per frame, then smoothing.

    A track is inferred when it is new, and then every `stride`-th frame;
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

    def _due(self, person: Person, frame_index: int) -> bool:
        if self.min_face_px and (person.head_box is None or person.head_box.height < self.min_face_px):
            return False
        last = self.bank.last_inferred_frame(person.track_id)
        return last is None or frame_index - last >= self.stride

    def _infer(self, frame: Frame, persons: Sequence[Person]) -> list[EmotionResult | None]:
        if self.model is None or not persons:
            return [None] * len(persons)
        regions = [region_of(p) for p in persons]
        results: list[EmotionResult | None] = []
        for start in range(0, len(regions), self.batch_size):
            results.extend(self.model.predict(frame.image, regions[start : start + self.batch_size]))
        return results

    def process(self, tracked: TrackedFrame) -> FrameResult:
        frame = tracked.frame
        started = time.perf_counter()
        due = [i for i, p in enumerate(tracked.persons) if self._due(p, frame.index)]
        inferred = self._infer(frame, [tracked.persons[i] for i in due])
        raw: list[EmotionResult | None] = [None] * len(tracked.persons)
        for i, result in zip(due, inferred, strict=True):
            raw[i] = result
        smoothed, events = self.bank.update(
            frame.pts_s, frame.index, tracked.persons, raw, ended=tracked.ended, final=frame.is_last
        )
        return FrameResult(
            frame=frame,
            persons=tracked.persons,
            raw=tuple(raw),
            smoothed=smoothed,
            events=events,
            timings={
                "detect_s": tracked.detect_s,
                "track_s": tracked.track_s,
                "emotion_s": time.perf_counter() - started,
            },
        )
