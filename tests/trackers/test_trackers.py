"""Both trackers behind one interface, on real pedestrians (MOT15 PETS09-S2L1 with its ground truth)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from streamer.detectors.centernet import CenterNetPeopleDetector
from streamer.stages.detect_track import DetectTrackStage
from streamer.tools.mot import score
from streamer.types import Box, Frame, PersonDetection
from trackers import TrackerConfig, build_tracker
from trackers.bytetrack import ByteTrackAdapter
from trackers.deepsort import DeepSortTracker

KINDS = ["bytetrack", "deepsort"]


@pytest.fixture(scope="module")
def detections(pets09, centernet_dir: Path) -> list[list[PersonDetection]]:
    """CenterNet's persons on each of the 60 frames, computed once."""
    frames, _ = pets09
    detector = CenterNetPeopleDetector(centernet_dir / "models" / "centernet.json")
    return [[PersonDetection(d.box, None, d.score) for d in detector.detect(frame.image)] for frame in frames]


class Replay:
    """A detector that answers with the cached detections and counts its calls."""

    def __init__(self, found: list[list[PersonDetection]]) -> None:
        self.found = found
        self.calls: list[int] = []
        self.index = 0

    def detect(self, image: np.ndarray) -> list[PersonDetection]:
        self.calls.append(self.index)
        return self.found[self.index]

    def describe(self) -> str:
        return "replay"

    def close(self) -> None:
        pass


def _run(kind: str, frames: list[Frame], found, interval: int = 1, **config):
    replay = Replay(found)
    tracker = build_tracker(TrackerConfig(kind=kind, **config), detection_interval=interval)
    stage = DetectTrackStage(replay, tracker, interval=interval)
    outputs = []
    for frame in frames:
        replay.index = frame.index
        outputs.append(stage.process(frame))
    return outputs, replay


def _tracks(outputs) -> dict[int, list[tuple[int, Box]]]:
    return {o.frame.index: [(p.track_id, p.body_box) for p in o.persons] for o in outputs}


def test_build_tracker_kinds() -> None:
    assert isinstance(build_tracker(TrackerConfig(kind="bytetrack")), ByteTrackAdapter)
    assert isinstance(build_tracker(TrackerConfig(kind="deepsort")), DeepSortTracker)
    assert TrackerConfig().kind == "bytetrack" and TrackerConfig().n_init >= 2
    with pytest.raises(ValueError, match=r"tracker\.kind"):
        TrackerConfig(kind="sort")


def test_roboflow_trackers_and_ours_share_the_name_without_clashing() -> None:
    import importlib

    import trackers

    assert Path(trackers.__file__).parent.name == "trackers" and hasattr(trackers, "build_tracker")
    build_tracker(TrackerConfig(kind="bytetrack"))
    theirs = importlib.import_module("trackers.core.bytetrack.tracker")
    assert "site-packages" in theirs.__file__ or "dist-packages" in theirs.__file__
    assert importlib.import_module("trackers.base").__file__.startswith(str(Path(trackers.__file__).parent))


@pytest.mark.parametrize("kind", KINDS)
def test_pedestrians_keep_their_ids_against_ground_truth(kind: str, pets09, detections) -> None:
    frames, gt = pets09
    outputs, _ = _run(kind, frames, detections)
    s = score(gt, _tracks(outputs), range(len(frames)))
    assert s.recall >= 0.6 and s.precision >= 0.8, s.line()
    assert s.idf1 >= 0.55 and s.id_switches <= 6, s.line()
    ids = sorted({p.track_id for o in outputs for p in o.persons})
    assert ids == list(range(1, len(ids) + 1)), "ids are dense and count from 1"


@pytest.mark.parametrize("kind", KINDS)
def test_a_track_is_shown_only_after_n_init_detections(kind: str, pets09) -> None:
    frames, _ = pets09

    def blip(first: int, count: int) -> list[list[PersonDetection]]:
        box = Box(100, 100, 130, 180)
        return [[PersonDetection(box, None, 0.9)] if first <= i < first + count else [] for i in range(12)]

    outputs, _ = _run(kind, frames[:12], blip(5, 2))
    assert all(not o.persons for o in outputs), "n_init=3: two detections are not yet a person"
    outputs, _ = _run(kind, frames[:12], blip(5, 4))
    assert [o.frame.index for o in outputs if o.persons] == [7, 8], "shown from the 3rd detection on"
    if kind == "deepsort":  # roboflow's ByteTrack confirms at a track's 2nd detection at the earliest
        outputs, _ = _run(kind, frames[:12], blip(5, 1), n_init=1)
        assert [o.frame.index for o in outputs if o.persons] == [5], "n_init=1: from a single detection"


