"""`python -m streamer.tools.evaluate_faces LABELS.csv`: the baseline's accuracy on your own labelled faces.

See `cocoer_core.evaluate_faces` for the CSV format and what is printed.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from cocoer_core.baseline import FaceExpressionBaseline
from cocoer_core.command_line import exit_with, number_within
from cocoer_core.evaluate_faces import FaceFinder, evaluate, read_label_csv, report


def _mtcnn_finder(device: str) -> FaceFinder:
    # The pipeline's own face detector; cocoer_core's evaluate() takes any finder.
    from streamer.detectors.faces import MtcnnFaceDetector

    detector = MtcnnFaceDetector(device=device, max_side=0)

    def find(image: np.ndarray) -> tuple[float, float, float, float] | None:
        faces = detector.detect(image)
        return max(faces, key=lambda f: f.box.area).box.as_tuple() if faces else None

    return find


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streamer.tools.evaluate_faces", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("csv", type=Path, help="CSV of path,label rows (paths relative to the CSV)")
    parser.add_argument(
        "--detector",
        choices=("mtcnn", "none"),
        default="mtcnn",
        help="find the face first (mtcnn) or use whole images (none)",
    )
    parser.add_argument(
        "--face-margin",
        type=number_within(0.0, 2.0),
        default=0.0,
        help="grow the face box by this fraction per side (as emotion.face_margin)",
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        print(f"error: no such CSV file: {args.csv}", file=sys.stderr)
        return 2
    try:
        rows = read_label_csv(args.csv)
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        print(f"error: {args.csv} is not a path,label CSV: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"error: {args.csv} has no rows", file=sys.stderr)
        return 2
    model = FaceExpressionBaseline(device=args.device, face_margin=args.face_margin)
    finder = _mtcnn_finder(args.device) if args.detector == "mtcnn" else None
    print(report(evaluate(rows, model, finder)))
    return 0


if __name__ == "__main__":
    exit_with(main)
