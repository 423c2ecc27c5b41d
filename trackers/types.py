"""The tracker's hand-off types: frames in, detections in, tracked persons out.

A leaf module (standard library and numpy only): `trackers` and `streamer`
both use these, and neither needs the other to define them. `streamer.types`
re-exports them beside the pipeline's own types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned box, xyxy float pixels in full-frame coordinates."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if not (self.x2 >= self.x1 and self.y2 >= self.y1):
            raise ValueError(f"box corners out of order: {self}")

    @classmethod
    def from_ltwh(cls, left: float, top: float, width: float, height: float) -> Box:
        return cls(float(left), float(top), float(left + width), float(top + height))

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def as_ltwh(self) -> list[float]:
        return [self.x1, self.y1, self.width, self.height]

    def clip(self, width: int, height: int) -> Box:
        """This box clamped to an image of the given size."""
        x1 = min(max(self.x1, 0.0), float(width))
        y1 = min(max(self.y1, 0.0), float(height))
        x2 = min(max(self.x2, x1), float(width))
        y2 = min(max(self.y2, y1), float(height))
        return Box(x1, y1, x2, y2)

    def intersection(self, other: Box) -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return max(w, 0.0) * max(h, 0.0)

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def rounded(self) -> tuple[int, int, int, int]:
        return (round(self.x1), round(self.y1), round(self.x2), round(self.y2))


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame.

    Attributes:
        stream_id: which source it came from (display name, password masked).
        index: 0-based position among the frames this source delivered.
        pts_s: presentation time in seconds, from the container when it has one.
        captured_at: wall-clock `time.monotonic()` when the frame was decoded.
        image: HxWx3 uint8 BGR, as OpenCV uses.
        gap_s: for the first frame after a live source reconnected, how long
            the stream was gone (seconds); 0.0 otherwise.
        is_last: True for the final frame of a finite source (file, demo).
    """

    stream_id: str
    index: int
    pts_s: float
    captured_at: float
    image: np.ndarray
    gap_s: float = 0.0
    is_last: bool = False

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"frame image must be HxWx3 uint8, got {self.image.shape} {self.image.dtype}")

    @property
    def gap_before(self) -> bool:
        return self.gap_s > 0.0

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class PersonDetection:
    """Detector output for one person: a body box and, when found, the face box.

    `body_source` says where the body box came from: "person" for a person
    detector, "face" for a body box extrapolated from a face alone.
    """

    body_box: Box
    head_box: Box | None
    score: float
    body_source: str = "person"


@dataclass(frozen=True)
class Person:
    """A tracked person in one frame. Only confirmed tracks are emitted."""

    track_id: int
    body_box: Box
    head_box: Box | None
    score: float
    age_frames: int = 0
    body_source: str = "person"

    def __post_init__(self) -> None:
        if self.track_id < 1:
            raise ValueError(f"track ids start at 1, got {self.track_id}")


@dataclass(frozen=True)
class TrackUpdate:
    """What a tracker says about one frame: its confirmed persons, and the tracks that ended.

    The tracker alone decides when a track ends (after `max_age` frames
    unmatched, or on `reset`): smoothing state and the `track_end` event follow
    it, so one person never ends and restarts under the same id.
    """

    persons: tuple[Person, ...]
    ended: tuple[int, ...] = ()
