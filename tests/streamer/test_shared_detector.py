"""Detection batched across sources: a batch equals per-frame calls; concurrent sources share one call."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2

import pytest

from streamer.config import DetectorConfig
from streamer.detectors import build_detector
from streamer.detectors.shared import SharedDetector
from tests.conftest import media_file


@pytest.fixture(scope="module")
def detector(centernet_dir: Path):
    return build_detector(DetectorConfig(face="mtcnn", person="centernet", allow_download=False))


def _same(a, b) -> None:
    assert len(a) == len(b)
    for p, q in zip(a, b, strict=True):
        assert p.body_source == q.body_source and (p.head_box is None) == (q.head_box is None)
        for x, y in zip(p.body_box.as_tuple(), q.body_box.as_tuple(), strict=True):
            assert abs(x - y) < 0.05
        if p.head_box is not None:
            for x, y in zip(p.head_box.as_tuple(), q.head_box.as_tuple(), strict=True):
                assert abs(x - y) < 0.05


def test_a_batch_of_frames_of_several_sizes_equals_one_call_per_frame(detector, pets09, shared_media: Path) -> None:
    frames, _ = pets09
    photo = cv2.imread(str(media_file(shared_media, "group_five_friends.jpg")))
    images = [frames[0].image, photo, frames[30].image, frames[59].image]
    batched = detector.detect_many(images)
    for image, got in zip(images, batched, strict=True):
        _same(got, detector.detect(image))
    assert sum(p.head_box is not None for p in batched[1]) == 5 and len(batched[0]) >= 3


def test_sources_in_threads_share_batched_calls_and_get_their_own_answers(detector, pets09) -> None:
    frames, _ = pets09
    shared = SharedDetector(detector, wait_ms=200.0)
    lanes = [shared.lane() for _ in range(3)]
    expected = {k: [detector.detect(f.image) for f in frames[k * 10 : k * 10 + 4]] for k in range(3)}
    got: dict[int, list] = {}

    def source(k: int) -> None:
        got[k] = [lanes[k].detect(f.image) for f in frames[k * 10 : k * 10 + 4]]
        lanes[k].close()

    threads = [threading.Thread(target=source, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    shared.close()
    for k in range(3):
        for a, b in zip(got[k], expected[k], strict=True):
            _same(a, b)
    assert sum(shared.batches) == 12 and max(shared.batches) == 3, shared.batches


def test_a_closed_lane_is_not_waited_for_and_errors_reach_every_caller(detector, pets09) -> None:
    frames, _ = pets09
    shared = SharedDetector(detector, wait_ms=10_000.0)
    a, b = shared.lane(), shared.lane()
    b.close()  # that source ended: a's frames go alone, at once
    done = threading.Event()
    threading.Thread(target=lambda: (a.detect(frames[0].image), done.set()), daemon=True).start()
    assert done.wait(30), "waited for a lane that was closed"
    shared.close()

    class Broken:
        def detect_many(self, images):
            raise RuntimeError("CUDA error: out of memory")

        def describe(self) -> str:
            return "broken"

    failing = SharedDetector(Broken(), wait_ms=1.0)  # type: ignore[arg-type]
    lane = failing.lane()
    with pytest.raises(RuntimeError, match="out of memory"):
        lane.detect(frames[0].image)
    failing.close()
