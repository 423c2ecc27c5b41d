"""What every frame source is: its `Source` protocol, the `SourceInfo` the pipeline reads, and its kind.

The sources themselves live beside this module: `container` (video files and
http(s) links to them, decoded with PyAV), `live` (cameras and network
streams that reconnect), `still` (an image as a one-frame source) and `demo`
(the embedded clip); `pixels` turns decoded frames into BGR arrays no larger
than 8K UHD. `streamer.sources.open_source` picks one from what the
user typed; `entries` turns `--source`/`--sources` into the list of them.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Protocol

# OpenCV before PyAV, in every module that loads PyAV (the other order makes cv2.imshow hang).
import cv2  # noqa: F401

import av

from streamer.sources.ffmpeg_limits import MAX_ALLOC_BYTES
from streamer.types import Frame

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class SourceKind(enum.Enum):
    """What a source is; its value is the word the logs and the status use."""

    FILE = "file"
    IMAGE = "image"
    DEMO = "demo"
    CAMERA = "camera"
    STREAM = "stream"


@dataclass(frozen=True)
class SourceInfo:
    """What the rest of the pipeline needs to know about a source.

    Attributes:
        display_name: safe to print (passwords masked).
        stem: base name for output files.
        kind: what the source is (a file, an image, the demo, a camera or a stream).
        is_live: frames arrive in real time (drop-stale policy, reconnects).
        width: frame width.
        height: frame height.
        fps: nominal frame rate, if known.
        frame_count_hint: frames the header claims (for the progress bar only;
            headers lie: pedestrians_vtest.avi claims 682 and decodes 341).
        time_base: the timestamps' unit, so sinks can keep them exact.
    """

    display_name: str
    stem: str
    kind: SourceKind
    is_live: bool
    width: int
    height: int
    fps: float | None
    frame_count_hint: int | None
    time_base: Fraction


class Source(Protocol):
    """A stream of frames.

    Attributes:
        info: what the pipeline needs to know of it.
        reconnects: how often a live source reconnected so far (0 for the others).
    """

    info: SourceInfo
    reconnects: int

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Every frame until the source ends or `stop` is set (a finite source flags its last frame)."""
        ...

    def close(self) -> None:
        """Release the file, camera or connection."""
        ...


def ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's reason without the file name or URL it repeats."""
    if isinstance(exc, av.error.MemoryError):
        # Rarely the machine's memory: a packet that grew past the ceiling (a part that never ends).
        return f"{exc.strerror or 'out of memory'}: a packet or frame over FFmpeg's {MAX_ALLOC_BYTES >> 20} MB limit?"
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    text = str(exc).split(": '", 1)[0]
    return text or type(exc).__name__


def open_failure(exc: BaseException, took_s: float, timeout_s: float) -> str:
    """Why opening a network source failed. Given up at the open timeout, FFmpeg says "Immediate exit
    requested" or "Invalid data found" (RTSP): what happened is that nothing answered in time."""
    if took_s >= 0.95 * timeout_s and isinstance(exc, (av.error.ExitError, av.error.InvalidDataError, TimeoutError)):
        return f"no answer within {timeout_s:g} s; source.open_timeout_s waits longer"
    return ffmpeg_reason(exc)


def mark_last(frames: Iterator[Frame]) -> Iterator[Frame]:
    """Flag the final frame of a finite stream (one frame of lookahead)."""
    previous: Frame | None = None
    for frame in frames:
        if previous is not None:
            yield previous
        previous = frame
    if previous is not None:
        yield replace(previous, is_last=True)
