"""Detector protocols: faces and people are found separately, then associated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streamer.types import Box, PersonDetection


@dataclass(frozen=True)
class ScoredBox:
    """One raw detection: a box in full-frame pixels and the detector's confidence."""

    box: Box
    score: float


class FaceDetector(Protocol):
    """Finds faces (head boxes) in BGR frames."""

    name: str

    def detect(self, image_bgr: np.ndarray) -> list[ScoredBox]: ...

    def detect_many(self, images_bgr: Sequence[np.ndarray]) -> list[list[ScoredBox]]:
        """Several frames at once (batched where the detector can; several sources' frames on a GPU)."""
        ...


class BodyDetector(Protocol):
    """Finds people (body boxes) in BGR frames."""

    name: str

    def detect(self, image_bgr: np.ndarray) -> list[ScoredBox]: ...

    def detect_many(self, images_bgr: Sequence[np.ndarray]) -> list[list[ScoredBox]]: ...


class PersonDetector(Protocol):
    """Finds people with their faces: what the detect+track stage calls."""

    def detect(self, image_bgr: np.ndarray) -> list[PersonDetection]: ...

    def describe(self) -> str:
        """One line naming the detectors in use."""
        ...

    def close(self) -> None:
        """This source is done with it (a shared detector stops waiting for its frames)."""
        ...


def nms(boxes: list[ScoredBox], iou_threshold: float) -> list[ScoredBox]:
    """Greedy non-maximum suppression, highest score first."""
    kept: list[ScoredBox] = []
    for candidate in sorted(boxes, key=lambda b: -b.score):
        if all(candidate.box.iou(k.box) <= iou_threshold for k in kept):
            kept.append(candidate)
    return kept


def downscale_for_detection(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink a frame so its longer side is at most `max_side`; return the factor used."""
    import cv2

    h, w = image.shape[:2]
    longest = max(h, w)
    if max_side <= 0 or longest <= max_side:
        return image, 1.0
    factor = max_side / longest
    small = cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    return small, factor


def scale_box(box: Box, factor: float) -> Box:
    """Map a box found on a downscaled frame back to full-frame pixels."""
    if factor == 1.0:
        return box
    return Box(box.x1 / factor, box.y1 / factor, box.x2 / factor, box.y2 / factor)


def detect_many_by_size(detect_batch: Callable[[list[np.ndarray]], list], images: Sequence[np.ndarray]) -> list:
    """Run `detect_batch` on groups of same-sized images; answers in input order."""
    out: list = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(image.shape, []).append(i)
    for indices in groups.values():
        for i, found in zip(indices, detect_batch([images[i] for i in indices]), strict=True):
            out[i] = found
    return out


class FrameByFrame:
    """`detect_many` for a detector that takes one frame at a time."""

    def detect(self, image_bgr: np.ndarray) -> list[ScoredBox]:
        raise NotImplementedError

    def detect_many(self, images_bgr: Sequence[np.ndarray]) -> list[list[ScoredBox]]:
        return [self.detect(image) for image in images_bgr]


class SizeBatched:
    """`detect` and `detect_many` for a detector that runs a stack of same-sized frames at once."""

    def _detect_batch(self, images_bgr: Sequence[np.ndarray]) -> list[list[ScoredBox]]:
        raise NotImplementedError

    def detect(self, image_bgr: np.ndarray) -> list[ScoredBox]:
        return self.detect_many([image_bgr])[0]

    def detect_many(self, images_bgr: Sequence[np.ndarray]) -> list[list[ScoredBox]]:
        """One batched run per group of same-sized frames (several sources' frames, on a GPU)."""
        return detect_many_by_size(self._detect_batch, images_bgr)
