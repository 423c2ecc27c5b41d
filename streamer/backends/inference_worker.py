"""The local backend's inference worker: one thread batching the persons of every source into one model call.

Each source's detect+track thread feeds its own queue (its `Lane`); the
worker builds batches with the shared `BatchPlanner` (at most one frame per
lane, up to `emotion.batch_size` persons, waiting at most
`emotion.batch_wait_ms` for other lanes), runs the model, folds each frame's
answers into its session's smoothing and hands the result to the lane's
output queue.

Fair and safe: a lane whose output queue is full (`block` policy: a file
whose writer lags) is skipped, not waited on, so it holds back only itself;
live lanes keep their newest-frame policy on both of their queues; a lane
whose source failed is drained and dropped without disturbing the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cocoer_core.api import EmotionModel
from streamer.backends.session import SourceSession
from streamer.stages.batching import BatchPlanner, Pending
from streamer.stages.emotion import EmotionStage, infer_batched
from streamer.stages.pipeline import END, POLL_S, EdgeQueue, EndOfStream, ErrorRelay, PipelineThread, StageTiming
from streamer.types import FrameResult, TrackedFrame

logger = logging.getLogger(__name__)

#: How long the worker sleeps when no lane has a frame (short: it bounds added latency).
IDLE_S = 0.002


@dataclass(eq=False)
class Lane:
    """One source's connection to the worker: its tracked frames in, its smoothed results out."""

    session: SourceSession
    inbox: EdgeQueue[TrackedFrame]
    outbox: EdgeQueue[FrameResult]
    done: bool = False
    abandoned: threading.Event = field(default_factory=threading.Event)


class InferenceWorker(PipelineThread):
    """The shared emotion worker thread (see the module docstring)."""

    def __init__(
        self,
        model: EmotionModel | None,
        lanes: Sequence[Lane],
        batch_size: int,
        batch_wait_s: float,
        stop: threading.Event,
        errors: ErrorRelay,
    ) -> None:
        super().__init__(name="inference", daemon=True)
        self.model = model
        self.lanes = list(lanes)
        self.batch_size = batch_size
        self.planner: BatchPlanner[Lane] = BatchPlanner(batch_size, batch_wait_s)
        self.stop_event = stop
        self.errors = errors
        self.timing = StageTiming()
        self.batches = 0
        self.persons_inferred = 0

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.planner.fill(self.lanes, self._take)
                running = [lane for lane in self.lanes if not lane.done]
                if not running and not self.planner.pending:
                    return
                can_join = sum(1 for lane in running if not self.planner.holds(lane))
                if self.planner.ready(can_join):
                    self._run(self.planner.take())
                else:
                    time.sleep(IDLE_S if self.planner.pending else min(IDLE_S * 5, POLL_S))
        except BaseException as exc:
            self.errors.record("inference", exc)
        finally:
            for lane in self.lanes:
                if not lane.done:
                    lane.outbox.put_end(self.stop_event)

    def _take(self, lane: Lane) -> tuple[TrackedFrame, tuple[int, ...]] | None:
        """This lane's next frame and who is due in it, if it has one and room for the result; handles its END."""
        if lane.done:
            return None
        if lane.abandoned.is_set():
            while (item := lane.inbox.get_nowait()) is not None:
                if item is END:
                    lane.done = True
            return None
        if not lane.outbox.has_room():
            return None
        item = lane.inbox.get_nowait()
        if isinstance(item, EndOfStream):
            lane.done = True
            lane.outbox.put_end(self.stop_event)
            return None
        if item is None:
            return None
        return item, lane.session.plan(item)

    def _run(self, batch: list[Pending[Lane]]) -> None:
        started = time.perf_counter()
        work = [p for p in batch if p.due]
        requests = [EmotionStage.request(p.tracked, p.due) for p in work]
        inferred = infer_batched(self.model, requests, self.batch_size) if work and self.model is not None else []
        answers = {id(p): got for p, got in zip(work, inferred, strict=True)}
        for item in batch:
            result = item.key.session.smooth(item.tracked, item.due, answers.get(id(item), []))
            if not item.key.abandoned.is_set():
                item.key.outbox.put(result, self.stop_event)
        self.timing.busy_s += time.perf_counter() - started
        self.timing.items += len(batch)
        if work:
            self.batches += 1
            self.persons_inferred += sum(len(p.due) for p in work)
