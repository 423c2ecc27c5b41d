"""What one source writes: a list of `FrameSink`s behind one protocol, opened from the config.

- a video or a recorded file: `<out>/<name>.mp4` (`video`) + `<out>/<name>.jsonl` (`records`);
- a live source: timestamped MP4 segments + one JSONL;
- an image (a one-frame source): `<out>/<name>_annotated.<ext>` + `<out>/<name>.json` (`still`);
- in aggregate-only mode (`privacy.mode: aggregate`), whatever the source: `<out>/<name>.counts.jsonl`
  alone (`counts`): no video, no image, nothing per person.

A run claims `<out>/<name>.*` before it writes (`claim`); the live web view
is one more sink of the same protocol (`streamer.view.web`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from streamer.config import SinkConfig
from streamer.errors import UserError
from streamer.outputs.base import FrameSink, Outputs, ensure_writable_dir
from streamer.outputs.claim import claim_outputs
from streamer.outputs.counts import CountsOutput
from streamer.outputs.records import JsonlOutput
from streamer.outputs.still import ImageJsonOutput, ImageOutput
from streamer.outputs.video import SEGMENT_TIME_BASE, VideoOutput
from streamer.safe_names import is_safe_name
from streamer.sources import SourceInfo, SourceKind

logger = logging.getLogger(__name__)

IMAGE_WRITE_SUFFIXES = (".png", ".jpg", ".jpeg")

__all__ = ["FrameSink", "Outputs", "ensure_writable_dir", "open_outputs", "refuse_overwriting_input"]


def _image_path(out_dir: Path, stem: str, source_path: Path | None) -> Path:
    suffix = source_path.suffix.lower() if source_path else ".png"
    return out_dir / f"{stem}_annotated{suffix if suffix in IMAGE_WRITE_SUFFIXES else '.png'}"


def _source_path(info: SourceInfo) -> Path | None:
    return Path(info.display_name) if info.kind in (SourceKind.FILE, SourceKind.IMAGE) else None


def refuse_overwriting_input(info: SourceInfo, stem: str, out_dir: Path) -> None:
    """UserError when an output of this source would be the source's own file (`--out` its folder). The run
    checks it before its models load, and `open_outputs` before anything is claimed or written."""
    source_path = _source_path(info)
    if source_path is None or not source_path.exists():
        return
    if info.kind is SourceKind.IMAGE:
        outputs = [_image_path(out_dir, stem, source_path), out_dir / f"{stem}.json"]
    else:
        outputs = [out_dir / f"{stem}{suffix}" for suffix in (".mp4", ".jsonl", ".counts.jsonl")]
    for output in outputs:
        if output.resolve() == source_path.resolve():
            raise UserError(f"output {output} would overwrite the input; choose another --out folder")


def _patterns(info: SourceInfo, sink: SinkConfig, aggregate: bool) -> list[str]:
    """The files a run of this source writes, as patterns of the stem (for the claim)."""
    if aggregate:
        return ["{stem}.counts.jsonl"]
    if info.kind is SourceKind.IMAGE:
        return ["{stem}.json"]
    if info.is_live:
        return ["{stem}.jsonl", "{stem}_001.mp4"]
    return [p for p, on in (("{stem}.jsonl", sink.jsonl), ("{stem}.mp4", sink.video)) if on]


def open_outputs(
    sink: SinkConfig,
    info: SourceInfo,
    stem: str,
    out_dir: Path,
    aggregate_s: float | None = None,
    tags: dict[str, str] | None = None,
) -> Outputs:
    """Claim `<out>/<stem>.*` and build this source's sinks (they open lazily on the first frame).

    `aggregate_s`: aggregate-only mode, counts per that many seconds and nothing else. `tags`: the
    videos' metadata (the run's privacy settings and declared use).
    """
    if not is_safe_name(stem):  # names from outside go through sources.entries.unique_names first
        raise ValueError(f"output name {stem!r} is not a safe file name")
    if info.is_live:
        stem = f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}"
    refuse_overwriting_input(info, stem, out_dir)
    source_path = _source_path(info)
    claim = claim_outputs(out_dir, stem, unique=info.is_live, existing=_patterns(info, sink, aggregate_s is not None))
    outputs = Outputs(claim=claim)
    try:
        if aggregate_s is not None:
            outputs.sinks.append(CountsOutput(out_dir / f"{claim.stem}.counts.jsonl", aggregate_s))
        else:
            outputs.sinks += _sinks(sink, info, claim.stem, out_dir, source_path, tags)
    except BaseException:
        claim.release()
        raise
    return outputs


def _sinks(
    sink: SinkConfig, info: SourceInfo, stem: str, out_dir: Path, source_path: Path | None, tags: dict[str, str] | None
) -> list[FrameSink]:
    if info.kind is SourceKind.IMAGE:
        image_path = _image_path(out_dir, stem, source_path)
        return [ImageOutput(image_path), ImageJsonOutput(out_dir / f"{stem}.json", info.display_name)]
    sinks: list[FrameSink] = []
    if sink.video:
        # Live: a new file every segment_s, on the RTP clock; a file: one MP4 with the input's own time base.
        time_base, segment_s = (SEGMENT_TIME_BASE, sink.segment_s) if info.is_live else (info.time_base, None)
        sinks.append(
            VideoOutput(out_dir, stem, info.fps, time_base, segment_s, sink.crf, sink.preset, sink.fragment_s, tags)
        )
    if sink.jsonl:
        sinks.append(JsonlOutput(out_dir / f"{stem}.jsonl"))
    return sinks
