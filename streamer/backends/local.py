"""The single-process backend: per source capture and detect+track threads, one shared inference worker,
per source an output thread; the main thread shows the status and the window and handles stops.

    capture -> [q] -> detect+track -> [q] --\\
    capture -> [q] -> detect+track -> [q] ----> inference worker -> [q] -> output (session.write)  per source
    capture -> [q] -> detect+track -> [q] --/

One source or many, a video, a camera or an image: the same path. The
models are built once per `LocalBackend` (a Python user running it again
reuses them). What a source does with its frames is its `SourceSession`'s
job, as on every backend (see `streamer.backends.base` for what ends what).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamer.backends.assembly import (
    Components,
    OpenedSource,
    build_components,
    detect_track_stage_for,
    open_sources,
    queue_policy,
    queue_sizes,
    session_for,
    warm_up,
)
from streamer.backends.base import RunJob, RunReport
from streamer.backends.inference_worker import InferenceWorker, Lane
from streamer.backends.monitor import RunMonitor
from streamer.backends.session import SourceSession
from streamer.config import AppConfig
from streamer.detectors.base import PersonDetector
from streamer.detectors.shared import SharedDetector
from streamer.outputs import ensure_writable_dir, refuse_overwriting_input
from streamer.outputs.claim import refuse_if_busy
from streamer.privacy.declaration import declare_runtimes, write_declaration
from streamer.sources import Source
from streamer.stages.pipeline import EdgeQueue, EndOfStream, ErrorRelay, Pipeline, PipelineThread
from streamer.types import FrameResult
from streamer.view.display import GridWindow

logger = logging.getLogger(__name__)

#: How often the main thread refreshes the status and the window.
TICK_S = 0.05


@dataclass(eq=False)
class SourceRun:
    """One source's threads and queues for the length of a run, around its session."""

    source: Source
    pipeline: Pipeline
    lane: Lane

    @property
    def session(self) -> SourceSession:
        return self.lane.session

    def refresh(self) -> None:
        """The figures only this backend knows: stale frames dropped on its queues, reconnects."""
        self.session.dropped = self.pipeline.stats.dropped + self.lane.outbox.dropped
        self.session.reconnects = self.source.reconnects


class OutputThread(PipelineThread):
    """Per source: every smoothed frame through the session's `write`, in order."""

    def __init__(self, run: SourceRun, stop: threading.Event) -> None:
        super().__init__(name=f"output:{run.session.name}", daemon=True)
        self.run_ = run
        self.stop_event = stop

    def run(self) -> None:
        run = self.run_
        try:
            while True:
                item = run.lane.outbox.get(self.stop_event)
                if item is None or isinstance(item, EndOfStream):
                    return
                run.refresh()
                if not run.session.write(item):
                    return  # this source failed: it ends alone
        except BaseException as exc:  # never expected: write keeps its own errors
            run.session.fail(exc)
        finally:
            if run.session.failed:
                run.pipeline.stop.set()
                run.lane.abandoned.set()
            run.session.close()


class LocalBackend:
    """Runs jobs in this process (see the module docstring)."""

    def __init__(self) -> None:
        self._components: Components | None = None
        self._built_for: tuple[object, object] = (None, None)

    def components(self, job: RunJob) -> Components:
        """The models, built on the first run and kept for the next runs with the same settings."""
        config, factory = self._built_for
        if self._components is None or config is not job.config or factory is not job.model_factory:
            self._components = build_components(job.config, job.model_factory)
            self._built_for = (job.config, job.model_factory)
        return self._components

    def run(self, job: RunJob) -> RunReport:
        config = job.config
        out_dir = ensure_writable_dir(Path(config.sink.out_dir).expanduser())
        opened, unopened = open_sources(job.entries)
        job.unopened(unopened)
        if not opened:
            return RunReport([], unopened)
        try:
            for source in opened:  # fail now, before models load: another run writes these files, or the input
                if not source.source.info.is_live:
                    refuse_overwriting_input(source.source.info, source.name, out_dir)
                    refuse_if_busy(out_dir, source.name)
            components = self.components(job)
        except BaseException:
            for source in opened:
                source.source.close()
            raise
        models = {**components.detector.models(), "emotion": components.card.name}
        names = list(job.run_sources) or [source.name for source in opened]
        write_declaration(out_dir, config, models, names, _runtimes(components))
        try:
            report = _LocalRun(job, components, opened).run()
        finally:
            declare_runtimes(out_dir, _runtimes(components))  # a size met on the way may have run otherwise
        report.unopened = unopened
        return report


def _runtimes(components: Components) -> dict[str, str]:
    return {**components.detector.runtimes(), "emotion": components.card.description}


