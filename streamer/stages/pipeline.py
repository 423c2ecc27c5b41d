"""Stage threads connected by bounded queues, with one stop event.

capture -> [q] -> detect+track -> [q] -> (the backend: emotion, outputs)

- Each edge has a policy: `block` (files: never drop, keep order) or
  `latest` (live: when full, drop the oldest item and count it, so the
  pipeline always works on recent frames and latency stays bounded).
  Live, only the capture edge is short: a frame dropped there cost nothing,
  while the later edges hold a burst (LIVE_BURST) so that work already done
  is not thrown away when a stage emits two results at once (a detection
  frame, then the tracker's instant prediction for the next one). What a
  dropped item said once only passes to the item after it (`carry_over`):
  a reconnect gap, the tracks that ended, the track events recorded.
- Every get/put uses a short timeout and re-checks the stop event, so no
  thread can block forever (the supervision `process_video` hang).
- Each stage posts END in `finally`; an exception in any stage is recorded,
  sets the stop event, and is re-raised by the main thread after the joins.
  A source error (a file that breaks midway, a camera that is gone for good)
  lets the frames already captured drain through first.
- Stage logic is a plain `process(item) -> item` callable, testable without
  threads.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from streamer.types import Frame, FrameResult, TrackedFrame, TrackEvent, TrackEventKind

logger = logging.getLogger(__name__)

POLL_S = 0.05

T = TypeVar("T")


class QueuePolicy(enum.Enum):
    """What a full queue does: `block` waits (files: never drop, keep order); `latest` drops the oldest (live)."""

    BLOCK = "block"
    LATEST = "latest"


class EndOfStream:
    """The end-of-stream sentinel (one instance, compared by identity)."""

    def __repr__(self) -> str:
        return "END"


END = EndOfStream()


def _frame_of(item: Any) -> Frame | None:
    if isinstance(item, Frame):
        return item
    if isinstance(item, (TrackedFrame, FrameResult)):
        return item.frame
    return None


def carry_over(dropped: Any, item: Any) -> Any:
    """`item`, carrying what the stale item dropped before it said only once: a live source's reconnect gap (the
    first frame after it came back says so), the tracks that ended with it (their smoothing state is let go and
    their end recorded there alone) and the track starts and ends it recorded (the JSONL's events)."""
    old, new = _frame_of(dropped), _frame_of(item)
    if old is None or new is None:
        return item
    if old.gap_s > new.gap_s:
        new = replace(new, gap_s=old.gap_s)
    if isinstance(item, Frame):
        return new
    changes: dict[str, Any] = {"frame": new} if new is not item.frame else {}
    if isinstance(item, TrackedFrame) and isinstance(dropped, TrackedFrame) and dropped.ended:
        changes["ended"] = tuple(sorted({*dropped.ended, *item.ended}))
    if isinstance(item, FrameResult) and isinstance(dropped, FrameResult) and dropped.events:
        changes["events"] = tuple(_began_in(e, old.index) for e in dropped.events) + item.events
    return replace(item, **changes) if changes else item


def _began_in(event: TrackEvent, index: int) -> TrackEvent:
    """A start moved to a later frame keeps the frame it began in (an end already says its last frame)."""
    if event.kind is TrackEventKind.START and event.first_frame is None:
        return replace(event, first_frame=index)
    return event


class EdgeQueue(Generic[T]):
    """A bounded queue between two stages with an explicit overflow policy."""

    def __init__(self, name: str, maxsize: int, policy: QueuePolicy) -> None:
        self.name = name
        self.policy = policy
        self.maxsize = maxsize
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Items waiting now (an end marker included)."""
        return self._queue.qsize()

    def put(self, item: T, stop: threading.Event) -> bool:
        """Enqueue; False if the pipeline stopped before there was room."""
        if self.policy is QueuePolicy.LATEST:
            with self._lock:
                while True:
                    try:
                        self._queue.put_nowait(item)
                        return True
                    except queue.Full:
                        try:
                            old = self._queue.get_nowait()
                        except queue.Empty:
                            continue
                        if old is END:  # never drop the end marker
                            self._queue.put_nowait(old)
                            return False
                        self.dropped += 1
                        item = carry_over(old, item)
        while not stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def put_end(self, stop: threading.Event) -> None:
        """Post END after everything already queued; once stopping, make room by dropping."""
        while not stop.is_set():
            try:
                self._queue.put(END, timeout=POLL_S)
                return
            except queue.Full:
                continue
        while True:
            try:
                self._queue.put_nowait(END)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()

    def get(self, stop: threading.Event) -> T | EndOfStream | None:
        """The next item, END, or None if the pipeline stopped while waiting."""
        while not stop.is_set():
            try:
                return self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return None

    def get_nowait(self) -> T | EndOfStream | None:
        """The next item or END if one is waiting, else None (for a consumer that polls many queues)."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def has_room(self) -> bool:
        """Whether a `block` put would go through now (a `latest` put always does)."""
        return self.policy is QueuePolicy.LATEST or not self._queue.full()

    def fill(self) -> float:
        return self._queue.qsize() / self.maxsize


class ErrorRelay:
    """Keeps the first exception raised in any thread, and stops the pipeline."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self.where: str | None = None

    def record(self, where: str, error: BaseException, stop: bool = True) -> None:
        """Keep the error; stop everything unless the stages should drain first."""
        with self._lock:
            if self.error is None:
                self.error = error
                self.where = where
        if stop:
            self._stop.set()


@dataclass
class StageTiming:
    """Busy time of one stage, for the benchmark and the progress bar."""

    items: int = 0
    busy_s: float = 0.0

    @property
    def mean_ms(self) -> float:
        return 1000.0 * self.busy_s / self.items if self.items else 0.0


class PipelineThread(threading.Thread):
    """Base of every thread a run starts (stages, capture, the inference worker, outputs), so that the
    CLI can tell at exit whether one is stuck in native code."""


class StageThread(PipelineThread):
    """Runs `process` on every item of `inbox` and forwards results to `outbox`."""

    def __init__(
        self,
        name: str,
        process: Callable[[Any], Any],
        inbox: EdgeQueue[Any],
        outbox: EdgeQueue[Any],
        stop: threading.Event,
        errors: ErrorRelay,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.process = process
        self.inbox = inbox
        self.outbox = outbox
        self.stop_event = stop
        self.errors = errors
        self.timing = StageTiming()

    def run(self) -> None:
        try:
            while True:
                item = self.inbox.get(self.stop_event)
                if item is None or item is END:
                    return
                started = time.perf_counter()
                result = self.process(item)
                self.timing.busy_s += time.perf_counter() - started
                self.timing.items += 1
                if result is not None and not self.outbox.put(result, self.stop_event):
                    return
        except BaseException as exc:
            self.errors.record(self.name, exc)
        finally:
            self.outbox.put_end(self.stop_event)


class CaptureThread(PipelineThread):
    """Pulls frames from a source into the first queue."""

    def __init__(
        self,
        frames: Callable[[threading.Event], Iterator[Frame]],
        outbox: EdgeQueue[Frame],
        stop: threading.Event,
        errors: ErrorRelay,
    ) -> None:
        super().__init__(name="capture", daemon=True)
        self.frames = frames
        self.outbox = outbox
        self.stop_event = stop
        self.errors = errors
        self.count = 0

    def run(self) -> None:
        try:
            for frame in self.frames(self.stop_event):
                self.count += 1
                if not self.outbox.put(frame, self.stop_event) and self.stop_event.is_set():
                    return
        except BaseException as exc:
            # The frames already captured are still processed and written: the
            # error surfaces after END has drained through every stage.
            self.errors.record("capture", exc, stop=False)
        finally:
            self.outbox.put_end(self.stop_event)


@dataclass
class PipelineStats:
    """Counters the main thread can read while the pipeline runs."""

    queues: list[EdgeQueue[Any]] = field(default_factory=list)
    stages: dict[str, StageTiming] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(q.dropped for q in self.queues)

    def fills(self) -> dict[str, float]:
        return {q.name: q.fill() for q in self.queues}


class Pipeline:
    """A source and a chain of stages, each in its own thread.

    `queue_size` bounds the capture edge, `later_size` (default: the same)
    the ones after it. The last stage's outputs wait in `outbox` for the backend. Always call
    `close()` (it joins the threads and re-raises a stage's error).
    """

    def __init__(
        self,
        frames: Callable[[threading.Event], Iterator[Frame]],
        stages: list[tuple[str, Callable[[Any], Any]]],
        queue_size: int,
        policy: QueuePolicy,
        later_size: int | None = None,
    ) -> None:
        self.stop = threading.Event()
        self.errors = ErrorRelay(self.stop)
        names = ["capture"] + [name for name, _ in stages]
        self._queues: list[EdgeQueue[Any]] = [
            EdgeQueue(
                f"{names[i]}->{names[i + 1] if i + 1 < len(names) else 'main'}",
                queue_size if i == 0 or later_size is None else later_size,
                policy,
            )
            for i in range(len(names))
        ]
        self._capture = CaptureThread(frames, self._queues[0], self.stop, self.errors)
        self._stages = [
            StageThread(name, process, self._queues[i], self._queues[i + 1], self.stop, self.errors)
            for i, (name, process) in enumerate(stages)
        ]
        self.stats = PipelineStats(self._queues, {s.name: s.timing for s in self._stages})
        self._started = False

    @property
    def outbox(self) -> EdgeQueue[Any]:
        """The last stage's output queue (read by the backend)."""
        return self._queues[-1]

    def start(self) -> None:
        self._capture.start()
        for stage in self._stages:
            stage.start()
        self._started = True

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop every thread, wait for them, and re-raise the first stage error."""
        self.stop.set()
        if self._started:
            deadline = time.monotonic() + timeout_s
            for thread in [self._capture, *self._stages]:
                thread.join(max(deadline - time.monotonic(), 0.1))
                if thread.is_alive():
                    logger.warning("thread %s did not stop in time", thread.name)
        if self.stats.dropped:
            logger.debug("dropped as stale: %s", ", ".join(f"{q.name} {q.dropped}" for q in self._queues if q.dropped))
        if self.errors.error is not None:
            raise self.errors.error


def running_stage_threads() -> list[str]:
    """Pipeline threads of this process still alive (after `close()`: stuck in a native call)."""
    return [t.name for t in threading.enumerate() if isinstance(t, PipelineThread) and t.is_alive()]
