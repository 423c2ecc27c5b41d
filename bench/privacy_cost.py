"""The cost of hiding faces per frame at 720p, 1 / 5 / 20 faces, each mode, against a pipeline frame.

    python bench/privacy_cost.py [--frames 50]

Faces of ~90x110 px on a grid over a real 720p photo; prints milliseconds per
frame for blur, pixelate and fill, and the ratio to the time the default
pipeline spends per frame on this machine (decode + detect + track + emotion +
overlay + write, `bench/pipeline.py`'s figure: ~150 ms on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import time

import cv2

from common import MEDIA

from streamer.privacy.faces import hide_faces
from streamer.types import Box

PIPELINE_FRAME_MS = 150.0  # bench/pipeline.py, face_woman_talking_pexels.mp4, this machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()
    image = cv2.resize(cv2.imread(str(MEDIA / "group_five_friends.jpg")), (1280, 720))
    print(f"{'faces':>5} {'mode':>9} {'ms/frame':>9} {'of a pipeline frame':>20}")
    for count in (1, 5, 20):
        boxes = [Box(40 + (k % 10) * 120, 60 + (k // 10) * 300, 130 + (k % 10) * 120, 170 + (k // 10) * 300)
                 for k in range(count)]  # fmt: skip
        for mode in ("blur", "pixelate", "fill"):
            start = time.perf_counter()
            for _ in range(args.frames):
                hide_faces(image.copy(), boxes, mode)
            ms = 1000 * (time.perf_counter() - start) / args.frames
            print(f"{count:>5} {mode:>9} {ms:9.2f} {ms / PIPELINE_FRAME_MS:19.1%}")


if __name__ == "__main__":
    main()