class _LocalRun:
    """One run's threads, from start to the last output finalized."""

    def __init__(self, job: RunJob, components: Components, opened: Sequence[OpenedSource]) -> None:
        self.job = job
        self.components = components
        self.opened = opened
        self.runs: list[SourceRun] = []
        self.shared = _shared_detector(job.config, components, len(opened))

    def _prepare(self) -> None:
        config, job, components = self.job.config, self.job, self.components
        live = {
            (o.source.info.width, o.source.info.height): o.source.info for o in self.opened if o.source.info.is_live
        }
        for info in live.values():  # once per size: the detectors are shared
            warm_up(components.detector, info)
        for opened in self.opened:
            info = opened.source.info
            policy = queue_policy(info, opened.config)
            detector: PersonDetector = self.shared.lane() if self.shared else components.detector
            detect = detect_track_stage_for(
                config, detector, info.kind, opened.config, components.device, live=info.is_live, fps=info.fps
            )
            size, later = queue_sizes(config, policy, detect.longest_interval)
            pipeline = Pipeline(opened.source.frames, [("detect+track", detect.process)], size, policy, later)
            session = session_for(
                config, opened.name, info, components.card, job.live_view, job.on_frame, opened.config
            )
            outbox = EdgeQueue[FrameResult](f"emotion->output:{opened.name}", later, policy)
            self.runs.append(SourceRun(opened.source, pipeline, Lane(session, pipeline.outbox, outbox)))

    def run(self) -> RunReport:
        job, config = self.job, self.job.config
        try:
            self._prepare()
        except BaseException:
            for run in self.runs:
                run.session.close()
            for opened in self.opened:
                opened.source.close()
            if self.shared:
                self.shared.close()
            raise
        stop = job.stop
        worker_stop = threading.Event()
        worker = InferenceWorker(
            self.components.model,
            [run.lane for run in self.runs],
            config.emotion.batch_size,
            config.emotion.batch_wait_ms / 1000.0,
            worker_stop,
            ErrorRelay(worker_stop),
        )
        if job.on_open is not None:
            job.on_open()
        started = time.monotonic()
        writers = [OutputThread(run, stop) for run in self.runs]
        window = _window(config, self.runs)
        for run in self.runs:
            run.pipeline.start()
        worker.start()
        for writer in writers:
            writer.start()
        sessions = [run.session for run in self.runs]
        with RunMonitor(job.console, job.show_status, job.live_view) as monitor:
            try:
                self._watch(writers, worker, window, monitor)
            except KeyboardInterrupt:  # library use without the CLI's graceful handler
                stop.set()
            finally:
                self._finalize(writers, worker, window)
            for run in self.runs:
                run.refresh()  # a reconnect after the last frame written counts too
            monitor.update(sessions)
        return RunReport(
            [session.report() for session in sessions],
            interrupted=stop.is_set() and worker.errors.error is None,
            error=worker.errors.error,
            seconds=time.monotonic() - started,
            batches=worker.batches,
            persons_inferred=worker.persons_inferred,
            stage_ms=self._stage_ms(worker),
        )

    def _watch(
        self, writers: Sequence[OutputThread], worker: InferenceWorker, window: GridWindow | None, monitor: RunMonitor
    ) -> None:
        """The main thread while the run goes on: figures, the window, and the reasons to stop."""
        stop = self.job.stop
        sessions = [run.session for run in self.runs]
        while any(w.is_alive() for w in writers) and not stop.is_set():
            for run in self.runs:
                run.refresh()
            monitor.update(sessions)
            if window is not None and not window.show([s.latest for s in sessions]):
                stop.set()  # the user closed the window
            if worker.errors.error is not None:
                stop.set()  # the model failed: the run ends, every output is finalized
            time.sleep(TICK_S)

    def _finalize(self, writers: Sequence[OutputThread], worker: InferenceWorker, window: GridWindow | None) -> None:
        """Stop producing, let every writer finish its frame and close its outputs, then join the rest."""
        for run in self.runs:
            run.pipeline.stop.set()
        if self.job.stop.is_set():  # a stop request: the worker stops now; at a normal end it has already drained
            worker.stop_event.set()
        for writer in writers:
            writer.join(timeout=30.0)
        worker.stop_event.set()
        worker.join(timeout=10.0)
        for run in self.runs:
            try:
                run.pipeline.close()  # re-raises the source's own error (a file broken for good)
            except Exception as exc:
                run.session.fail(exc)
            finally:
                run.session.close()
                run.source.close()
        if self.shared:
            self.shared.close()
        if window is not None:
            window.close()

    def _stage_ms(self, worker: InferenceWorker) -> dict[str, float]:
        """Mean busy time per frame of each stage (detect+track averaged over sources), for the benchmarks."""
        timings = [t for run in self.runs for name, t in run.pipeline.stats.stages.items() if name == "detect+track"]
        items = sum(t.items for t in timings)
        detect = 1000.0 * sum(t.busy_s for t in timings) / items if items else 0.0
        return {"detect+track": detect, "emotion": worker.timing.mean_ms}


def _window(config: AppConfig, runs: Sequence[SourceRun]) -> GridWindow | None:
    if not config.sink.display:
        return None
    if not GridWindow.available():
        logger.warning("no display available: running headless (--display ignored)")
        return None
    return GridWindow(f"CocoER - {runs[0].source.info.display_name}" if len(runs) == 1 else "CocoER")


def _shared_detector(config: AppConfig, components: Components, sources: int) -> SharedDetector | None:
    """One batched detector for all sources: CUDA and several sources (or `detector.batch_sources: yes`)."""
    choice = config.detector.batch_sources
    if choice == "no" or sources < 2 or (choice == "auto" and not components.device.startswith("cuda")):
        return None
    return SharedDetector(components.detector, config.detector.batch_wait_ms)
