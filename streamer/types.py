"""Hand-off types between pipeline stages.

Every stage takes and returns these frozen dataclasses; nothing else crosses a
queue. This module imports only the standard library, numpy and the emotion
result type, so every package can import it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from cocoer_core.api import EmotionResult


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


class TrackEventKind(enum.Enum):
    START = "start"
    END = "end"


@dataclass(frozen=True)
class TrackEvent:
    """A track's birth or death, recorded in the frame where it was decided.

    For an end, `last_frame` is the index of the frame where the track was
    last seen (it ends after a grace period, or with the stream).
    """

    kind: TrackEventKind
    track_id: int
    last_frame: int | None = None


@dataclass(frozen=True, eq=False)
class TrackedFrame:
    """Detect+track stage output: a frame and its confirmed persons."""

    frame: Frame
    persons: tuple[Person, ...]
    ended: tuple[int, ...] = ()
    detect_s: float = 0.0
    track_s: float = 0.0


@dataclass(frozen=True, eq=False)
class FrameResult:
    """What the renderer and sinks receive for each frame.

    `raw[i]` is the model output for `persons[i]` computed on this frame (None
    when the model did not run on it this frame, e.g. no face or stride skip);
    `smoothed[i]` is the per-track temporally smoothed view shown on screen.
    """

    frame: Frame
    persons: tuple[Person, ...]
    raw: tuple[EmotionResult | None, ...]
    smoothed: tuple[EmotionResult | None, ...]
    events: tuple[TrackEvent, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.persons) == len(self.raw) == len(self.smoothed)):
            raise ValueError("persons, raw and smoothed must have the same length")
