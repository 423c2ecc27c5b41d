"""Zones of a camera's view: masked (never seen) and ignored (seen, never analysed).

A zone is a polygon of at least three `[x, y]` points, in the source's pixels
or, when every coordinate is within 0..1, as fractions of the frame's width
and height (the same zone then fits every resolution of a camera):

    privacy:
      mask: [[[0, 0], [0.3, 0], [0.3, 1], [0, 1]]]     # the left 30 %: filled before detection
    analysis:
      ignore: [[[800, 400], [1280, 400], [1280, 720], [800, 720]]]

- `privacy.mask` zones are filled with one flat colour before anything else
  sees the frame: nobody there is detected, analysed, shown or stored.
- `analysis.ignore` zones stay in the video, but a person whose box centre
  lies inside one is not tracked or analysed (their face is still hidden).

A sources file's entry may add its own (`mask:` and `ignore:` beside `spec:`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2

import numpy as np

from trackers.types import Box, Frame  # the leaf module: the config imports this one

#: What a masked zone becomes: a flat mid grey (a constant area that no detector reads as anything).
MASK_BGR = (128, 128, 128)
MAX_ZONES = 64
MAX_POINTS = 256


@dataclass(frozen=True)
class Zone:
    """A polygon; `fractional` ones are in fractions of the frame, the others in pixels."""

    points: tuple[tuple[float, float], ...]
    fractional: bool

    def pixels(self, width: int, height: int) -> np.ndarray:
        """The polygon in pixels of a `width` x `height` frame, as OpenCV draws it (N x 2 int32)."""
        sx, sy = (width, height) if self.fractional else (1.0, 1.0)
        return np.array([[round(x * sx), round(y * sy)] for x, y in self.points], dtype=np.int32)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def parse_zones(value: Any, key: str) -> tuple[Zone, ...]:
    """Zones from a config value (a list of polygons); ValueError naming `key` and the zone when malformed."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{key} must be a list of polygons, each a list of [x, y] points; got {value!r:.60}")
    if len(value) > MAX_ZONES:
        raise ValueError(f"{key} has {len(value)} zones; at most {MAX_ZONES}")
    zones = []
    for number, polygon in enumerate(value, start=1):
        where = f"{key} zone {number}"
        if not isinstance(polygon, (list, tuple)) or not 3 <= len(polygon) <= MAX_POINTS:
            raise ValueError(f"{where} must be a list of 3 to {MAX_POINTS} [x, y] points")
        points = []
        for point in polygon:
            xy = [_number(v) for v in point] if isinstance(point, (list, tuple)) and len(point) == 2 else []
            if len(xy) != 2 or xy[0] is None or xy[1] is None:
                raise ValueError(f"{where}: each point must be [x, y] with x, y >= 0; got {point!r:.40}")
            points.append((xy[0], xy[1]))
        fractional = all(x <= 1.0 and y <= 1.0 for x, y in points)
        zones.append(Zone(tuple(points), fractional))
    return tuple(zones)


@dataclass
class ZoneFilter:
    """A source's zones applied to its frames and detections (the ignore bitmap is cached per frame size)."""

    mask: tuple[Zone, ...] = ()
    ignore: tuple[Zone, ...] = ()
    _ignored: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, masks: Iterable[Sequence[Zone]], ignores: Iterable[Sequence[Zone]]) -> ZoneFilter:
        return cls(tuple(z for zones in masks for z in zones), tuple(z for zones in ignores for z in zones))

    def _ignore_bitmap(self, width: int, height: int) -> np.ndarray:
        if (width, height) not in self._ignored:
            bitmap = np.zeros((height, width), np.uint8)
            cv2.fillPoly(bitmap, [z.pixels(width, height) for z in self.ignore], 1)
            self._ignored[(width, height)] = bitmap.astype(bool)
        return self._ignored[(width, height)]

    def masked(self, frame: Frame) -> Frame:
        """The frame with every mask zone filled (a new image: the decoder's buffer is left alone)."""
        if not self.mask:
            return frame
        image = frame.image.copy()
        cv2.fillPoly(image, [z.pixels(frame.width, frame.height) for z in self.mask], MASK_BGR)
        return replace(frame, image=image)

    def ignores(self, box: Box, width: int, height: int) -> bool:
        """Whether a person with this box is in an ignored zone (by its centre)."""
        if not self.ignore:
            return False
        x, y = box.center
        col, row = min(max(int(x), 0), width - 1), min(max(int(y), 0), height - 1)
        return bool(self._ignore_bitmap(width, height)[row, col])
