"""The single-process backend: per source capture and detect+track threads, one shared inference
worker, per source an output thread; the main thread shows status and the window and handles stops.

    capture -> [q] -> detect+track -> [q] --\\
    capture -> [q] -> detect+track -> [q] ----> inference worker -> [q] -> output (render, sinks)  per source
    capture -> [q] -> detect+track -> [q] --/

One source or many, a video, a camera or an image: the same path. A
source's failure (it breaks for good, its disk fills) ends that source
only; the worker's failure ends the run. Whatever ends a run, every thread
is stopped and joined and every output finalized before `run_local` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.console import Console

from streamer.display import GridWindow
from streamer.inference_worker import InferenceWorker, Lane
from streamer.outputs import JsonlOutput, Outputs, VideoOutput
from streamer.overlay import OverlayRenderer, OverlayStats
from streamer.pipeline import END, Pipeline, PipelineStats, PipelineThread
from streamer.progress import RateMeter, SourceStatus, StatusTable
from streamer.results import frame_to_json
from streamer.sources import Source
from streamer.types import FrameResult
from streamer.web.board import LiveBoard

logger = logging.getLogger(__name__)

#: How often the main thread refreshes the status table and the window.
TICK_S = 0.05

OnFrame = Callable[[str, FrameResult, PipelineStats], None]


@dataclass(eq=False)
class SourceRun:
    """One source's threads, queues and outputs for the length of a run."""

    name: str
    source: Source
    pipeline: Pipeline
    lane: Lane
    outputs: Outputs
    renderer: OverlayRenderer
    frames: int = 0
    persons: int = 0
    started: float = field(default_factory=time.monotonic)
    error: BaseException | None = None
    meter: RateMeter = field(default_factory=RateMeter)
    latest: np.ndarray | None = None
    finished: bool = False
    model_name: str = ""

    def status(self) -> SourceStatus:
        state = "failed" if self.error else "done" if self.finished else "running"
        reconnects = getattr(self.source, "reconnects", 0)
        info = self.source.info
        return SourceStatus(
            self.name,
            state,
            self.frames,
            info.frame_count_hint if not info.is_live else None,
            self.meter.rate(),
            self.persons,
            self.pipeline.stats.dropped + self.lane.outbox.dropped,
            reconnects,
        )


class OutputThread(PipelineThread):
    """Per source: draw the overlay and write every output, frame by frame, in order."""

    def __init__(
        self, run: SourceRun, stop: threading.Event, on_frame: OnFrame | None, board: LiveBoard | None = None
    ) -> None:
        super().__init__(name=f"output:{run.name}", daemon=True)
        self.run_ = run
        self.stop_event = stop
        self.on_frame = on_frame
        self.board = board

    def run(self) -> None:
        run = self.run_
        try:
            while True:
                item = run.lane.outbox.get(self.stop_event)
                if item is None or item is END:
                    return
                self._write(run, item)
        except BaseException as exc:  # this source's failure; the others go on
            run.error = exc
            run.pipeline.stop.set()
            run.lane.abandoned.set()
        finally:
            error = run.outputs.close()
            run.error = run.error or error
            run.finished = True

    def _write(self, run: SourceRun, result: FrameResult) -> None:
        fps = run.meter.tick()
        latency_ms = 1000.0 * (time.monotonic() - result.frame.captured_at)
        stats = OverlayStats(fps, latency_ms, run.pipeline.stats.dropped + run.lane.outbox.dropped)
        annotated = run.renderer.annotate(result.frame.image.copy(), result, stats)
        run.outputs.write(annotated, result)
        run.frames += 1
        run.persons = len(result.persons)
        run.latest = annotated
        if self.board is not None:  # the live web view: a reference swap, never a wait
            status = {k: v for k, v in vars(run.status()).items() if k != "name"}
            self.board.publish(run.name, annotated, frame_to_json(result, run.model_name), status)
        if self.on_frame is not None:
            self.on_frame(run.name, result, run.pipeline.stats)


