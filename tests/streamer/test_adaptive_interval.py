"""`detector.interval: auto` on a live source: detection as often as the machine keeps up with, on real frames
through the real detect+track stage."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streamer.backends.assembly import detect_track_stage_for, queue_sizes
from streamer.config import LIVE_INTERVAL, AppConfig, DetectorConfig, SourceConfig
from streamer.detectors import build_detector
from streamer.sources import SourceKind, open_source
from streamer.stages.detect_track import DetectTrackStage
from streamer.stages.interval import HIGHEST, AdaptiveInterval
from streamer.stages.pipeline import QueuePolicy
from streamer.types import Frame
from tests.conftest import media_file
from trackers import TrackerConfig, build_tracker


class Slowed:
    """The real detector on a machine that much slower: each detection takes `extra_s` longer."""

    def __init__(self, inner, extra_s: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.extra_s = inner, extra_s

    def detect(self, image_bgr: np.ndarray):  # type: ignore[no-untyped-def]
        time.sleep(self.extra_s)
        return self.inner.detect(image_bgr)

    def describe(self) -> str:
        return self.inner.describe()

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def frames(shared_media: Path) -> list[Frame]:
    """60 decoded frames of a 512x480 face clip (30 fps)."""
    source = open_source(str(media_file(shared_media, "face_expressive_liveportrait_d9.mp4")), SourceConfig())
    out = []
    for frame in source.frames(threading.Event()):
        out.append(frame)
        if len(out) == 60:
            break
    source.close()
    return out


def _camera(frames: list[Frame], fps: float, start: int) -> list[Frame]:
    """The frames as a camera of `fps` delivers them: stamped on its clock, numbered on from `start`."""
    return [
        replace(f, index=start + i, pts_s=(start + i) / fps, captured_at=time.monotonic()) for i, f in enumerate(frames)
    ]


def _run(stage: DetectTrackStage, frames: list[Frame]) -> list[bool]:
    """Per frame, whether the detector ran; checks that each detection came the chosen interval after the one
    before (the interval is decided at a detection and holds until the next)."""
    detected, chosen = [], []
    for frame in frames:
        detected.append(stage.process(frame).detected)
        chosen.append(stage.interval)
    at = [i for i, d in enumerate(detected) if d]
    for before, after in itertools.pairwise(at):
        assert after - before == chosen[before], (detected, chosen)
    return detected


def test_detection_follows_what_the_machine_keeps_up_with(frames: list[Frame]) -> None:
    detector = Slowed(build_detector(DetectorConfig(face="mtcnn", person="none")))
    stage = DetectTrackStage(
        detector, build_tracker(TrackerConfig(), "cpu", LIVE_INTERVAL), interval=LIVE_INTERVAL,
        adaptive=AdaptiveInterval(LIVE_INTERVAL),
    )  # fmt: skip
    assert stage.interval == LIVE_INTERVAL and stage.longest_interval == HIGHEST

    # A 2 fps camera (500 ms a frame): a detection fits in every frame's time, so every frame is detected.
    # (At 5 fps this failed once while other work held both cores: MTCNN's wall time went past 150 ms.)
    slow_camera = _run(stage, _camera(frames[:30], 2.0, 0))
    assert stage.interval == 1 and all(slow_camera[-10:]), slow_camera

    # 30 fps on a machine where a detection takes over 100 ms: detections spread out until a cycle fits
    # (one detection, then the tracker's predictions), instead of frames being dropped.
    detector.extra_s = 0.1
    fast_camera = _run(stage, _camera(frames, 30.0, 30))
    assert 3 <= stage.interval <= HIGHEST, (stage.interval, stage.adaptive)
    assert sum(fast_camera[-30:]) <= 10, fast_camera

    # Back on the slow camera with the detector's own speed: detection comes back to every frame, one step
    # at a time (it lowers only when the smaller interval fits with room to spare).
    detector.extra_s = 0.0
    again = _run(stage, _camera(frames[:45], 2.0, 90))
    assert stage.interval == 1 and all(again[-5:]), again


def test_auto_adapts_on_live_sources_only_and_the_capture_edge_holds_its_longest_cycle() -> None:
    config = AppConfig()
    detector = build_detector(DetectorConfig(face="haar", person="none"))
    live = detect_track_stage_for(config, detector, SourceKind.STREAM, SourceConfig(), "cpu", live=True)
    assert live.adaptive is not None and live.interval == LIVE_INTERVAL and live.longest_interval == HIGHEST
    assert queue_sizes(config, QueuePolicy.LATEST, live.longest_interval)[0] == HIGHEST
    # At most 0.2 s of predictions between two detections, whatever the camera's rate (at least 2 frames).
    for fps, longest in ((30.0, 6), (25.0, 5), (60.0, 12), (7.0, 2)):
        stage = detect_track_stage_for(config, detector, SourceKind.CAMERA, SourceConfig(), "cpu", True, fps)
        assert stage.longest_interval == longest
    file = detect_track_stage_for(config, detector, SourceKind.FILE, SourceConfig(), "cpu")
    assert file.adaptive is None and file.interval == 1 == file.longest_interval
    config.detector.interval = 2  # a number is kept as it is, live too
    fixed = detect_track_stage_for(config, detector, SourceKind.STREAM, SourceConfig(), "cpu", live=True)
    assert fixed.adaptive is None and fixed.interval == 2 == fixed.longest_interval
