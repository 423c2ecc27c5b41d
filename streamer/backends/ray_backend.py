"""The Ray backend: the same stages as the local one, placed as actors on a Ray cluster.

    per source:  SourceActor (CPU)  capture -> [q] -> detect+track          (streamer.stages, streamer.pipeline)
    shared:      InferenceActor x N (GPU when the cluster has one)          (the model, batched across sources)
    driver:      per source smoothing -> overlay -> outputs                 (streamer.stages, streamer.outputs)

The driver pulls tracked frames from every source actor (one request in
flight each; a file's actor blocks when the driver lags, a live one keeps
only its newest frame), packs one pending frame per source into a batch for
the least busy inference actor (at most `ray.max_in_flight` batches queued
per actor: back-pressure), and writes each source's results itself: **all
outputs are written by the driver, into `--out` on the machine that runs the
CLI**. Sources are opened by their actors, so a file path must exist on the
node its actor runs on (shared storage, or the same path on every node).

Faults: a source actor that dies is restarted by Ray (`ray.max_restarts`);
the driver asks it to resume after the last frame it received (files) and
ends its tracks (new ids follow, never reused); a live recording goes on in
a new segment. A dead inference actor is replaced and its batch resent.
Other sources are not disturbed. A source that cannot open is reported and
the others go on.

This module is imported only for `--backend ray`: the default path never imports Ray.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from rich.console import Console

from cocoer_core.api import EmotionResult, FramePersons, Level
from cocoer_core.postprocess import LabelRule
from streamer.app import detect_track_stage_for, emotion_stage_for, renderer_for
from streamer.backends.local import RunReport, SourceReport
from streamer.backends.ray_cluster import start_cluster
from streamer.config import AppConfig, SourceConfig
from streamer.errors import SourceError, UserError
from streamer.outputs import Outputs, VideoOutput, open_outputs
from streamer.overlay import OverlayRenderer, OverlayStats
from streamer.progress import RateMeter, SourceStatus, StatusTable
from streamer.results import frame_to_json
from streamer.sinks import SegmentedVideoSink, ensure_writable_dir
from streamer.source_list import SourceEntry, unique_names
from streamer.sources import SourceInfo
from streamer.stages import EmotionStage
from streamer.types import TrackedFrame
from streamer.web.board import LiveBoard

logger = logging.getLogger(__name__)

END_MARK = "END"
METRICS_EVERY_S = 2.0
#: How long actors may wait for the cluster to find room for them (model loading included).
PLACE_TIMEOUT_S = 300.0


class SourceActor:
    """Runs on a cluster node: one source's capture and detect+track, the local backend's own classes."""

    def __init__(self, spec: str, source_config: SourceConfig, config: AppConfig) -> None:
        # Errors are kept, not raised: a constructor that raises would look like a dead actor.
        from streamer.sources import open_source

        self.config = config
        self.source_config = source_config
        self.error: str | None = None
        self.pipeline: Any = None
        try:
            self.source: Any = open_source(spec, source_config)
        except UserError as exc:
            self.source, self.error = None, str(exc)

    def describe(self) -> tuple[SourceInfo | None, str | None, str]:
        return (self.source.info if self.source else None), self.error, ray.util.get_node_ip_address()

    def start(self, skip: int = 0) -> int:
        """Start capturing; frames before `skip` (already delivered before a restart) are passed over."""
        from streamer.detectors import build_detector
        from streamer.emotion import resolve_device
        from streamer.pipeline import Pipeline

        device = resolve_device(self.config.device)
        info = self.source.info
        detect = detect_track_stage_for(
            self.config,
            build_detector(self.config.detector, device),
            info.kind,
            self.source_config.keep_tracks_s,
            device,
        )
        live = info.is_live if self.source_config.policy == "auto" else self.source_config.policy == "latest"

        def frames(stop: threading.Event):  # type: ignore[no-untyped-def]
            return (f for f in self.source.frames(stop) if f.index >= skip)

        size = self.config.live_queue_size if live else self.config.queue_size
        self.pipeline = Pipeline(frames, [("detect+track", detect.process)], size, "latest" if live else "block")
        self.pipeline.start()
        return os.getpid()

    def next(self, max_items: int = 4, wait_s: float = 0.2) -> list[Any]:
        """Up to `max_items` tracked frames (waiting at most `wait_s` for the first); END_MARK at the end."""
        from streamer.pipeline import END

        out: list[Any] = []
        deadline = time.monotonic() + wait_s
        while len(out) < max_items:
            item = self.pipeline.outbox.get_nowait()
            if item is END:
                self.pipeline.close()  # re-raises the source's own error (a file broken for good)
                out.append(END_MARK)
                return out
            if item is None:
                if out or time.monotonic() > deadline:
                    return out
                time.sleep(0.005)
                continue
            out.append(item)
        return out

    def stats(self) -> dict[str, int]:
        return {
            "dropped": self.pipeline.stats.dropped if self.pipeline else 0,
            "reconnects": getattr(self.source, "reconnects", 0),
        }

    def close(self) -> None:
        if self.pipeline is not None:
            with contextlib.suppress(Exception):
                self.pipeline.close()
        if self.source is not None:
            self.source.close()


class InferenceActor:
    """Runs on a cluster node (a GPU one when asked): the emotion model, batching persons of all sources."""

    def __init__(self, config: AppConfig) -> None:
        from streamer.emotion import build_emotion_model, resolve_device

        choice = config.emotion.device if config.emotion.device != "auto" else config.device
        self.model = build_emotion_model(config.emotion, resolve_device(choice))
        self.batch_size = config.emotion.batch_size

    def card(self) -> ModelCard:
        model = self.model
        if model is None:
            return ModelCard("none", "no emotion model", (), (), LabelRule(None, None))
        return ModelCard(model.name, model.description, model.labels, model.levels, model.label_rule)

    def infer(self, requests: list[FramePersons]) -> list[list[EmotionResult | None]]:
        from streamer.stages import infer_batched

        return infer_batched(self.model, requests, self.batch_size) if self.model else [[] for _ in requests]


@dataclass(frozen=True)
class ModelCard:
    """What the driver needs to know of the remote model (it never runs it)."""

    name: str
    description: str
    labels: tuple[str, ...]
    levels: tuple[Level, ...]
    label_rule: LabelRule


@dataclass(eq=False)
class RemoteSource:
    """The driver's view of one source actor, and the source's smoothing and outputs."""

    name: str
    actor: Any
    info: SourceInfo
    node: str
    stage: EmotionStage
    outputs: Outputs
    renderer: OverlayRenderer
    started: float = field(default_factory=time.monotonic)
    next_ref: Any = None
    queue: deque = field(default_factory=deque)
    in_inference: bool = False
    ended: bool = False
    error: BaseException | None = None
    next_index: int = 0
    last_pts: float = 0.0
    index_offset: int = 0
    pts_offset: float = 0.0
    id_offset: int = 0
    max_id: int = 0
    restarts: int = 0
    pending_end: tuple[int, ...] = ()
    frames: int = 0
    persons: int = 0
    dropped: int = 0
    reconnects: int = 0
    meter: RateMeter = field(default_factory=RateMeter)

    @property
    def done(self) -> bool:
        return self.error is not None or (self.ended and not self.queue and not self.in_inference)

    def status(self) -> SourceStatus:
        state = "failed" if self.error else "done" if self.done else "running"
        total = self.info.frame_count_hint if not self.info.is_live else None
        return SourceStatus(
            self.name,
            state,
            self.frames,
            total,
            self.meter.rate(),
            self.persons,
            self.dropped,
            self.reconnects,
            self.restarts,
            self.node,
        )


@dataclass(eq=False)
class _Batch:
    items: list[tuple[RemoteSource, TrackedFrame, tuple[int, ...]]]
    actor_index: int


def _cause(exc: BaseException) -> BaseException:
    """The exception raised inside an actor's method, not Ray's wrapper."""
    if isinstance(exc, RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return exc


class RayRun:
    """The driver of one run on a Ray cluster."""

    def __init__(
        self,
        config: AppConfig,
        entries: Sequence[SourceEntry],
        console: Console | None,
        show_status: bool,
        board_factory: Callable[[list[str]], LiveBoard | None] | None = None,
    ):
        self.config = config
        self.board_factory = board_factory
        self.board: LiveBoard | None = None
        self.entries = list(entries)
        self.console = console or Console(stderr=True)
        self.show_status = show_status
        self.out_dir = ensure_writable_dir(Path(config.sink.out_dir).expanduser())
        self.failed: list[tuple[str, UserError]] = []
        self.sources: list[RemoteSource] = []
        self.inference: list[Any] = []
        self.in_flight: dict[Any, _Batch] = {}
        self.card: ModelCard | None = None
        self.restarted_inference = 0
        self.batches = 0
        self.persons_inferred = 0

    # -- set-up -------------------------------------------------------------------------------

    def _gpus_per_actor(self) -> float:
        if self.config.ray.gpus_per_actor >= 0:
            return self.config.ray.gpus_per_actor
        return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0

    def open(self) -> None:
        """Start the inference actors and one actor per source; sources that cannot open are reported."""
        rc = self.config.ray
        inference_cls = ray.remote(max_restarts=0)(InferenceActor)
        gpus = self._gpus_per_actor()
        self._new_inference = lambda: inference_cls.options(num_gpus=gpus, num_cpus=0).remote(self.config)
        self.inference = [self._new_inference() for _ in range(rc.inference_actors)]
        self.card = ray.get(self.inference[0].card.remote(), timeout=PLACE_TIMEOUT_S)
        source_cls = ray.remote(max_restarts=rc.max_restarts, max_task_retries=0)(SourceActor)
        actors = []
        for entry in self.entries:
            spec = entry.spec
            if "://" not in spec and not spec.isdigit() and spec != "demo" and Path(spec).exists():
                spec = str(Path(spec).resolve())  # actors do not share the driver's working directory
            actors.append((entry, source_cls.options(num_cpus=rc.source_cpus).remote(spec, entry.config, self.config)))
        try:
            described = [
                (entry, actor, *ray.get(actor.describe.remote(), timeout=PLACE_TIMEOUT_S)) for entry, actor in actors
            ]
        except ray.exceptions.GetTimeoutError:
            raise UserError(
                f"the cluster could not place {len(actors)} source actors in {PLACE_TIMEOUT_S:.0f} s "
                f"(each reserves ray.source_cpus={rc.source_cpus} CPUs; lower it or add nodes)"
            ) from None
        usable = [(e, a, info, node) for e, a, info, error, node in described if info is not None]
        for entry, actor, info, error, _ in described:
            if info is None:
                self.failed.append((entry.name or entry.spec, SourceError(error or "cannot open")))
                ray.kill(actor, no_restart=True)
        names = unique_names([entry.name or info.stem for entry, _, info, _ in usable])
        for name, (entry, actor, info, node) in zip(names, usable, strict=True):
            self.sources.append(self._remote_source(name, entry, actor, info, node))
        if self.board_factory is not None:
            self.board = self.board_factory([s.name for s in self.sources])
        for source in self.sources:
            ray.get(source.actor.start.remote(0))

    def _remote_source(self, name: str, entry: SourceEntry, actor: Any, info: SourceInfo, node: str) -> RemoteSource:
        card = self.card
        if card is None:
            raise RuntimeError("open() describes the model before the sources")
        model = card if card.name != "none" else None
        # Only the model's presence and label rule are used here; the inference actors run it.
        stage = emotion_stage_for(self.config, model, card.label_rule)  # type: ignore[arg-type]
        outputs = open_outputs(self.config.sink, info, name, card.name, self.out_dir)
        renderer = renderer_for(self.config, info, card.description)
        return RemoteSource(name, actor, info, node, stage, outputs, renderer)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> RunReport:
        started = time.monotonic()
        last_metrics = 0.0
        try:
            with StatusTable(self.console, self.show_status) as table:
                while not stop.is_set() and not all(s.done for s in self.sources):
                    self._request_frames()
                    self._finish_frames_without_work()
                    self._submit_batches()
                    self._wait_and_handle()
                    if time.monotonic() - last_metrics > METRICS_EVERY_S:
                        last_metrics = time.monotonic()
                        self._refresh_stats()
                        table.update([s.status() for s in self.sources])
                        self._write_metrics()
                self._refresh_stats()
                table.update([s.status() for s in self.sources])
                self._write_metrics()
        except KeyboardInterrupt:
            stop.set()
        finally:
            self._close()
        return RunReport(
            [self._report(s) for s in self.sources],
            interrupted=stop.is_set(),
            seconds=time.monotonic() - started,
            batches=self.batches,
            persons_inferred=self.persons_inferred,
        )

    def _request_frames(self) -> None:
        for s in self.sources:
            if s.next_ref is None and not s.ended and s.error is None and len(s.queue) < 2:
                s.next_ref = s.actor.next.remote(4, 0.2)

    def _adopt(self, s: RemoteSource, tracked: TrackedFrame) -> TrackedFrame:
        """Renumber after a restart: ids never reused, a live source's time keeps going forward."""
        frame = tracked.frame
        if s.index_offset or s.pts_offset:
            frame = replace(frame, index=frame.index + s.index_offset, pts_s=frame.pts_s + s.pts_offset)
        persons = tracked.persons
        ended = tracked.ended
        if s.id_offset:
            persons = tuple(replace(p, track_id=p.track_id + s.id_offset) for p in persons)
            ended = tuple(i + s.id_offset for i in ended)
        s.max_id = max([s.max_id, *(p.track_id for p in persons)])
        s.next_index = frame.index + 1 - s.index_offset
        s.last_pts = frame.pts_s
        return replace(tracked, frame=frame, persons=persons, ended=ended)

    def _on_frames(self, s: RemoteSource, items: list[Any]) -> None:
        for item in items:
            if item == END_MARK:
                s.ended = True
                continue
            s.queue.append(self._adopt(s, item))
        if s.info.is_live:
            while len(s.queue) > 1:  # the newest-frame policy, also on the driver's side
                s.queue.popleft()
                s.dropped += 1

    def _on_source_died(self, s: RemoteSource) -> None:
        s.restarts += 1
        if s.restarts > self.config.ray.max_restarts:
            s.error = SourceError(f"{s.name}: its actor died {s.restarts} times; giving up")
            return
        logger.warning("%s: source actor died; restarting it (restart %d)", s.name, s.restarts)
        # Every track of the dead actor ends with the next frame; the new tracker's ids follow the old ones.
        s.pending_end = tuple(s.stage.bank.track_ids)
        s.id_offset = s.max_id
        if s.info.is_live:
            s.index_offset = s.next_index + s.index_offset
            s.pts_offset = s.last_pts + 1.0 / (s.info.fps or 25.0)
            for sink in s.outputs.sinks:
                if isinstance(sink, VideoOutput) and isinstance(sink.sink, SegmentedVideoSink):
                    sink.sink.new_segment()
        skip = 0 if s.info.is_live else s.next_index
        deadline = time.monotonic() + PLACE_TIMEOUT_S
        while True:
            try:
                ray.get(s.actor.start.remote(skip))
                return
            except ActorUnavailableError:  # Ray is still bringing it back: ask again shortly
                if time.monotonic() > deadline:
                    s.error = SourceError(f"{s.name}: its actor did not come back in {PLACE_TIMEOUT_S:.0f} s")
                    return
                time.sleep(0.5)
            except RayActorError as exc:
                s.error = SourceError(f"{s.name}: its actor cannot be restarted ({exc})")
                return

    def _finish(self, s: RemoteSource, tracked: TrackedFrame, due: Sequence[int], inferred: Sequence[Any]) -> None:
        if s.pending_end:
            tracked = replace(tracked, ended=tuple(sorted({*tracked.ended, *s.pending_end})))
            s.pending_end = ()
        result = s.stage.finish(tracked, due, inferred)
        fps = s.meter.tick()
        stats = OverlayStats(fps, 1000.0 * (time.monotonic() - result.frame.captured_at), s.dropped)
        annotated = s.renderer.annotate(result.frame.image.copy(), result, stats)
        try:
            s.outputs.write(annotated, result)
        except UserError as exc:
            s.error = exc
            return
        s.frames += 1
        s.persons = len(result.persons)
        if self.board is not None and self.card is not None:  # the live web view, as on the local backend
            status = {k: v for k, v in vars(s.status()).items() if k != "name"}
            self.board.publish(s.name, annotated, frame_to_json(result, self.card.name), status)

    def _finish_frames_without_work(self) -> None:
        """Frames with nobody to infer are finished at once (in order: only when none is at the model)."""
        for s in self.sources:
            while s.queue and not s.in_inference and s.error is None:
                due = s.stage.plan(s.queue[0])
                if due:
                    break
                self._finish(s, s.queue.popleft(), (), [])

    def _submit_batches(self) -> None:
        while True:
            capacity = [
                len([b for b in self.in_flight.values() if b.actor_index == k]) for k in range(len(self.inference))
            ]
            actor_index = int(np.argmin(capacity))
            if capacity[actor_index] >= self.config.ray.max_in_flight:
                return
            items = []
            for s in self.sources:
                if s.queue and not s.in_inference and s.error is None:
                    tracked = s.queue.popleft()
                    items.append((s, tracked, s.stage.plan(tracked)))
                    s.in_inference = True
            if not items:
                return
            self._send(_Batch(items, actor_index))

    def _send(self, batch: _Batch) -> None:
        requests = [EmotionStage.request(tracked, due) for _, tracked, due in batch.items]
        ref = self.inference[batch.actor_index].infer.remote(requests)
        self.in_flight[ref] = batch

    def _wait_and_handle(self) -> None:
        refs = [s.next_ref for s in self.sources if s.next_ref is not None] + list(self.in_flight)
        if not refs:
            time.sleep(0.01)
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=0.05)
        for ref in ready:
            if ref in self.in_flight:
                self._on_inference(ref, self.in_flight.pop(ref))
                continue
            s = next(x for x in self.sources if x.next_ref is not None and x.next_ref == ref)
            s.next_ref = None
            try:
                self._on_frames(s, ray.get(ref))
            except RayActorError:
                self._on_source_died(s)
            except RayTaskError as exc:
                s.error = _cause(exc)

    def _on_inference(self, ref: Any, batch: _Batch) -> None:
        try:
            answers = ray.get(ref)
        except RayActorError:
            logger.warning("inference actor %d died: replacing it and resending its batch", batch.actor_index)
            self.restarted_inference += 1
            self.inference[batch.actor_index] = self._new_inference()
            self._send(batch)
            return
        self.batches += 1
        for (s, tracked, due), inferred in zip(batch.items, answers, strict=True):
            s.in_inference = False
            self.persons_inferred += len(due)
            if s.error is None:
                self._finish(s, tracked, due, inferred)

    # -- figures and the end ------------------------------------------------------------------

    def _refresh_stats(self) -> None:
        refs = {s.name: s.actor.stats.remote() for s in self.sources if s.error is None and not s.ended}
        for s in self.sources:
            if s.name in refs:
                with contextlib.suppress(RayActorError, RayTaskError):
                    figures = ray.get(refs[s.name], timeout=5)
                    s.reconnects = figures["reconnects"]

    def _write_metrics(self) -> None:
        """The status table as data: `<out>/metrics.json`, replaced atomically every few seconds."""
        document = {"time": time.time(), "sources": [vars(s.status()) for s in self.sources]}
        path = self.out_dir / "metrics.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(document, indent=1))
            tmp.replace(path)

    def abandon(self) -> None:
        """Start-up was cut short (Ctrl+C, an error): release what was opened, write nothing."""
        with contextlib.suppress(Exception):
            self._close()

    def _close(self) -> None:
        for s in self.sources:
            error = s.outputs.close()
            s.error = s.error or error
            with contextlib.suppress(Exception):
                ray.get(s.actor.close.remote(), timeout=15)
            with contextlib.suppress(Exception):
                ray.kill(s.actor, no_restart=True)
        for actor in self.inference:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)

    def _report(self, s: RemoteSource) -> SourceReport:
        return SourceReport.of(s.name, s.frames, s.outputs, s.dropped, s.started, s.error, s.restarts)


def analyze_on_ray(
    config: AppConfig,
    entries: Sequence[SourceEntry],
    console: Console | None = None,
    show_status: bool = True,
    stop: threading.Event | None = None,
    board_factory: Callable[[list[str]], LiveBoard | None] | None = None,
    on_open: Callable[[], None] | None = None,
) -> tuple[RunReport, list[tuple[str, UserError]]]:
    """Run every entry on the cluster; the report, and the sources that could not open.

    `board_factory` gets the sources' names once they are open and returns the live view's board;
    `on_open` is called once every output is open, just before frames flow (the CLI arms its graceful
    Ctrl+C there: before, Ctrl+C interrupts start-up at once and nothing is claimed as written).
    """
    stop = stop or threading.Event()
    started_here = False
    try:
        started_here = start_cluster(config.ray.address, len(entries), config)
        run = RayRun(config, entries, console, show_status, board_factory)
        try:
            run.open()
        except BaseException:
            run.abandon()
            raise
        if on_open is not None:
            on_open()
        report = run.run(stop)
        return report, run.failed
    except KeyboardInterrupt:  # a local cluster may be half started: shut down whatever of it runs
        started_here = True
        raise
    finally:
        if started_here:
            ray.shutdown()
