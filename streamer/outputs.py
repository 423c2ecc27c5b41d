"""What one source writes: a list of sinks behind one protocol, opened from the config.

Every output is a `FrameSink` — `write(annotated, result)` and `close()` —
so a source's outputs are a list, the same for one source or many:

- a video or a recorded file: `<out>/<stem>.mp4` + `<out>/<stem>.jsonl`;
- a live source: timestamped MP4 segments + one JSONL;
- an image (a one-frame source): `<out>/<stem>_annotated.<ext>` + `<out>/<stem>.json`.

Per frame the sinks are written in order (the video before the JSONL), and
a frame whose video write failed gets no JSONL line: the JSONL never
describes a frame the video lacks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from streamer.claim import OutputClaim, claim_outputs
from streamer.config import SinkConfig
from streamer.errors import OutputError, UserError
from streamer.results import frame_to_json, person_to_json
from streamer.safe_names import is_safe_name
from streamer.sinks import JsonlSink, SegmentedVideoSink, VideoSink, write_image, write_json
from streamer.sources import SourceInfo
from streamer.types import FrameResult

logger = logging.getLogger(__name__)

IMAGE_WRITE_SUFFIXES = (".png", ".jpg", ".jpeg")


class FrameSink(Protocol):
    """Where annotated frames and their results go."""

    def write(self, annotated: np.ndarray, result: FrameResult) -> None:
        """Write one frame; raises OutputError naming the output when it cannot."""
        ...

    def close(self) -> None:
        """Finalize; raises OutputError when that fails (what was written stays readable)."""
        ...


class VideoOutput:
    """The annotated video, with each frame's own timestamp."""

    def __init__(self, sink: VideoSink | SegmentedVideoSink) -> None:
        self.sink = sink

    @property
    def paths(self) -> list[Path]:
        return self.sink.paths if isinstance(self.sink, SegmentedVideoSink) else [self.sink.path]

    @property
    def frames(self) -> int:
        return self.sink.frames

    def write(self, annotated: np.ndarray, result: FrameResult) -> None:
        self.sink.write(annotated, result.frame.pts_s)

    def close(self) -> None:
        self.sink.close()


class JsonlOutput:
    """One JSON line per frame."""

    def __init__(self, sink: JsonlSink, model_name: str) -> None:
        self.sink = sink
        self.model_name = model_name

    @property
    def paths(self) -> list[Path]:
        return [self.sink.path]

    @property
    def lines(self) -> int:
        return self.sink.lines

    def write(self, annotated: np.ndarray, result: FrameResult) -> None:
        self.sink.write(frame_to_json(result, self.model_name))

    def close(self) -> None:
        self.sink.close()


class ImageOutput:
    """An image source's annotated picture."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def write(self, annotated: np.ndarray, result: FrameResult) -> None:
        write_image(self.path, annotated)

    def close(self) -> None:
        pass


class ImageJsonOutput:
    """An image source's per-person records as one JSON document (no smoothing: one frame)."""

    def __init__(self, path: Path, image_name: str, model_name: str) -> None:
        self.path = path
        self.image_name = image_name
        self.model_name = model_name

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def write(self, annotated: np.ndarray, result: FrameResult) -> None:
        records = []
        for person, emotion in zip(result.persons, result.raw, strict=True):
            record = person_to_json(person, emotion, None)
            del record["smoothed"]
            records.append(record)
        document = {
            "image": self.image_name,
            "width": result.frame.width,
            "height": result.frame.height,
            "model": self.model_name,
            "persons": records,
        }
        write_json(self.path, document)

    def close(self) -> None:
        pass


@dataclass
class Outputs:
    """The sinks of one source, written together and always closed together."""

    sinks: list[FrameSink] = field(default_factory=list)
    claim: OutputClaim | None = None

    @property
    def paths(self) -> list[Path]:
        return [p for sink in self.sinks for p in getattr(sink, "paths", [])]

    def count(self, kind: type) -> int:
        """Frames (video) or lines (JSONL) written so far by the sink of this kind; 0 without one."""
        for sink in self.sinks:
            if isinstance(sink, kind):
                return sink.frames if isinstance(sink, VideoOutput) else getattr(sink, "lines", 0)
        return 0

    def write(self, annotated: np.ndarray, result: FrameResult) -> None:
        for sink in self.sinks:
            sink.write(annotated, result)

    def close(self) -> OutputError | None:
        """Close every sink, even when one fails; the first failure is returned, not raised."""
        first: OutputError | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except OutputError as exc:
                first = first or exc
        if self.claim is not None:
            self.claim.release()
        return first


def _refuse_overwriting_input(output: Path, source_path: Path | None) -> None:
    if source_path is not None and source_path.exists() and output.resolve() == source_path.resolve():
        raise UserError(f"output {output} would overwrite the input; choose another --out folder")


def _patterns(info: SourceInfo, sink: SinkConfig) -> list[str]:
    """The files a run of this source writes, as patterns of the stem (for the claim)."""
    if info.kind == "image":
        return ["{stem}.json"]
    if info.is_live:
        return ["{stem}.jsonl", "{stem}_001.mp4"]
    return [p for p, on in (("{stem}.jsonl", sink.jsonl), ("{stem}.mp4", sink.video)) if on]


def open_outputs(sink: SinkConfig, info: SourceInfo, stem: str, model_name: str, out_dir: Path) -> Outputs:
    """Claim `<out>/<stem>.*` and build this source's sinks (they open lazily on the first frame)."""
    if not is_safe_name(stem):  # names from outside go through source_list.unique_names first
        raise ValueError(f"output name {stem!r} is not a safe file name")
    if info.is_live:
        stem = f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}"
    source_path = Path(info.display_name) if info.kind in ("file", "image") else None
    claim = claim_outputs(out_dir, stem, unique=info.is_live, existing=_patterns(info, sink))
    outputs = Outputs(claim=claim)
    try:
        _add_sinks(outputs, sink, info, claim.stem, model_name, out_dir, source_path)
    except BaseException:
        claim.release()
        raise
    return outputs


def _add_sinks(
    outputs: Outputs,
    sink: SinkConfig,
    info: SourceInfo,
    stem: str,
    model_name: str,
    out_dir: Path,
    source_path: Path | None,
) -> None:
    if info.kind == "image":
        suffix = source_path.suffix.lower() if source_path else ".png"
        image_path = out_dir / f"{stem}_annotated{suffix if suffix in IMAGE_WRITE_SUFFIXES else '.png'}"
        json_path = out_dir / f"{stem}.json"
        for path in (image_path, json_path):
            _refuse_overwriting_input(path, source_path)
        outputs.sinks += [ImageOutput(image_path), ImageJsonOutput(json_path, info.display_name, model_name)]
        return
    for suffix in (".mp4", ".jsonl"):
        _refuse_overwriting_input(out_dir / f"{stem}{suffix}", source_path)
    if sink.video and info.is_live:
        segments = SegmentedVideoSink(out_dir, stem, info.fps, sink.segment_s, sink.crf, sink.preset, sink.fragment_s)
        outputs.sinks.append(VideoOutput(segments))
    elif sink.video:
        video = VideoSink(out_dir / f"{stem}.mp4", info.time_base, info.fps, sink.crf, sink.preset, sink.fragment_s)
        outputs.sinks.append(VideoOutput(video))
    if sink.jsonl:
        outputs.sinks.append(JsonlOutput(JsonlSink(out_dir / f"{stem}.jsonl"), model_name))
