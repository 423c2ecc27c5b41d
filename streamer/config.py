"""The configuration tree: typed dataclasses, loaded from YAML, overridden from the CLI.

Defaults live here; `configs/default.yaml` mirrors this tree key for key with a
comment on every key. Unknown keys fail with their full path (OmegaConf's
structured merge), so a typo never passes silently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from streamer.errors import UserError
from streamer.privacy.retention import parse_age, parse_bytes
from streamer.privacy.use import CONTEXTS, PURPOSES
from streamer.privacy.zones import parse_zones
from trackers.base import TrackerConfig


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _tristate(value: object) -> str:
    """auto | yes | no, also when YAML (or --set) read yes/no as a boolean."""
    text = str(value).lower()
    return {"true": "yes", "on": "yes", "false": "no", "off": "no"}.get(text, text)


def _check_min(name: str, value: float, low: float, inclusive: bool = True) -> None:
    if value < low or (not inclusive and value == low):
        raise ValueError(f"{name} must be {'>=' if inclusive else '>'} {low}; got {value}")


def _check_within(name: str, value: float, low: float, high: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be within {low:g}..{high:g}; got {value}")


def _check_finite(config: Any, prefix: str = "") -> None:
    """Every number in a config tree is finite: `nan` passes every `<` and `>` check and would reach FFmpeg's
    timeouts, the smoothing and the thresholds as it is."""
    for item in fields(config):
        value = getattr(config, item.name)
        if is_dataclass(value):
            _check_finite(value, f"{prefix}{item.name}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{prefix}{item.name} must be a finite number; got {value}")


#: libx264's speed presets (anything else fails only when the first frame is encoded).
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)


@dataclass
class SourceConfig:
    """Where frames come from and what to do when they come faster than we process."""

    spec: str = "demo"
    live: str = "auto"
    policy: str = "auto"
    rtsp_transport: str = "tcp"
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    stream_probe_s: float = 0.04
    pace: str = "auto"
    reconnect: bool = True
    reconnect_attempts: int = 0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    keep_tracks_s: float = 5.0
    max_frames: int = 0
    demo_seconds: float = 6.0
    demo_fps: int = 25
    mask: list[Any] = field(default_factory=list)
    ignore: list[Any] = field(default_factory=list)
    #: Run-wide (the run's `source.*`, not a sources file entry's): when every source is a file or a photo,
    #: this many run at a time, the next ones as they end (0: all at once). See streamer/backends/turns.py.
    files_at_once: int = 8

    def __post_init__(self) -> None:
        # This source's own zones (a sources file's `mask:`/`ignore:`), added to privacy.mask/analysis.ignore.
        parse_zones(self.mask, "source.mask")
        parse_zones(self.ignore, "source.ignore")
        self.live = _tristate(self.live)
        _check_choice("source.live", self.live, ("auto", "yes", "no"))
        _check_choice("source.policy", self.policy, ("auto", "block", "latest"))
        _check_choice("source.rtsp_transport", self.rtsp_transport, ("tcp", "udp"))
        self.pace = _tristate(self.pace)
        _check_choice("source.pace", self.pace, ("auto", "yes", "no"))
        if not self.spec.strip():
            raise ValueError("source.spec is empty: give a video file, an image, a camera index, a URL or 'demo'")
        _check_min("source.max_frames", self.max_frames, 0)
        _check_min("source.reconnect_attempts", self.reconnect_attempts, 0)
        for name in (
            "open_timeout_s",
            "read_timeout_s",
            "stream_probe_s",
            "backoff_initial_s",
            "backoff_max_s",
            "demo_seconds",
        ):
            _check_min(f"source.{name}", getattr(self, name), 0.0, inclusive=False)
        _check_min("source.keep_tracks_s", self.keep_tracks_s, 0.0)
        _check_min("source.demo_fps", self.demo_fps, 1)
        _check_min("source.files_at_once", self.files_at_once, 0)


#: `detector.interval: auto` on live sources starts at detection on every 2nd frame (the tracker's predictions
#: between; 0.006 less person recall on PETS09 than every frame, bench/mot.py), then follows what the machine
#: keeps up with (`streamer.stages.interval`: from every frame to 0.2 s apart).
LIVE_INTERVAL = 2


@dataclass
class DetectorConfig:
    """Which person and face detectors to use, and their thresholds."""

    face: str = "auto"
    person: str = "auto"
    face_min_score: float = 0.9
    person_min_score: float = 0.5
    centernet_min_score: float = 0.4
    centernet_input: int = 640
    min_face_px: int = 20
    max_side: int = 1280
    bodies_from_faces: bool = True
    face_search: str = "frame"
    interval: int | str = "auto"  # auto, or detect every n-th frame
    batch_sources: str = "auto"
    batch_wait_ms: float = 5.0
    insightface_root: str = "~/.insightface"
    models_dir: str = "~/.cache/cocoer/models"
    allow_download: bool = False
    runtime: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        _check_choice("detector.face", self.face, ("auto", "insightface", "mtcnn", "haar", "none"))
        _check_choice("detector.runtime", self.runtime, ("auto", "torch", "onnxruntime"))
        _check_choice("detector.person", self.person, ("auto", "insightface", "centernet", "hog", "none"))
        _check_choice("detector.face_search", self.face_search, ("frame", "persons"))
        if str(self.interval) != "auto":
            try:
                self.interval = int(self.interval)
            except ValueError:
                raise ValueError(f"detector.interval must be auto or a whole number; got {self.interval!r}") from None
            _check_min("detector.interval", self.interval, 1)
        self.batch_sources = _tristate(self.batch_sources)
        _check_choice("detector.batch_sources", self.batch_sources, ("auto", "yes", "no"))
        _check_min("detector.batch_wait_ms", self.batch_wait_ms, 0.0)
        _check_min("detector.centernet_input", self.centernet_input, 32)
        _check_min("detector.threads", self.threads, 0)
        for score in ("face_min_score", "centernet_min_score"):  # person_min_score is also HOG's SVM margin: any number
            _check_within(f"detector.{score}", getattr(self, score), 0.0, 1.0)
        _check_min("detector.min_face_px", self.min_face_px, 0)
        _check_min("detector.max_side", self.max_side, 0)  # 0: frames searched at their own size

    def interval_for(self, live: bool) -> int:
        """`interval`, where auto is 2 for live sources (where it then adapts; see LIVE_INTERVAL), 1 for others."""
        return (LIVE_INTERVAL if live else 1) if self.interval == "auto" else int(self.interval)


@dataclass
class EmotionConfig:
    """The emotion model and how the worker stage runs it."""

    model: str = "auto"
    weights: str = "checkpoints"
    device: str = "auto"
    precision: str = "auto"
    runtime: str = "auto"
    stride: int = 1
    min_face_px: int = 0
    batch_size: int = 16
    batch_wait_ms: float = 5.0
    face_margin: float = 0.0
    final_threshold: float = 0.26
    level_threshold: float = 0.6
    inside_lr: float = 1.0
    trust_checkpoint: bool = False
    allow_download: bool = False

    def __post_init__(self) -> None:
        _check_choice("emotion.model", self.model, ("auto", "cocoer", "baseline", "none"))
        _check_choice("emotion.precision", self.precision, ("auto", "fp32", "fp16", "bf16"))
        _check_choice("emotion.runtime", self.runtime, ("auto", "torch", "onnxruntime"))
        if self.stride < 1:
            raise ValueError(f"emotion.stride must be >= 1; got {self.stride}")
        if self.batch_size < 1:
            raise ValueError(f"emotion.batch_size must be >= 1; got {self.batch_size}")
        _check_min("emotion.batch_wait_ms", self.batch_wait_ms, 0.0)
        _check_min("emotion.min_face_px", self.min_face_px, 0)
        _check_within("emotion.face_margin", self.face_margin, 0.0, 2.0)
        _check_within("emotion.final_threshold", self.final_threshold, 0.0, 1.0)
        _check_within("emotion.level_threshold", self.level_threshold, 0.0, 1.0)
        _check_min("emotion.inside_lr", self.inside_lr, 0.0)


@dataclass
class SmoothingConfig:
    """Per-track temporal smoothing of the model's scores."""

    half_life_s: float = 0.4
    hysteresis: float = 0.05
    exclusion_window: int = 15
    uncertain_below: float = 0.5
    uncertain_margin: float = 0.15

    def __post_init__(self) -> None:
        if not (0.0 <= self.uncertain_below <= 1.0 and 0.0 <= self.uncertain_margin <= 1.0):
            raise ValueError("smoothing.uncertain_below and smoothing.uncertain_margin must be within 0..1")
        _check_within("smoothing.hysteresis", self.hysteresis, 0.0, 1.0)
        if self.half_life_s < 0:
            raise ValueError(f"smoothing.half_life_s must be >= 0; got {self.half_life_s}")
        if self.exclusion_window < 1:
            raise ValueError("smoothing.exclusion_window must be >= 1")


