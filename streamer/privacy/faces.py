"""Faces hidden in a frame: blurred (default), pixelated or filled, over each head box grown by a margin.

Applied to the frame every output receives, before the overlay is drawn (the
labels stay readable); a face detector finds no face in the result
(tests/streamer/test_privacy.py checks it on the shared clips). "blur" takes
the region down to a few pixels and back up smoothly, then blurs it: strong
enough that nothing of a face survives, and cheaper than a Gaussian with a
kernel as large as the face.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2

import numpy as np

from streamer.types import Box

MODES = ("blur", "pixelate", "fill", "off")
#: Cells across a hidden face: few enough that no feature survives.
CELLS = 6
#: "blur" smooths the cells at this size, then stretches them over the face.
SMOOTH_SIDE = 8 * CELLS
FILL_BGR = (40, 40, 40)


def _grown(box: Box, margin: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    dx, dy = margin * box.width, margin * box.height
    x1, y1 = max(int(np.floor(box.x1 - dx)), 0), max(int(np.floor(box.y1 - dy)), 0)
    x2, y2 = min(int(np.ceil(box.x2 + dx)), width), min(int(np.ceil(box.y2 + dy)), height)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def hide_faces(image: np.ndarray, heads: Iterable[Box], mode: str = "blur", margin: float = 0.25) -> np.ndarray:
    """Hide every head box (grown by `margin` of its size per side) in `image`, in place; returns it."""
    if mode == "off":
        return image
    if mode not in MODES:
        raise ValueError(f"privacy.faces must be one of {', '.join(MODES)}; got {mode!r}")
    height, width = image.shape[:2]
    for head in heads:
        region = _grown(head, margin, width, height)
        if region is None:
            continue
        x1, y1, x2, y2 = region
        roi = image[y1:y2, x1:x2]
        if mode == "fill":
            roi[:] = FILL_BGR
            continue
        h, w = roi.shape[:2]
        small = cv2.resize(roi, (min(CELLS, w), min(CELLS, h)), interpolation=cv2.INTER_AREA)
        if mode == "pixelate":
            roi[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        else:
            # Smoothed at most 48 px across, then stretched: the same picture (within a grey level) as blurring
            # the full-size region with a kernel a quarter of its side, ~10x cheaper on a close-up face.
            mw, mh = min(w, SMOOTH_SIDE), min(h, SMOOTH_SIDE)
            mid = cv2.resize(small, (mw, mh), interpolation=cv2.INTER_LINEAR)
            k = max(3, (min(w, h) // 4) | 1)  # the full-size kernel, and its sigma (OpenCV's rule) scaled down
            sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
            mid = cv2.GaussianBlur(mid, (0, 0), sigmaX=sigma * mw / w, sigmaY=sigma * mh / h)
            roi[:] = cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR)
    return image
