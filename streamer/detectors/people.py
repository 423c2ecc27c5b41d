"""Person (body box) detectors whose weights ship inside PyPI wheels."""

from __future__ import annotations

import cv2

import numpy as np

from streamer.detectors.base import FrameByFrame, ScoredBox, downscale_for_detection, nms, scale_box
from streamer.types import Box

#: Margins of the HOG window around the person it was trained on, per side.
TIGHT_X = 0.2
TIGHT_Y = 0.1


class HogPeopleDetector(FrameByFrame):
    """OpenCV's HOG + linear SVM pedestrian detector (Dalal & Triggs 2005).

    It finds upright, mostly unoccluded people at least ~128 px tall (smaller
    people are found after upscaling by `upscale`); seated or cropped people
    are better found through their faces.
    """

    name = "hog"

    def __init__(
        self,
        min_score: float = 0.5,
        max_side: int = 1280,
        nms_iou: float = 0.45,
        upscale: float = 1.0,
        tighten: bool = True,
    ) -> None:
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))
        self.min_score = min_score
        self.max_side = max_side
        self.nms_iou = nms_iou
        self.upscale = upscale
        self.tighten = tighten

    def detect(self, image_bgr: np.ndarray) -> list[ScoredBox]:
        small, factor = downscale_for_detection(image_bgr, self.max_side)
        if self.upscale != 1.0:
            small = cv2.resize(small, None, fx=self.upscale, fy=self.upscale)
            factor *= self.upscale
        win_w, win_h = self._hog.winSize
        if small.shape[1] < win_w or small.shape[0] < win_h:
            return []  # smaller than one detection window: OpenCV would corrupt the heap (seen on 1x1 frames)
        rects, weights = self._hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
        h, w = image_bgr.shape[:2]
        found = []
        for rect, weight in zip(rects, np.ravel(weights), strict=True):
            if weight < self.min_score:
                continue
            x, y, bw, bh = (float(v) for v in rect)
            if self.tighten:
                # The 64x128 window holds a ~96 px tall, ~40 px wide person centred in it.
                x, y, bw, bh = x + TIGHT_X * bw, y + TIGHT_Y * bh, bw * (1 - 2 * TIGHT_X), bh * (1 - 2 * TIGHT_Y)
            box = scale_box(Box.from_ltwh(x, y, bw, bh), factor).clip(w, h)
            # SVM margins are unbounded; squash them into (0, 1) for the tracker.
            found.append(ScoredBox(box, float(1.0 / (1.0 + np.exp(-weight)))))
        return nms(found, self.nms_iou)
