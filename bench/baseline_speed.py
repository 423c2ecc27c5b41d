"""The face baseline (FER2013 mini-Xception) per runtime: PyTorch against its ONNX export, same run, real faces.

    python bench/baseline_speed.py [--faces 1 4 16] [--repeats 200]

The faces are MTCNN's on a real group photo (cycled to N), preprocessed as the
pipeline does. Per N: ms per call in PyTorch and in ONNX Runtime (the export
`emotion.runtime` makes, written to a temporary folder here), their ratio, and
the largest probability difference between the two. Threads as the CLI sets
them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2

import torch
from common import MEDIA

from cocoer_core.baseline import FaceExpressionBaseline, preprocess_faces
from cocoer_core.speed_choice import best_ms
from streamer.detectors.faces import MtcnnFaceDetector


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--photo", default="group_five_friends.jpg", help="a photo in ../shared/media")
    args = parser.parse_args()
    image = cv2.imread(str(MEDIA / args.photo))
    if image is None:
        print(f"cannot run: {MEDIA / args.photo} not found", file=sys.stderr)
        return 2
    boxes = [f.box.as_tuple() for f in MtcnnFaceDetector().detect(image)]
    with tempfile.TemporaryDirectory() as tmp:
        plain = FaceExpressionBaseline(face_margin=0.0, runtime="torch")
        exported = FaceExpressionBaseline(face_margin=0.0, runtime="onnxruntime", cache_dir=Path(tmp))
        if exported.onnx is None:
            print("cannot run: the ONNX export did not load (see the line above)", file=sys.stderr)
            return 2
        print(f"{args.photo}: {len(boxes)} faces, cycled; {torch.get_num_threads()} threads")
        print(f"{'faces':>5} {'torch ms':>9} {'onnxruntime ms':>15} {'speed-up':>9} {'max |dp|':>9}")
        for n in args.faces:
            faces = preprocess_faces(image, [boxes[i % len(boxes)] for i in range(n)], 0.0)
            slow = best_ms(lambda faces=faces: plain.predict_probabilities(faces), args.repeats)
            fast = best_ms(lambda faces=faces: exported.predict_probabilities(faces), args.repeats)
            dp = abs(plain.predict_probabilities(faces) - exported.predict_probabilities(faces)).max()
            print(f"{n:>5} {slow:>9.2f} {fast:>15.2f} {slow / fast:>8.2f}x {dp:>9.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
