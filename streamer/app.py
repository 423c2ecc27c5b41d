"""Assembly: what a run is built from, apart from running it.

`build_components` loads the models once per process. `open_sources` turns
source entries into opened sources (a source that cannot open is reported
and left out). `prepare_runs` builds each source's stages, queues and
outputs, and `analyze` runs them all on the local backend. `run_video` is
the one-source shorthand the benchmarks use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from cocoer_core.api import EmotionModel
from cocoer_core.postprocess import LabelRule
from streamer.backends.local import OnFrame, RunReport, SourceRun, run_local
from streamer.config import AppConfig, OverlayConfig, SourceConfig
from streamer.detectors import FacePersonDetector, build_detector
from streamer.detectors.base import PersonDetector
from streamer.detectors.shared import SharedDetector
from streamer.display import GridWindow
from streamer.emotion import build_emotion_model, resolve_device
from streamer.errors import UserError
from streamer.inference_worker import InferenceWorker, Lane
from streamer.outputs import open_outputs
from streamer.overlay import OverlayRenderer
from streamer.pipeline import EdgeQueue, ErrorRelay, Pipeline
from streamer.sinks import ensure_writable_dir
from streamer.smoothing import SmoothingBank
from streamer.source_list import SourceEntry, unique_names
from streamer.sources import Source, SourceInfo, open_source
from streamer.stages import DetectTrackStage, EmotionStage
from streamer.types import FrameResult
from streamer.web.board import LiveBoard
from trackers import Tracker, TrackerConfig, build_tracker

logger = logging.getLogger(__name__)


@dataclass
class Components:
    """The models a run needs, built once and shared by every source."""

    device: str
    model_device: str
    detector: FacePersonDetector
    model: EmotionModel | None

    @property
    def model_name(self) -> str:
        return self.model.name if self.model else "none"

    @property
    def model_description(self) -> str:
        return self.model.description if self.model else "no emotion model"

    @property
    def label_rule(self) -> LabelRule:
        return self.model.label_rule if self.model else LabelRule(None, None)


def build_components(config: AppConfig) -> Components:
    """Detectors on `device`, the emotion model on `emotion.device` (auto: follows `device`); one log line each."""
    device = resolve_device(config.device)
    model_device = resolve_device(config.emotion.device) if config.emotion.device != "auto" else device
    detector = build_detector(config.detector, device)
    model = build_emotion_model(config.emotion, model_device)
    logger.info("%s", detector.describe())
    logger.info("emotion model: %s on %s", model.description if model else "none", model_device)
    return Components(device, model_device, detector, model)


@dataclass(frozen=True)
class OpenedSource:
    """A source that opened, with its unique output name and its own settings."""

    name: str
    source: Source
    config: SourceConfig


def open_sources(entries: Sequence[SourceEntry]) -> tuple[list[OpenedSource], list[tuple[str, UserError]]]:
    """Open every entry; the ones that fail are returned with their one-line error, not raised."""
    opened: list[tuple[SourceEntry, Source]] = []
    failed: list[tuple[str, UserError]] = []
    for entry in entries:
        try:
            opened.append((entry, open_source(entry.spec, entry.config)))
        except UserError as exc:
            failed.append((entry.name or entry.spec, exc))
    names = unique_names([entry.name or source.info.stem for entry, source in opened])
    return [OpenedSource(n, s, e.config) for n, (e, s) in zip(names, opened, strict=True)], failed


def _policy(source: Source, config: SourceConfig) -> str:
    return config.policy if config.policy != "auto" else ("latest" if source.info.is_live else "block")


def emotion_stage_for(config: AppConfig, model: EmotionModel | None, rule: LabelRule) -> EmotionStage:
    """A source's side of the inference worker: its own smoothing, the run's stride and batch settings."""
    return EmotionStage(
        model,
        SmoothingBank(config.smoothing, rule),
        config.emotion.stride,
        config.emotion.min_face_px,
        config.emotion.batch_size,
    )


def renderer_for(config: AppConfig, info: SourceInfo, model_description: str) -> OverlayRenderer:
    """The overlay of one source; a still image's has no fps or latency line."""
    overlay = config.overlay if info.kind != "image" else OverlayConfig(**{**vars(config.overlay), "show_stats": False})
    return OverlayRenderer(overlay, model_description)


