"""Face detectors whose weights ship inside PyPI wheels: MTCNN and OpenCV's Haar cascade."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2

import numpy as np

from streamer.detectors.base import FrameByFrame, ScoredBox, SizeBatched, downscale_for_detection, scale_box
from streamer.types import Box

logger = logging.getLogger(__name__)

#: The smallest frame side MTCNN can scan (its P-Net window is 12 px; pyramids of smaller frames come out empty).
MTCNN_MIN_SIDE = 24


class MtcnnFaceDetector(SizeBatched):
    """MTCNN (Zhang et al. 2016); weights ship inside the facenet-pytorch wheel."""

    name = "mtcnn"

    def __init__(
        self,
        device: str = "cpu",
        min_score: float = 0.9,
        min_face_px: int = 20,
        max_side: int = 1280,
    ) -> None:
        from facenet_pytorch import MTCNN

        self.min_score = min_score
        self.max_side = max_side
        self._mtcnn = MTCNN(keep_all=True, device=device, min_face_size=min_face_px, post_process=False)

    def _detect_batch(self, images_bgr: Sequence[np.ndarray]) -> list[list[ScoredBox]]:
        h, w = images_bgr[0].shape[:2]
        smalls = [downscale_for_detection(image, self.max_side) for image in images_bgr]
        factor = smalls[0][1]
        if min(smalls[0][0].shape[:2]) < MTCNN_MIN_SIDE:
            return [[] for _ in images_bgr]  # its image pyramid is empty below this, and torch.cat fails on it
        rgb = np.stack([np.ascontiguousarray(small[:, :, ::-1]) for small, _ in smalls])
        boxes, probs = self._mtcnn.detect(rgb)
        return [self._scored(b, p, factor, w, h) for b, p in zip(boxes, probs, strict=True)]

    def _scored(
        self, boxes: np.ndarray | None, probs: np.ndarray | None, factor: float, w: int, h: int
    ) -> list[ScoredBox]:
        if boxes is None or probs is None:
            return []
        found = []
        for (x1, y1, x2, y2), prob in zip(boxes, probs, strict=True):
            if prob is None or prob < self.min_score:
                continue
            box = scale_box(Box(float(x1), float(y1), float(x2), float(y2)), factor).clip(w, h)
            if box.area > 0:
                found.append(ScoredBox(box, float(prob)))
        return found


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
