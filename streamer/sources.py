"""Frame sources: video files, the demo clip, local cameras and network streams.

`open_source(spec, config)` turns what the user typed into a `Source`. Every
source yields `Frame`s from `frames(stop)`; live sources (cameras, RTSP,
HTTP) reconnect with backoff when the stream breaks, and mark the first frame
after a gap. Errors a user can fix become `SourceError` with one line, the URL
password masked.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2  # noqa: F401 - must be imported before av (bundled X libraries clash otherwise)
import av
import numpy as np

from streamer.config import SourceConfig
from streamer.demo import DEMO_SIZE, demo_frame, demo_photo_bgr
from streamer.errors import SourceError
from streamer.redact import mask_url, redact_text, url_password
from streamer.types import Frame

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


@dataclass(frozen=True)
class SourceInfo:
    """What the rest of the pipeline needs to know about a source.

    Attributes:
        display_name: safe to print (passwords masked).
        stem: base name for output files.
        kind: "file", "demo", "camera" or "stream".
        is_live: frames arrive in real time (drop-stale policy applies).
        width: frame width (0 if unknown until the first frame).
        height: frame height.
        fps: nominal frame rate, if known.
        frame_count_hint: frames the header claims (for the progress bar only;
            headers lie: pedestrians_vtest.avi claims 682 and decodes 341).
        time_base: the container's time base, so sinks can keep timestamps exact.
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


class FileSource:
    """A local video file decoded with PyAV, every frame, in order."""

    def __init__(self, path: Path, max_frames: int = 0) -> None:
        self.path = path
        self.max_frames = max_frames
        if not path.exists():
            raise SourceError(f"no such file: {path}")
        if path.is_dir():
            raise SourceError(f"{path} is a folder, not a video file")
        try:
            self._container = av.open(str(path))
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"{path} is not a readable video ({_ffmpeg_reason(exc)})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{path} has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._first = self._decode_first()
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.info = SourceInfo(
            display_name=str(path),
            stem=path.stem,
            kind="file",
            is_live=False,
            width=self._first.width,
            height=self._first.height,
            fps=float(rate) if rate else None,
            frame_count_hint=int(self._stream.frames) or None,
            time_base=self._stream.time_base or Fraction(1, int(round(float(rate or 25)))),
        )

    def _decode_first(self) -> av.VideoFrame:
        try:
            self._decoder = self._container.decode(self._stream)
            return next(self._decoder)
        except StopIteration:
            self._container.close()
            raise SourceError(f"{self.path} contains no decodable video frames (empty or truncated?)") from None
        except (av.error.FFmpegError, ValueError) as exc:
            self._container.close()
            raise SourceError(f"{self.path}: the first frame cannot be decoded ({_ffmpeg_reason(exc)})") from exc

    def _decoded(self) -> Iterator[av.VideoFrame]:
        yield self._first
        decoded_count = 1
        while True:
            try:
                yield next(self._decoder)
            except StopIteration:
                return
            except (av.error.FFmpegError, ValueError) as exc:
                raise SourceError(
                    f"{self.path}: decoding stopped after {decoded_count} frames ({_ffmpeg_reason(exc)})"
                ) from exc
            decoded_count += 1

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        return mark_last(self._frames(stop))

    def _frames(self, stop: threading.Event) -> Iterator[Frame]:
        fps = self.info.fps or 25.0
        index = 0
        for image, pts_s in reorder_timestamps(
            ((_bgr(d), float(d.time) if d.time is not None else None) for d in self._decoded()), fps
        ):
            if stop.is_set():
                return
            yield Frame(self.info.display_name, index, pts_s, time.monotonic(), image)
            index += 1
            if self.max_frames and index >= self.max_frames:
                return

    def close(self) -> None:
        self._container.close()


class DemoSource:
    """The embedded pan-and-zoom clip over scikit-image's astronaut photo."""

    def __init__(self, seconds: float = 6.0, fps: int = 25, max_frames: int = 0) -> None:
        self.seconds = seconds
        self.fps = fps
        self.count = max(int(round(seconds * fps)), 1)
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


