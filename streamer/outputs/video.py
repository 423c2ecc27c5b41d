"""The annotated video: H.264 in fragmented MP4s written through PyAV (crash-safe, timestamps kept).

`Mp4Writer` encodes one file; `VideoOutput` is the output a source writes:
one file for a video (`<out>/<name>.mp4`, the input's own timestamps), or a
new file every `sink.segment_s` for a live source (`<name>_<time>_001.mp4`,
`_002`, ..., each starting at time 0).
"""

from __future__ import annotations

import contextlib
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2

import av
import numpy as np
from av.video.frame import PictureType

from streamer.errors import OutputError
from streamer.outputs.base import reason
from streamer.outputs.records import FrameRecord

#: Live segments: timestamps in 1/90000 s (the RTP video clock).
SEGMENT_TIME_BASE = Fraction(1, 90000)


class Mp4Writer:
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
        tags: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.tags = tags or {}
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
        #: The frames' (width, height), from the first one; a frame of another size is scaled to it.
        self.size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> None:
        # Each fragment is flushed to disk as soon as the next keyframe starts a new one. delay_moov
        # writes the header with the first fragment, once the first timestamp is known: an input
        # whose video starts after 0 keeps its timestamps (empty_moov would shift them to 0).
        options = {"movflags": "frag_keyframe+delay_moov+default_base_moof", "flush_packets": "1"}
        self.size = (width, height)
        self._container = av.open(str(self.path), mode="w", format="mp4", options=options)
        # The run's privacy settings and declared use travel with the file (ffprobe shows them).
        self._container.metadata.update(self.tags)
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
            raise OutputError(f"cannot write {self.path} ({reason(exc)})") from exc
        self.frames += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        container = self._container
        if container is None:
            raise RuntimeError("Mp4Writer.write after close()")
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
            raise OutputError(f"cannot finalize {self.path} ({reason(failure)})") from failure
        if self._failed:
            self._cut_partial_fragment()  # close() may have appended a fragment cut short by the same failure

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoOutput:
    """A source's annotated video: one MP4, or (`segment_s` given) a new segment every `segment_s` seconds.

    Segments are `<stem>_001.mp4`, `<stem>_002.mp4`, ...; each starts at time 0
    with a keyframe. A crash loses at most the open file's last fragment
    (~`fragment_s`); `close()` (also on Ctrl+C/SIGTERM) finalizes the open one.
    """

    def __init__(
        self,
        out_dir: Path,
        stem: str,
        fps: float | None,
        time_base: Fraction = SEGMENT_TIME_BASE,
        segment_s: float | None = None,
        crf: int = 20,
        preset: str = "veryfast",
        fragment_s: float = 2.0,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.tags = tags
        self.stem = stem
        self.fps = fps
        self.time_base = time_base
        self.segment_s = segment_s
        self.crf = crf
        self.preset = preset
        self.fragment_s = fragment_s
        self.paths: list[Path] = []
        self._current: Mp4Writer | None = None
        self._segment_start = 0.0
        self._done_frames = 0

    @property
    def frames(self) -> int:
        return self._done_frames + (self._current.frames if self._current else 0)

    def _open_next(self, pts_s: float) -> Mp4Writer:
        self.new_segment()
        if self.segment_s is None:
            path, self._segment_start = self.out_dir / f"{self.stem}.mp4", 0.0
        else:
            path, self._segment_start = self.out_dir / f"{self.stem}_{len(self.paths) + 1:03d}.mp4", pts_s
        self.paths.append(path)
        self._current = Mp4Writer(path, self.time_base, self.fps, self.crf, self.preset, self.fragment_s, self.tags)
        return self._current

    def write(self, annotated: np.ndarray, record: FrameRecord) -> None:
        self.write_image(annotated, record.pts_s)

    def write_image(self, image: np.ndarray, pts_s: float) -> None:
        """Encode one frame at its timestamp (a segment's own timeline starts at 0)."""
        writer = self._current
        rotate = self.segment_s is not None and (
            (self.segment_s > 0 and pts_s - self._segment_start >= self.segment_s)
            # A camera back at another resolution: a new segment of its size, not frames stretched to the old.
            or (writer is not None and writer.size not in (None, (image.shape[1], image.shape[0])))
        )
        if writer is None or rotate:
            writer = self._open_next(pts_s)
        writer.write(image, pts_s - self._segment_start)

    def new_segment(self) -> None:
        """Close the open file; a segmented video's next frame starts a new one (after a source restarted, say)."""
        current, self._current = self._current, None
        if current is not None:
            self._done_frames += current.frames
            current.close()

    def close(self) -> None:
        self.new_segment()
