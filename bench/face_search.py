"""MTCNN faces: facenet-pytorch's driver against ours, and a whole-frame search against one inside the persons.

    python bench/face_search.py [--frames 8] [--threads 1]

On frames of real clips (every few frames of each), per clip: the CPU time
per frame of facenet-pytorch's MTCNN (the baseline: the same three networks
and weights, its own pyramid and resampling), of our cascade over the whole
frame (`detector.face_search: frame`, the default) and of our cascade inside
the persons CenterNet found (`persons`; CenterNet's own time not counted),
each as a ratio of the baseline; the faces each found (score >= 0.9), how
many of facenet-pytorch's faces ours found again (IoU >= 0.5) and their
median IoU. One torch thread by default: in a run the face search has one
core while CenterNet has the other.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2

import numpy as np
import torch
from common import MEDIA

from streamer.config import DetectorConfig
from streamer.detectors import build_detector
from streamer.detectors.base import ScoredBox
from streamer.detectors.faces import MtcnnFaceDetector
from streamer.types import Box

CLIPS = [
    "face_woman_talking_pexels.mp4",
    "faces_two_people_head_pose.mp4",
    "face_man_head_pose.mp4",
    "face_selfie_expressions.mp4",
    "people_walking_to_camera_faces.mp4",
    "people_walking_and_pausing_faces.mp4",
    "people_classroom_seated.mp4",
]


def frames_of(clip: str, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(MEDIA / clip))
    images = []
    while len(images) < count:
        for _ in range(5):  # every 5th frame: different poses, not the same one again
            ok, image = capture.read()
            if not ok:
                capture.release()
                return images
        images.append(image)
    capture.release()
    return images


def matched(reference: list[Box], ours: list[Box]) -> list[float]:
    """The best IoU of each reference face among ours, where it is >= 0.5."""
    best = [max((r.iou(o) for o in ours), default=0.0) for r in reference]
    return [value for value in best if value >= 0.5]


def timed(function, *args):
    start = time.process_time()
    result = function(*args)
    return result, time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from facenet_pytorch import MTCNN

    baseline = MTCNN(min_face_size=20, thresholds=[0.6, 0.7, 0.7], factor=0.709, keep_all=True, device="cpu")
    ours = MtcnnFaceDetector(max_side=0)
    people = build_detector(DetectorConfig(face="none", person="centernet", allow_download=False))
    print(f"torch threads {args.threads}; CPU ms per frame (ratio to facenet-pytorch); faces; facenet's found again")
    print(f"{'clip':<38}{'facenet-pytorch':>16}{'ours, frame':>22}{'ours, in persons':>22}  faces f/o/p  found again")
    totals = np.zeros(3)
    for clip in CLIPS:
        images = frames_of(clip, args.frames)
        if not images:
            print(f"{clip:<38} (missing)")
            continue
        seconds = np.zeros(3)
        counts = np.zeros(3, int)
        again: list[float] = []
        again_in: list[float] = []
        for image in images:
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            (boxes, probs), spent = timed(baseline.detect, rgb)
            reference = [Box(*map(float, b)) for b, p in zip(boxes if boxes is not None else [], probs, strict=False)
                         if p is not None and p >= 0.9]  # fmt: skip
            whole, spent_whole = timed(ours.detect, image)
            bodies = [ScoredBox(p.body_box, 1.0) for p in people.detect(image)]
            inside, spent_inside = timed(ours.detect_in, [image], [bodies])
            seconds += (spent, spent_whole, spent_inside)
            counts += (len(reference), len(whole), len(inside[0]))
            again += matched(reference, [f.box for f in whole])
            again_in += matched([f.box for f in whole], [f.box for f in inside[0]])
        totals += seconds
        ms = 1000 * seconds / len(images)
        print(
            f"{clip:<38}{ms[0]:>9.1f} (1.00)  {ms[1]:>9.1f} ({ms[0] / ms[1]:4.2f}x)  {ms[2]:>9.1f} ({ms[0] / ms[2]:4.2f}x)"
            f"  {counts[0]:>3}/{counts[1]}/{counts[2]}  frame {len(again)}/{counts[0]}"
            f" IoU {statistics.median(again) if again else 0:.2f}, persons {len(again_in)}/{counts[1]}"
        )
    print(
        f"all clips: ours {totals[0] / totals[1]:.2f}x faster over the frame, {totals[0] / totals[2]:.2f}x in persons"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
