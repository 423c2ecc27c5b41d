"""The embedded demo clip: a slow pan and zoom over a real public-domain photo.

The photo is scikit-image's `data.astronaut()` (Eileen Collins, NASA, public
domain), which ships inside the scikit-image wheel, so `--source demo` works
on a fresh machine with no media and no download.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import cv2

import numpy as np

from streamer.sources.base import SourceInfo, SourceKind, mark_last
from streamer.types import Frame

DEMO_SIZE = (640, 480)  # width, height


def demo_photo_bgr() -> np.ndarray:
    """The NASA astronaut portrait, 512x512 BGR."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def demo_frame(photo: np.ndarray, t: float, duration: float, size: tuple[int, int] = DEMO_SIZE) -> np.ndarray:
    """The frame at time t: a 4:3 window that zooms in on the face and pans back out.

    The window always covers the face and upper body, so there is one person
    with a visible face in every frame.
    """
    out_w, out_h = size
    ph, pw = photo.shape[:2]
    phase = 0.5 - 0.5 * math.cos(2.0 * math.pi * t / max(duration, 1e-6))  # 0 -> 1 -> 0
    # Window height goes from the whole photo to ~60% of it (zoom in on the face).
    win_h = ph * (1.0 - 0.4 * phase)
    win_w = min(win_h * out_w / out_h, pw)
    win_h = win_w * out_h / out_w
    # The face is around (x=0.45, y=0.3) of the photo; pan the window towards it.
    cx = pw / 2.0 + (0.45 * pw - pw / 2.0) * phase + 0.04 * pw * math.sin(2.0 * math.pi * t / duration)
    cy = win_h / 2.0 + (0.36 * ph - win_h / 2.0) * phase  # top-aligned at first: the head stays in frame
    x1 = min(max(cx - win_w / 2.0, 0.0), pw - win_w)
    y1 = min(max(cy - win_h / 2.0, 0.0), ph - win_h)
    # An affine warp gives sub-pixel, smooth motion (a crop would jitter by whole pixels).
    scale = out_w / win_w
    matrix = np.array([[scale, 0.0, -x1 * scale], [0.0, scale, -y1 * scale]], dtype=np.float64)
    return cv2.warpAffine(photo, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


class DemoSource:
    """The embedded pan-and-zoom clip over scikit-image's astronaut photo."""

    def __init__(self, seconds: float = 6.0, fps: int = 25, max_frames: int = 0) -> None:
        self.seconds = seconds
        self.fps = fps
        self.count = max(round(seconds * fps), 1)
        if max_frames:
            self.count = min(self.count, max_frames)
        self._photo = demo_photo_bgr()
        self.reconnects = 0
        self.info = SourceInfo(
            display_name="demo (scikit-image astronaut, NASA, public domain)",
            stem="demo",
            kind=SourceKind.DEMO,
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
