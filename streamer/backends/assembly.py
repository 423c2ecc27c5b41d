"""Assembly: what a run is built from, apart from running it (both backends build with these).

- `build_components`: the models, loaded once per process.
- `open_sources`: source entries opened, each under a safe, unique output name
  (a source that cannot open is reported, not raised).
- `detect_track_stage_for`: a source's detect+track stage.
- `session_for`: a source's `SourceSession` (emotion stage, overlay, outputs).
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cocoer_core.api import EmotionModel
from streamer.backends.base import ModelFactory, OnFrame
from streamer.backends.session import SourceSession
from streamer.config import AppConfig, SourceConfig
from streamer.detectors import FacePersonDetector, build_detector
from streamer.detectors.base import PersonDetector
from streamer.errors import UserError
from streamer.outputs import ensure_writable_dir, open_outputs
from streamer.privacy.declaration import video_tags
from streamer.privacy.retention import manifest_for
from streamer.privacy.zones import ZoneFilter, parse_zones
from streamer.sources import (
    Source,
    SourceInfo,
    SourceKind,
    close_source,
    opened_here,
    opens_in_calling_thread,
    when_slow,
)
from streamer.sources.aside import Aside
from streamer.sources.entries import SourceEntry, unique_names
from streamer.stages.detect_track import DetectTrackStage
from streamer.stages.emotion import EmotionStage, ModelCard
from streamer.stages.interval import AdaptiveInterval, highest_for
from streamer.stages.models import build_emotion_model, resolve_device
from streamer.stages.pipeline import QueuePolicy
from streamer.stages.smoothing import SmoothingBank
from streamer.view.overlay import OverlayRenderer
from streamer.view.web.board import CountsViewOutput, LiveBoard, LiveViewOutput
from trackers import TrackerConfig, build_tracker

logger = logging.getLogger(__name__)


@dataclass
class Components:
    """The models a run needs, built once and shared by every source."""

    device: str
    model_device: str
    detector: FacePersonDetector
    model: EmotionModel | None

    @property
    def card(self) -> ModelCard:
        return ModelCard.of(self.model)


def model_device(config: AppConfig) -> str:
    """Where the emotion model runs: `emotion.device`, or (auto) wherever `device` says."""
    return resolve_device(config.emotion.device if config.emotion.device != "auto" else config.device)


def build_model(config: AppConfig, device: str, factory: ModelFactory | None = None) -> EmotionModel | None:
    """The emotion model: the factory's when one is given, else the one `emotion.model` asks for."""
    make: ModelFactory = factory or build_emotion_model
    return make(config.emotion, device)


def build_components(config: AppConfig, model_factory: ModelFactory | None = None) -> Components:
    """Detectors on `device`, the emotion model on `emotion.device` (auto: follows `device`); one log line each."""
    device = resolve_device(config.device)
    model_on = model_device(config)
    detector = build_detector(config.detector, device)
    model = build_model(config, model_on, model_factory)
    # One short line for people; why auto chose as it did (files missing, downloads off) is for --debug.
    logger.debug("%s", detector.describe())
    emotion = model.description if model else "none"
    logger.info("models: %s; emotion %s (%s)", detector.summary(), emotion, model_on)
    return Components(device, model_on, detector, model)


@dataclass(frozen=True)
class OpenedSource:
    """A source that opened, with its unique output name and its own settings."""

    name: str
    source: Source
    config: SourceConfig


#: How many sources open at once: each may wait out its open timeout, and a folder of a thousand videos should
#: not start a thousand threads.
OPEN_AT_ONCE = 8


def open_sources(entries: Sequence[SourceEntry]) -> tuple[list[OpenedSource], list[tuple[str, UserError]]]:
    """Open every entry, several at once; the ones that fail are returned with their one-line error, not raised.

    Files and URLs open in threads of their own (`Aside`), `OPEN_AT_ONCE` at a time in the order given: a
    camera that does not answer costs its timeout once, and Ctrl+C reaches the caller at once (FFmpeg's
    blocking open dropped it). Whatever was opened is closed when the wait is cut short.
    """
    aside = deque(i for i, entry in enumerate(entries) if not opens_in_calling_thread(entry.spec))
    openings: dict[int, Aside[Source]] = {}

    def start_more() -> None:
        while aside and len(openings) < OPEN_AT_ONCE:
            index = aside.popleft()
            call = functools.partial(opened_here, entries[index].spec, entries[index].config)
            openings[index] = Aside(call, f"open-{index}", close_source)

    opened: list[tuple[SourceEntry, Source]] = []
    failed: list[tuple[str, UserError]] = []
    current: Aside[Source] | None = None
    try:
        start_more()
        for index, entry in enumerate(entries):
            current = openings.pop(index, None)  # started already: the ones before it are taken
            try:
                source = (
                    opened_here(entry.spec, entry.config) if current is None else current.result(when_slow(entry.spec))
                )
            except UserError as exc:
                failed.append((entry.name or entry.spec, exc))
                continue
            finally:
                start_more()  # once this one has ended: never more than OPEN_AT_ONCE at work
            opened.append((entry, source))
    except BaseException:
        for pending in [current, *openings.values()]:
            if pending is not None:
                pending.abandon()  # what it opens is closed (nothing, if its source was taken)
        for _, source in opened:
            source.close()
        raise
    names = unique_names([entry.name or source.info.stem for entry, source in opened])
    return [OpenedSource(n, s, e.config) for n, (e, s) in zip(names, opened, strict=True)], failed


