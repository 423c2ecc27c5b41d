"""Label panels never cover one another or a face: two people side by side at 480x270, and crowds."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest

from cocoer_core.api import COMPETING_LEVELS, EmotionResult, Level
from cocoer_core.labels import EMOTIC_LABELS
from streamer.config import DetectorConfig, OverlayConfig, SourceConfig
from streamer.detectors import build_detector
from streamer.sources import open_source
from streamer.types import FrameResult
from streamer.view.overlay import OverlayRenderer
from streamer.view.panel_layout import Rect, place
from tests.conftest import media_file
from trackers import TrackerConfig, build_tracker


def _cocoer_shaped(seed: int) -> EmotionResult:
    """A result with CocoER's labels, levels and exclusion chips: the biggest panel the overlay draws."""
    rng = np.random.default_rng(seed)
    scores = {level: rng.random(26).astype(np.float32) for level in (Level.FINAL, Level.VI, *COMPETING_LEVELS)}
    return EmotionResult(
        "cocoer",
        EMOTIC_LABELS,
        scores,
        pred=("Engagement", "Happiness"),
        level_pred={level: ("Engagement",) for level in scores if level is not Level.FINAL},
        exclusion=(Level.BODY, Level.CONTEXT, Level.HEAD),
    )


def _face_rects(result: FrameResult) -> list[Rect]:
    out = []
    for p in result.persons:
        if p.head_box is not None:
            x1, y1, x2, y2 = p.head_box.rounded()
            out.append(Rect(x1, y1, x2 - x1, y2 - y1))
    return out


@pytest.mark.parametrize("scale", [1.0, 0.5, 3.0], ids=["480x270", "240x135", "1440x810"])
def test_two_people_side_by_side_get_panels_that_never_overlap(shared_media: Path, scale: float) -> None:
    import cv2

    source = open_source(str(media_file(shared_media, "faces_two_people_head_pose.mp4")), SourceConfig(max_frames=12))
    detector = build_detector(DetectorConfig(face="mtcnn", person="none", allow_download=False))
    tracker = build_tracker(TrackerConfig())
    renderer = OverlayRenderer(OverlayConfig(), "CocoER")
    checked = 0
    for frame in source.frames(threading.Event()):
        from dataclasses import replace

        if scale != 1.0:
            image = cv2.resize(frame.image, None, fx=scale, fy=scale)
            frame = replace(frame, image=image)
        persons = tracker.update(frame, detector.detect(frame.image)).persons
        results = tuple(_cocoer_shaped(p.track_id) for p in persons)
        result = FrameResult(frame, persons, results, results)
        renderer.annotate(frame.image.copy(), result)
        panels = [rect for _, rect in renderer.last_panels]
        faces = _face_rects(result)
        assert all(not a.overlaps(b) for a, b in itertools.combinations(panels, 2)), "panels overlap each other"
        assert all(not p.overlaps(f) for p in panels for f in faces), "a panel covers a face"
        assert all(p.inside(frame.width, frame.height) for p in panels)
        checked += len(persons) == 2 and len(panels) == 2
    assert checked >= 8, "most frames have both people, each with a panel"


def test_a_crowd_stacks_panels_and_drops_only_what_fits_nowhere() -> None:
    faces = [Rect(40 + 60 * k, 100, 30, 30) for k in range(6)]
    spots = place([(80, 40)] * 6, faces, faces, (480, 270))
    placed = [s for s in spots if s is not None]
    assert len(placed) >= 5
    assert all(not a.overlaps(b) for a, b in itertools.combinations(placed, 2))
    assert all(not s.overlaps(f) for s in placed for f in faces)
