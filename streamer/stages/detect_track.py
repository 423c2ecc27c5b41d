"""The detect+track stage: people and faces found in a frame, then kept as the same persons over time."""

from __future__ import annotations

import logging
import time

from streamer.detectors.base import PersonDetector
from streamer.privacy.zones import ZoneFilter
from streamer.stages.interval import AdaptiveInterval
from streamer.types import Box, Frame, TrackedFrame
from trackers.base import Tracker

logger = logging.getLogger(__name__)


class DetectTrackStage:
    """Finds people and faces, then keeps their identities across frames.

    After a live source's reconnect gap longer than `keep_tracks_s`, the
    tracker starts afresh (people have moved on); shorter gaps keep the ids.
    So does a change of frame size (a camera back at another resolution: the
    old boxes are in other pixels), and that frame is detected.

    With `interval` k > 1 the detector runs on every k-th frame this stage
    gets (counted in frames it processed, so live drops don't shift it) and
    the tracker predicts the boxes in between, as DeepStream's `interval`;
    the first frame after a gap is always detected. With `adaptive` (a live
    source's `interval: auto`) k follows what the machine keeps up with.

    `zones` are applied first: mask zones are filled before the detector (or
    any output) sees the frame; people in ignore zones are dropped before
    tracking, their faces kept among those the outputs hide.
    """

    def __init__(
        self,
        detector: PersonDetector,
        tracker: Tracker,
        keep_tracks_s: float = 5.0,
        interval: int = 1,
        zones: ZoneFilter | None = None,
        adaptive: AdaptiveInterval | None = None,
    ) -> None:
        self.detector = detector
        self.zones = zones if zones is not None else ZoneFilter()
        self.tracker = tracker
        self.keep_tracks_s = keep_tracks_s
        self.adaptive = adaptive
        self._fixed = max(1, interval)
        self._since_detect: int | None = None  # frames since the detector last ran
        self._faces: tuple[Box, ...] = ()  # the faces it found then
        self._size: tuple[int, int] | None = None  # the last frame's (width, height)

    @property
    def interval(self) -> int:
        """Detect every this many frames (now: an adaptive interval changes it as the run goes)."""
        return self.adaptive.value if self.adaptive else self._fixed

    @property
    def longest_interval(self) -> int:
        """The most frames apart detections can be in this run (a live capture edge holds one such cycle)."""
        return self.adaptive.highest if self.adaptive else self.interval

    def process(self, frame: Frame) -> TrackedFrame:
        started = time.perf_counter()
        frame = self.zones.masked(frame)
        size = (frame.width, frame.height)
        resized, self._size = self._size not in (None, size), size
        if frame.gap_s > self.keep_tracks_s or resized:
            why = f"frames now {size[0]}x{size[1]}" if resized else f"{frame.gap_s:.1f} s gap"
            logger.info("%s: starting new tracks", why)
            self.tracker.reset()
        if (
            self._since_detect is not None
            and not frame.gap_before
            and not resized
            and self._since_detect + 1 < self.interval
        ):
            self._since_detect += 1
            update = self.tracker.predict(frame)
            tracked = TrackedFrame(frame, update.persons, update.ended, detected=False, faces=self._faces)
        else:
            self._since_detect = 0
            detections = self.detector.detect(frame.image)
            self._faces = tuple(d.head_box for d in detections if d.head_box is not None)
            if self.zones.ignore:
                detections = [d for d in detections if not self.zones.ignores(d.body_box, frame.width, frame.height)]
            update = self.tracker.update(frame, detections)
            tracked = TrackedFrame(frame, update.persons, update.ended, faces=self._faces)
        if frame.is_last:
            self.detector.close()  # a shared detector's lane: stop waiting for this source's frames
        if self.adaptive:
            self.adaptive.observe(frame, tracked.detected, time.perf_counter() - started)
        return tracked
