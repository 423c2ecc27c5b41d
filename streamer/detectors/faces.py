"""Face detectors whose weights ship inside PyPI wheels: MTCNN and OpenCV's Haar cascade."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2

import numpy as np

from streamer.detectors.base import FrameByFrame, ScoredBox, downscale_for_detection, scale_box
from streamer.detectors.mtcnn_cascade import WINDOW, MtcnnCascade, SearchArea
from streamer.types import Box

logger = logging.getLogger(__name__)

#: A face is at least this fraction of its person box's width (arms spread, or two people in one box)...
FACE_OF_BODY = 0.1
#: ...and may stick out of the box by this fraction of its size (a head cut by the box's top edge).
AREA_MARGIN = 0.1


class MtcnnFaceDetector:
    """MTCNN (Zhang et al. 2016): facenet-pytorch's networks (weights in its wheel), our cascade driver.

    `detect_in` searches only inside person boxes, each for faces no smaller
    than a tenth of its width: ~1.4x less CPU than a whole-frame search over
    seven real clips, ~1.8x on a 640x360 close-up (bench/face_search.py).
    """

    name = "mtcnn"

    def __init__(
        self,
        device: str = "cpu",
        min_score: float = 0.9,
        min_face_px: int = 20,
        max_side: int = 1280,
    ) -> None:
        self.min_score = min_score
        self.min_face_px = min_face_px
        self.max_side = max_side
        self._cascade = MtcnnCascade(device)

    def detect(self, image_bgr: np.ndarray) -> list[ScoredBox]:
        return self.detect_in([image_bgr], [None])[0]

    def detect_many(self, images_bgr: Sequence[np.ndarray]) -> list[list[ScoredBox]]:
        return self.detect_in(images_bgr, [None] * len(images_bgr))

    def detect_in(
        self, images_bgr: Sequence[np.ndarray], people: Sequence[Sequence[ScoredBox] | None]
    ) -> list[list[ScoredBox]]:
        """Faces in each frame: inside its person boxes where they are given, else anywhere in it."""
        frames = []
        for image, bodies in zip(images_bgr, people, strict=True):
            h, w = image.shape[:2]
            smallest = self._smallest_face(w, h)
            areas = [SearchArea(Box(0, 0, w, h), smallest)] if bodies is None else person_areas(bodies, w, h, smallest)
            frames.append((cv2.cvtColor(image, cv2.COLOR_BGR2RGB), areas))
        found = self._cascade.detect(frames)
        return [
            [ScoredBox(Box(*map(float, row[:4])).clip(image.shape[1], image.shape[0]), float(row[4]))
             for row in rows if row[4] >= self.min_score]
            for image, rows in zip(images_bgr, found, strict=True)
        ]  # fmt: skip

    def _smallest_face(self, w: int, h: int) -> float:
        """`min_face_px`, grown on frames larger than `max_side` as if they were shrunk to it first."""
        longest = max(w, h)
        return self.min_face_px * (longest / self.max_side if 0 < self.max_side < longest else 1.0)


def person_areas(bodies: Sequence[ScoredBox], w: int, h: int, smallest: float) -> list[SearchArea]:
    """Where each person's face can be, or the whole frame when that is cheaper to search.

    A person's area is its box with a margin above and beside it, searched
    for faces at least FACE_OF_BODY of its width. Many people overlapping in
    a small frame cost more than the frame: then the frame is searched.
    """
    whole = SearchArea(Box(0, 0, w, h), smallest)
    areas = []
    for body in bodies:
        b = body.box
        grown = Box(b.x1 - AREA_MARGIN * b.width, b.y1 - AREA_MARGIN * b.height, b.x2 + AREA_MARGIN * b.width, b.y2)
        areas.append(SearchArea(grown.clip(w, h), max(smallest, FACE_OF_BODY * b.width)))
    return areas if sum(map(search_cost, areas)) < search_cost(whole) else [whole]


def search_cost(area: SearchArea) -> float:
    """P-Net's work in an area, in pixels of its first pyramid level, plus the calls' fixed cost (~a 64x64 level)."""
    return area.box.area * (WINDOW / max(area.min_face, WINDOW)) ** 2 + 4096


class HaarFaceDetector(FrameByFrame):
    """OpenCV's frontal-face Haar cascade (Viola-Jones), bundled with opencv-python."""

    name = "haar"

    def __init__(self, min_face_px: int = 20, min_neighbors: int = 5, max_side: int = 1280) -> None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"could not load the Haar cascade {path}")
        self.min_face_px = min_face_px
        self.min_neighbors = min_neighbors
        self.max_side = max_side

    def detect(self, image_bgr: np.ndarray) -> list[ScoredBox]:
        small, factor = downscale_for_detection(image_bgr, self.max_side)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        min_px = max(int(self.min_face_px * factor), 8)
        rects, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=1.1,
            minNeighbors=self.min_neighbors,
            minSize=(min_px, min_px),
            outputRejectLevels=True,
        )
        h, w = image_bgr.shape[:2]
        found = []
        for (x, y, bw, bh), weight in zip(rects, np.ravel(weights), strict=True):
            box = scale_box(Box.from_ltwh(x, y, bw, bh), factor).clip(w, h)
            # The cascade's last-stage weight is unbounded; squash it into (0, 1).
            found.append(ScoredBox(box, float(1.0 / (1.0 + np.exp(-weight)))))
        return found