@dataclass
class OverlayConfig:
    """What the renderer draws."""

    top_k: int = 3
    detail: str = "auto"
    show_levels: bool = True
    show_exclusion: bool = True
    show_legend: bool = True
    show_stats: bool = True

    def __post_init__(self) -> None:
        _check_choice("overlay.detail", self.detail, ("auto", "compact", "full"))
        _check_min("overlay.top_k", self.top_k, 1)


@dataclass
class SinkConfig:
    """What gets written, and where."""

    out_dir: str = "recordings"
    video: bool = True
    jsonl: bool = True
    crf: int = 20
    preset: str = "veryfast"
    segment_s: float = 600.0
    fragment_s: float = 2.0
    display: bool = False
    report: bool = True

    def __post_init__(self) -> None:
        _check_choice("sink.preset", self.preset, X264_PRESETS)
        if not 0 <= self.crf <= 51:
            raise ValueError(f"sink.crf must be 0..51; got {self.crf}")
        _check_min("sink.segment_s", self.segment_s, 0.0)
        _check_min("sink.fragment_s", self.fragment_s, 0.0, inclusive=False)
        if not self.out_dir.strip():
            raise ValueError("sink.out_dir is empty")


@dataclass
class RayConfig:
    """The Ray backend (`--backend ray`): where the cluster is and how the work is placed on it."""

    address: str = ""
    inference_actors: int = 1
    gpus_per_actor: float = -1.0
    source_cpus: float = 1.0
    max_in_flight: int = 2
    max_restarts: int = 3
    connect_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        _check_min("ray.connect_timeout_s", self.connect_timeout_s, 0.0, inclusive=False)
        _check_min("ray.inference_actors", self.inference_actors, 1)
        _check_min("ray.max_in_flight", self.max_in_flight, 1)
        _check_min("ray.source_cpus", self.source_cpus, 0.0)
        _check_min("ray.max_restarts", self.max_restarts, 0)