@pytest.mark.parametrize("kind", KINDS)
def test_tracks_end_once_after_max_age_and_reset_ends_the_rest(kind: str, pets09, detections) -> None:
    frames, _ = pets09
    found = [d if i < 20 else [] for i, d in enumerate(detections[:40])]
    outputs, _ = _run(kind, frames[:40], found, max_age=5)
    seen = {p.track_id for o in outputs[:20] for p in o.persons}
    ended = [(o.frame.index, t) for o in outputs for t in o.ended]
    assert sorted(t for _, t in ended) == sorted(seen), "every track ends exactly once"
    assert all(20 <= i <= 27 for i, _ in ended), "after ~max_age frames without detections"
    tracker = build_tracker(TrackerConfig(kind=kind))
    for frame, found_now in zip(frames[:6], detections[:6], strict=True):
        last = tracker.update(frame, found_now)
    alive = {p.track_id for p in last.persons}
    assert alive
    tracker.reset()
    after = tracker.update(frames[6], detections[6])
    assert set(after.ended) == alive and not after.persons, "reset ends every track; new ones need n_init again"


@pytest.mark.parametrize("kind", KINDS)
def test_interval_mode_keeps_ids_across_skipped_frames(kind: str, pets09, detections) -> None:
    frames, gt = pets09
    full, _ = _run(kind, frames, detections)
    # People move 3 frames' worth between detections: deep-sort's IoU gate (IoU >= 0.3 by default) needs
    # loosening for that; ByteTrack's (IoU >= 0.1) already is.
    loose = {"max_iou_distance": 0.9} if kind == "deepsort" else {}
    outputs, replay = _run(kind, frames, detections, interval=3, **loose)
    assert replay.calls == list(range(0, 60, 3)), "the detector runs on every 3rd frame only"
    assert [o.detected for o in outputs] == [i % 3 == 0 for i in range(60)]
    recent: list[set[int]] = []  # ids shown at the last two detected frames
    for prev, now in itertools.pairwise(outputs):
        if prev.detected:
            recent = [*recent[-1:], {p.track_id for p in prev.persons}]
        if not now.detected:
            ids = {p.track_id for p in now.persons}
            assert {p.track_id for p in prev.persons} - set(now.ended) <= ids, "no one vanishes between detections"
            assert ids <= set().union(*recent), "only tracks detected at one of the last two detection runs"
    s_full = score(gt, _tracks(full), range(60))
    s_skip = score(gt, _tracks(outputs), range(60))
    # predicted boxes still land on the people: recall holds up, most boxes match
    assert s_skip.recall >= s_full.recall - 0.15 and s_skip.precision >= 0.75, (s_full.line(), s_skip.line())
    moved = [
        (a.body_box, b.body_box)
        for prev, now in itertools.pairwise(outputs)
        if not now.detected
        for a in prev.persons
        for b in now.persons
        if a.track_id == b.track_id
    ]
    assert moved and any(a != b for a, b in moved), "skipped frames get the tracker's predictions, not copies"


def test_predicted_head_boxes_follow_their_body(pets09) -> None:
    frames, _ = pets09
    walker = [
        [PersonDetection(Box(100 + 3 * i, 100, 130 + 3 * i, 180), Box(108 + 3 * i, 102, 122 + 3 * i, 118), 0.9)]
        for i in range(10)
    ]
    outputs, _ = _run("bytetrack", frames[:10], walker, interval=2, n_init=1)
    for o in outputs:
        for p in o.persons:
            assert p.head_box is not None
            assert p.body_box.x1 <= p.head_box.x1 < p.head_box.x2 <= p.body_box.x2
            assert abs((p.head_box.x1 - p.body_box.x1) - 8) < 1.5


@pytest.mark.parametrize("kind", KINDS)
def test_a_change_of_frame_size_is_detected_and_starts_new_tracks(kind: str, pets09, detections) -> None:
    """A camera back at another resolution without a gap to speak of: the tracks so far are in other pixels."""
    import dataclasses

    import cv2

    frames, _ = pets09
    half = [dataclasses.replace(f, image=cv2.resize(f.image, (f.width // 2, f.height // 2))) for f in frames[20:30]]
    found = detections[:20] + [
        [PersonDetection(Box(*(v / 2 for v in d.body_box.as_tuple())), None, d.score) for d in frame]
        for frame in detections[20:30]
    ]
    outputs, replay = _run(kind, frames[:20] + half, found, interval=3)
    assert 20 in replay.calls, "the first frame of the new size is detected, not predicted from the old boxes"
    before = {p.track_id for out in outputs[:20] for p in out.persons}
    after = {p.track_id for out in outputs[20:] for p in out.persons}
    assert before and after and not before & after