class _Backoff:
    """Exponential backoff between reconnect attempts."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.attempt = 0

    def exhausted(self) -> bool:
        limit = self.config.reconnect_attempts
        return not self.config.reconnect or (limit > 0 and self.attempt >= limit)

    def wait(self, stop: threading.Event) -> None:
        delay = min(self.config.backoff_initial_s * (2**self.attempt), self.config.backoff_max_s)
        self.attempt += 1
        stop.wait(delay)

    def reset(self) -> None:
        self.attempt = 0


class LiveSource:
    """Base for sources that run in real time and reconnect when they break.

    Subclasses provide `_open()` (returning an iterator of (pts_s, image)) and
    `_close()`. The first frame after a reconnect is marked `gap_before`.
    """

    info: SourceInfo

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.reconnects = 0
        self._secrets: tuple[str, ...] = ()

    def _open(self) -> Iterator[tuple[float | None, np.ndarray]]:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _probe(self) -> tuple[int, int, float | None, Fraction]:
        """Open once up front so a bad URL or camera fails before the pipeline starts."""
        raise NotImplementedError

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        backoff = _Backoff(self.config)
        index = 0
        gap = False
        started = time.monotonic()
        while not stop.is_set():
            try:
                for pts_s, image in self._open():
                    if stop.is_set():
                        break
                    backoff.reset()
                    now = time.monotonic()
                    yield Frame(self.info.display_name, index, pts_s if pts_s is not None else now - started, now, image, gap)
                    gap = False
                    index += 1
                    if self.config.max_frames and index >= self.config.max_frames:
                        return
                reason = "stream ended"
            except (av.error.FFmpegError, OSError, TimeoutError, RuntimeError) as exc:
                reason = redact_text(f"{type(exc).__name__}: {exc}", self._secrets)
            finally:
                self._close()
            if stop.is_set():
                return
            if backoff.exhausted():
                if self.config.reconnect:
                    raise SourceError(f"{self.info.display_name}: gave up after {backoff.attempt} reconnect attempts ({reason})")
                logger.warning("%s: %s", self.info.display_name, reason)
                return
            logger.warning("%s: %s; reconnecting (attempt %d)", self.info.display_name, reason, backoff.attempt + 1)
            backoff.wait(stop)
            self.reconnects += 1
            gap = True

    def close(self) -> None:
        self._close()


class StreamSource(LiveSource):
    """A network stream (RTSP, HTTP/HLS, ...) decoded with PyAV/FFmpeg."""

    def __init__(self, url: str, config: SourceConfig) -> None:
        super().__init__(config)
        self.url = url
        self._secrets = (url_password(url),)
        self._container: av.container.InputContainer | None = None
        width, height, fps, time_base = self._probe()
        parts = re.sub(r"[^A-Za-z0-9]+", "_", mask_url(url).split("://", 1)[-1].split("@")[-1]).strip("_")
        self.info = SourceInfo(
            display_name=mask_url(url),
            stem=parts[:60] or "stream",
            kind="stream",
            is_live=True,
            width=width,
            height=height,
            fps=fps,
            frame_count_hint=None,
            time_base=time_base,
        )

    def _options(self) -> dict[str, str]:
        if self.url.lower().startswith(("rtsp://", "rtsps://")):
            return {"rtsp_transport": self.config.rtsp_transport}
        return {}

    def _connect(self) -> av.container.InputContainer:
        return av.open(
            self.url,
            options=self._options(),
            timeout=(self.config.open_timeout_s, self.config.read_timeout_s),
        )

    def _probe(self) -> tuple[int, int, float | None, Fraction]:
        try:
            container = self._connect()
        except (av.error.FFmpegError, OSError, TimeoutError) as exc:
            raise SourceError(
                f"cannot open {mask_url(self.url)}: {redact_text(_ffmpeg_reason(exc), self._secrets)}"
            ) from None
        try:
            if not container.streams.video:
                raise SourceError(f"{mask_url(self.url)} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            ctx = stream.codec_context
            return ctx.width, ctx.height, (float(rate) if rate else None), stream.time_base or Fraction(1, 90000)
        finally:
            container.close()

    def _open(self) -> Iterator[tuple[float | None, np.ndarray]]:
        self._container = self._connect()
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        for decoded in self._container.decode(stream):
            yield (float(decoded.time) if decoded.time is not None else None), _bgr(decoded)

    def _close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None


class CameraSource(LiveSource):
    """A local camera through OpenCV (an index or /dev/videoN)."""

    def __init__(self, device: int | str, config: SourceConfig) -> None:
        super().__init__(config)
        self.device = device
        self._capture: cv2.VideoCapture | None = None
        width, height, fps, time_base = self._probe()
        name = f"camera {device}"
        self.info = SourceInfo(
            display_name=name,
            stem=re.sub(r"[^A-Za-z0-9]+", "_", f"camera_{device}").strip("_"),
            kind="camera",
            is_live=True,
            width=width,
            height=height,
            fps=fps,
            frame_count_hint=None,
            time_base=time_base,
        )

    def _connect(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            capture.release()
            raise OSError(f"camera {self.device} cannot be opened")
        return capture

    def _probe(self) -> tuple[int, int, float | None, Fraction]:
        if isinstance(self.device, str) and not Path(self.device).exists():
            raise SourceError(f"camera {self.device} does not exist")
        try:
            capture = self._connect()
        except OSError as exc:
            raise SourceError(f"{exc} (is it connected, and not used by another program?)") from None
        try:
            ok, image = capture.read()
            if not ok or image is None:
                raise SourceError(f"camera {self.device} opened but delivered no frame")
            fps = capture.get(cv2.CAP_PROP_FPS) or None
            return image.shape[1], image.shape[0], fps, Fraction(1, 1000)
        finally:
            capture.release()

    def _open(self) -> Iterator[tuple[float | None, np.ndarray]]:
        self._capture = self._connect()
        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                return
            yield None, image

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def mark_last(frames: Iterator[Frame]) -> Iterator[Frame]:
    """Flag the final frame of a finite stream (one frame of lookahead)."""
    previous: Frame | None = None
    for frame in frames:
        if previous is not None:
            yield previous
        previous = frame
    if previous is not None:
        yield replace(previous, is_last=True)


#: Frames held back to put timestamps in order (B-frames in AVI come out with permuted pts).
REORDER_WINDOW = 16


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
    for count, (image, pts_s) in enumerate(decoded):
        if pts_s is None:
            pts_s = max(last + 1.0 / fps, count / fps)
        last = max(last, pts_s)
        pending_images.append(image)
        heapq.heappush(pending_pts, pts_s)
        if len(pending_images) > window:
            yield pending_images.popleft(), heapq.heappop(pending_pts)
    while pending_images:
        yield pending_images.popleft(), heapq.heappop(pending_pts)


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's reason without the file name it repeats (and without any URL)."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    text = str(exc).split(": '", 1)[0]
    return text or type(exc).__name__


def is_image_path(spec: str) -> bool:
    """Whether the spec names a still image (handled by the single-image mode)."""
    return Path(spec).suffix.lower() in IMAGE_SUFFIXES


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
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme:
        if scheme == "file":
            return FileSource(Path(spec.split("://", 1)[1]), config.max_frames)
        if scheme not in NETWORK_SCHEMES:
            raise SourceError(
                f"unsupported source scheme '{scheme}://' in {mask_url(spec)} "
                f"(use a file, a camera index, demo, or one of: {', '.join(NETWORK_SCHEMES)})"
            )
        return StreamSource(spec, config)
    return FileSource(Path(os.path.expanduser(spec)), config.max_frames)
