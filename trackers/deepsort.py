"""deep-sort-realtime behind the `Tracker` interface.

Box conversion (our xyxy <-> its ltwh) and id mapping (its string ids -> our
per-instance integers) happen here and nowhere else.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

from trackers.base import TrackBook, TrackerConfig, sorted_update
from trackers.embedder import AppearanceEmbedder
from trackers.types import Frame, PersonDetection, TrackUpdate

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
        self._book = TrackBook()

    @classmethod
    def from_config(cls, config: TrackerConfig, device: str = "cpu") -> DeepSortTracker:
        return cls(config, device)

    def update(self, frame: Frame, detections: Sequence[PersonDetection]) -> TrackUpdate:
        raw = [(d.body_box.as_ltwh(), d.score, "person") for d in detections]
        embeds = self._embedder.embed(frame.image, [d.body_box for d in detections])
        tracks = self._tracker.update_tracks(raw, embeds=embeds, others=list(detections))

        persons = []
        for track in tracks:
            if track.time_since_update > 0:
                continue
            if not (track.is_confirmed() or track.hits >= self._config.n_init):
                continue
            detection: PersonDetection | None = track.get_det_supplementary()
            if detection is not None:
                persons.append(self._book.show(track.track_id, detection, frame))
        return sorted_update(persons, self._ended())

    def _ended(self) -> tuple[int, ...]:
        # deep-sort deletes a track after max_age unmatched updates: that is where our track ends.
        return self._book.ended({t.track_id for t in self._tracker.tracker.tracks})

    def predict(self, frame: Frame) -> TrackUpdate:
        """Step its Kalman states one frame; show there the confirmed tracks detected in one of the last two updates.

        The states are stepped directly, not through `Track.predict`: deep-sort
        IoU-matches only tracks one update old and deletes unconfirmed tracks
        on their first miss, and a skipped frame is neither; so
        `time_since_update` and `max_age` keep counting updates (detection runs).
        """
        for track in self._tracker.tracker.tracks:
            track.mean, track.covariance = self._tracker.tracker.kf.predict(track.mean, track.covariance)
        persons = []
        for track in self._tracker.tracker.tracks:
            if not track.is_confirmed() or track.time_since_update > 1:
                continue
            person = self._book.predicted(track.track_id, track.to_ltrb(orig=False), frame)
            if person is not None:
                persons.append(person)
        return sorted_update(persons, self._ended())

    def reset(self) -> None:
        self._tracker.delete_all_tracks()
        self._book.reset()
