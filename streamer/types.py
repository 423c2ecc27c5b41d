"""Hand-off types between pipeline stages.

Every stage takes and returns these frozen dataclasses; nothing else crosses a
queue. The tracker's types (`Box`, `Frame`, `PersonDetection`, `Person`,
`TrackUpdate`) live in the leaf module `trackers.types` and are re-exported
here; the emotion result type comes from `cocoer_core.api`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cocoer_core.api import EmotionResult
from trackers.types import Box, Frame, Person, PersonDetection, TrackUpdate

__all__ = [
    "Box",
    "Frame",
    "FrameResult",
    "Person",
    "PersonDetection",
    "TrackEvent",
    "TrackEventKind",
    "TrackUpdate",
    "TrackedFrame",
]


class TrackEventKind(enum.Enum):
    START = "start"
    END = "end"


@dataclass(frozen=True)
class TrackEvent:
    """A track's birth or death, recorded in the frame where it was decided.

    For an end, `last_frame` is the index of the frame where the track was
    last seen (it ends after a grace period, or with the stream). A start
    recorded on a later frame than the one it began in (that frame's result
    was dropped as stale on a live source) says the frame it began in, as
    `first_frame`.
    """

    kind: TrackEventKind
    track_id: int
    last_frame: int | None = None
    first_frame: int | None = None


@dataclass(frozen=True, eq=False)
class TrackedFrame:
    """Detect+track stage output: a frame and its confirmed persons.

    `detected` is False on frames the detector skipped (`detector.interval`),
    whose boxes are the tracker's predictions.
    """

    frame: Frame
    persons: tuple[Person, ...]
    ended: tuple[int, ...] = ()
    detected: bool = True
    #: Every face found, a confirmed person's or not (a track is shown from its n_init-th detection, but
    #: its face is hidden from the first); on skipped frames, the last detection's faces.
    faces: tuple[Box, ...] = ()


class NoEmotion(enum.StrEnum):
    """Why a person shows no emotion (the JSONL's `no_emotion`, the report's reasons)."""

    NO_MODEL = "no_model"  # the run has no emotion model
    NO_FACE = "no_face"  # no face seen (turned away, covered, too far for the face detector)
    FACE_TOO_SMALL = "face_too_small"  # a face smaller than emotion.min_face_px
    NOT_INFERRED = "not_inferred"  # the model gave no answer for this person


@dataclass(frozen=True, eq=False)
class FrameResult:
    """What the renderer and sinks receive for each frame.

    `raw[i]` is the model output for `persons[i]` computed on this frame (None
    when the model did not run on it this frame, e.g. no face or stride skip);
    `smoothed[i]` is the per-track temporally smoothed view shown on screen.
    `detected` is False when the boxes are the tracker's predictions (a frame
    `detector.interval` skipped).
    """

    frame: Frame
    persons: tuple[Person, ...]
    raw: tuple[EmotionResult | None, ...]
    smoothed: tuple[EmotionResult | None, ...]
    events: tuple[TrackEvent, ...] = ()
    detected: bool = True
    #: Per person, why nothing is shown when `smoothed[i]` is None (a `NoEmotion` value); empty: not known.
    no_emotion: tuple[str | None, ...] = ()
    #: Every face found in the frame (`TrackedFrame.faces`): what privacy hides, beside the persons' heads.
    faces: tuple[Box, ...] = ()

    @property
    def faces_to_hide(self) -> list[Box]:
        """`faces`, and the persons' heads not among them: on detected frames those are the same boxes (a
        person's head is its detection's), and each face is hidden once; on skipped frames they differ."""
        found = set(self.faces)
        return [*self.faces, *(p.head_box for p in self.persons if p.head_box is not None and p.head_box not in found)]

    def __post_init__(self) -> None:
        if not (len(self.persons) == len(self.raw) == len(self.smoothed)):
            raise ValueError("persons, raw and smoothed must have the same length")
        if self.no_emotion and len(self.no_emotion) != len(self.persons):
            raise ValueError("no_emotion must have one entry per person")
