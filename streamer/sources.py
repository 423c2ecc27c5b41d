"""Frame sources: video files, the demo clip, local cameras and network streams.

`open_source(spec, config)` turns what the user typed into a `Source`. Every
source yields `Frame`s from `frames(stop)`.

- Finite sources (files, the demo, http(s) links to video files) deliver
  every frame in order with the container's timestamps.
- Live sources (cameras, RTSP/RTMP/UDP/SRT, HLS playlists) stamp frames with
  the wall-clock time since the source started, so the timeline stays
  monotonic across reconnects; when the stream ends, stalls or errors they
  reconnect with exponential backoff (forever by default) and mark the first
  frame after the gap with its length.

Errors a user can fix become `SourceError`: one line, URL password masked.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2

import av
import numpy as np

from streamer.config import SourceConfig
from streamer.demo import DEMO_SIZE, demo_frame, demo_photo_bgr
from streamer.errors import SourceError
from streamer.redact import mask_url, redact_text, url_name, url_secrets
from streamer.types import Frame

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt")
NETWORK_SCHEMES = (*LIVE_SCHEMES, "http", "https")
#: Live sources: frame timestamps in 1/90000 s (the RTP video clock).
LIVE_TIME_BASE = Fraction(1, 90000)
#: Undecodable packets in a row before the first frame after which a file counts as not a video.
MAX_SKIPPED_BEFORE_FIRST = 50
#: Frames held back to put timestamps in order (B-frames in AVI come out with permuted pts).
REORDER_WINDOW = 16


@dataclass(frozen=True)
class SourceInfo:
    """What the rest of the pipeline needs to know about a source.

    Attributes:
        display_name: safe to print (passwords masked).
        stem: base name for output files.
        kind: "file", "image", "demo", "camera" or "stream".
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
    kind: str
    is_live: bool
    width: int
    height: int
    fps: float | None
    frame_count_hint: int | None
    time_base: Fraction


class Source(Protocol):
    """A stream of frames."""

    info: SourceInfo

    def frames(self, stop: threading.Event) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def _bgr(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="bgr24")


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


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's reason without the file name or URL it repeats."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    text = str(exc).split(": '", 1)[0]
    return text or type(exc).__name__


def mark_last(frames: Iterator[Frame]) -> Iterator[Frame]:
    """Flag the final frame of a finite stream (one frame of lookahead)."""
    previous: Frame | None = None
    for frame in frames:
        if previous is not None:
            yield previous
        previous = frame
    if previous is not None:
        yield replace(previous, is_last=True)


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


