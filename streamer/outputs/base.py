"""What every output is: the `FrameSink` protocol, and one source's outputs written and closed together."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

# OpenCV before PyAV, in every module that loads PyAV (the other order makes cv2.imshow hang).
import cv2  # noqa: F401

import av
import numpy as np

from cocoer_core.whole_files import write_text_whole
from streamer.errors import OutputError, UserError
from streamer.outputs.claim import OutputClaim

if TYPE_CHECKING:
    from streamer.outputs.records import FrameRecord


class FrameSink(Protocol):
    """Where annotated frames and their records go (a video, the JSONL, an image, the live web view).

    `paths` are the files it writes (none for the web view); `new_segment` is
    called when a live source's capture restarted (a video starts a new file;
    the others carry on).
    """

    @property
    def paths(self) -> list[Path]: ...

    def write(self, annotated: np.ndarray, record: FrameRecord) -> None:
        """Write one frame; raises OutputError naming the output when it cannot."""
        ...

    def new_segment(self) -> None: ...

    def close(self) -> None:
        """Finalize; raises OutputError when that fails (what was written stays readable)."""
        ...


@dataclass
class Outputs:
    """The sinks of one source, written together in order and always closed together.

    Per frame the sinks are written in order (the video before the JSONL), so
    a frame whose video write failed gets no JSONL line: the JSONL never
    describes a frame the video lacks.
    """

    sinks: list[FrameSink] = field(default_factory=list)
    claim: OutputClaim | None = None

    @property
    def paths(self) -> list[Path]:
        return [p for sink in self.sinks for p in sink.paths]

    def write(self, annotated: np.ndarray, record: FrameRecord) -> None:
        for sink in self.sinks:
            sink.write(annotated, record)

    def new_segment(self) -> None:
        for sink in self.sinks:
            sink.new_segment()

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


def reason(exc: BaseException) -> str:
    """An OS or FFmpeg error's reason, without the file name it repeats."""
    if isinstance(exc, (OSError, av.error.FFmpegError)) and exc.strerror:
        return str(exc.strerror)
    return str(exc).split(": '", 1)[0] or type(exc).__name__


def ensure_writable_dir(path: Path) -> Path:
    """Create the output folder, or fail with one line if that's impossible."""
    if path.exists() and not path.is_dir():
        raise UserError(f"output path {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"output folder {path} is not writable")
    return path


def write_json(path: Path, document: dict[str, Any]) -> None:
    """A whole JSON document, written atomically (temp file + rename): never half a file."""
    try:
        write_text_whole(path, json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({reason(exc)})") from exc
