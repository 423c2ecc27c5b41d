"""The live window: every source's newest annotated frame, in a grid when there are several."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import cv2

import numpy as np

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
    """One OpenCV window for all sources, shown from the main thread (cv2.imshow's requirement).

    Only created when a display is available; `q` or Esc closes it (the run then stops).
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.closed_by_user = False
        self._opened = False
        self._shown: list[int] = []

    @staticmethod
    def available() -> bool:
        # cv2.imshow without a display aborts the whole process, uncatchably.
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))

    def show(self, latest: Sequence[np.ndarray | None]) -> bool:
        """Show the newest frames (only when one changed); False once the user closed the window."""
        ids = [id(image) for image in latest]
        if ids != self._shown and any(image is not None for image in latest):
            self._shown = ids
            self._draw(latest[0] if len(latest) == 1 and latest[0] is not None else grid(latest))
        return not self.closed_by_user

    def _draw(self, image: np.ndarray) -> None:
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            self._opened = True
        cv2.imshow(self.title, image)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.closed_by_user = True

    def close(self) -> None:
        if self._opened:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._opened = False