@dataclass
class PrivacyConfig:
    """What of the people filmed leaves the process (see streamer/privacy/)."""

    faces: str = "blur"
    face_margin: float = 0.25
    notice: str = "Emotion recognition in use"
    display_faces: bool = False
    mask: list[Any] = field(default_factory=list)
    mode: str = "full"
    interval_s: float = 60.0

    def __post_init__(self) -> None:
        parse_zones(self.mask, "privacy.mask")
        _check_choice("privacy.mode", self.mode, ("full", "aggregate"))
        _check_min("privacy.interval_s", self.interval_s, 0.0, inclusive=False)
        if self.faces.lower() in ("false", "no"):  # YAML (and --set) read a bare `off` as a boolean
            self.faces = "off"
        _check_choice("privacy.faces", self.faces, ("blur", "pixelate", "fill", "off"))
        _check_within("privacy.face_margin", self.face_margin, 0.0, 2.0)
        if len(self.notice) > 200 or "\n" in self.notice:
            raise ValueError("privacy.notice must be one line of at most 200 characters")


@dataclass
class AnalysisConfig:
    """Who is analysed: nobody inside an `ignore` zone (see streamer/privacy/zones.py)."""

    ignore: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        parse_zones(self.ignore, "analysis.ignore")


@dataclass
class RetentionConfig:
    """How long this tool's own outputs are kept (see streamer/outputs/retention.py)."""

    max_age: str = ""
    max_bytes: str = ""
    check_every_s: float = 3600.0

    def __post_init__(self) -> None:
        parse_age(self.max_age)
        parse_bytes(self.max_bytes)
        _check_min("retention.check_every_s", self.check_every_s, 1.0)


