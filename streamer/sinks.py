"""Where annotated frames and results go: H.264 MP4 (PyAV), JSONL, images, a window.

Sinks open lazily on the first frame, are context managers, and are always
finalized: `close()` flushes the encoder so the file written so far plays,
also after Ctrl+C or an error upstream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Self

import cv2

import av
import numpy as np
from av.video.frame import PictureType

from streamer.errors import OutputError, UserError

logger = logging.getLogger(__name__)


class Sink:
    """Every sink is a context manager that closes (finalizes) itself."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
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


class VideoSink(Sink):
    """H.264 in a fragmented MP4 through PyAV, keeping each frame's presentation timestamp.

    Crash-safe: a fragmented MP4 plays even when the process dies before
    `close()`, losing only the fragment still in memory. A keyframe (which
    starts a new fragment on disk) comes every `fragment_s` seconds of media
    time, and is forced sooner when that much *wall-clock* time has passed
    since the last one: a crash loses at most ~`fragment_s` of video and of
    work, whether frames are written at 5 fps by a slow CPU (live segments
    used to lose 7 s at the camera's nominal GOP) or at 200 fps by a GPU.
    `tune=zerolatency` keeps x264 from
    holding frames back (no lookahead, no B-frames), so nothing older than the
    open fragment is in the encoder. Odd frame sizes are padded by one black
    pixel row/column (yuv420p needs even sizes).
    """

    def __init__(
        self,
        path: Path,
        time_base: Fraction,
        fps: float | None,
        crf: int = 20,
        preset: str = "veryfast",
        fragment_s: float = 2.0,
    ) -> None:
        self.path = path
        self.time_base = time_base
        self.fps = fps or 25.0
        self.crf = crf
        self.preset = preset
        self.fragment_s = fragment_s
        self.frames = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: Any = None
        self._last_pts: int | None = None
        self._last_keyframe_at: float | None = None
        self._failed = False
        self._good_size = 0

    def _open(self, width: int, height: int) -> None:
        # Each fragment is flushed to disk as soon as the next keyframe starts a new one. delay_moov
        # writes the header with the first fragment, once the first timestamp is known: an input
        # whose video starts after 0 keeps its timestamps (empty_moov would shift them to 0).
        options = {"movflags": "frag_keyframe+delay_moov+default_base_moof", "flush_packets": "1"}
        self._container = av.open(str(self.path), mode="w", format="mp4", options=options)
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        # Media-time bound here; the wall-clock bound is forced in _write.
        stream.codec_context.gop_size = max(round(self.fragment_s * self.fps), 1)
        stream.codec_context.max_b_frames = 0  # a fragmented MP4 has no edit list to hide their delay
        stream.width = width + (width % 2)
        stream.height = height + (height % 2)
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        stream.options = {"crf": str(self.crf), "preset": self.preset, "tune": "zerolatency"}
        self._stream = stream

    def write(self, image: np.ndarray, pts_s: float) -> None:
        """Encode one frame. Raises OutputError (naming the file) when it cannot be written."""
        if self._failed:
            raise OutputError(f"{self.path} can no longer be written (an earlier write failed)")
        try:
            self._write(image, pts_s)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._failed = True
            self._cut_partial_fragment()
            raise OutputError(f"cannot write {self.path} ({_reason(exc)})") from exc
        self.frames += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        container = self._container
        if container is None:
            raise RuntimeError("VideoSink.write after close()")
        for packet in packets:
            container.mux(packet)
        # After a mux call the file holds whole fragments only (the open one is still in memory).
        with contextlib.suppress(OSError):
            self._good_size = os.path.getsize(self.path)

    def _cut_partial_fragment(self) -> None:
        """After a failed write (a full disk), drop the half-written fragment so the file ends cleanly."""
        if self._good_size and self.path.is_file():
            with contextlib.suppress(OSError):
                os.truncate(self.path, self._good_size)

    def _write(self, image: np.ndarray, pts_s: float) -> None:
        h, w = image.shape[:2]
        if self._container is None:
            self._open(w, h)
        if (w % 2) or (h % 2):
            image = cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        pts = round(pts_s / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # the muxer needs strictly increasing timestamps
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts = pts
        frame.time_base = self.time_base
        now = time.monotonic()
        if self._last_keyframe_at is None or now - self._last_keyframe_at >= self.fragment_s:
            frame.pict_type = PictureType.I
            self._last_keyframe_at = now
        self._mux(self._stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and close the file; raises OutputError if that fails (the file is closed anyway)."""
        container, self._container = self._container, None
        if container is None:
            return
        failure: BaseException | None = None
        try:
            if not self._failed:
                for packet in self._stream.encode():  # flush delayed frames, or the tail is lost
                    container.mux(packet)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            failure = exc
        try:
            container.close()  # writes the open fragment
        except (av.error.FFmpegError, OSError) as exc:
            failure = failure or exc
        if failure is not None:
            self._cut_partial_fragment()
            raise OutputError(f"cannot finalize {self.path} ({_reason(failure)})") from failure
        if self._failed:
            self._cut_partial_fragment()  # close() may have appended a fragment cut short by the same failure


class SegmentedVideoSink(Sink):
    """Live recordings: a new fragmented MP4 every `segment_s` seconds.

    Files are `<stem>_001.mp4`, `<stem>_002.mp4`, ...; each starts at time 0
    with a keyframe. A crash loses at most the open segment's last fragment
    (~`fragment_s`);
    `close()` (also on Ctrl+C/SIGTERM) finalizes the open one.
    """

    def __init__(
        self,
        out_dir: Path,
        stem: str,
        fps: float | None,
        segment_s: float,
        crf: int = 20,
        preset: str = "veryfast",
        fragment_s: float = 2.0,
    ) -> None:
        self.out_dir = out_dir
        self.fragment_s = fragment_s
        self.stem = stem
        self.fps = fps
        self.segment_s = segment_s
        self.crf = crf
        self.preset = preset
        self.paths: list[Path] = []
        self._current: VideoSink | None = None
        self._segment_start = 0.0
        self._done_frames = 0

    def _rotate(self, pts_s: float) -> VideoSink:
        self.new_segment()
        path = self.out_dir / f"{self.stem}_{len(self.paths) + 1:03d}.mp4"
        self.paths.append(path)
        self._segment_start = pts_s
        self._current = VideoSink(path, Fraction(1, 90000), self.fps, self.crf, self.preset, self.fragment_s)
        return self._current

    def write(self, image: np.ndarray, pts_s: float) -> None:
        sink = self._current
        if sink is None or (self.segment_s > 0 and pts_s - self._segment_start >= self.segment_s):
            sink = self._rotate(pts_s)
        sink.write(image, pts_s - self._segment_start)

    @property
    def frames(self) -> int:
        return self._done_frames + (self._current.frames if self._current else 0)

    def new_segment(self) -> None:
        """Close the open segment; the next frame starts a new file (after a source restarted, say)."""
        current, self._current = self._current, None
        if current is not None:
            self._done_frames += current.frames
            current.close()

    def close(self) -> None:
        self.new_segment()


class JsonlSink(Sink):
    """One JSON object per line, flushed per frame: readable without a close.

    A line that cannot be written whole (a full disk) is cut off again, so
    the file always ends with a complete line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        self._file: IO[bytes] | None = None
        self._good_size = 0

    def write(self, record: dict[str, Any]) -> None:
        """Append one line. Raises OutputError (naming the file) when it cannot be written."""
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            if self._file is None:
                self._file = self.path.open("wb")
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            self._cut_partial_line()
            raise OutputError(f"cannot write {self.path} ({_reason(exc)})") from exc
        self._good_size += len(data)
        self.lines += 1

    def _cut_partial_line(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        with contextlib.suppress(OSError):
            file.close()  # may fail again flushing the same bytes: they are cut below
        with contextlib.suppress(OSError):
            os.truncate(self.path, self._good_size)

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                raise OutputError(f"cannot finalize {self.path} ({_reason(exc)})") from exc


class DisplaySink(Sink):
    """A live OpenCV window. Only created when a display is available."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.closed_by_user = False
        self._opened = False

    @staticmethod
    def available() -> bool:
        # cv2.imshow without a display aborts the whole process, uncatchably.
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))

    def write(self, image: np.ndarray) -> None:
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            self._opened = True
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.closed_by_user = True

    def close(self) -> None:
        if self._opened:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._opened = False


def write_json(path: Path, record: dict[str, Any]) -> None:
    """A whole JSON document, written atomically (temp file + rename): never half a file."""
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"cannot write {path} ({_reason(exc)})") from exc


def write_image(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OutputError(f"cannot write image {path}")
