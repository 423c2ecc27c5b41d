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


@pytest.fixture(scope="module")
def group_detector(centernet_dir: Path):
    return build_detector(DetectorConfig(face="mtcnn", person="centernet", allow_download=False))


@pytest.mark.parametrize("detail", ["auto", "full"])
@pytest.mark.parametrize("height", [480, 1080], ids=["480p", "1080p"])
@pytest.mark.parametrize("photo", ["group_five_friends.jpg", "group_12_angry_men.jpg", "group_friends_poker.jpg"])
def test_group_photos_panels_and_tags_cover_no_face_and_not_the_legend(
    shared_media: Path, group_detector, photo: str, height: int, detail: str
) -> None:
    """Real detections on real group photos, CocoER-sized results: what belongs to one person stays off every
    face and off the legend; a panel away from its face gets a leader line in the person's colour."""
    import cv2

    from streamer.types import Frame, Person
    from streamer.view.palette import track_bgr

    photo_bgr = cv2.imread(str(media_file(shared_media, photo)))
    image = cv2.resize(photo_bgr, (round(photo_bgr.shape[1] * height / photo_bgr.shape[0]), height))
    found = group_detector.detect(image)
    persons = tuple(Person(k + 1, d.body_box, d.head_box, d.score) for k, d in enumerate(found))
    # Every second person has an emotion: the others get an id tag at their box instead.
    results = tuple(_cocoer_shaped(k) if k % 2 == 0 else None for k in range(len(persons)))
    result = FrameResult(Frame("t", 0, 0.0, 0.0, image), persons, results, results)
    renderer = OverlayRenderer(OverlayConfig(detail=detail), "CocoER")
    out = renderer.annotate(image.copy(), result)
    faces = _face_rects(result)
    panels = [rect for _, rect in renderer.last_panels]
    tags = [rect for _, rect in renderer.last_tags]
    legend = renderer.last_legend
    assert legend is not None and len(faces) >= 4
    assert len(panels) >= 0.6 * sum(r is not None for r in results), "most persons with an emotion get a panel"
    assert tags, "persons without a panel are tagged"
    for a, b in itertools.combinations(panels + tags, 2):
        assert not a.overlaps(b)
    for rect in panels + tags:
        assert not any(rect.overlaps(face) for face in faces), "a panel or tag covers a face"
        assert not rect.overlaps(legend), "a panel or tag covers the legend"
        assert rect.inside(image.shape[1], image.shape[0])
    anchors = {p.track_id: _face_rects(FrameResult(result.frame, (p,), (None,), (None,))) for p in persons}
    for track_id, rect in renderer.last_panels:
        color = np.array(track_bgr(track_id))
        border = out[rect.y, rect.x + 1 : rect.x + rect.w - 1]
        assert (np.abs(border.astype(int) - color) <= 2).all(axis=1).mean() > 0.9
        (face,) = anchors[track_id]
        dx = max(rect.x - (face.x + face.w), face.x - (rect.x + rect.w), 0)
        dy = max(rect.y - (face.y + face.h), face.y - (rect.y + rect.h), 0)
        if max(dx, dy) > 12:  # placed away from its face: a line of its colour crosses the space between
            fx = min(max(rect.x + rect.w // 2, face.x), face.x + face.w)
            fy = min(max(rect.y + rect.h // 2, face.y), face.y + face.h)
            px, py = min(max(fx, rect.x), rect.x + rect.w), min(max(fy, rect.y), rect.y + rect.h)
            # Sample the segment where no panel lies over it: the line shows there, in the person's colour.
            visible = [
                (round(fx + t * (px - fx)), round(fy + t * (py - fy)))
                for t in np.linspace(0.05, 0.95, 19)
                if not any(
                    other.x - 3 <= fx + t * (px - fx) <= other.x + other.w + 3
                    and other.y - 3 <= fy + t * (py - fy) <= other.y + other.h + 3
                    for other in panels
                )
            ]
            hits = [
                (np.abs(out[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].astype(int) - color) <= 40).all(axis=2).any()
                for x, y in visible
            ]
            assert not visible or any(hits), f"no leader line for #{track_id}"
