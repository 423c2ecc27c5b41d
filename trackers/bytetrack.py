"""ByteTrack (roboflow's `trackers` package on PyPI) behind the `Tracker` interface.

Both that package and ours are called `trackers`. Ours comes first on the
path, and the two share no submodule name, so the PyPI package's folder is
added to our package's search path: `trackers.core...` and `trackers.utils...`
(its modules, which import each other by those absolute names) then resolve
to its files while `trackers.base` etc. stay ours.

The tracker's clock is the source's frame index (`timestamp=index` with a
frame rate of 1), so its Kalman filter steps by the frames that really passed:
dropped live frames and the frames `detector.interval` skips included.
"""

from __future__ import annotations

import copy
import importlib
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import trackers as _ours
from trackers.base import IdCounter, TrackerConfig, follow_head
from trackers.types import Box, Frame, Person, PersonDetection, TrackUpdate

#: ByteTrack counts its lost-track buffer in 30-fps frames; our clock runs at 1 "fps" (one tick per frame).
_BUFFER_FPS = 30.0


def _roboflow_bytetrack() -> type:
    """roboflow's `ByteTrackTracker` class, despite the package name clash."""
    ours = Path(_ours.__file__).resolve().parent
    for entry in sys.path:
        candidate = Path(entry or ".").resolve() / "trackers"
        if candidate != ours and (candidate / "core" / "bytetrack" / "tracker.py").is_file():
            if str(candidate) not in _ours.__path__:
                _ours.__path__.append(str(candidate))
            break
    else:
        raise ImportError("ByteTrack needs roboflow's trackers package: pip install 'trackers>=2.6'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module("trackers.core.bytetrack.tracker").ByteTrackTracker


def _detections(detections: Sequence[PersonDetection]) -> Any:
    import supervision as sv

    if not detections:
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=np.array([d.body_box.as_tuple() for d in detections], dtype=np.float32),
        confidence=np.array([d.score for d in detections], dtype=np.float32),
        class_id=np.zeros(len(detections), dtype=int),
        data={"index": np.arange(len(detections))},
    )


class ByteTrackAdapter:
    """Motion-only two-stage association (high-score boxes first, then low-score ones).

    A track is shown once `n_init` consecutive detections matched it, and ends
    after `max_age` frames without one.
    """

    def __init__(self, config: TrackerConfig) -> None:
        self._config = config
        self._make = lambda: _roboflow_bytetrack()(
            lost_track_buffer=max(1, round(config.max_age * _BUFFER_FPS)),
            frame_rate=1.0,
            track_activation_threshold=config.new_track_score,
            minimum_consecutive_frames=config.n_init,
            minimum_iou_threshold=config.min_iou,
            high_conf_det_threshold=config.high_score,
        )
        self._tracker = self._make()
        self._ids = IdCounter()
        self._our_id: dict[int, int] = {}
        self._first_seen: dict[int, int] = {}
        self._shown: dict[int, Person] = {}  # their id -> what the last update emitted
        self._last_index: int | None = None
        self._ended_by_reset: list[int] = []

    def update(self, frame: Frame, detections: Sequence[PersonDetection]) -> TrackUpdate:
        index = self._clock(frame)
        result = self._tracker.update(_detections(detections), timestamp=float(index))
        self._last_index = index
        persons: list[Person] = []
        self._shown = {}
        indices = result.data.get("index", np.empty(0, dtype=int)) if len(result) else []
        for their_id, k in zip(result.tracker_id, indices, strict=True):
            if their_id < 0:
                continue  # not (yet) a confirmed track
            detection = detections[int(k)]
            track_id = self._our_id.get(int(their_id))
            if track_id is None:
                track_id = self._our_id[int(their_id)] = self._ids.next()
                self._first_seen[track_id] = frame.index
            person = Person(
                track_id,
                detection.body_box,
                detection.head_box,
                detection.score,
                frame.index - self._first_seen[track_id],
                detection.body_source,
            )
            self._shown[int(their_id)] = person
            persons.append(person)
        return TrackUpdate(tuple(sorted(persons, key=lambda p: p.track_id)), self._collect_ended())

    def predict(self, frame: Frame) -> TrackUpdate:
        """The persons of the last update, moved to where the Kalman filter expects them now."""
        if self._last_index is None:
            return TrackUpdate((), self._collect_ended())
        steps = float(self._clock(frame) - self._last_index)
        persons = []
        for track in self._tracker.tracks:
            shown = self._shown.get(int(track.tracker_id))
            if shown is None:
                continue
            estimator = copy.deepcopy(track.state_estimator)  # look ahead without moving the real track
            if steps > 0:
                estimator.predict(steps, 1.0)
            x1, y1, x2, y2 = (float(v) for v in estimator.state_to_bbox())
            body = Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)).clip(frame.width, frame.height)
            persons.append(
                Person(
                    shown.track_id,
                    body,
                    follow_head(shown.head_box, shown.body_box, body, frame.width, frame.height),
                    shown.score,
                    frame.index - self._first_seen[shown.track_id],
                    shown.body_source,
                )
            )
        return TrackUpdate(tuple(sorted(persons, key=lambda p: p.track_id)), self._collect_ended())

    def reset(self) -> None:
        self._tracker = self._make()
        self._ended_by_reset.extend(self._our_id.values())
        self._our_id.clear()
        self._first_seen.clear()
        self._shown.clear()
        self._last_index = None

    def _clock(self, frame: Frame) -> int:
        # A source restarted from 0 (a looping demo, say) must not run the clock backwards.
        if self._last_index is not None and frame.index <= self._last_index:
            self.reset()
        return frame.index

    def _collect_ended(self) -> tuple[int, ...]:
        alive = {int(t.tracker_id) for t in self._tracker.tracks if t.tracker_id >= 0}
        ended = self._ended_by_reset
        self._ended_by_reset = []
        for dead in [k for k in self._our_id if k not in alive]:
            track_id = self._our_id.pop(dead)
            self._first_seen.pop(track_id, None)
            self._shown.pop(dead, None)
            ended.append(track_id)
        return tuple(sorted(ended))
