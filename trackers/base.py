"""The tracker interface: `update` once per frame, `reset` to forget everything.

Track ids come from a per-instance counter starting at 1, so two trackers
(two streams) never share or collide ids, and an id is only handed out once a
track is confirmed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from trackers.types import Box, Frame, Person, PersonDetection, TrackUpdate

KINDS = ("bytetrack", "deepsort", "none")


@dataclass
class TrackerConfig:
    """Tracker settings; `kind` picks ByteTrack (motion only) or deep-sort (motion + appearance)."""

    kind: str = "bytetrack"
    max_age: int = 30
    n_init: int = 3
    max_iou_distance: float = 0.7
    min_iou: float = 0.1
    high_score: float = 0.5
    new_track_score: float = 0.5
    max_cosine_distance: float = 0.3
    nn_budget: int = 100
    embedder_size: list[int] = field(default_factory=lambda: [128, 64])

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"tracker.kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if not (0.0 <= self.max_iou_distance <= 1.0):
            raise ValueError("tracker.max_iou_distance must be within 0..1")
        if len(self.embedder_size) != 2 or min(self.embedder_size) < 32:
            raise ValueError("tracker.embedder_size must be [height, width], each >= 32")
        if self.n_init < 1 or self.max_age < 1:
            raise ValueError("tracker.n_init and tracker.max_age must be >= 1")
        for name in ("min_iou", "high_score", "new_track_score", "max_cosine_distance"):
            if not 0.0 <= getattr(self, name) <= 1.0 and math.isfinite(getattr(self, name)):
                raise ValueError(f"tracker.{name} must be within 0..1; got {getattr(self, name)}")
        if self.nn_budget < 1:
            raise ValueError(f"tracker.nn_budget must be >= 1; got {self.nn_budget}")


class Tracker(Protocol):
    """Keeps each person's identity across frames."""

    def update(self, frame: Frame, detections: Sequence[PersonDetection]) -> TrackUpdate:
        """Called once per frame, also when there are no detections.

        `ended` lists the ids (ever emitted) whose tracks died in this call or
        in a `reset()` since the last one; an ended id is never used again.
        """
        ...

    def predict(self, frame: Frame) -> TrackUpdate:
        """A frame the detector skipped (`detector.interval`): the persons of the last
        update, at the boxes the tracker's motion model expects in `frame`."""
        ...

    def reset(self) -> None:
        """Forget every track (ids keep counting up); they are reported as ended by the next `update`."""
        ...


class TrackBook:
    """A library's track ids mapped to ours, and what each update showed.

    Ours count 1, 2, ... per instance (IdCounter); `shown` is each track's
    person as last shown (by the library's id, kept until the track ends),
    which `predicted` moves to a predicted box on frames the detector
    skipped; `ended` reports the ids whose library track is gone (once each).
    """

    def __init__(self) -> None:
        self._ids = IdCounter()
        self._ours: dict[object, int] = {}
        self._first_seen: dict[int, int] = {}
        self._ended_by_reset: list[int] = []
        self.shown: dict[object, Person] = {}

    def show(self, theirs: object, detection: PersonDetection, frame: Frame) -> Person:
        """The person a confirmed track matched to `detection` is in this frame."""
        track_id = self._ours.get(theirs)
        if track_id is None:
            track_id = self._ours[theirs] = self._ids.next()
            self._first_seen[track_id] = frame.index
        person = Person(
            track_id,
            detection.body_box,
            detection.head_box,
            detection.score,
            frame.index - self._first_seen[track_id],
            detection.body_source,
        )
        self.shown[theirs] = person
        return person

    def predicted(self, theirs: object, xyxy: Sequence[float], frame: Frame) -> Person | None:
        """The last shown person of that track at a predicted body box (its head carried along)."""
        shown = self.shown.get(theirs)
        if shown is None:
            return None
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        body = Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)).clip(frame.width, frame.height)
        head = follow_head(shown.head_box, shown.body_box, body, frame.width, frame.height)
        age = frame.index - self._first_seen[shown.track_id]
        return Person(shown.track_id, body, head, shown.score, age, shown.body_source)

    def ended(self, alive: set[object]) -> tuple[int, ...]:
        """Our ids whose library track is not in `alive` any more (plus those a reset ended)."""
        ended = self._ended_by_reset
        self._ended_by_reset = []
        for dead in [k for k in self._ours if k not in alive]:
            track_id = self._ours.pop(dead)
            self._first_seen.pop(track_id, None)
            self.shown.pop(dead, None)
            ended.append(track_id)
        return tuple(sorted(ended))

    def reset(self) -> None:
        self._ended_by_reset.extend(self._ours.values())
        self._ours.clear()
        self._first_seen.clear()
        self.shown = {}


def sorted_update(persons: list[Person], ended: tuple[int, ...]) -> TrackUpdate:
    return TrackUpdate(tuple(sorted(persons, key=lambda p: p.track_id)), ended)


def follow_head(head: Box | None, old_body: Box, new_body: Box, width: int, height: int) -> Box | None:
    """The head box carried along when its body box moves and resizes (predicted frames)."""
    if head is None or old_body.width <= 0 or old_body.height <= 0:
        return head
    sx, sy = new_body.width / old_body.width, new_body.height / old_body.height
    return Box(
        new_body.x1 + (head.x1 - old_body.x1) * sx,
        new_body.y1 + (head.y1 - old_body.y1) * sy,
        new_body.x1 + (head.x2 - old_body.x1) * sx,
        new_body.y1 + (head.y2 - old_body.y1) * sy,
    ).clip(width, height)


class IdCounter:
    """Hands out 1, 2, 3, ... per instance (never a class-level counter)."""

    def __init__(self) -> None:
        self._next = 1

    def next(self) -> int:
        value = self._next
        self._next += 1
        return value


class FrameLocalTracker:
    """No tracking: ids 1..N in detection order, fresh every frame (single images).

    Each frame's persons are new: the previous frame's ids all end.
    """

    def __init__(self) -> None:
        self._previous = 0
        self._last: tuple[Person, ...] = ()

    def update(self, frame: Frame, detections: Sequence[PersonDetection]) -> TrackUpdate:
        ended = tuple(range(1, self._previous + 1))
        self._previous = len(detections)
        persons = tuple(
            Person(i, d.body_box, d.head_box, d.score, 0, d.body_source) for i, d in enumerate(detections, start=1)
        )
        self._last = persons
        return TrackUpdate(persons, ended)

    def predict(self, frame: Frame) -> TrackUpdate:
        return TrackUpdate(self._last)

    def reset(self) -> None:
        pass