@dataclass
class UseConfig:
    """Where the tool runs and why: declared by the operator, recorded with the outputs, checked at start."""

    context: str = "unspecified"
    purpose: str = "unspecified"

    def __post_init__(self) -> None:
        _check_choice("use.context", self.context, CONTEXTS)
        _check_choice("use.purpose", self.purpose, PURPOSES)


@dataclass
class AppConfig:
    """Everything one run needs."""

    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    use: UseConfig = field(default_factory=UseConfig)
    backend: str = "local"
    queue_size: int = 8
    live_queue_size: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_finite(self)
        if self.queue_size < 1 or self.live_queue_size < 1:
            raise ValueError(f"queue sizes must be >= 1; got {self.queue_size}, {self.live_queue_size}")
        _check_choice("device", self.device, ("auto", "cpu", "cuda"))
        _check_choice("backend", self.backend, ("local", "ray"))


def read_problem(exc: BaseException) -> str:
    """Why a text file could not be read, in a few words (never the bytes that broke it)."""
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    return type(exc).__name__


def _load_yaml(path: Path) -> DictConfig:
    """A YAML config file as a mapping, or one line naming the file and what is wrong."""
    if not path.exists():
        raise UserError(f"config file {path} not found")
    if not path.is_file():
        raise UserError(f"config file {path} is not a file")
    try:
        loaded = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"config file {path} is not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"cannot read config file {path} ({read_problem(exc)})") from None
    if not isinstance(loaded, DictConfig):
        raise UserError(f"config file {path} must be a mapping of sections (source:, detector:, ...), not a list")
    return loaded


def _omegaconf_message(exc: OmegaConfBaseException) -> str:
    """OmegaConf's first line, prefixed with the key it is about when it does not already name it."""
    message = str(exc).splitlines()[0]
    key = getattr(exc, "full_key", None)
    if "is not a ListConfig" in message:  # a scalar where a list goes (zones): say it plainly
        message = "must be a list (zones: a list of polygons, each a list of [x, y] points)"
    if key and str(key) not in message:
        return f"{key}: {message}"
    return message


def load_config(yaml_path: str | Path | None = None, overrides: Sequence[str] = ()) -> AppConfig:
    """Defaults, then a YAML file, then `a.b=c` overrides; typed and validated.

    Raises:
        UserError: a missing or malformed file, an unknown key, a bad value.
    """
    try:
        merged = OmegaConf.structured(AppConfig)
        if yaml_path is not None:
            merged = OmegaConf.merge(merged, _load_yaml(Path(yaml_path)))
        if overrides:
            for item in overrides:
                if "=" not in item:
                    raise UserError(f"--set expects KEY=VALUE, got {item!r}")
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise UserError(f"bad configuration: {_omegaconf_message(exc)}") from exc
    except ValueError as exc:
        raise UserError(f"bad configuration: {exc}") from exc
    if not isinstance(config, AppConfig):  # OmegaConf.to_object of a structured AppConfig
        raise TypeError(f"configuration did not build an AppConfig: {type(config).__name__}")
    return config
