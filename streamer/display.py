"""The live window: every source's newest annotated frame, in a grid when there are several."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2

import numpy as np

from streamer.sinks import DisplaySink

#: The grid's size on screen; each tile keeps its source's aspect ratio.
GRID_SIZE = (1280, 720)


def grid(images: Sequence[np.ndarray | None], size: tuple[int, int] = GRID_SIZE) -> np.ndarray:
    """Tile images (None: a black tile) into one picture of `size` (width, height)."""
    count = max(len(images), 1)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    tile_w, tile_h = size[0] // columns, size[1] // rows
    canvas = np.zeros((tile_h * rows, tile_w * columns, 3), np.uint8)
    for k, image in enumerate(images):
        if image is None:
            continue
        h, w = image.shape[:2]
        scale = min(tile_w / w, tile_h / h)
        small = cv2.resize(image, (max(int(w * scale), 1), max(int(h * scale), 1)), interpolation=cv2.INTER_AREA)
        top = (k // columns) * tile_h + (tile_h - small.shape[0]) // 2
        left = (k % columns) * tile_w + (tile_w - small.shape[1]) // 2
        canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    return canvas


class GridWindow:
    """One OpenCV window for all sources, shown from the main thread (cv2.imshow's requirement)."""

    def __init__(self, title: str) -> None:
        self._sink = DisplaySink(title)
        self._shown: list[int] = []

    @staticmethod
    def available() -> bool:
        return DisplaySink.available()

    def show(self, latest: Sequence[np.ndarray | None]) -> bool:
        """Show the newest frames (only when one changed); False once the user closed the window."""
        ids = [id(image) for image in latest]
        if ids != self._shown and any(image is not None for image in latest):
            self._shown = ids
            self._sink.write(latest[0] if len(latest) == 1 and latest[0] is not None else grid(latest))
        return not self._sink.closed_by_user

    def close(self) -> None:
        self._sink.close()
