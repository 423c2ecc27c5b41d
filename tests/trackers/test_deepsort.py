"""deep-sort adapter: identities persist on real video; ids are per instance.

These run with n_init=1 (a track shows from its first detection), which the
user may ask for; the default confirmation is tested in test_trackers.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from streamer.config import DetectorConfig, SourceConfig
from streamer.detectors import build_detector
from streamer.sources import open_source
from streamer.types import Box, PersonDetection
from tests.conftest import media_file
from trackers import FrameLocalTracker, TrackerConfig
from trackers.deepsort import DeepSortTracker

FIRST = TrackerConfig(kind="deepsort", n_init=1)


@pytest.fixture(scope="module")
def detector():
    return build_detector(DetectorConfig(face="mtcnn", person="hog", allow_download=False))


def _run(tracker, detector, path: Path, frames: int):
    source = open_source(str(path), SourceConfig(max_frames=frames))
    per_frame = []
    for frame in source.frames(threading.Event()):
        per_frame.append(tracker.update(frame, detector.detect(frame.image)).persons)
    return per_frame


def test_one_face_keeps_one_id_through_a_clip(shared_media: Path, detector) -> None:
    tracker = DeepSortTracker(FIRST)
    per_frame = _run(tracker, detector, media_file(shared_media, "face_man_smiling_short.mp4"), 40)
    ids = Counter(p.track_id for persons in per_frame for p in persons)
    assert per_frame[0], "with n_init=1 the person shows from the first frame"
    top_id, count = ids.most_common(1)[0]
    assert top_id == 1 and count >= 38
    ages = [p.age_frames for persons in per_frame for p in persons if p.track_id == 1]
    assert ages[:3] == [0, 1, 2]


def test_pedestrian_ids_persist_across_frames(shared_media: Path, detector) -> None:
    tracker = DeepSortTracker(FIRST)
    per_frame = _run(tracker, detector, media_file(shared_media, "pedestrians_vtest.avi"), 30)
    first = {p.track_id for p in per_frame[0]}
    last = {p.track_id for p in per_frame[-1]}
    assert len(first) >= 10
    assert len(first & last) >= len(first) // 2, "most people seen at frame 0 keep their id at frame 29"
    ids = {p.track_id for persons in per_frame for p in persons}
    assert min(ids) == 1 and max(ids) == len(ids), "ids are dense, from 1"


def test_two_trackers_count_ids_independently(shared_media: Path, detector) -> None:
    """Side by side on the same frames (two streams): each counts from 1, neither disturbs the other."""
    source = open_source(str(media_file(shared_media, "faces_two_people_head_pose.mp4")), SourceConfig(max_frames=10))
    a, b = DeepSortTracker(FIRST), DeepSortTracker(FIRST)
    for frame in source.frames(threading.Event()):
        detections = detector.detect(frame.image)
        ids_a = [p.track_id for p in a.update(frame, detections).persons]
        ids_b = [p.track_id for p in b.update(frame, detections).persons]
        assert ids_a == ids_b
    assert ids_a and min(ids_a) == 1


def test_update_with_no_detections_and_reset(shared_media: Path, detector) -> None:
    tracker = DeepSortTracker(TrackerConfig(kind="deepsort", n_init=1, max_age=2))
    source = open_source(str(media_file(shared_media, "face_woman_head_pose.mp4")), SourceConfig(max_frames=4))
    frames = list(source.frames(threading.Event()))
    assert tracker.update(frames[0], detector.detect(frames[0].image)).persons
    assert tracker.update(frames[1], detector.detect(frames[1].image)).persons  # confirmed now
    missed = tracker.update(frames[2], [])  # called every frame, even with nothing detected
    assert missed.persons == () and missed.ended == (), "a confirmed track outlives one missed frame"
    tracker.reset()
    again = tracker.update(frames[3], detector.detect(frames[3].image))
    assert [p.track_id for p in again.persons] == [2], "ids keep counting after a reset"
    assert again.ended == (1,), "a reset ends every track, reported by the next update"


def test_a_track_ends_once_after_max_age_and_its_id_never_returns(shared_media: Path, detector) -> None:
    source = open_source(str(media_file(shared_media, "face_man_smiling_short.mp4")), SourceConfig(max_frames=12))
    frames = list(source.frames(threading.Event()))
    tracker = DeepSortTracker(TrackerConfig(kind="deepsort", n_init=1, max_age=3))
    updates = [tracker.update(f, detector.detect(f.image) if i < 4 or i >= 9 else []) for i, f in enumerate(frames)]
    assert [u.ended for u in updates[:4]] == [(), (), (), ()] and updates[3].persons[0].track_id == 1
    ended_at = [i for i, u in enumerate(updates) if 1 in u.ended]
    assert ended_at == [7], "deep-sort drops it after max_age=3 unmatched frames (4, 5, 6), and only once"
    assert {p.track_id for u in updates[9:] for p in u.persons} == {2}, "the person comes back as a new track"


def test_frame_local_tracker_numbers_in_detection_order() -> None:
    import numpy as np

    from streamer.types import Frame

    frame = Frame("x", 0, 0.0, 0.0, np.zeros((10, 10, 3), np.uint8))
    dets = [PersonDetection(Box(0, 0, 5, 5), None, 0.9), PersonDetection(Box(5, 5, 9, 9), Box(6, 6, 7, 7), 0.8)]
    tracker = FrameLocalTracker()
    persons = tracker.update(frame, dets).persons
    assert [p.track_id for p in persons] == [1, 2]
    assert persons[1].head_box == Box(6, 6, 7, 7)
    assert tracker.update(frame, dets[:1]).ended == (1, 2), "every frame's persons are new ones"
