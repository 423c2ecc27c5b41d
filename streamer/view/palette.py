"""One colour per person: the same track id gets the same colour on its box, tag, panel and timeline.

Twelve hues far apart (a tableau-like set, brightened to read on dark
shades), cycled by track id; a colour is never green-on-green with the old
fixed body colour because there is none: the colour *is* the person.
"""

from __future__ import annotations

#: RGB, for pages and plots; the overlay draws in BGR (`bgr`).
TRACK_RGB: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (23, 190, 207),
    (227, 119, 194),
    (188, 189, 34),
    (140, 86, 75),
    (255, 187, 120),
    (152, 223, 138),
    (174, 199, 232),
)


def track_rgb(track_id: int) -> tuple[int, int, int]:
    return TRACK_RGB[track_id % len(TRACK_RGB)]


def track_bgr(track_id: int) -> tuple[int, int, int]:
    r, g, b = track_rgb(track_id)
    return (b, g, r)


def track_hex(track_id: int) -> str:
    """`#rrggbb`, for HTML and matplotlib."""
    return "#{:02x}{:02x}{:02x}".format(*track_rgb(track_id))
