"""Where each person's label panel goes: beside its face, never over another panel or any face.

Greedy, left to right: for each panel try the right of its face, then the
left, below and above, each shifted up and down in small steps (stacking
beside crowded neighbours), and take the first spot inside the frame that
overlaps no panel placed so far and no face. The renderer asks again with a
compact panel when the full one fits nowhere, and draws none rather than
cover someone's face.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Rect:
    """Integer pixel rectangle: x, y of the top-left corner, width, height."""

    x: int
    y: int
    w: int
    h: int

    def overlaps(self, other: Rect) -> bool:
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )

    def inside(self, width: int, height: int, top: int = 0) -> bool:
        return self.x >= 0 and self.y >= top and self.x + self.w <= width and self.y + self.h <= height


def _candidates(size: tuple[int, int], anchor: Rect, gap: int, step: int, frame: tuple[int, int]) -> Iterator[Rect]:
    w, h = size
    width, height = frame
    # Below and above slide sideways to stay inside the frame (a face near the right edge keeps its panel
    # under it, not across the picture).
    x_inside = min(max(anchor.x, 0), max(width - w, 0))
    sides = [
        (anchor.x + anchor.w + gap, anchor.y),  # right of the face
        (anchor.x - gap - w, anchor.y),  # left
        (x_inside, anchor.y + anchor.h + gap),  # below
        (x_inside, anchor.y - gap - h),  # above
    ]
    shifts = [0]
    for k in range(1, height // max(step, 1) + 2):
        shifts += [k * step, -k * step]
    for shift in shifts:
        for x, y in sides:
            yield Rect(x, y + shift, w, h)


def place(
    sizes: Sequence[tuple[int, int] | None],
    anchors: Sequence[Rect],
    faces: Sequence[Rect],
    frame: tuple[int, int],
    placed: Sequence[Rect] = (),
    top: int = 0,
    gap: int = 4,
    step: int = 8,
) -> list[Rect | None]:
    """A spot for each panel (None: no room), given each person's anchor (its face, or its body)."""
    width, height = frame
    taken = list(placed)
    out: list[Rect | None] = [None] * len(sizes)
    order = sorted(range(len(sizes)), key=lambda i: (anchors[i].x, anchors[i].y))
    for i in order:
        size = sizes[i]
        if size is None:
            continue
        for spot in _candidates(size, anchors[i], gap, step, frame):
            if spot.inside(width, height, top) and not any(spot.overlaps(r) for r in (*taken, *faces)):
                out[i] = spot
                taken.append(spot)
                break
    return out
