"""What privacy costs per frame, against the pipeline's own frame time measured in the same run.

    python bench/privacy_cost.py [--frames 40] [--reps 30]

1. The whole default pipeline (decode, detect, track, emotion, overlay, MP4 +
   JSONL) on the first `--frames` frames of a real 720p clip, once with
   `privacy.faces=off` and once with the default `blur`, then with a masked
   zone and in aggregate-only mode: ms per frame and the ratio to `off`.
2. Hiding 1, 5 and 20 faces (~90x110 px) in a 720p frame, each mode: ms per
   frame and the share of the pipeline frame time measured in step 1.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import cv2

from common import MEDIA

from streamer import Analyzer
from streamer.privacy.faces import hide_faces
from streamer.types import Box

CLIP = "person_in_context_liveportrait_s18.mp4"  # 1280x720, one person
PHOTO = "group_five_friends.jpg"


def pipeline_ms(frames: int, *overrides: str) -> float:
    """Milliseconds per frame of a whole run (models built first, outside the timing)."""
    with tempfile.TemporaryDirectory() as out:
        analyzer = Analyzer(
            overrides=[f"sink.out_dir={out}", f"source.max_frames={frames}", "sink.report=false", *overrides]
        )
        analyzer.run(str(MEDIA / CLIP))  # warm: models loaded, first-call costs paid
        start = time.perf_counter()
        report = analyzer.run(str(MEDIA / CLIP))
        return 1000 * (time.perf_counter() - start) / max(report.sources[0].frames, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()

    runs = {
        "faces off": pipeline_ms(args.frames, "privacy.faces=off"),
        "faces blurred (default)": pipeline_ms(args.frames),
        "blurred + a masked zone": pipeline_ms(args.frames, "privacy.mask=[[[0,0],[0.3,0],[0.3,1],[0,1]]]"),
        "aggregate-only": pipeline_ms(args.frames, "privacy.mode=aggregate"),
    }
    base = runs["faces off"]
    print(f"pipeline, {CLIP}, {args.frames} frames")
    print(f"{'run':>26} {'ms/frame':>9} {'vs off':>7}")
    for name, ms in runs.items():
        print(f"{name:>26} {ms:9.1f} {ms / base:6.2f}x")

    image = cv2.resize(cv2.imread(str(MEDIA / PHOTO)), (1280, 720))
    frame_ms = runs["faces blurred (default)"]
    print(f"\nhiding faces in a 720p frame, against the pipeline's {frame_ms:.0f} ms frame")
    print(f"{'faces':>5} {'mode':>9} {'ms/frame':>9} {'of a frame':>11}")
    for count in (1, 5, 20):
        boxes = [Box(40 + (k % 10) * 120, 60 + (k // 10) * 300, 130 + (k % 10) * 120, 170 + (k // 10) * 300)
                 for k in range(count)]  # fmt: skip
        for mode in ("blur", "pixelate", "fill"):
            start = time.perf_counter()
            for _ in range(args.reps):
                hide_faces(image.copy(), boxes, mode)
            ms = 1000 * (time.perf_counter() - start) / args.reps
            print(f"{count:>5} {mode:>9} {ms:9.2f} {ms / frame_ms:10.1%}")


if __name__ == "__main__":
    main()
