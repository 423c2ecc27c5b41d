"""Evaluation speed: persons per second, batched as `cocoer_core.evaluate` runs, against one person per call.

    python bench/evaluate_speed.py [--device cpu|cuda] [--images 4]

The full CocoER (golden-filled weights: the official GWT.pth cannot be had
here; speed does not depend on the values) on real group photos whose
persons MTCNN finds (a face grown into a body). "batched": each image's
context once and its persons together, several images per forward pass, as
`evaluate` does; "per person": one forward pass per person, the context
recomputed each time, as the official evaluation loop does.
"""

from __future__ import annotations

import argparse
import json
import time

import cv2

from common import DESIGN, MEDIA

from cocoer_core.api import PersonRegion
from cocoer_core.runtime import CocoERModel, FrameBatch, prepare_frame
from cocoer_core.verify_golden import build_golden_models
from streamer.detectors.faces import MtcnnFaceDetector

PHOTOS = ("group_five_friends.jpg", "group_friends_poker.jpg", "group_12_angry_men.jpg", "group_test_image.jpg")


def persons_of(image) -> list[PersonRegion]:  # type: ignore[no-untyped-def]
    height, width = image.shape[:2]
    out = []
    for face in MtcnnFaceDetector().detect(image)[:8]:
        x1, y1, x2, y2 = face.box.as_tuple()
        w, h = x2 - x1, y2 - y1
        body = (max(x1 - w, 0), max(y1 - h / 4, 0), min(x2 + w, width), min(y2 + 3 * h, height))
        out.append(PersonRegion(body, face.box.as_tuple()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=4, help="images per batched forward pass")
    args = parser.parse_args()
    model, clip = build_golden_models(json.loads((DESIGN / "cocoer_golden_A.json").read_text()))
    cocoer = CocoERModel(model, clip.visual, args.device)
    frames = [(image, persons_of(image)) for image in (cv2.imread(str(MEDIA / name)) for name in PHOTOS)]
    total = sum(len(p) for _, p in frames)
    cocoer.forward_frame(prepare_frame(frames[0][0], frames[0][1][:1]))  # warm-up

    start = time.perf_counter()
    for k in range(0, len(frames), args.images):
        chunk = frames[k : k + args.images]
        cocoer.forward_frame(FrameBatch.concat([prepare_frame(image, persons) for image, persons in chunk]))
    batched = total / (time.perf_counter() - start)

    start = time.perf_counter()
    for image, persons in frames:
        for person in persons:
            cocoer.forward_frame(prepare_frame(image, [person]))
    alone = total / (time.perf_counter() - start)

    print(f"{total} persons in {len(frames)} photos, {args.device}")
    print(f"{'per person (official loop)':>28} {alone:7.2f} persons/s  1.00x")
    print(f"{'batched (evaluate)':>28} {batched:7.2f} persons/s  {batched / alone:.2f}x")


if __name__ == "__main__":
    main()
