"""The shared inference worker: one model call for the persons of several sources' frames, routed back in order."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import cv2

import numpy as np
import pytest

from cocoer_core.api import EmotionResult, FramePersons, Level
from cocoer_core.baseline import FaceExpressionBaseline
from streamer.backends.inference_worker import InferenceWorker, Lane
from streamer.backends.session import SourceSession
from streamer.config import OverlayConfig, SmoothingConfig
from streamer.detectors.faces import MtcnnFaceDetector
from streamer.outputs import Outputs
from streamer.sources import SourceInfo, SourceKind
from streamer.stages.emotion import EmotionStage, ModelCard, region_of
from streamer.stages.pipeline import END, EdgeQueue, ErrorRelay, QueuePolicy
from streamer.stages.smoothing import SmoothingBank
from streamer.types import Box, Frame, Person, TrackedFrame
from streamer.view.overlay import OverlayRenderer
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


def _session(name: str, model: CountingModel) -> SourceSession:
    """A source's session with no outputs: the worker only plans and smooths."""
    info = SourceInfo(name, name, SourceKind.FILE, False, 640, 480, 10.0, None, Fraction(1, 10))
    stage = EmotionStage(ModelCard.of(model), SmoothingBank(SmoothingConfig(), model.label_rule))
    return SourceSession(name, info, stage, OverlayRenderer(OverlayConfig()), Outputs())


def _lane(name: str, model: CountingModel, inbox: int = 8, outbox: int = 8) -> Lane:
    block = QueuePolicy.BLOCK
    return Lane(_session(name, model), EdgeQueue(f"in-{name}", inbox, block), EdgeQueue(f"out-{name}", outbox, block))


def _tracked(image: np.ndarray, persons: tuple[Person, ...], index: int, last: bool = False) -> TrackedFrame:
    return TrackedFrame(Frame("x", index, index / 10.0, 0.0, image, is_last=last), persons)


def test_frames_of_three_sources_share_one_call_and_equal_per_frame_results(photos) -> None:
    model = CountingModel()
    stop = threading.Event()
    lanes = [_lane(f"s{k}", model) for k in range(3)]
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
    stuck = _lane("stuck", model, inbox=4, outbox=1)
    free = _lane("free", model)
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
