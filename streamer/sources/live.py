"""Live sources: cameras (OpenCV) and network streams (PyAV: RTSP, RTMP, UDP, SRT, HLS) that reconnect.

Frames are stamped with the wall-clock time since the source started, so the
timeline stays monotonic across reconnects; when the stream ends, stalls or
errors the source reconnects with exponential backoff (forever by default)
and marks the first frame after the gap with its length. A stream that
arrives in bursts (HLS: a segment at a time) is handed over at the pace of
its timestamps, as a camera would deliver it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2

import av
import numpy as np

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.redact import mask_url, redact_text, url_name, url_secrets
from streamer.sources.base import SourceInfo, SourceKind, ffmpeg_reason, open_failure
from streamer.sources.hls_fetch import open_web
from streamer.sources.pixels import BgrConverter, fitted
from streamer.types import Frame

logger = logging.getLogger(__name__)

#: Live sources: frame timestamps in 1/90000 s (the RTP video clock).
LIVE_TIME_BASE = Fraction(1, 90000)

#: The frames connection of these schemes reads `stream_probe_s` before its first frame instead of FFmpeg's ~1 s
#: (measured: RTSP, and MPEG-TS over UDP and TCP). The other schemes keep FFmpeg's probe.
SHORT_PROBE_SCHEMES = ("rtsp://", "rtsps://", "udp://", "tcp://")

#: A stream that delivers packets but no decodable frame for this long is reconnected. Longer than a camera's
#: keyframe interval (1-10 s): a connection that joins between keyframes can decode nothing until the next one.
UNDECODABLE_FOR_S = 20.0

#: Undecodable packets after the first frame (loss over UDP) are reported at most this often.
REPORT_EVERY_S = 60.0

#: Of several video streams (an HLS master playlist's variants) the largest up to this size is analysed:
#: more pixels find smaller faces, but 4K would not decode in real time on a small machine.
MAX_STREAM_PIXELS = 1920 * 1080


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The video stream to analyse. Every other stream is discarded, so FFmpeg neither fetches nor demuxes it:
    an HLS master playlist's other variants (each one more download), audio."""
    videos = list(container.streams.video)

    def pixels(stream: av.video.stream.VideoStream) -> int:
        return stream.codec_context.width * stream.codec_context.height

    fitting = [stream for stream in videos if pixels(stream) <= MAX_STREAM_PIXELS]
    chosen = max(fitting, key=pixels) if fitting else min(videos, key=pixels)
    for stream in container.streams:
        if stream.index != chosen.index:
            stream.discard = av.stream.Discard.all
    return chosen


