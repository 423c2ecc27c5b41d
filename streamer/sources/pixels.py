"""Decoded frames to the BGR arrays the pipeline works on, with a ceiling on their size.

A stream or file can declare frames of up to FFmpeg's ~268 M pixels (a hostile camera, a damaged header):
0.8 GB each in BGR, copied again by the overlay and the privacy filter, with several frames in flight. Frames
over `MAX_FRAME_PIXELS` are scaled down to it as they are converted (the swscale step makes the BGR copy
anyway, so the full-size array never exists), and the source says so once per size.
"""

from __future__ import annotations

import logging
import math

# OpenCV before PyAV, in every module that loads PyAV (the other order makes cv2.imshow hang).
import cv2  # noqa: F401

import av
import numpy as np

logger = logging.getLogger(__name__)

#: 8K UHD passes whole (33.2 M pixels, 100 MB in BGR); a phone's 48-200 M pixel photo is analysed at this size.
MAX_FRAME_PIXELS = 7680 * 4320
#: A source is warned about this many oversized frame sizes at most (a hostile stream could change size often).
WARN_SIZES = 4


def fitted(width: int, height: int) -> tuple[int, int]:
    """The size a width x height frame is analysed at: itself, or scaled down to `MAX_FRAME_PIXELS` (same
    aspect, even sides for the H.264 writer)."""
    pixels = width * height
    if pixels <= MAX_FRAME_PIXELS:
        return width, height
    scale = math.sqrt(MAX_FRAME_PIXELS / pixels)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class BgrConverter:
    """Turns a source's decoded frames into BGR arrays, scaled down where over the ceiling."""

    def __init__(self, display_name: str) -> None:
        self._display_name = display_name
        self._warned: set[tuple[int, int]] = set()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        width, height = fitted(frame.width, frame.height)
        if (width, height) == (frame.width, frame.height):
            return frame.to_ndarray(format="bgr24")
        if (frame.width, frame.height) not in self._warned and len(self._warned) < WARN_SIZES:
            self._warned.add((frame.width, frame.height))
            report_scaled(self._display_name, (frame.width, frame.height), (width, height))
        return frame.reformat(width=width, height=height, format="bgr24", interpolation="AREA").to_ndarray()


def report_scaled(display_name: str, size: tuple[int, int], scaled: tuple[int, int]) -> None:
    logger.warning(
        "%s: frames of %dx%d are over %.3g M pixels; analysed and written at %dx%d",
        display_name,
        *size,
        MAX_FRAME_PIXELS / 1e6,
        *scaled,
    )
