"""The Ray driver: the run loop of one job on a cluster, around the same sessions and batch planner as local.

    per source:  SourceActor (CPU)  capture -> [q] -> detect+track       (streamer.stages)
    shared:      InferenceActor x N (GPU when the cluster has one)       (the model, batched across sources)
    driver:      per source SourceSession: smoothing -> overlay -> outputs

The driver pulls tracked frames from every source actor (one request in
flight each; a file's actor blocks when the driver lags, a live one keeps
only its newest frame), builds batches with the `BatchPlanner` (the local
backend's rule: one frame per source, `emotion.batch_size`,
`emotion.batch_wait_ms`), sends each to the least busy inference actor (at
most `ray.max_in_flight` batches queued per actor: back-pressure), and
writes each source's results itself: **all outputs are written by the
driver, into `--out` on the machine that runs the CLI**.

Faults: a source actor that dies is restarted by Ray (`ray.max_restarts`);
the driver asks it to resume after the last frame it received (files) and
ends its tracks (new ids follow, never reused); a live recording goes on in
a new segment. A dead inference actor is replaced and its batch resent. An
error raised by the model itself ends the run, as locally.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError

from cocoer_core.errors import first_line
from streamer.backends.assembly import session_for
from streamer.backends.base import RunJob, RunReport
from streamer.backends.monitor import RunMonitor
from streamer.backends.ray.actors import END_MARK, InferenceActor, SourceActor
from streamer.backends.session import SourceSession
from streamer.errors import SourceError, UserError
from streamer.outputs import ensure_writable_dir
from streamer.privacy.declaration import declare_runtimes, write_declaration
from streamer.sources import SourceInfo
from streamer.sources.entries import SourceEntry, unique_names
from streamer.stages.batching import BatchPlanner, Pending
from streamer.stages.emotion import EmotionStage, ModelCard
from streamer.stages.pipeline import carry_over
from streamer.types import TrackedFrame

logger = logging.getLogger(__name__)

STATUS_EVERY_S = 2.0
#: How long actors may wait for the cluster to find room for them (model loading included).
PLACE_TIMEOUT_S = 300.0


@dataclass(eq=False)
class RemoteSource:
    """The driver's view of one source actor, around the source's session."""

    session: SourceSession
    actor: Any
    next_ref: Any = None
    queue: deque[TrackedFrame] = field(default_factory=deque)
    in_batch: bool = False
    ended: bool = False
    next_index: int = 0
    last_pts: float = 0.0
    index_offset: int = 0
    pts_offset: float = 0.0
    id_offset: int = 0
    max_id: int = 0
    pending_end: tuple[int, ...] = ()
    dropped_here: int = 0
    error: BaseException | None = None  # the source's own error, raised behind frames still to be written
    runtimes: dict[str, str] = field(default_factory=dict)  # what ran its detectors, as its actor last said

    @property
    def info(self) -> SourceInfo:
        return self.session.info

    @property
    def done(self) -> bool:
        return self.session.failed or (self.ended and not self.queue and not self.in_batch)


@dataclass(eq=False)
class _Batch:
    items: list[Pending[RemoteSource]]
    actor_index: int


def cause_of(exc: BaseException) -> BaseException:
    """The exception raised inside an actor's method, not Ray's wrapper."""
    if isinstance(exc, RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return exc


class RayRun:
    """The driver of one job on a Ray cluster."""

    def __init__(self, job: RunJob) -> None:
        self.job = job
        self.config = job.config
        self.out_dir = ensure_writable_dir(Path(job.config.sink.out_dir).expanduser())
        self.unopened: list[tuple[str, UserError]] = []
        self.sources: list[RemoteSource] = []
        self.inference: list[Any] = []
        self.in_flight: dict[Any, _Batch] = {}
        self.planner: BatchPlanner[RemoteSource] = BatchPlanner(
            job.config.emotion.batch_size, job.config.emotion.batch_wait_ms / 1000.0
        )
        self.error: BaseException | None = None
        self.emotion_runtime = ""
        self.batches = 0
        self.persons_inferred = 0

    # -- set-up -------------------------------------------------------------------------------

    def _gpus_per_actor(self) -> float:
        if self.config.ray.gpus_per_actor >= 0:
            return self.config.ray.gpus_per_actor
        return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0

    def _new_inference(self) -> Any:
        actor_class = ray.remote(max_restarts=0)(InferenceActor)
        options = actor_class.options(num_gpus=self._gpus_per_actor(), num_cpus=0)
        return options.remote(self.config, self.job.model_factory)

    def open(self) -> None:
        """Start the inference actors and one actor per source; sources that cannot open are reported."""
        rc = self.config.ray
        self.inference = [self._new_inference() for _ in range(rc.inference_actors)]
        card: ModelCard = ray.get(self.inference[0].card.remote(), timeout=PLACE_TIMEOUT_S)
        source_class = ray.remote(max_restarts=rc.max_restarts, max_task_retries=0)(SourceActor)
        actors: list[tuple[SourceEntry, Any]] = []
        for entry in self.job.entries:
            spec = entry.spec
            if "://" not in spec and not spec.isdigit() and spec != "demo" and Path(spec).exists():
                spec = str(Path(spec).resolve())  # actors do not share the driver's working directory
            actors.append(
                (entry, source_class.options(num_cpus=rc.source_cpus).remote(spec, entry.config, self.config))
            )
        try:
            described = [
                (entry, actor, *ray.get(actor.describe.remote(), timeout=PLACE_TIMEOUT_S)) for entry, actor in actors
            ]
        except GetTimeoutError:
            raise UserError(
                f"the cluster could not place {len(actors)} source actors in {PLACE_TIMEOUT_S:.0f} s "
                f"(each reserves ray.source_cpus={rc.source_cpus} CPUs; lower it or add nodes)"
            ) from None
        usable: list[tuple[SourceEntry, Any, SourceInfo, str]] = []
        for entry, actor, info, error, node in described:
            if info is None:
                self.unopened.append((entry.name or entry.spec, SourceError(error or "cannot open")))
                ray.kill(actor, no_restart=True)
            else:
                usable.append((entry, actor, info, node))
        self.job.unopened(self.unopened)
        names = unique_names([entry.name or info.stem for entry, _, info, _ in usable])
        for name, (entry, actor, info, node) in zip(names, usable, strict=True):
            session = session_for(self.config, name, info, card, self.job.live_view, self.job.on_frame, entry.config)
            session.node = node
            self.sources.append(RemoteSource(session, actor))
        built = self._start_actors()
        for source, node_built in zip(self.sources, built, strict=True):
            source.runtimes = node_built["runtimes"]
        self.emotion_runtime = card.description
        models = _across_nodes([b["models"] for b in built])
        declared = list(self.job.run_sources) or names
        write_declaration(self.out_dir, self.config, {**models, "emotion": card.name}, declared, self._runtimes())

    def _start_actors(self) -> list[dict[str, dict[str, str]]]:
        """Start every source actor; what each built. One actor per node first, then the others, each group at
        once: the first on a node fills its caches (the detectors' exports and `auto` timings, made once per
        machine), so that the others neither export the same files side by side nor time the runtimes while
        competing for the same cores."""
        first_on: dict[str, int] = {}
        for i, s in enumerate(self.sources):
            first_on.setdefault(s.session.node, i)
        leads = list(first_on.values())
        built: dict[int, dict[str, dict[str, str]]] = {}
        for group in (leads, [i for i in range(len(self.sources)) if i not in leads]):
            started = ray.get([self.sources[i].actor.start.remote(0) for i in group])
            built.update(zip(group, started, strict=True))
        return [built[i] for i in range(len(self.sources))]

    def _runtimes(self) -> dict[str, str]:
        return {**_across_nodes([s.runtimes for s in self.sources]), "emotion": self.emotion_runtime}

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> RunReport:
        stop = self.job.stop
        started = time.monotonic()
        last_status = 0.0
        sessions = [s.session for s in self.sources]
        metrics = self.out_dir / "metrics.json"
        with RunMonitor(self.job.console, self.job.show_status, self.job.live_view, metrics) as monitor:
            try:
                while not stop.is_set() and self.error is None and not all(s.done for s in self.sources):
                    self._request_frames()
                    self._submit_batches()
                    self._wait_and_handle()
                    self._fail_drained()
                    if time.monotonic() - last_status > STATUS_EVERY_S:
                        last_status = time.monotonic()
                        self._refresh_figures()
                        monitor.update(sessions)
            except KeyboardInterrupt:  # library use without the CLI's graceful handler
                stop.set()
            finally:
                self._fail_drained(force=True)
                self._last_word()
                self._close()
            monitor.update(sessions)
        return RunReport(
            [s.session.report() for s in self.sources],
            self.unopened,
            interrupted=stop.is_set() and self.error is None,
            error=self.error,
            seconds=time.monotonic() - started,
            batches=self.batches,
            persons_inferred=self.persons_inferred,
        )

    def _request_frames(self) -> None:
        for s in self.sources:
            if s.next_ref is None and not s.ended and not s.session.failed and len(s.queue) < 2:
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
                stale = s.queue.popleft()
                s.queue[0] = carry_over(stale, s.queue[0])  # its gap and ended tracks are not lost with it
                s.dropped_here += 1

    def _on_source_died(self, s: RemoteSource) -> None:
        session = s.session
        session.restarts += 1
        if session.restarts > self.config.ray.max_restarts:
            session.fail(SourceError(f"{session.name}: its actor died {session.restarts} times; giving up"))
            return
        logger.warning("%s: source actor died; restarting it (restart %d)", session.name, session.restarts)
        # Every track of the dead actor ends with the next frame; the new tracker's ids follow the old ones.
        s.pending_end = tuple(session.stage.bank.track_ids)
        s.id_offset = s.max_id
        if s.info.is_live:
            s.index_offset = s.next_index + s.index_offset
            s.pts_offset = s.last_pts + 1.0 / (s.info.fps or 25.0)
            session.outputs.new_segment()
        skip = 0 if s.info.is_live else s.next_index
        deadline = time.monotonic() + PLACE_TIMEOUT_S
        while True:
            try:
                ray.get(s.actor.start.remote(skip))
                return
            except ActorUnavailableError:  # Ray is still bringing it back: ask again shortly
                if time.monotonic() > deadline:
                    session.fail(SourceError(f"{session.name}: its actor did not come back in {PLACE_TIMEOUT_S:.0f} s"))
                    return
                time.sleep(0.5)
            except RayActorError as exc:
                session.fail(SourceError(f"{session.name}: its actor cannot be restarted ({exc})"))
                return

    def _finish(self, s: RemoteSource, tracked: TrackedFrame, due: tuple[int, ...], inferred: Sequence[Any]) -> None:
        if s.pending_end:
            tracked = replace(tracked, ended=tuple(sorted({*tracked.ended, *s.pending_end})))
            s.pending_end = ()
        result = s.session.smooth(tracked, due, list(inferred))
        s.session.write(result)

    def _take(self, s: RemoteSource) -> tuple[TrackedFrame, tuple[int, ...]] | None:
        """A source's next frame for the batch being built (it is then in a batch until it is finished)."""
        if not s.queue or s.in_batch or s.session.failed:
            return None
        tracked = s.queue.popleft()
        s.in_batch = True
        return tracked, s.session.plan(tracked)

    def _submit_batches(self) -> None:
        """Batches as the planner builds them; one needing no model call is finished here, at once."""
        while True:
            running = [s for s in self.sources if not s.done]
            self.planner.fill(running, self._take)
            can_join = sum(1 for s in running if not s.in_batch)
            if not self.planner.ready(can_join):
                return
            if self.planner.persons == 0:
                for item in self.planner.take():
                    item.key.in_batch = False
                    self._finish(item.key, item.tracked, (), [])
                continue
            busy = [sum(1 for b in self.in_flight.values() if b.actor_index == k) for k in range(len(self.inference))]
            actor_index = int(np.argmin(busy))
            if busy[actor_index] >= self.config.ray.max_in_flight:
                return  # back-pressure: the batch waits (and may still fill up)
            self._send(_Batch(self.planner.take(), actor_index))

    def _send(self, batch: _Batch) -> None:
        requests = [EmotionStage.request(item.tracked, item.due) for item in batch.items if item.due]
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
            except RayTaskError as exc:  # the source's own error (a stream gone for good): it ends alone, once
                s.ended = True  # the frames it delivered before are written (see _fail_drained)
                s.error = cause_of(exc)

    def _fail_drained(self, force: bool = False) -> None:
        """Sources whose own error came behind frames fail once those are written (or, `force`, now)."""
        for s in self.sources:
            if s.error is not None and (force or (not s.queue and not s.in_batch)):
                s.session.fail(s.error)
                s.error = None

    def _on_inference(self, ref: Any, batch: _Batch) -> None:
        try:
            answers = iter(ray.get(ref))
        except RayActorError:
            logger.warning("inference actor %d died: replacing it and resending its batch", batch.actor_index)
            self.inference[batch.actor_index] = self._new_inference()
            self._send(batch)
            return
        except RayTaskError as exc:  # the model itself failed: the run ends, as on the local backend
            self.error = cause_of(exc)
            return
        self.batches += 1
        for item in batch.items:
            item.key.in_batch = False
            self.persons_inferred += len(item.due)
            self._finish(item.key, item.tracked, item.due, next(answers) if item.due else [])

    # -- figures and the end ------------------------------------------------------------------

    def _refresh_figures(self, final: bool = False) -> None:
        """Each source's figures (reconnects, stale frames dropped) and detector runtimes, from its actor: the
        running ones, or with `final` every one still answering (an ended source's last reconnect counts too),
        before the actors close. At most 5 s in all; an actor that does not answer keeps its last figures."""
        asked = [s for s in self.sources if final or (not s.session.failed and not s.ended)]
        refs = {id(s): s.actor.stats.remote() for s in asked}
        ready = set(ray.wait(list(refs.values()), num_returns=len(refs), timeout=5)[0]) if refs else set()
        for s in asked:
            if refs[id(s)] not in ready:
                continue
            try:
                figures = ray.get(refs[id(s)])
            except (RayActorError, RayTaskError):
                continue
            s.session.reconnects = figures["reconnects"]
            s.session.dropped = figures["dropped"] + s.dropped_here
            s.runtimes = figures["runtimes"]

    def _last_word(self) -> None:
        """The actors' last figures, then run.json's runtimes as they ended (a size met on the way may have run
        otherwise)."""
        try:
            self._refresh_figures(final=True)
        except Exception as exc:  # the cluster itself is gone: the figures and runtimes last heard stand
            logger.warning("the source actors could not be asked for their last figures (%s)", first_line(exc))
        declare_runtimes(self.out_dir, self._runtimes())

    def _close(self) -> None:
        for s in self.sources:
            s.session.close()
            with contextlib.suppress(Exception):  # a dead actor has nothing left to close
                ray.get(s.actor.close.remote(), timeout=15)
            with contextlib.suppress(Exception):  # already gone
                ray.kill(s.actor, no_restart=True)
        for actor in self.inference:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)

    def abandon(self) -> None:
        """Start-up was cut short (Ctrl+C, an error): release what was opened, write nothing."""
        self._close()


def _across_nodes(per_actor: list[dict[str, str]]) -> dict[str, str]:
    """Each role's value over the source actors: one, or those seen, where nodes chose differently (a GPU node
    and a CPU node resolve `auto` to different runtimes)."""
    roles = dict.fromkeys(role for built in per_actor for role in built)
    return {role: " / ".join(sorted({built[role] for built in per_actor if role in built})) for role in roles}
