"""The overlay's cost per frame at 1, 5 and 20 persons, compact and full panels, at 480p and 1080p.

    python bench/overlay_cost.py [--frames 30]

Draws CocoER-shaped results (26 labels, five levels, exclusion chips: the
biggest panel there is) for people on a grid over a real photo, through
`OverlayRenderer.annotate` (layout included), and prints milliseconds per
frame and the ratio to one person with compact panels at the same size.
"""

from __future__ import annotations

import argparse
import time

import cv2

import numpy as np
from common import MEDIA

from cocoer_core.api import COMPETING_LEVELS, EmotionResult, Level
from cocoer_core.labels import EMOTIC_LABELS
from streamer.config import OverlayConfig
from streamer.types import Box, Frame, FrameResult, Person
from streamer.view.overlay import OverlayRenderer, OverlayStats


def _result(seed: int) -> EmotionResult:
    rng = np.random.default_rng(seed)
    scores = {level: rng.random(26).astype(np.float32) for level in (Level.FINAL, Level.VI, *COMPETING_LEVELS)}
    return EmotionResult(
        "cocoer", EMOTIC_LABELS, scores, pred=("Engagement",), exclusion=(Level.BODY, Level.CONTEXT, Level.HEAD)
    )


def _scene(image: np.ndarray, people: int) -> FrameResult:
    h, w = image.shape[:2]
    columns = int(np.ceil(np.sqrt(people * w / h)))
    rows = int(np.ceil(people / columns))
    cw, ch = w / columns, h / rows
    persons, results = [], []
    for k in range(people):
        x, y = (k % columns) * cw, (k // columns) * ch
        body = Box(x + 0.2 * cw, y + 0.1 * ch, x + 0.6 * cw, y + 0.95 * ch)
        face = Box(x + 0.3 * cw, y + 0.12 * ch, x + 0.5 * cw, y + 0.35 * ch)
        persons.append(Person(k + 1, body, face, 0.9))
        results.append(_result(k))
    return FrameResult(Frame("bench", 0, 0.0, 0.0, image), tuple(persons), tuple(results), tuple(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    photo = cv2.imread(str(MEDIA / "group_five_friends.jpg"))
    print(f"{'size':>6} {'people':>6} {'detail':>8} {'ms/frame':>9} {'vs 1 compact':>13} {'panels':>7}")
    for height in (480, 1080):
        image = cv2.resize(photo, (round(height * 16 / 9), height))
        base = None
        for people in (1, 5, 20):
            result = _scene(image, people)
            for detail in ("compact", "full"):
                renderer = OverlayRenderer(OverlayConfig(detail=detail), "CocoER")
                start = time.perf_counter()
                for _ in range(args.frames):
                    renderer.annotate(image.copy(), result, OverlayStats(fps=10.0))
                ms = 1000 * (time.perf_counter() - start) / args.frames
                base = base or ms
                print(
                    f"{height:>5}p {people:>6} {detail:>8} {ms:9.2f} {ms / base:12.1f}x {len(renderer.last_panels):>7}"
                )


if __name__ == "__main__":
    main()
