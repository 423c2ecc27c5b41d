"""Where annotated frames and results go: H.264 MP4 (PyAV), JSONL, images, a window.

Sinks open lazily on the first frame, are context managers, and are always
finalized: `close()` flushes the encoder so the file written so far plays,
also after Ctrl+C or an error upstream.
"""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Self

import cv2

import av
import numpy as np

from streamer.errors import UserError

logger = logging.getLogger(__name__)


class Sink:
    """Every sink is a context manager that closes (finalizes) itself."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    """H.264 MP4 through PyAV, keeping each frame's presentation timestamp.

    Odd frame sizes are padded by one black pixel row/column (yuv420p needs
    even sizes). `fragmented=True` writes a fragmented MP4 with a keyframe
    every ~2 s: such a file plays even if the process dies before `close()`,
    losing at most the last fragment (used for live recordings).
    """

    def __init__(
        self,
        path: Path,
        time_base: Fraction,
        fps: float | None,
        crf: int = 20,
        preset: str = "veryfast",
        fragmented: bool = False,
    ) -> None:
        self.path = path
        self.time_base = time_base
        self.fps = fps or 25.0
        self.crf = crf
        self.preset = preset
        self.fragmented = fragmented
        self._container: av.container.OutputContainer | None = None
        self._stream: Any = None
        self._last_pts: int | None = None

    def _open(self, width: int, height: int) -> None:
        # Fragmented: each fragment is flushed to disk as soon as it is complete.
        options = (
            {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"} if self.fragmented else {}
        )
        self._container = av.open(str(self.path), mode="w", format="mp4", options=options)
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        if self.fragmented:
            stream.codec_context.gop_size = max(round(2 * self.fps), 1)
            # No B-frames: a fragmented MP4 has no edit list to hide their decode delay.
            stream.codec_context.max_b_frames = 0
        stream.width = width + (width % 2)
        stream.height = height + (height % 2)
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        self._stream = stream

    def write(self, image: np.ndarray, pts_s: float) -> None:
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
        container = self._container
        if container is None:
            raise RuntimeError("VideoSink.write after close()")
        for packet in self._stream.encode(frame):
            container.mux(packet)

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():  # flush delayed frames, or the tail is lost
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


class SegmentedVideoSink(Sink):
    """Live recordings: a new fragmented MP4 every `segment_s` seconds.

    Files are `<stem>_001.mp4`, `<stem>_002.mp4`, ...; each starts at time 0
    with a keyframe. A crash loses at most the open segment's last fragment;
    `close()` (also on Ctrl+C/SIGTERM) finalizes the open one.
    """

    def __init__(
        self, out_dir: Path, stem: str, fps: float | None, segment_s: float, crf: int = 20, preset: str = "veryfast"
    ) -> None:
        self.out_dir = out_dir
        self.stem = stem
        self.fps = fps
        self.segment_s = segment_s
        self.crf = crf
        self.preset = preset
        self.paths: list[Path] = []
        self._current: VideoSink | None = None
        self._segment_start = 0.0

    def _rotate(self, pts_s: float) -> VideoSink:
        if self._current is not None:
            self._current.close()
        path = self.out_dir / f"{self.stem}_{len(self.paths) + 1:03d}.mp4"
        self.paths.append(path)
        self._segment_start = pts_s
        self._current = VideoSink(path, Fraction(1, 90000), self.fps, self.crf, self.preset, fragmented=True)
        return self._current

    def write(self, image: np.ndarray, pts_s: float) -> None:
        sink = self._current
        if sink is None or (self.segment_s > 0 and pts_s - self._segment_start >= self.segment_s):
            sink = self._rotate(pts_s)
        sink.write(image, pts_s - self._segment_start)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


class JsonlSink(Sink):
    """One JSON object per line, flushed per frame: readable without a close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8")
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


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
    """A whole JSON document, written atomically (temp file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_image(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise UserError(f"cannot write image {path}")
