"""deep-sort-realtime behind the `Tracker` interface.

Box conversion (our xyxy <-> its ltwh) and id mapping (its string ids -> our
per-instance integers) happen here and nowhere else.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

from trackers.base import IdCounter, TrackerConfig, follow_head
from trackers.embedder import AppearanceEmbedder
from trackers.types import Box, Frame, Person, PersonDetection, TrackUpdate

logger = logging.getLogger(__name__)


class DeepSortTracker:
    """Kalman + appearance (the MobileNetV2 shipped in its wheel) tracker.

    Only tracks matched to a detection in this frame are emitted, with the
    detection's own boxes; a track counts once it has `n_init` hits (so with
    n_init=1 a person shows up in the very first frame it is detected).
    """

    def __init__(self, config: TrackerConfig, device: str = "cpu") -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it imports the deprecated pkg_resources
            from deep_sort_realtime.deepsort_tracker import DeepSort

        self._config = config
        # We compute the embeddings ourselves (see trackers/embedder.py) and hand them in.
        self._embedder = AppearanceEmbedder(device, *config.embedder_size)
        self._tracker = DeepSort(
            max_age=config.max_age,
            n_init=config.n_init,
            max_iou_distance=config.max_iou_distance,
            max_cosine_distance=config.max_cosine_distance,
            nn_budget=config.nn_budget,
            embedder=None,
        )
        self._ids = IdCounter()
        self._our_id: dict[str, int] = {}
        self._first_seen: dict[int, int] = {}
        self._ended_by_reset: list[int] = []
        self._shown: dict[str, Person] = {}  # its id -> what the last update emitted

    @classmethod
    def from_config(cls, config: TrackerConfig, device: str = "cpu") -> DeepSortTracker:
        return cls(config, device)

    def update(self, frame: Frame, detections: Sequence[PersonDetection]) -> TrackUpdate:
        raw = [(d.body_box.as_ltwh(), d.score, "person") for d in detections]
        embeds = self._embedder.embed(frame.image, [d.body_box for d in detections])
        tracks = self._tracker.update_tracks(raw, embeds=embeds, others=list(detections))

        persons = []
        self._shown = {}
        for track in tracks:
            if track.time_since_update > 0:
                continue
            if not (track.is_confirmed() or track.hits >= self._config.n_init):
                continue
            detection: PersonDetection | None = track.get_det_supplementary()
            if detection is None:
                continue
            track_id = self._our_id.get(track.track_id)
            if track_id is None:
                track_id = self._our_id[track.track_id] = self._ids.next()
                self._first_seen[track_id] = frame.index
            person = Person(
                track_id=track_id,
                body_box=detection.body_box,
                head_box=detection.head_box,
                score=detection.score,
                age_frames=frame.index - self._first_seen[track_id],
                body_source=detection.body_source,
            )
            self._shown[track.track_id] = person
            persons.append(person)
        persons.sort(key=lambda p: p.track_id)
        return TrackUpdate(tuple(persons), self._collect_ended())

    def _collect_ended(self) -> tuple[int, ...]:
        # deep-sort deletes a track after max_age unmatched frames: that is where our track ends.
        alive = {t.track_id for t in self._tracker.tracker.tracks}
        ended = self._ended_by_reset
        self._ended_by_reset = []
        for dead in [k for k in self._our_id if k not in alive]:
            track_id = self._our_id.pop(dead)
            self._first_seen.pop(track_id, None)
            self._shown.pop(dead, None)
            ended.append(track_id)
        return tuple(sorted(ended))

    def predict(self, frame: Frame) -> TrackUpdate:
        """Step its Kalman filters one frame, and show the persons of the last update there.

        deep-sort allows IoU matching only for tracks one update old, and
        deletes unconfirmed tracks on their first miss; a skipped frame is
        neither, so the step's "frames since update" count is taken back and
        `max_age` keeps counting updates (detection runs).
        """
        for track in self._tracker.tracker.tracks:
            track.mean, track.covariance = self._tracker.tracker.kf.predict(track.mean, track.covariance)
        persons = []
        for track in self._tracker.tracker.tracks:
            shown = self._shown.get(track.track_id)
            if shown is None or track.is_deleted():
                continue
            x1, y1, x2, y2 = (float(v) for v in track.to_ltrb(orig=False))
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
        persons.sort(key=lambda p: p.track_id)
        return TrackUpdate(tuple(persons), self._collect_ended())

    def reset(self) -> None:
        self._shown.clear()
        self._tracker.delete_all_tracks()
        self._ended_by_reset.extend(self._our_id.values())
        self._our_id.clear()
        self._first_seen.clear()
