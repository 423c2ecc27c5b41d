"""What runs on the cluster's nodes: per source a `SourceActor` (capture + detect+track), and `InferenceActor`s.

Both are plain classes made Ray actors by the driver, built from the same
stages as the local backend. Their constructors keep errors instead of
raising them: a constructor that raises would look like a dead actor.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import ray

from cocoer_core.api import EmotionResult, FramePersons
from streamer.backends.assembly import (
    build_model,
    detect_track_stage_for,
    model_device,
    queue_policy,
    queue_sizes,
    warm_up,
)
from streamer.backends.base import ModelFactory
from streamer.config import AppConfig, SourceConfig
from streamer.errors import UserError
from streamer.sources import Source, SourceInfo, open_source
from streamer.stages.emotion import ModelCard, infer_batched
from streamer.stages.models import resolve_device
from streamer.stages.pipeline import END, Pipeline
from streamer.types import Frame

if TYPE_CHECKING:
    from streamer.detectors import FacePersonDetector

#: What `SourceActor.next` hands back once the source has ended.
END_MARK = "END"


class SourceActor:
    """Runs on a cluster node: one source's capture and detect+track."""

    def __init__(self, spec: str, source_config: SourceConfig, config: AppConfig) -> None:
        self.config = config
        self.source_config = source_config
        self.error: str | None = None
        self.pipeline: Pipeline | None = None
        self.source: Source | None = None
        self._ending = False  # the end was read behind frames not yet handed over
        self.detector: FacePersonDetector | None = None
        try:
            self.source = open_source(spec, source_config)
        except UserError as exc:
            self.error = str(exc)

    def describe(self) -> tuple[SourceInfo | None, str | None, str]:
        """The source's info (None when it did not open), why not, and the node it runs on."""
        return (self.source.info if self.source else None), self.error, ray.util.get_node_ip_address()

    def start(self, skip: int = 0) -> dict[str, dict[str, str]]:
        """Start capturing; frames before `skip` (already delivered before a restart) are passed over. Returns
        the detectors this node built and what runs them (`auto` resolved here, by this node's hardware)."""
        from streamer.detectors import build_detector

        source = self.source
        if source is None:
            raise UserError(self.error or "the source did not open")
        device = resolve_device(self.config.device)
        info = source.info
        self.detector = detector = build_detector(self.config.detector, device)
        warm_up(detector, info)
        detect = detect_track_stage_for(
            self.config, detector, info.kind, self.source_config, device, live=info.is_live, fps=info.fps
        )
        policy = queue_policy(info, self.source_config)

        def frames(stop: threading.Event) -> Iterator[Frame]:
            return (f for f in source.frames(stop) if f.index >= skip)

        size, later = queue_sizes(self.config, policy, detect.longest_interval)
        self.pipeline = Pipeline(frames, [("detect+track", detect.process)], size, policy, later)
        self.pipeline.start()
        return {"models": detector.models(), "runtimes": detector.runtimes()}

    def next(self, max_items: int = 4, wait_s: float = 0.2) -> list[Any]:
        """Up to `max_items` tracked frames (waiting at most `wait_s` for the first); END_MARK at the end."""
        pipeline = self.pipeline
        if pipeline is None:
            raise RuntimeError("SourceActor.next before start")
        out: list[Any] = []
        deadline = time.monotonic() + wait_s
        while len(out) < max_items:
            item = END if self._ending else pipeline.outbox.get_nowait()
            if item is END:
                if out:  # these first: closing re-raises the source's error, and a raising call returns nothing
                    self._ending = True
                    return out
                pipeline.close()  # re-raises the source's own error (a file broken for good)
                return [END_MARK]
            if item is None:
                if out or time.monotonic() > deadline:
                    return out
                time.sleep(0.005)
                continue
            out.append(item)
        return out

    def stats(self) -> dict[str, Any]:
        """Stale frames dropped on this node's queues, reconnects, and what ran each detector's network so far
        (an input size met after the start may have run otherwise)."""
        return {
            "dropped": self.pipeline.stats.dropped if self.pipeline else 0,
            "reconnects": self.source.reconnects if self.source else 0,
            "runtimes": self.detector.runtimes() if self.detector else {},
        }

    def close(self) -> None:
        if self.pipeline is not None:
            with contextlib.suppress(Exception):
                self.pipeline.close()
        if self.source is not None:
            self.source.close()


class InferenceActor:
    """Runs on a cluster node (a GPU one when asked): the emotion model, batching persons of all sources."""

    def __init__(self, config: AppConfig, model_factory: ModelFactory | None = None) -> None:
        self.model = build_model(config, model_device(config), model_factory)
        self.batch_size = config.emotion.batch_size

    def card(self) -> ModelCard:
        return ModelCard.of(self.model)

    def infer(self, requests: list[FramePersons]) -> list[list[EmotionResult | None]]:
        if self.model is None:
            return [[] for _ in requests]
        return infer_batched(self.model, requests, self.batch_size)
