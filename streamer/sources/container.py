"""Finite videos: a local file or an http(s) link to one, decoded with PyAV, every frame, in order.

Frames keep the container's timestamps (reordered where a container hands
them out permuted), phone videos are turned upright, damaged packets are
skipped and counted, and a file cut short says so at the end.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

# OpenCV before PyAV, in every module that loads PyAV (the other order makes cv2.imshow hang).
import cv2  # noqa: F401

import av
import numpy as np

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.redact import redact_text, url_secrets
from streamer.sources.base import SourceInfo, SourceKind, ffmpeg_reason, mark_last, open_failure
from streamer.sources.hls_fetch import open_web
from streamer.sources.pixels import BgrConverter, fitted
from streamer.types import Frame

logger = logging.getLogger(__name__)

#: Undecodable packets in a row before the first frame after which a file counts as not a video.
MAX_SKIPPED_BEFORE_FIRST = 50
#: Frames held back to put timestamps in order (B-frames in AVI come out with permuted pts).
REORDER_WINDOW = 16


def _rotation_of(frame: av.VideoFrame) -> int:
    """Clockwise degrees (0, 90, 180, 270) to turn a decoded frame to how players show it.

    PyAV reports the display matrix's rotation counter-clockwise.
    """
    try:
        degrees = round(frame.rotation)
    except (AttributeError, TypeError, ValueError):
        return 0
    return (-degrees) % 360 // 90 * 90


def upright(image: np.ndarray, clockwise: int) -> np.ndarray:
    """The image turned clockwise by 0/90/180/270 degrees (contiguous, for OpenCV)."""
    if clockwise == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-(clockwise // 90)))


def _declared_duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """How long the header says the video is, from the stream or else the container."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1e6
    return None


def reorder_timestamps(
    decoded: Iterator[tuple[np.ndarray, float | None]], fps: float, window: int = REORDER_WINDOW
) -> Iterator[tuple[np.ndarray, float]]:
    """Give frames (already in display order) their timestamps in increasing order.

    Some containers (H.264 with B-frames in AVI, e.g. pedestrians_vtest.avi)
    label decoded frames with their packets' timestamps, which arrive permuted.
    The multiset of timestamps is right, so each frame takes the smallest one
    pending within a short lookahead. Frames without a timestamp get one from
    the frame rate. For well-formed files this changes nothing.
    """
    pending_images: deque[np.ndarray] = deque()
    pending_pts: list[float] = []
    last = -math.inf
    try:
        for count, (image, pts_s) in enumerate(decoded):
            if pts_s is None:
                pts_s = max(last + 1.0 / fps, count / fps)
            last = max(last, pts_s)
            pending_images.append(image)
            heapq.heappush(pending_pts, pts_s)
            if len(pending_images) > window:
                yield pending_images.popleft(), heapq.heappop(pending_pts)
    except Exception:
        # Decoding failed midway: the frames held back are good ones, never thrown away.
        while pending_images:
            yield pending_images.popleft(), heapq.heappop(pending_pts)
        raise
    while pending_images:
        yield pending_images.popleft(), heapq.heappop(pending_pts)


def open_container(
    target: str, display_name: str, config: SourceConfig, is_url: bool = False
) -> av.container.InputContainer:
    """The container at a path or URL, or one line saying why not (credentials masked)."""
    started = time.monotonic()
    try:
        if is_url:
            return open_web(target, config.open_timeout_s, config.read_timeout_s)
        return av.open(target)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, TimeoutError) as exc:
        what = "cannot open" if is_url else "is not a readable video"
        why = open_failure(exc, time.monotonic() - started, config.open_timeout_s) if is_url else ffmpeg_reason(exc)
        reason = redact_text(why, url_secrets(target) if is_url else ())
        message = f"{what} {display_name} ({reason})" if is_url else f"{display_name} {what} ({reason})"
        raise SourceError(message) from None


def serves_a_stream(container: av.container.InputContainer) -> bool:
    """Whether an http(s) URL serves a live stream rather than a file: an MJPEG camera (multipart JPEGs, as IP
    cameras and phone webcam apps serve), an HLS playlist, or MPEG-TS/FLV of no known length. A file of no
    known length (a browser's WebM recording) is not taken for one."""
    name = container.format.name
    return name in ("mpjpeg", "hls") or (name in ("mpegts", "flv") and container.duration is None)


