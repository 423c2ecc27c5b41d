"""Running the main job: a video stream or a single image, end to end.

The main thread owns rendering, the sinks, the window and the progress bar;
capture, detect+track and the emotion worker run in the pipeline's threads.
Sinks are closed in `finally`, so what was written is playable even after
Ctrl+C, SIGTERM or an error in a stage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2

import numpy as np
from rich.console import Console

from cocoer_core.api import EmotionModel
from cocoer_core.postprocess import LabelRule
from streamer.claim import OutputClaim, claim_outputs
from streamer.config import AppConfig
from streamer.detectors import FacePersonDetector, build_detector
from streamer.emotion import build_emotion_model, resolve_device
from streamer.errors import OutputError, UserError
from streamer.overlay import OverlayRenderer, OverlayStats
from streamer.pipeline import Pipeline, PipelineStats
from streamer.progress import ProgressReporter, RateMeter
from streamer.results import frame_to_json, person_to_json
from streamer.sinks import (
    DisplaySink,
    JsonlSink,
    SegmentedVideoSink,
    VideoSink,
    ensure_writable_dir,
    write_image,
    write_json,
)
from streamer.smoothing import SmoothingBank
from streamer.sources import Source, SourceInfo
from streamer.stages import DetectTrackStage, EmotionStage, region_of
from streamer.types import Frame, FrameResult
from trackers import FrameLocalTracker, Tracker, build_tracker

logger = logging.getLogger(__name__)


@dataclass
class Components:
    """The models a run needs, built once."""

    device: str
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
    """Detector and emotion model on the chosen device; logs one line naming each."""
    device = resolve_device(config.emotion.device if config.emotion.device != "auto" else config.device)
    detector = build_detector(config.detector, device)
    model = build_emotion_model(config.emotion, device)
    logger.info("%s", detector.describe())
    logger.info("emotion model: %s on %s", model.description if model else "none", device)
    return Components(device, detector, model)


@dataclass
class RunSummary:
    """What a run produced."""

    frames: int = 0
    video_paths: list[Path] = field(default_factory=list)
    jsonl_path: Path | None = None
    video_frames: int = 0
    jsonl_lines: int = 0
    dropped: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)


def _refuse_overwriting_input(output: Path, source_path: Path | None) -> None:
    if source_path is not None and source_path.exists() and output.resolve() == source_path.resolve():
        raise UserError(f"output {output} would overwrite the input; choose another --out folder")


@dataclass
class Outputs:
    """The sinks of one run, written together and always closed together.

    Per frame the video is written before the JSONL line, and a frame whose
    video write failed gets no line: the JSONL never describes a frame the
    video lacks.
    """

    model_name: str
    claim: OutputClaim | None = None
    video: VideoSink | SegmentedVideoSink | None = None
    jsonl: JsonlSink | None = None
    display: DisplaySink | None = None

    def write(self, annotated: np.ndarray, result: FrameResult) -> bool:
        """Write one frame everywhere; False when the user closed the window. Raises OutputError."""
        if self.video is not None:
            self.video.write(annotated, result.frame.pts_s)
        if self.jsonl is not None:
            self.jsonl.write(frame_to_json(result, self.model_name))
        if self.display is not None:
            self.display.write(annotated)
            return not self.display.closed_by_user
        return True

    def close(self) -> OutputError | None:
        """Close every sink, even when one fails; the first failure is returned, not raised."""
        first: OutputError | None = None
        for sink in (self.video, self.jsonl, self.display):
            if sink is None:
                continue
            try:
                sink.close()
            except OutputError as exc:
                first = first or exc
        if self.claim is not None:
            self.claim.release()
        return first


def open_outputs(config: AppConfig, info: SourceInfo, model_name: str, summary: RunSummary) -> Outputs:
    """`<out>/<stem>.mp4` (live: timestamped segments) and `.jsonl`, plus the window if asked for."""
    out_dir = ensure_writable_dir(Path(config.sink.out_dir).expanduser())
    stem = info.stem if not info.is_live else f"{info.stem}_{time.strftime('%Y%m%d-%H%M%S')}"
    source_path = Path(info.display_name) if info.kind == "file" else None
    for suffix in (".mp4", ".jsonl"):
        _refuse_overwriting_input(out_dir / f"{stem}{suffix}", source_path)
    written = [p for p, on in (("{stem}.jsonl", config.sink.jsonl), ("{stem}.mp4", config.sink.video)) if on]
    if info.is_live:
        written = ["{stem}.jsonl", "{stem}_001.mp4"]
    outputs = Outputs(model_name, claim_outputs(out_dir, stem, unique=info.is_live, existing=written))
    stem = outputs.claim.stem if outputs.claim else stem
    if config.sink.video and info.is_live:
        outputs.video = SegmentedVideoSink(
            out_dir, stem, info.fps, config.sink.segment_s, config.sink.crf, config.sink.preset, config.sink.fragment_s
        )
        summary.video_paths = outputs.video.paths  # filled as segments open
    elif config.sink.video:
        path = out_dir / f"{stem}.mp4"
        summary.video_paths = [path]
        outputs.video = VideoSink(
            path, info.time_base, info.fps, config.sink.crf, config.sink.preset, config.sink.fragment_s
        )
    if config.sink.jsonl:
        summary.jsonl_path = out_dir / f"{stem}.jsonl"
        outputs.jsonl = JsonlSink(summary.jsonl_path)
    if config.sink.display:
        if DisplaySink.available():
            outputs.display = DisplaySink(f"CocoER - {info.display_name}")
        else:
            logger.warning("no display available: running headless (--display ignored)")
    return outputs


def build_pipeline(
    config: AppConfig, source: Source, components: Components, tracker: Tracker | None = None
) -> Pipeline:
    """capture -> detect+track -> emotion worker, with the source kind's queue policy."""
    policy = config.source.policy if config.source.policy != "auto" else ("latest" if source.info.is_live else "block")
    tracker = tracker or build_tracker(config.tracker, components.device)
    detect_stage = DetectTrackStage(components.detector, tracker, config.source.keep_tracks_s)
    emotion_stage = EmotionStage(
        components.model,
        SmoothingBank(config.smoothing, components.label_rule),
        config.emotion.stride,
        config.emotion.min_face_px,
        config.emotion.batch_size,
    )
    return Pipeline(
        source.frames,
        [("detect+track", detect_stage.process), ("emotion", emotion_stage.process)],
        config.live_queue_size if policy == "latest" else config.queue_size,
        policy,
    )


