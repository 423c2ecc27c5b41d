"""One inference worker for every source: persons of many streams in one batched model call.

DeepStream's central idea in plain Python. Each source's detect+track thread
feeds its own queue (its `Lane`); the worker takes at most one pending
frame per lane, packs their persons into one call of up to `batch_size`
persons (waiting at most `batch_wait_s` for more lanes to fill it), then
routes each frame's answers back to its lane's smoothing and output queue.

Fair and safe:
- lanes are visited round-robin, one frame each per batch, so a busy file
  never starves a camera, and a lane's frames stay in order;
- a lane whose output queue is full (`block` policy: a file whose writer
  lags) is skipped, not waited on: it holds back only itself;
- live lanes keep their newest-frame policy on both of their queues;
- a lane whose outputs failed is drained and dropped without disturbing others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cocoer_core.api import EmotionModel
from streamer.pipeline import END, POLL_S, EdgeQueue, ErrorRelay, PipelineThread, StageTiming
from streamer.stages import EmotionStage, infer_batched
from streamer.types import FrameResult, TrackedFrame

logger = logging.getLogger(__name__)

#: How long the worker sleeps when no lane has a frame (short: it bounds added latency).
IDLE_S = 0.002


@dataclass(eq=False)
class Lane:
    """One source's connection to the shared worker."""

    name: str
    inbox: EdgeQueue[TrackedFrame]
    outbox: EdgeQueue[FrameResult]
    stage: EmotionStage
    done: bool = False
    abandoned: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Pending:
    lane: Lane
    tracked: TrackedFrame
    due: tuple[int, ...]


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
        self.batch_wait_s = batch_wait_s
        self.stop_event = stop
        self.errors = errors
        self.timing = StageTiming()
        self.batches = 0
        self.persons_inferred = 0
        self._offset = 0

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                pending = self._gather()
                if pending is None:
                    return
                if pending:
                    self._run(pending)
        except BaseException as exc:
            self.errors.record("inference", exc)
        finally:
            for lane in self.lanes:
                if not lane.done:
                    lane.outbox.put_end(self.stop_event)

    def _take(self, lane: Lane) -> TrackedFrame | None:
        """This lane's next frame, if it has one and room for the result; handles its END."""
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
        if item is END:
            lane.done = True
            lane.outbox.put_end(self.stop_event)
            return None
        return item  # type: ignore[return-value]

    def _gather(self) -> list[_Pending] | None:
        """Frames for one batch: at most one per lane; None once every lane has ended."""
        pending: list[_Pending] = []
        persons = 0
        deadline: float | None = None
        while not self.stop_event.is_set():
            order = self.lanes[self._offset :] + self.lanes[: self._offset]
            self._offset = (self._offset + 1) % max(len(self.lanes), 1)
            taken = {id(p.lane) for p in pending}
            for lane in order:
                if id(lane) in taken or persons >= self.batch_size:
                    continue
                tracked = self._take(lane)
                if tracked is not None:
                    due = lane.stage.plan(tracked)
                    pending.append(_Pending(lane, tracked, due))
                    persons += len(due)
            if all(lane.done for lane in self.lanes):
                return pending or None
            waiting = [lane for lane in self.lanes if not lane.done and id(lane) not in {id(p.lane) for p in pending}]
            if pending and (persons == 0 or persons >= self.batch_size or not waiting):
                return pending  # nothing to wait for: no model work, a full batch, or every lane is in
            if pending:
                deadline = deadline or time.monotonic() + self.batch_wait_s
                if time.monotonic() >= deadline:
                    return pending
            time.sleep(IDLE_S if pending else min(IDLE_S * 5, POLL_S))
        return pending

    def _run(self, pending: list[_Pending]) -> None:
        started = time.perf_counter()
        work = [p for p in pending if p.due]
        inferred = (
            infer_batched(self.model, [p.lane.stage.request(p.tracked, p.due) for p in work], self.batch_size)
            if work and self.model is not None
            else []
        )
        answers = {id(p): got for p, got in zip(work, inferred, strict=True)}
        for item in pending:
            result = item.lane.stage.finish(item.tracked, item.due, answers.get(id(item), []))
            if not item.lane.abandoned.is_set():
                item.lane.outbox.put(result, self.stop_event)
        self.timing.busy_s += time.perf_counter() - started
        self.timing.items += len(pending)
        if work:
            self.batches += 1
            self.persons_inferred += sum(len(p.due) for p in work)
