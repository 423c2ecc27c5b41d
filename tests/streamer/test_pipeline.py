"""Queues, policies and shutdown: no drops for files, bounded latency for live, no hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamer.backends.assembly import LIVE_BURST, queue_sizes
from streamer.config import LIVE_INTERVAL, AppConfig, DetectorConfig, SmoothingConfig, SourceConfig
from streamer.outputs.records import frame_record, record_of
from streamer.sources import open_source
from streamer.stages.emotion import NO_MODEL
from streamer.stages.pipeline import END, EdgeQueue, Pipeline, QueuePolicy
from streamer.stages.smoothing import SmoothingBank
from streamer.types import Box, Frame, FrameResult, Person, TrackedFrame, TrackEvent, TrackEventKind
from tests.conftest import media_file
from tests.support.pipelines import drain


def _slow(delay: float):
    def process(item):
        time.sleep(delay)
        return item

    return process


def test_block_policy_keeps_every_real_frame_in_order(shared_media: Path) -> None:
    source = open_source(str(media_file(shared_media, "face_woman_head_pose.mp4")), SourceConfig())
    pipeline = Pipeline(
        source.frames, [("a", _slow(0.01)), ("b", _slow(0.005))], queue_size=2, policy=QueuePolicy.BLOCK
    )
    pipeline.start()
    got = [frame.index for frame in drain(pipeline)]
    pipeline.close()
    assert got == list(range(23))
    assert pipeline.stats.dropped == 0


def _live_frames(count: int, interval: float):
    def frames(stop: threading.Event) -> Iterator[Frame]:
        image = np.zeros((8, 8, 3), np.uint8)
        for i in range(count):
            if stop.is_set():
                return
            time.sleep(interval)
            yield Frame("live", i, i * interval, time.monotonic(), image)

    return frames


def test_latest_policy_drops_stale_frames_and_counts_them() -> None:
    pipeline = Pipeline(_live_frames(60, 0.002), [("slow", _slow(0.03))], queue_size=2, policy=QueuePolicy.LATEST)
    pipeline.start()
    got = [frame.index for frame in drain(pipeline)]
    pipeline.close()
    assert got == sorted(got), "order is kept even when dropping"
    assert len(got) < 60 and got[-1] == 59, "the newest frame always gets through"
    assert pipeline.stats.dropped == 60 - len(got)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("later_size", "dropped"), [(None, 1), (3, 0)])
def test_live_edges_after_capture_keep_a_burst_of_finished_work(later_size: int | None, dropped: int) -> None:
    """A stage may finish two frames back to back (a detection frame, then the tracker's prediction for the
    next): live, the edges after capture hold them both while the next stage is busy, instead of throwing
    away work already done; a one-item edge (the capture edge's size) drops the first."""
    image = np.zeros((8, 8, 3), np.uint8)
    taken = [threading.Event() for _ in range(3)]
    second_busy = threading.Event()

    def frames(stop: threading.Event) -> Iterator[Frame]:
        for i in range(3):
            if i:
                assert taken[i - 1].wait(5)  # the next frame comes once the first stage took this one: none dropped
                assert second_busy.wait(5)
            yield Frame("live", i, i * 0.04, time.monotonic(), image)

    def first(frame: Frame) -> Frame:
        taken[frame.index].set()
        return frame

    def second(frame: Frame) -> Frame:
        if frame.index == 0:  # busy while the first stage finishes the other two
            second_busy.set()
            between = pipeline._queues[1]
            deadline = time.monotonic() + 5
            while len(between) + between.dropped < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
        return frame

    pipeline = Pipeline(
        frames, [("first", first), ("second", second)], queue_size=1, policy=QueuePolicy.LATEST, later_size=later_size
    )
    pipeline.start()
    got = [frame.index for frame in drain(pipeline)]
    pipeline.close()
    assert pipeline._queues[0].dropped == 0, "nothing was dropped at capture"
    assert pipeline._queues[1].dropped == dropped
    assert got[-1] == 2 and (got == [0, 1, 2] or later_size is None)


def test_live_sources_detect_every_other_frame_and_queue_a_whole_detection_cycle() -> None:
    """`detector.interval: auto`: 2 live (a detection frame, then a predicted one), 1 for files; live, the
    capture edge holds one cycle and the later edges a burst; files keep `queue_size` everywhere."""
    config = AppConfig()
    assert (config.detector.interval_for(live=True), config.detector.interval_for(live=False)) == (LIVE_INTERVAL, 1)
    assert DetectorConfig(interval="3").interval_for(live=True) == 3
    assert queue_sizes(config, QueuePolicy.LATEST, LIVE_INTERVAL) == (LIVE_INTERVAL, LIVE_BURST)
    assert queue_sizes(config, QueuePolicy.LATEST, 1) == (config.live_queue_size, LIVE_BURST)
    assert queue_sizes(config, QueuePolicy.BLOCK, 1) == (config.queue_size, config.queue_size)
    with pytest.raises(ValueError, match=r"detector\.interval must be auto or a whole number"):
        DetectorConfig(interval="often")
    with pytest.raises(ValueError, match=r"detector\.face_search must be one of"):
        DetectorConfig(face_search="everywhere")


def test_latest_queue_drops_the_oldest() -> None:
    q: EdgeQueue[int] = EdgeQueue("q", 2, QueuePolicy.LATEST)
    stop = threading.Event()
    for i in range(5):
        assert q.put(i, stop)
    assert q.dropped == 3
    assert [q.get(stop), q.get(stop)] == [3, 4]


def test_a_dropped_first_frame_after_a_reconnect_passes_its_gap_on() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    q: EdgeQueue[Frame] = EdgeQueue("q", 1, QueuePolicy.LATEST)
    stop = threading.Event()
    q.put(Frame("cam", 7, 1.0, 1.0, image, gap_s=3.5), stop)  # the stream came back after 3.5 s...
    q.put(Frame("cam", 8, 1.1, 1.1, image), stop)  # ...and that frame went stale before anyone took it
    kept = q.get(stop)
    assert q.dropped == 1 and kept.index == 8 and kept.gap_s == 3.5, "the gap is recorded all the same"
    q.put(Frame("cam", 9, 1.2, 1.2, image), stop)
    q.put(Frame("cam", 10, 1.3, 1.3, image), stop)
    assert q.get(stop).gap_s == 0.0, "an ordinary drop marks nothing"


def test_a_dropped_item_passes_on_the_tracks_that_ended_and_the_events_it_recorded() -> None:
    # A track's end is said once, on the frame the tracker ended it: dropped as stale, its smoothing state was
    # never let go (growing for as long as a camera runs) and the JSONL never said it ended.
    image = np.zeros((8, 8, 3), np.uint8)
    stop = threading.Event()
    tracked: EdgeQueue[TrackedFrame] = EdgeQueue("tracked", 1, QueuePolicy.LATEST)
    tracked.put(TrackedFrame(Frame("cam", 7, 1.0, 1.0, image, gap_s=2.0), (), ended=(5, 3)), stop)
    tracked.put(TrackedFrame(Frame("cam", 8, 1.1, 1.1, image), (), ended=(6,)), stop)
    kept = tracked.get(stop)
    assert kept.frame.index == 8 and kept.ended == (3, 5, 6) and kept.frame.gap_s == 2.0
    bank = SmoothingBank(SmoothingConfig(), NO_MODEL.label_rule)
    bank.update(0.9, 6, [Person(5, Box(0, 0, 4, 4), None, 0.9)], [None])
    _, events = bank.update(kept.frame.pts_s, kept.frame.index, kept.persons, [], ended=kept.ended)
    assert events == (TrackEvent(TrackEventKind.END, 5, 6),), "the bank lets the ended track go"

    results: EdgeQueue[FrameResult] = EdgeQueue("results", 1, QueuePolicy.LATEST)
    said = (TrackEvent(TrackEventKind.START, 9), TrackEvent(TrackEventKind.END, 3, 6))
    results.put(FrameResult(Frame("cam", 7, 1.0, 1.0, image, gap_s=2.0), (), (), (), said), stop)
    results.put(
        FrameResult(Frame("cam", 8, 1.1, 1.1, image), (), (), (), (TrackEvent(TrackEventKind.START, 10),)), stop
    )
    last = results.get(stop)
    assert last.frame.index == 8 and last.frame.gap_s == 2.0
    began = TrackEvent(TrackEventKind.START, 9, first_frame=7)  # recorded on frame 8, it says where it began
    assert last.events == (began, said[1], TrackEvent(TrackEventKind.START, 10)), "in the order they happened"
    line = record_of(last, "none").to_json()["events"]
    assert line[0] == {"event": "track_start", "track_id": 9, "first_frame": 7} and "first_frame" not in line[2]
    assert (
        frame_record({"frame": 8, "pts_s": 1.1, "model": "none", "persons": [], "events": line}).events[0]
        == (record_of(last, "none").events[0])
    ), "read back as written"


def test_end_marker_waits_behind_queued_items() -> None:
    q: EdgeQueue[int] = EdgeQueue("q", 2, QueuePolicy.BLOCK)
    stop = threading.Event()
    q.put(1, stop)
    q.put(2, stop)
    poster = threading.Thread(target=q.put_end, args=(stop,))
    poster.start()
    assert q.get(stop) == 1
    assert q.get(stop) == 2
    assert q.get(stop) is END
    poster.join(1)


@pytest.mark.timeout(20)
def test_a_failing_stage_stops_everything_and_is_reraised(shared_media: Path) -> None:
    def boom(frame: Frame) -> Frame:
        if frame.index == 5:
            raise RuntimeError("stage exploded")
        return frame

    source = open_source(str(media_file(shared_media, "face_selfie_expressions.mp4")), SourceConfig())
    # A slow downstream stage keeps the queues full while the middle one dies.
    pipeline = Pipeline(source.frames, [("boom", boom), ("slow", _slow(0.05))], queue_size=2, policy=QueuePolicy.BLOCK)
    pipeline.start()
    got = list(drain(pipeline))
    with pytest.raises(RuntimeError, match="stage exploded"):
        pipeline.close()
    assert len(got) <= 5
    assert pipeline.errors.where == "boom"


@pytest.mark.timeout(20)
def test_a_failing_source_is_reraised() -> None:
    def frames(stop: threading.Event) -> Iterator[Frame]:
        yield Frame("x", 0, 0.0, 0.0, np.zeros((4, 4, 3), np.uint8))
        raise OSError("disk gone")

    pipeline = Pipeline(frames, [("id", lambda f: f)], queue_size=4, policy=QueuePolicy.BLOCK)
    pipeline.start()
    assert len(list(drain(pipeline))) == 1
    with pytest.raises(OSError, match="disk gone"):
        pipeline.close()


@pytest.mark.timeout(20)
def test_stopping_midway_from_the_consumer_does_not_hang() -> None:
    captured: list[int] = []
    frames = _live_frames(10_000, 0.0)

    def counted(stop: threading.Event) -> Iterator[Frame]:
        for frame in frames(stop):
            captured.append(frame.index)
            yield frame

    pipeline = Pipeline(counted, [("a", _slow(0.001))], queue_size=2, policy=QueuePolicy.BLOCK)
    pipeline.start()
    for frame in drain(pipeline):
        if frame.index == 10:
            break
    pipeline.close(timeout_s=5)
    assert len(captured) < 10_000, "the capture thread stopped too"