def run_video(
    config: AppConfig,
    source: Source,
    components: Components,
    console: Console | None = None,
    show_progress: bool = True,
    tracker: Tracker | None = None,
    on_frame: Callable[[FrameResult, PipelineStats], None] | None = None,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Analyze a stream; write `<out>/<stem>.mp4` (live: segments) and `<out>/<stem>.jsonl`.

    `on_frame` is called in the main thread after each frame is rendered and
    written (benchmarks read latency and queue fill there). Setting `stop`
    (the CLI does on Ctrl+C/SIGTERM) ends the run after the frame being
    written; then, as after any error, every thread is stopped and joined and
    every output finalized before this returns or raises.

    Raises:
        OutputError: an output could not be written or finalized (what was written still plays).
    """
    info = source.info
    summary = RunSummary()
    try:
        outputs = open_outputs(config, info, components.model_name, summary)
    except BaseException:
        source.close()
        raise
    pipeline = build_pipeline(config, source, components, tracker)
    renderer = OverlayRenderer(config.overlay, components.model_description)
    meter = RateMeter()
    started = time.monotonic()
    total = info.frame_count_hint if not info.is_live else None
    progress = ProgressReporter(console or Console(stderr=True), info.display_name, total, show_progress)
    pipeline.start()
    failure: BaseException | None = None
    try:
        with progress:
            for result in pipeline.results(until=stop):
                fps = meter.tick()
                latency_ms = 1000.0 * (time.monotonic() - result.frame.captured_at)
                annotated = renderer.annotate(
                    result.frame.image.copy(), result, OverlayStats(fps, latency_ms, pipeline.stats.dropped)
                )
                keep_going = outputs.write(annotated, result)
                summary.frames += 1
                if not keep_going:
                    break
                progress.update(
                    summary.frames, fps, pipeline.stats.dropped, max(pipeline.stats.fills().values(), default=0.0)
                )
                if on_frame is not None:
                    on_frame(result, pipeline.stats)
    except KeyboardInterrupt:
        summary.interrupted = True
    except OutputError as exc:
        failure = exc
    finally:
        error = _finalize(pipeline, source, outputs, summary, started)
    if stop is not None and stop.is_set():
        summary.interrupted = True
    if summary.interrupted:
        logger.warning("interrupted: the files written so far are finalized")
    if failure is not None or error is not None:
        raise failure or error  # type: ignore[misc]
    return summary


def _finalize(
    pipeline: Pipeline, source: Source, outputs: Outputs, summary: RunSummary, started: float
) -> BaseException | None:
    """Stop and join every thread, close every output and the source; return the first error instead of raising.

    Order matters: upstream stops producing first, the outputs are finalized
    (the part a user cares about), then the threads are joined, so one failing
    step never skips the others (a skipped join used to abort the process).
    """
    pipeline.stop.set()
    error: BaseException | None = outputs.close()
    summary.video_frames = outputs.video.frames if outputs.video is not None else 0
    summary.jsonl_lines = outputs.jsonl.lines if outputs.jsonl is not None else 0
    summary.dropped = pipeline.stats.dropped
    summary.seconds = time.monotonic() - started
    summary.stage_ms = {name: t.mean_ms for name, t in pipeline.stats.stages.items()}
    try:
        pipeline.close()
    except Exception as exc:
        error = error or exc
    finally:
        source.close()
    return error


@dataclass
class ImageSummary:
    """What the single-image mode produced."""

    image_path: Path
    json_path: Path
    persons: int


def load_image(path: Path) -> np.ndarray:
    """A photo as BGR, or one clear error."""
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path} is not a readable image")
    return np.ascontiguousarray(image)


def run_image(config: AppConfig, path: Path, image: np.ndarray, components: Components) -> ImageSummary:
    """Analyze one photo; write `<out>/<stem>_annotated<ext>` and `<out>/<stem>.json`."""
    out_dir = ensure_writable_dir(Path(config.sink.out_dir).expanduser())
    frame = Frame(str(path), 0, 0.0, time.monotonic(), image, is_last=True)
    persons = FrameLocalTracker().update(frame, components.detector.detect(image)).persons
    raw = (
        tuple(components.model.predict(image, [region_of(p) for p in persons]))
        if components.model and persons
        else (None,) * len(persons)
    )
    result = FrameResult(frame, persons, raw, raw)
    overlay = replace(config.overlay, show_stats=False)  # no fps or latency for a still image
    annotated = OverlayRenderer(overlay, components.model_description).annotate(image.copy(), result)
    image_path = (
        out_dir
        / f"{path.stem}_annotated{path.suffix.lower() if path.suffix.lower() in ('.png', '.jpg', '.jpeg') else '.png'}"
    )
    json_path = out_dir / f"{path.stem}.json"
    _refuse_overwriting_input(json_path, path)
    write_image(image_path, annotated)
    records = []
    for person, emotion in zip(persons, raw, strict=True):
        record = person_to_json(person, emotion, None)
        del record["smoothed"]
        records.append(record)
    write_json(
        json_path,
        {
            "image": str(path),
            "width": image.shape[1],
            "height": image.shape[0],
            "model": components.model_name,
            "persons": records,
        },
    )
    return ImageSummary(image_path, json_path, len(persons))