class Pacer:
    """Waits until each frame is due by its stream timestamp, the first frame being due at once.

    For a stream that arrives in bursts: HLS fetches a segment (seconds of video) at a time, and a live
    run, which works on the newest frame, would drop the rest of the burst as stale.
    """

    #: A frame due further ahead than this (a timestamp jump) starts the clock afresh instead of a long sleep.
    AHEAD_S = 1.0
    #: A frame later than this (the stream stalled: the next HLS segment was not out yet) starts the clock
    #: afresh too, as a player's buffer does, instead of rushing the frames after it through in a burst: the
    #: delay grows by the stall, and the stream arrives with that much to spare after it.
    LATE_S = 0.1

    def __init__(self) -> None:
        self._origin: float | None = None  # the wall time (monotonic) at stream time 0

    def wait(self, at_s: float | None, stop: threading.Event) -> None:
        if at_s is None:
            return
        now = time.monotonic()
        due = now if self._origin is None else self._origin + at_s
        if self._origin is None or due - now > self.AHEAD_S or now - due > self.LATE_S:
            self._origin = now - at_s
            return
        if due > now:
            stop.wait(due - now)


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

    Subclasses provide `_connect_frames()` (an iterator of BGR images with their
    stream time in seconds if known, which may raise or just end when the stream
    breaks), `_disconnect()` and `_probe()`. A subclass sets `_paced` on connecting
    for a stream to be handed over at the pace of those times.
    """

    info: SourceInfo

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.reconnects = 0
        self._secrets: tuple[str, ...] = ()
        self._paced = False

    def _connect_frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def _probe(self) -> tuple[int, int, float | None]:
        """Open once up front (width, height, fps), so a bad source fails before the pipeline starts."""
        raise NotImplementedError

    def _live_info(self, display_name: str, name: str, kind: SourceKind) -> SourceInfo:
        width, height, fps = self._probe()
        return SourceInfo(
            display_name=display_name,
            stem=re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[:60] or kind.value,
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
            pacer = Pacer()
            try:
                for image, at_s in self._connect_frames():
                    if self._paced:
                        pacer.wait(at_s, stop)
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
                reason = redact_text(f"{type(exc).__name__}: {ffmpeg_reason(exc)}", self._secrets)
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
        self._serves_hls = False
        self._bgr = BgrConverter(mask_url(url))
        # Named by host and path only: a query string may hold credentials (?password=...).
        self.info = self._live_info(mask_url(url), url_name(url), SourceKind.STREAM)

    def _options(self, probe: bool) -> dict[str, str]:
        url = self.url.lower()
        options = {"rtsp_transport": self.config.rtsp_transport} if url.startswith(("rtsp://", "rtsps://")) else {}
        if not probe and url.startswith(SHORT_PROBE_SCHEMES):
            # FFmpeg reads ~1 s of a real-time stream to learn its frame rate before it returns the first
            # frame, then hands over all it read at once: a live run would drop those as stale, on every
            # (re)connect. The first packets describe the stream; the frame rate comes from the open-time probe.
            options["analyzeduration"] = str(max(1, round(self.config.stream_probe_s * 1e6)))
        return options

    def _connect(self, probe: bool = False) -> av.container.InputContainer:
        # The read timeout turns a stalled stream into an exception we reconnect from.
        timeouts = (self.config.open_timeout_s, self.config.read_timeout_s)
        if self.url.lower().startswith(("http://", "https://")):
            container = open_web(self.url, *timeouts, options=self._options(probe), hls=self._serves_hls)
            # A URL that served HLS is opened as HLS on a reconnect, without FFmpeg's try first.
            self._serves_hls = container.format.name == "hls"
            return container
        return av.open(self.url, options=self._options(probe), timeout=timeouts)

    def _probe(self) -> tuple[int, int, float | None]:
        started = time.monotonic()
        try:
            container = self._connect(probe=True)
        except av.error.ProtocolNotFoundError:
            scheme = self.url.split(":", 1)[0].lower()
            raise SourceError(
                f"cannot open {mask_url(self.url)} (this FFmpeg has no {scheme}:// support: PyAV's wheels are built "
                f"without it; relay the stream as rtsp:// or udp://, or install PyAV built on an FFmpeg that has it)"
            ) from None
        except (av.error.FFmpegError, OSError, TimeoutError) as exc:
            why = open_failure(exc, time.monotonic() - started, self.config.open_timeout_s)
            raise SourceError(f"cannot open {mask_url(self.url)} ({redact_text(why, self._secrets)})") from None
        try:
            if not container.streams.video:
                raise SourceError(f"{mask_url(self.url)} has no video stream")
            stream = video_stream(container)
            rate = stream.average_rate or stream.guessed_rate
            width, height = fitted(stream.codec_context.width, stream.codec_context.height)
            if not (width and height):
                # Joined between keyframes (UDP has no session start), FFmpeg's probe can end before the next
                # one and not know the size: decode up to it.
                height, width = self._first_image(container, stream).shape[:2]
            return width, height, (float(rate) if rate else None)
        finally:
            container.close()

    def _first_image(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> np.ndarray:
        try:
            for image, _ in self._decoded(container, stream):
                return image
            reason = "the stream ended"
        except (av.error.FFmpegError, OSError, TimeoutError) as exc:
            reason = redact_text(ffmpeg_reason(exc), self._secrets)
        raise SourceError(f"{mask_url(self.url)} delivered no decodable frame ({reason})")

    def _connect_frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        self._container = container = self._connect()
        stream = video_stream(container)
        stream.thread_type = "AUTO"
        self._paced = self.config.pace == "yes" or (self.config.pace == "auto" and container.format.name == "hls")
        yield from self._decoded(container, stream)

    def _decoded(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[tuple[np.ndarray, float | None]]:
        """Every frame that decodes. A packet that does not is skipped, as players do: a connection that joins
        between keyframes gets such packets until the next keyframe (reconnecting would only join between
        keyframes again), and so does a packet lost over UDP. Only a stream that decodes nothing for long is
        dropped."""
        rejected = reported = 0
        decoded_at, reported_at = time.monotonic(), float("-inf")
        seen_frame = False
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                rejected += 1
                idle_s = time.monotonic() - decoded_at
                if idle_s > max(UNDECODABLE_FOR_S, self.config.read_timeout_s):
                    raise OSError(f"no frame decoded in {idle_s:.0f} s ({rejected} packets could not be)") from None
                if seen_frame and time.monotonic() - reported_at > REPORT_EVERY_S:
                    logger.warning(
                        "%s: %d packets could not be decoded and were skipped (lost in transit?)",
                        mask_url(self.url),
                        rejected - reported,
                    )
                    reported, reported_at = rejected, time.monotonic()
                continue
            for decoded in frames:
                if not seen_frame and rejected:
                    logger.debug("%s: %d packets before the first keyframe skipped", mask_url(self.url), rejected)
                    reported = rejected
                seen_frame = True
                decoded_at = time.monotonic()
                yield self._bgr(decoded), decoded.time

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
        self.info = self._live_info(f"camera {device}", f"camera_{device}", SourceKind.CAMERA)

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

    def _connect_frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        self._capture = self._connect()
        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                return
            yield image, None  # a camera delivers in real time: nothing to pace

    def _disconnect(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
