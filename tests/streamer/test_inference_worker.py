"""The shared inference worker: one model call for the persons of several sources' frames, routed back in order."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2

import numpy as np
import pytest

from cocoer_core.api import EmotionResult, FramePersons, Level
from cocoer_core.baseline import FaceExpressionBaseline
from streamer.config import SmoothingConfig
from streamer.detectors.faces import MtcnnFaceDetector
from streamer.inference_worker import InferenceWorker, Lane
from streamer.pipeline import END, EdgeQueue, ErrorRelay
from streamer.smoothing import SmoothingBank
from streamer.stages import EmotionStage, region_of
from streamer.types import Box, Frame, Person, TrackedFrame
from tests.conftest import media_file


class CountingModel:
    """The real baseline, recording the persons and frames of each call."""

    def __init__(self) -> None:
        self.inner = FaceExpressionBaseline()
        self.name, self.description = self.inner.name, self.inner.description
        self.labels, self.levels, self.label_rule = self.inner.labels, self.inner.levels, self.inner.label_rule
        self.calls: list[tuple[int, int]] = []

    def predict(self, image, persons):  # type: ignore[no-untyped-def]
        return self.predict_frames([FramePersons(image, tuple(persons))])[0]

    def predict_frames(self, frames: Sequence[FramePersons]) -> list[list[EmotionResult | None]]:
        self.calls.append((len(frames), sum(len(f.persons) for f in frames)))
        return self.inner.predict_frames(frames)


@pytest.fixture(scope="module")
def photos(shared_media: Path) -> list[tuple[np.ndarray, tuple[Person, ...]]]:
    detector = MtcnnFaceDetector()
    out = []
    for name in ("group_five_friends.jpg", "group_friends_poker.jpg", "expr_happy_man.png"):
        image = cv2.imread(str(media_file(shared_media, name)))
        persons = tuple(
            Person(i + 1, Box(f.box.x1, f.box.y1, f.box.x2, min(f.box.y2 + 100, image.shape[0])), f.box, 0.9)
            for i, f in enumerate(detector.detect(image))
        )
        out.append((image, persons))
    return out


def _tracked(image: np.ndarray, persons: tuple[Person, ...], index: int, last: bool = False) -> TrackedFrame:
    return TrackedFrame(Frame("x", index, index / 10.0, 0.0, image, is_last=last), persons)


def test_frames_of_three_sources_share_one_call_and_equal_per_frame_results(photos) -> None:
    model = CountingModel()
    stop = threading.Event()
    lanes = [
        Lane(
            f"s{k}",
            EdgeQueue(f"in{k}", 8, "block"),
            EdgeQueue(f"out{k}", 8, "block"),
            EmotionStage(model, SmoothingBank(SmoothingConfig(), model.label_rule), batch_size=64),
        )
        for k in range(3)
    ]
    for k, lane in enumerate(lanes):  # every frame is queued before the worker starts: one batch each round
        image, persons = photos[k]
        for index in range(2):
            lane.inbox.put(_tracked(image, persons, index, last=index == 1), stop)
        lane.inbox.put_end(stop)
    worker = InferenceWorker(model, lanes, batch_size=64, batch_wait_s=0.05, stop=stop, errors=ErrorRelay(stop))
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and worker.errors.error is None
    assert model.calls[0] == (3, sum(len(p) for _, p in photos)), "one call for the persons of all three sources"
    assert len(model.calls) == 2
    for k, lane in enumerate(lanes):
        results = []
        while (item := lane.outbox.get_nowait()) is not END:
            results.append(item)
        assert [r.frame.index for r in results] == [0, 1], "each source's frames come back in order, to it"
        image, persons = photos[k]
        alone = FaceExpressionBaseline().predict(image, [region_of(p) for p in persons])
        for got, want in zip(results[0].raw, alone, strict=True):
            np.testing.assert_allclose(got.scores[Level.FINAL], want.scores[Level.FINAL], atol=1e-5)


def test_a_lane_whose_output_is_full_does_not_hold_the_others_back(photos) -> None:
    model = CountingModel()
    stop = threading.Event()
    stuck = Lane(
        "stuck",
        EdgeQueue("in-a", 4, "block"),
        EdgeQueue("out-a", 1, "block"),
        EmotionStage(model, SmoothingBank(SmoothingConfig(), model.label_rule)),
    )
    free = Lane(
        "free",
        EdgeQueue("in-b", 8, "block"),
        EdgeQueue("out-b", 8, "block"),
        EmotionStage(model, SmoothingBank(SmoothingConfig(), model.label_rule)),
    )
    image, persons = photos[2]
    for index in range(3):
        stuck.inbox.put(_tracked(image, persons, index), stop)
    for index in range(5):
        free.inbox.put(_tracked(image, persons, index), stop)
    free.inbox.put_end(stop)
    worker = InferenceWorker(model, [stuck, free], batch_size=8, batch_wait_s=0.0, stop=stop, errors=ErrorRelay(stop))
    worker.start()
    try:
        got = []
        while len(got) < 5:
            item = free.outbox.get(stop)
            if item is not END:
                got.append(item.frame.index)
        assert got == [0, 1, 2, 3, 4], "the free lane finished while the stuck one waits for its writer"
        assert stuck.outbox.fill() == 1.0 and stuck.inbox.fill() > 0
    finally:
        stop.set()
        worker.join(timeout=10)