def detect_track_stage_for(
    config: AppConfig,
    detector: PersonDetector,
    kind: str,
    keep_tracks_s: float,
    device: str,
    tracker: Tracker | None = None,
) -> DetectTrackStage:
    """A source's detect+track stage (both backends build it here)."""
    # A still image needs no identities over time (nor a detection interval).
    image = kind == "image"
    interval = 1 if image else config.detector.interval
    tracker = tracker or build_tracker(TrackerConfig(kind="none") if image else config.tracker, device, interval)
    return DetectTrackStage(detector, tracker, keep_tracks_s, interval)


def prepare_run(
    config: AppConfig,
    opened: OpenedSource,
    components: Components,
    tracker: Tracker | None = None,
    detector: PersonDetector | None = None,
) -> SourceRun:
    """One source's stages, queues and outputs (its files are claimed here)."""
    source, info = opened.source, opened.source.info
    policy = _policy(source, opened.config)
    size = config.live_queue_size if policy == "latest" else config.queue_size
    detect = detect_track_stage_for(
        config, detector or components.detector, info.kind, opened.config.keep_tracks_s, components.device, tracker
    )
    pipeline = Pipeline(source.frames, [("detect+track", detect.process)], size, policy)
    emotion = emotion_stage_for(config, components.model, components.label_rule)
    lane = Lane(
        opened.name, pipeline.outbox, EdgeQueue[FrameResult](f"emotion->output:{opened.name}", size, policy), emotion
    )
    out_dir = ensure_writable_dir(Path(config.sink.out_dir).expanduser())
    outputs = open_outputs(config.sink, info, opened.name, components.model_name, out_dir)
    renderer = renderer_for(config, info, components.model_description)
    return SourceRun(opened.name, source, pipeline, lane, outputs, renderer, model_name=components.model_name)


def analyze(
    config: AppConfig,
    sources: Sequence[OpenedSource],
    components: Components,
    console: Console | None = None,
    show_status: bool = True,
    stop: threading.Event | None = None,
    on_frame: OnFrame | None = None,
    trackers: Sequence[Tracker | None] | None = None,
    board: LiveBoard | None = None,
) -> RunReport:
    """Analyze every source in this process with one shared inference worker; write each one's outputs.

    Setting `stop` (the CLI does on Ctrl+C/SIGTERM) ends the run after the
    frame each source is writing; then, as after any error, every thread is
    stopped and joined and every output finalized before this returns.
    Per-source failures are in the report, not raised.
    """
    stop = stop or threading.Event()
    runs: list[SourceRun] = []
    shared = _shared_detector(config, components, len(sources))
    try:
        for k, opened in enumerate(sources):
            lane = shared.lane() if shared else None
            runs.append(prepare_run(config, opened, components, trackers[k] if trackers else None, lane))
    except BaseException:
        for run in runs:
            run.outputs.close()
        for opened in sources:
            opened.source.close()
        if shared:
            shared.close()
        raise
    worker_stop = threading.Event()
    worker = InferenceWorker(
        components.model,
        [run.lane for run in runs],
        config.emotion.batch_size,
        config.emotion.batch_wait_ms / 1000.0,
        worker_stop,
        ErrorRelay(worker_stop),
    )
    window = None
    if config.sink.display:
        if GridWindow.available():
            window = GridWindow(f"CocoER - {runs[0].source.info.display_name}" if len(runs) == 1 else "CocoER")
        else:
            logger.warning("no display available: running headless (--display ignored)")
    try:
        return run_local(runs, worker, stop, console, show_status, window, on_frame, board)
    finally:
        if shared:
            shared.close()


def _shared_detector(config: AppConfig, components: Components, sources: int) -> SharedDetector | None:
    """One batched detector for all sources: CUDA and several sources (or `detector.batch_sources: yes`)."""
    choice = config.detector.batch_sources
    if choice == "no" or sources < 2 or (choice == "auto" and not components.device.startswith("cuda")):
        return None
    return SharedDetector(components.detector, config.detector.batch_wait_ms)


def run_video(
    config: AppConfig,
    source: Source,
    components: Components,
    console: Console | None = None,
    show_progress: bool = True,
    tracker: Tracker | None = None,
    on_frame: OnFrame | None = None,
    stop: threading.Event | None = None,
) -> RunReport:
    """One source through `analyze` (the benchmarks' entry point); its failure is raised."""
    opened = OpenedSource(source.info.stem, source, config.source)
    report = analyze(config, [opened], components, console, show_progress, stop, on_frame, [tracker])
    error = report.error or report.sources[0].error
    if error is not None:
        raise error
    return report