def queue_policy(info: SourceInfo, config: SourceConfig) -> QueuePolicy:
    """`source.policy`, where `auto` means newest-frame for live sources and no-drop for the others."""
    if config.policy == "auto":
        return QueuePolicy.LATEST if info.is_live else QueuePolicy.BLOCK
    return QueuePolicy(config.policy)


#: Live, the edges after capture hold this many items: work already done is kept through a burst (see pipeline.py).
LIVE_BURST = 4


def queue_sizes(config: AppConfig, policy: QueuePolicy, interval: int = 1) -> tuple[int, int]:
    """The capture edge's size and the later edges' (detect->emotion, emotion->output) for a source's policy.

    Live, the capture edge holds one detection cycle (`interval` frames): a
    detection frame takes longer than a frame's time and the predicted ones
    after it almost none, so it is the cycle that must keep up, not each frame.
    """
    if policy is QueuePolicy.LATEST:
        first = max(config.live_queue_size, interval)
        return first, max(first, LIVE_BURST)
    return config.queue_size, config.queue_size


def warm_up(detector: PersonDetector, info: SourceInfo) -> None:
    """One detection on a black frame of a live source's size before its stream opens: the first camera frame
    then doesn't pay for what a new size sets up (CenterNet's ONNX session, or its export at a size never
    seen: seconds), while the camera's frames pile up and are dropped as stale."""
    if info.is_live and info.width > 1 and info.height > 1:
        detector.detect(np.zeros((info.height, info.width, 3), np.uint8))


def zones_for(config: AppConfig, source: SourceConfig) -> ZoneFilter:
    """A source's zones: the run's (privacy.mask, analysis.ignore) and its own (a sources file's mask/ignore)."""
    masks = (parse_zones(config.privacy.mask, "privacy.mask"), parse_zones(source.mask, "source.mask"))
    ignores = (parse_zones(config.analysis.ignore, "analysis.ignore"), parse_zones(source.ignore, "source.ignore"))
    return ZoneFilter.of(masks, ignores)


def detect_track_stage_for(
    config: AppConfig,
    detector: PersonDetector,
    kind: SourceKind,
    source: SourceConfig,
    device: str,
    live: bool = False,
    fps: float | None = None,
) -> DetectTrackStage:
    """A source's detect+track stage (both backends build it here), with its zones.

    A live source's `detector.interval: auto` adapts to what keeps it in real time (`AdaptiveInterval`).
    """
    # A still image needs no identities over time (nor a detection interval).
    image = kind is SourceKind.IMAGE
    interval = 1 if image else config.detector.interval_for(live)
    auto = live and not image and config.detector.interval == "auto"
    adaptive = AdaptiveInterval(interval, highest_for(fps)) if auto else None
    tracker = build_tracker(TrackerConfig(kind="none") if image else config.tracker, device, interval)
    return DetectTrackStage(detector, tracker, source.keep_tracks_s, interval, zones_for(config, source), adaptive)


def session_for(
    config: AppConfig,
    name: str,
    info: SourceInfo,
    card: ModelCard,
    live_view: LiveBoard | None = None,
    on_frame: OnFrame | None = None,
    source: SourceConfig | None = None,
) -> SourceSession:
    """A source's session: its smoothing, its overlay and its outputs (its files are claimed here)."""
    bank = SmoothingBank(config.smoothing, card.label_rule)
    stage = EmotionStage(card, bank, config.emotion.stride, config.emotion.min_face_px)
    # A still image's overlay has no fps or latency line.
    overlay = config.overlay if info.kind is not SourceKind.IMAGE else replace(config.overlay, show_stats=False)
    renderer = OverlayRenderer(overlay, card.description, notice=config.privacy.notice)
    out_dir = ensure_writable_dir(Path(config.sink.out_dir).expanduser())
    aggregate = config.privacy.mode == "aggregate"
    interval_s = config.privacy.interval_s if aggregate else None
    tags = video_tags(config, zones_for(config, source or config.source))
    outputs = open_outputs(config.sink, info, name, out_dir, interval_s, tags)
    if live_view is not None:
        view = (
            CountsViewOutput(live_view, name, config.privacy.interval_s)
            if aggregate
            else LiveViewOutput(live_view, name)
        )
        outputs.sinks.append(view)
    return SourceSession(
        name,
        info,
        stage,
        renderer,
        outputs,
        on_frame,
        report_at_end=config.sink.report,
        privacy=config.privacy,
        window=config.sink.display,
        manifest=manifest_for(out_dir),
    )