class ContainerSource:
    """A finite video (a local file or an http(s) link to one) decoded with PyAV, every frame, in order."""

    def __init__(self, target: str, display_name: str, stem: str, config: SourceConfig, is_url: bool = False) -> None:
        self.target = target
        self.max_frames = config.max_frames
        self._secrets = url_secrets(target) if is_url else ()
        try:
            if is_url:
                self._container = av.open(target, timeout=(config.open_timeout_s, config.read_timeout_s))
            else:
                self._container = av.open(target)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError, TimeoutError) as exc:
            what = "cannot open" if is_url else "is not a readable video"
            reason = redact_text(_ffmpeg_reason(exc), self._secrets)
            message = f"{what} {display_name} ({reason})" if is_url else f"{display_name} {what} ({reason})"
            raise SourceError(message) from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{display_name} has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._display_name = display_name
        self._skipped = 0
        self._decoded_count = 0
        self._last_time: float | None = None
        self.demux_error: str | None = None
        self._first = self._decode_first()
        # Phones store portrait video as landscape plus a display matrix: analyse and write it upright.
        self.rotation = _rotation_of(self._first)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.info = SourceInfo(
            display_name=display_name,
            stem=stem,
            kind="file",
            is_live=False,
            width=self._first.height if self.rotation % 180 else self._first.width,
            height=self._first.width if self.rotation % 180 else self._first.height,
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
                f"{self._display_name}: the first frame cannot be decoded ({_ffmpeg_reason(exc)})"
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
                self.demux_error = _ffmpeg_reason(exc)
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
                        redact_text(_ffmpeg_reason(exc), self._secrets),
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
            (upright(_bgr(d), self.rotation), float(d.time) if d.time is not None else None) for d in self._decoded()
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


class DemoSource:
    """The embedded pan-and-zoom clip over scikit-image's astronaut photo."""

    def __init__(self, seconds: float = 6.0, fps: int = 25, max_frames: int = 0) -> None:
        self.seconds = seconds
        self.fps = fps
        self.count = max(round(seconds * fps), 1)
        if max_frames:
            self.count = min(self.count, max_frames)
        self._photo = demo_photo_bgr()
        self.info = SourceInfo(
            display_name="demo (scikit-image astronaut, NASA, public domain)",
            stem="demo",
            kind="demo",
            is_live=False,
            width=DEMO_SIZE[0],
            height=DEMO_SIZE[1],
            fps=float(fps),
            frame_count_hint=self.count,
            time_base=Fraction(1, fps),
        )

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        return mark_last(self._frames(stop))

    def _frames(self, stop: threading.Event) -> Iterator[Frame]:
        for index in range(self.count):
            if stop.is_set():
                return
            t = index / self.fps
            image = demo_frame(self._photo, t, self.seconds)
            yield Frame(self.info.display_name, index, t, time.monotonic(), image)

    def close(self) -> None:
        pass


class ImageSource:
    """A still image as a one-frame source: photos go through the same stages as video."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise SourceError(f"no such file: {path}")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{path} is not a readable image")
        self._image = np.ascontiguousarray(image)
        self.info = SourceInfo(
            display_name=str(path),
            stem=path.stem,
            kind="image",
            is_live=False,
            width=image.shape[1],
            height=image.shape[0],
            fps=None,
            frame_count_hint=1,
            time_base=Fraction(1, 1),
        )

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        if not stop.is_set():
            yield Frame(self.info.display_name, 0, 0.0, time.monotonic(), self._image, is_last=True)

    def close(self) -> None:
        pass


class Backoff:
    """Exponential backoff between reconnect attempts."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.attempt = 0

    def exhausted(self) -> bool:
        limit = self.config.reconnect_attempts
        return not self.config.reconnect or (limit > 0 and self.attempt >= limit)

    def delay(self) -> float:
        return min(self.config.backoff_initial_s * (2**self.attempt), self.config.backoff_max_s)

    def wait(self, stop: threading.Event) -> None:
        delay = self.delay()
        self.attempt += 1
        stop.wait(delay)

    def reset(self) -> None:
        self.attempt = 0


class LiveSource:
    """Base for real-time sources that reconnect when they break.

    Subclasses provide `_connect_frames()` (an iterator of BGR images, which
    may raise or just end when the stream breaks), `_disconnect()` and `_probe()`.
    """

    info: SourceInfo

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.reconnects = 0
        self._secrets: tuple[str, ...] = ()

    def _connect_frames(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def _probe(self) -> tuple[int, int, float | None]:
        """Open once up front (width, height, fps), so a bad source fails before the pipeline starts."""
        raise NotImplementedError

    def _live_info(self, display_name: str, name: str, kind: str) -> SourceInfo:
        width, height, fps = self._probe()
        return SourceInfo(
            display_name=display_name,
            stem=re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[:60] or kind,
            kind=kind,
            is_live=True,
            width=width,
            height=height,
            fps=fps,
            frame_count_hint=None,
            time_base=LIVE_TIME_BASE,
        )

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        backoff = Backoff(self.config)
        started = time.monotonic()
        index = 0
        lost_at: float | None = None
        while not stop.is_set():
            try:
                for image in self._connect_frames():
                    if stop.is_set():
                        break
                    now = time.monotonic()
                    backoff.reset()
                    gap = now - lost_at if lost_at is not None else 0.0
                    lost_at = None
                    yield Frame(self.info.display_name, index, now - started, now, image, gap_s=gap)
                    index += 1
                    if self.config.max_frames and index >= self.config.max_frames:
                        return
                reason = "the stream ended"
            except (av.error.FFmpegError, OSError, TimeoutError, RuntimeError) as exc:
                reason = redact_text(f"{type(exc).__name__}: {_ffmpeg_reason(exc)}", self._secrets)
            finally:
                self._disconnect()
            if stop.is_set():
                return
            if lost_at is None:
                lost_at = time.monotonic()
            if backoff.exhausted():
                if not self.config.reconnect:
                    logger.warning("%s: %s (reconnect is off)", self.info.display_name, reason)
                    return
                raise SourceError(
                    f"{self.info.display_name}: gave up after {backoff.attempt} reconnect attempts ({reason})"
                )
            logger.warning(
                "%s: %s; reconnecting in %.1f s (attempt %d)",
                self.info.display_name,
                reason,
                backoff.delay(),
                backoff.attempt + 1,
            )
            backoff.wait(stop)
            self.reconnects += 1

    def close(self) -> None:
        self._disconnect()


class StreamSource(LiveSource):
    """A live network stream (RTSP, RTMP, UDP, SRT, HLS) decoded with PyAV/FFmpeg."""

    def __init__(self, url: str, config: SourceConfig) -> None:
        super().__init__(config)
        self.url = url
        self._secrets = url_secrets(url)
        self._container: av.container.InputContainer | None = None
        # Named by host and path only: a query string may hold credentials (?password=...).
        self.info = self._live_info(mask_url(url), url_name(url), "stream")

    def _options(self) -> dict[str, str]:
        if self.url.lower().startswith(("rtsp://", "rtsps://")):
            return {"rtsp_transport": self.config.rtsp_transport}
        return {}

    def _connect(self) -> av.container.InputContainer:
        # The read timeout turns a stalled stream into an exception we reconnect from.
        return av.open(
            self.url, options=self._options(), timeout=(self.config.open_timeout_s, self.config.read_timeout_s)
        )

    def _probe(self) -> tuple[int, int, float | None]:
        try:
            container = self._connect()
        except (av.error.FFmpegError, OSError, TimeoutError) as exc:
            reason = redact_text(_ffmpeg_reason(exc), self._secrets)
            raise SourceError(f"cannot open {mask_url(self.url)} ({reason})") from None
        try:
            if not container.streams.video:
                raise SourceError(f"{mask_url(self.url)} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return stream.codec_context.width, stream.codec_context.height, (float(rate) if rate else None)
        finally:
            container.close()

    def _connect_frames(self) -> Iterator[np.ndarray]:
        self._container = self._connect()
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        for decoded in self._container.decode(stream):
            yield _bgr(decoded)

    def _disconnect(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


class CameraSource(LiveSource):
    """A local camera through OpenCV (an index or /dev/videoN)."""

    def __init__(self, device: int | str, config: SourceConfig) -> None:
        super().__init__(config)
        self.device = device
        self._capture: cv2.VideoCapture | None = None
        self.info = self._live_info(f"camera {device}", f"camera_{device}", "camera")

    def _connect(self) -> cv2.VideoCapture:
        with _quiet_opencv():  # a failed open prints a dozen backend warnings; we say it in one line
            capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            capture.release()
            raise OSError(f"camera {self.device} cannot be opened")
        return capture

    def _probe(self) -> tuple[int, int, float | None]:
        if isinstance(self.device, str) and not Path(self.device).exists():
            raise SourceError(f"camera {self.device} does not exist")
        if (
            isinstance(self.device, int)
            and sys.platform.startswith("linux")
            and not Path(f"/dev/video{self.device}").exists()
        ):
            raise SourceError(f"camera {self.device} does not exist (no /dev/video{self.device})")
        try:
            capture = self._connect()
        except OSError as exc:
            raise SourceError(f"{exc} (is it connected, and not used by another program?)") from None
        try:
            ok, image = capture.read()
            if not ok or image is None:
                raise SourceError(f"camera {self.device} opened but delivered no frame")
            return image.shape[1], image.shape[0], capture.get(cv2.CAP_PROP_FPS) or None
        finally:
            capture.release()

    def _connect_frames(self) -> Iterator[np.ndarray]:
        self._capture = self._connect()
        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                return
            yield image

    def _disconnect(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def is_image_path(spec: str) -> bool:
    """Whether the spec names a still image (a one-frame source)."""
    return "://" not in spec and Path(spec).suffix.lower() in IMAGE_SUFFIXES


def _url_is_live(url: str, config: SourceConfig) -> bool:
    if config.live != "auto":
        return config.live == "yes"
    scheme = url.split("://", 1)[0].lower()
    path = url.split("?", 1)[0].lower()
    return scheme in LIVE_SCHEMES or path.endswith(".m3u8")


def open_source(spec: str, config: SourceConfig) -> Source:
    """Turn a `--source` value into a source, failing with one clear line.

    Accepts `demo`, a camera index (`0`) or device (`/dev/video0`), a network
    URL (`rtsp://`, `http(s)://`, ...) or a video file path.
    """
    if spec == "demo":
        return DemoSource(config.demo_seconds, config.demo_fps, config.max_frames)
    if spec.isdigit():
        return CameraSource(int(spec), config)
    if spec.startswith("/dev/video"):
        return CameraSource(spec, config)
    if is_image_path(spec):
        return ImageSource(Path(os.path.expanduser(spec)))
    if "://" not in spec:
        return file_source(Path(os.path.expanduser(spec)), config)
    scheme = spec.split("://", 1)[0].lower()
    if scheme == "file":
        return file_source(Path(spec.split("://", 1)[1]), config)
    if scheme not in NETWORK_SCHEMES:
        raise SourceError(
            f"unsupported source scheme '{scheme}://' in {mask_url(spec)} "
            f"(use a file, a camera index, demo, or one of: {', '.join(NETWORK_SCHEMES)})"
        )
    if _url_is_live(spec, config):
        return StreamSource(spec, config)
    name = mask_url(spec)
    stem = re.sub(r"[^A-Za-z0-9]+", "_", Path(url_name(spec)).stem).strip("_") or "stream"
    return ContainerSource(spec, name, stem, config, is_url=True)
