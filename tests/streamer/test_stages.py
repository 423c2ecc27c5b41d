"""The emotion worker stage: inference stride, new tracks at once, min face size, batching."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2

import numpy as np
import pytest

from cocoer_core.api import EmotionResult, FramePersons, Level, PersonRegion
from cocoer_core.baseline import FaceExpressionBaseline
from cocoer_core.postprocess import LabelRule
from streamer.config import SmoothingConfig
from streamer.detectors.faces import MtcnnFaceDetector
from streamer.stages.emotion import NO_MODEL, EmotionStage, ModelCard, infer_batched
from streamer.stages.smoothing import SmoothingBank
from streamer.types import Box, Frame, FrameResult, Person, TrackedFrame, TrackEventKind
from tests.conftest import media_file


class CountingBaseline:
    """The real baseline model, recording how many persons each call gets."""

    def __init__(self) -> None:
        self.inner = FaceExpressionBaseline()
        self.name, self.description = self.inner.name, self.inner.description
        self.labels, self.levels, self.label_rule = self.inner.labels, self.inner.levels, self.inner.label_rule
        self.calls: list[int] = []

    def predict(self, image: np.ndarray, persons: Sequence[PersonRegion]) -> list[EmotionResult | None]:
        return self.predict_frames([FramePersons(image, tuple(persons))])[0]

    def predict_frames(self, frames: Sequence[FramePersons]) -> list[list[EmotionResult | None]]:
        self.calls.append(sum(len(f.persons) for f in frames))
        return self.inner.predict_frames(frames)


@pytest.fixture(scope="module")
def crowd(shared_media: Path):
    image = cv2.imread(str(media_file(shared_media, "group_five_friends.jpg")))
    faces = MtcnnFaceDetector().detect(image)
    persons = tuple(
        Person(i + 1, Box(f.box.x1 - 20, f.box.y1 - 10, f.box.x2 + 20, f.box.y2 + 200), f.box, 0.9)
        for i, f in enumerate(faces)
    )
    return image, persons


def _frame(image: np.ndarray, index: int, fps: float = 10.0) -> Frame:
    return Frame("t", index, index / fps, 0.0, image)


def emotion_step(
    stage: EmotionStage, model: CountingBaseline, tracked: TrackedFrame, batch_size: int = 16
) -> FrameResult:
    """What the inference worker does with one frame: plan, the batched model calls, smoothing."""
    due = stage.plan(tracked)
    inferred = infer_batched(model, [stage.request(tracked, due)], batch_size)[0] if due else []
    return stage.finish(tracked, due, inferred)


def test_one_batched_call_per_frame_for_all_persons(crowd) -> None:
    image, persons = crowd
    model = CountingBaseline()
    stage = EmotionStage(ModelCard.of(model), SmoothingBank(SmoothingConfig(), model.label_rule))
    result = emotion_step(stage, model, TrackedFrame(_frame(image, 0), persons))
    assert model.calls == [5]
    assert all(r is not None for r in result.raw) and all(s is not None for s in result.smoothed)
    assert [e.kind for e in result.events] == [TrackEventKind.START] * 5


def test_stride_infers_every_kth_frame_and_new_tracks_at_once(crowd) -> None:
    image, persons = crowd
    model = CountingBaseline()
    stage = EmotionStage(ModelCard.of(model), SmoothingBank(SmoothingConfig(), model.label_rule), stride=3)
    raws = []
    for index in range(7):
        present = persons[:3] if index < 4 else persons  # two people appear at frame 4
        raws.append(emotion_step(stage, model, TrackedFrame(_frame(image, index), present)))
    assert model.calls == [3, 3, 2, 3]  # frames 0, 3, 4 (the newcomers), 6
    assert [sum(r is not None for r in frame.raw) for frame in raws] == [3, 0, 0, 3, 2, 0, 3]
    # Between inferences the smoothed result is carried for every person.
    assert all(s is not None for frame in raws for s in frame.smoothed)


def test_batches_are_split_at_batch_size(crowd) -> None:
    image, persons = crowd
    model = CountingBaseline()
    stage = EmotionStage(ModelCard.of(model), SmoothingBank(SmoothingConfig(), model.label_rule))
    emotion_step(stage, model, TrackedFrame(_frame(image, 0), persons), batch_size=2)
    assert model.calls == [2, 2, 1]


def test_faces_below_min_size_are_not_inferred(crowd) -> None:
    image, persons = crowd
    model = CountingBaseline()
    heights = sorted(p.head_box.height for p in persons)  # type: ignore[union-attr]
    stage = EmotionStage(
        ModelCard.of(model), SmoothingBank(SmoothingConfig(), model.label_rule), min_face_px=int(heights[2]) + 1
    )
    result = emotion_step(stage, model, TrackedFrame(_frame(image, 0), persons))
    assert model.calls == [2]
    assert sum(r is not None for r in result.raw) == 2
    for person, raw in zip(persons, result.raw, strict=True):
        assert (raw is None) == (person.head_box.height < heights[2] + 1)  # type: ignore[union-attr]
    assert [why for why in result.no_emotion if why] == ["face_too_small"] * 3, "the record says why"
    faceless = TrackedFrame(_frame(image, 1), (Person(99, persons[0].body_box, None, 0.9),))
    assert emotion_step(stage, model, faceless).no_emotion == ("no_face",)
    unmodelled = EmotionStage(NO_MODEL, SmoothingBank(SmoothingConfig(), NO_MODEL.label_rule))
    assert unmodelled.finish(TrackedFrame(_frame(image, 0), persons), (), []).no_emotion == ("no_model",) * 5


def test_smoothed_scores_lag_the_raw_ones(crowd) -> None:
    image, persons = crowd
    model = CountingBaseline()
    stage = EmotionStage(ModelCard.of(model), SmoothingBank(SmoothingConfig(half_life_s=1.0), model.label_rule))
    first = emotion_step(stage, model, TrackedFrame(_frame(image, 0), persons[:1]))
    flipped = np.ascontiguousarray(cv2.flip(image, 0))  # an upside-down face: a very different input
    second = emotion_step(stage, model, TrackedFrame(_frame(flipped, 1), persons[:1]))
    raw0, raw1, smooth1 = first.raw[0], second.raw[0], second.smoothed[0]
    weight = 1 - 0.5 ** (0.1 / 1.0)
    expected = raw0.scores[Level.FINAL] + weight * (raw1.scores[Level.FINAL] - raw0.scores[Level.FINAL])
    np.testing.assert_allclose(smooth1.scores[Level.FINAL], expected, atol=1e-6)


def test_one_person_one_track_through_a_detection_gap(shared_media: Path) -> None:
    """The detector misses a person for over a second (35 frames) but less than the tracker's max_age:
    one track, one start, one end - never an end and a restart under the same id (the old 1 s keep_s did that)."""
    from streamer.config import DetectorConfig, SourceConfig
    from streamer.detectors import build_detector
    from streamer.sources import open_source
    from streamer.stages.detect_track import DetectTrackStage
    from trackers import TrackerConfig
    from trackers.deepsort import DeepSortTracker

    detector = build_detector(DetectorConfig(face="mtcnn", person="none", allow_download=False))

    class Blinking:
        calls = 0

        def detect(self, image):
            self.calls += 1
            return [] if 10 <= self.calls - 1 < 45 else detector.detect(image)

        def describe(self) -> str:
            return "blinking mtcnn"

        def close(self) -> None:
            pass

    detect = DetectTrackStage(Blinking(), DeepSortTracker(TrackerConfig(kind="deepsort", n_init=1, max_age=40)))
    emotion = EmotionStage(NO_MODEL, SmoothingBank(SmoothingConfig(), LabelRule(None, None)))
    source = open_source(
        str(media_file(shared_media, "face_man_smiling_short.mp4")), SourceConfig()
    )  # 72 frames, 30 fps
    events = []
    ids = set()
    for frame in source.frames(threading.Event()):
        tracked = detect.process(frame)
        result = emotion.finish(tracked, emotion.plan(tracked), [])
        events += [(frame.index, e.kind.value, e.track_id) for e in result.events]
        ids |= {p.track_id for p in result.persons}
    assert ids == {1}
    assert events == [(0, "start", 1), (71, "end", 1)]


def test_stride_counts_frames_the_worker_processed_not_source_indices(crowd) -> None:
    """A live source drops frames: indices 0, 7, 14, ... still mean one inference per 3 processed frames."""
    image, persons = crowd
    model = CountingBaseline()
    stage = EmotionStage(ModelCard.of(model), SmoothingBank(SmoothingConfig(), model.label_rule), stride=3)
    for k in range(7):
        emotion_step(stage, model, TrackedFrame(_frame(image, 7 * k), persons[:2]))
    assert model.calls == [2, 2, 2]  # processed frames 0, 3 and 6