@dataclass
class SourceReport:
    """What one source produced."""

    name: str
    frames: int
    paths: list
    video_frames: int
    jsonl_lines: int
    dropped: int
    seconds: float
    error: BaseException | None
    restarts: int = 0

    @classmethod
    def of(
        cls,
        name: str,
        frames: int,
        outputs: Outputs,
        dropped: int,
        started: float,
        error: BaseException | None,
        restarts: int = 0,
    ) -> SourceReport:
        """The report of a source that wrote `outputs`, started at `started` (monotonic)."""
        return cls(
            name,
            frames,
            outputs.paths,
            outputs.count(VideoOutput),
            outputs.count(JsonlOutput),
            dropped,
            time.monotonic() - started,
            error,
            restarts,
        )


@dataclass
class RunReport:
    """What a run produced, per source; `error` is a failure of the whole run (the inference worker)."""

    sources: list[SourceReport]
    interrupted: bool = False
    error: BaseException | None = None
    seconds: float = 0.0
    batches: int = 0
    persons_inferred: int = 0
    stage_ms: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[SourceReport]:
        return [s for s in self.sources if s.error is not None]


def run_local(
    runs: Sequence[SourceRun],
    worker: InferenceWorker,
    stop: threading.Event,
    console: Console | None = None,
    show_status: bool = True,
    window: GridWindow | None = None,
    on_frame: OnFrame | None = None,
    board: LiveBoard | None = None,
) -> RunReport:
    """Run every source to its end (or until `stop`); finalize everything; report per source."""
    started = time.monotonic()
    writers = [OutputThread(run, stop, on_frame, board) for run in runs]
    for run in runs:
        run.pipeline.start()
    worker.start()
    for writer in writers:
        writer.start()
    try:
        with StatusTable(console or Console(stderr=True), show_status) as table:
            while any(w.is_alive() for w in writers) and not stop.is_set():
                table.update([run.status() for run in runs])
                if window is not None and not window.show([run.latest for run in runs]):
                    stop.set()  # the user closed the window
                if worker.errors.error is not None:
                    stop.set()
                time.sleep(TICK_S)
            table.update([run.status() for run in runs])
    except KeyboardInterrupt:  # library use without the CLI's graceful handler
        stop.set()
    finally:
        _finalize(runs, writers, worker, stop, window)
    report = RunReport(
        [_report(run) for run in runs],
        interrupted=stop.is_set() and worker.errors.error is None,
        error=worker.errors.error,
        seconds=time.monotonic() - started,
        batches=worker.batches,
        persons_inferred=worker.persons_inferred,
        stage_ms=_stage_ms(runs, worker),
    )
    return report


def _finalize(
    runs: Sequence[SourceRun],
    writers: Sequence[OutputThread],
    worker: InferenceWorker,
    stop: threading.Event,
    window: GridWindow | None,
) -> None:
    """Stop producing, let every writer finish its frame and close its outputs, then join the rest."""
    for run in runs:
        run.pipeline.stop.set()
    if stop.is_set():  # a stop request: the worker stops now; at a normal end it has already drained
        worker.stop_event.set()
    for writer in writers:
        writer.join(timeout=30.0)
    worker.stop_event.set()
    worker.join(timeout=10.0)
    for run in runs:
        try:
            run.pipeline.close()
        except Exception as exc:
            run.error = run.error or exc
        finally:
            run.source.close()
    if window is not None:
        window.close()


def _stage_ms(runs: Sequence[SourceRun], worker: InferenceWorker) -> dict[str, float]:
    """Mean busy time per frame of each stage (detect+track averaged over sources), for the benchmarks."""
    timings = [t for run in runs for name, t in run.pipeline.stats.stages.items() if name == "detect+track"]
    items = sum(t.items for t in timings)
    detect = 1000.0 * sum(t.busy_s for t in timings) / items if items else 0.0
    return {"detect+track": detect, "emotion": worker.timing.mean_ms}


def _report(run: SourceRun) -> SourceReport:
    dropped = run.pipeline.stats.dropped + run.lane.outbox.dropped
    return SourceReport.of(run.name, run.frames, run.outputs, dropped, run.started, run.error)