class ContainerSource:
    """A finite video (a local file or an http(s) link to one) decoded with PyAV, every frame, in order."""

    def __init__(
        self,
        target: str,
        display_name: str,
        stem: str,
        config: SourceConfig,
        is_url: bool = False,
        container: av.container.InputContainer | None = None,
    ) -> None:
        """`container`: the target already opened (`open_container`), else it is opened here."""
        self.target = target
        self.max_frames = config.max_frames
        self.reconnects = 0
        self._secrets = url_secrets(target) if is_url else ()
        self._container = container or open_container(target, display_name, config, is_url)
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{display_name} has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._display_name = display_name
        self._bgr = BgrConverter(display_name)
        self._skipped = 0
        self._decoded_count = 0
        self._last_time: float | None = None
        self.demux_error: str | None = None
        self._first = self._decode_first()
        # Phones store portrait video as landscape plus a display matrix: analyse and write it upright.
        self.rotation = _rotation_of(self._first)
        rate = self._stream.average_rate or self._stream.guessed_rate
        width, height = fitted(self._first.width, self._first.height)
        self.info = SourceInfo(
            display_name=display_name,
            stem=stem,
            kind=SourceKind.FILE,
            is_live=False,
            width=height if self.rotation % 180 else width,
            height=width if self.rotation % 180 else height,
            fps=float(rate) if rate else None,
            frame_count_hint=int(self._stream.frames) or None,
            time_base=self._stream.time_base or Fraction(1, round(float(rate or 25))),
        )

    def _decode_first(self) -> av.VideoFrame:
        self._decoder = self._decode_packets()
        try:
            first = next(self._decoder)
        except StopIteration:
            self._container.close()
            raise SourceError(
                f"{self._display_name} contains no decodable video frames (empty or truncated?)"
            ) from None
        except (av.error.FFmpegError, ValueError) as exc:
            self._container.close()
            raise SourceError(
                f"{self._display_name}: the first frame cannot be decoded ({ffmpeg_reason(exc)})"
            ) from exc
        return first

    def _decode_packets(self) -> Iterator[av.VideoFrame]:
        """Decode packet by packet, skipping the ones the decoder rejects (damaged bytes).

        A damaged stretch costs only its own frames: the decoder resynchronises
        at the next keyframe. A demuxer that breaks (the container itself is
        damaged or cut off) ends the stream with what was decoded so far.
        """
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.error.FFmpegError, ValueError) as exc:
                self.demux_error = ffmpeg_reason(exc)
                return
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                self._skipped += 1
                if self._skipped == 1:
                    logger.warning(
                        "%s: skipping undecodable data after frame %d (%s); the count follows at the end",
                        self._display_name,
                        self._decoded_count,
                        redact_text(ffmpeg_reason(exc), self._secrets),
                    )
                if self._decoded_count == 0 and self._skipped >= MAX_SKIPPED_BEFORE_FIRST:
                    raise
                continue
            for frame in frames:
                self._decoded_count += 1
                self._last_time = float(frame.time) if frame.time is not None else self._last_time
                yield frame

    def _decoded(self) -> Iterator[av.VideoFrame]:
        yield self._first
        yield from self._decoder
        self._report_damage()

    def _report_damage(self) -> None:
        """One warning at the end: skipped packets, and a file that ends before its header says."""
        name = self._display_name
        if self._skipped:
            logger.warning(
                "%s: skipped %d undecodable packet(s); kept all %d good frames",
                name,
                self._skipped,
                self._decoded_count,
            )
        expected = _declared_duration_s(self._container, self._stream)
        fps = self.info.fps or 25.0
        cut_short = (
            expected is not None
            and self._last_time is not None
            and (self._last_time + 1.0 / fps < expected - max(2.0 / fps, 0.05 * expected))
        )
        if cut_short or self.demux_error:
            header = int(self._stream.frames or 0)
            listed = f"; the header lists {header} frames" if header else ""
            why = f" ({self.demux_error})" if self.demux_error else ""
            logger.warning(
                "%s ends early: decoded %d frames up to %.1f s of %.1f s%s (file cut short?)%s",
                name,
                self._decoded_count,
                self._last_time or 0.0,
                expected or 0.0,
                listed,
                why,
            )

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        return mark_last(self._frames(stop))

    def _frames(self, stop: threading.Event) -> Iterator[Frame]:
        fps = self.info.fps or 25.0
        decoded = (
            (upright(self._bgr(d), self.rotation), float(d.time) if d.time is not None else None)
            for d in self._decoded()
        )
        for index, (image, pts_s) in enumerate(reorder_timestamps(decoded, fps)):
            if stop.is_set() or (self.max_frames and index >= self.max_frames):
                return
            yield Frame(self.info.display_name, index, pts_s, time.monotonic(), image)

    def close(self) -> None:
        self._container.close()


def file_source(path: Path, config: SourceConfig) -> ContainerSource:
    """A local video file, with the checks a path deserves before FFmpeg sees it."""
    if not path.exists():
        raise SourceError(f"no such file: {path}")
    if path.is_dir():
        raise SourceError(f"{path} is a folder, not a video file")
    return ContainerSource(str(path), str(path), path.stem, config)
