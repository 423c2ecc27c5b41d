"""Single-image CocoER, with the original `inference.py`'s output format.

    python -m cocoer_core.infer --input IMG --ckpt checkpoints/GWT.pth

Finds the people and their faces, runs CocoER on all of them in one batch,
prints per person the same dict as the original script (`pred`, `VI`,
`head`, `body`, `ctx`, `emo_process`, keyed "0", "1", ...) as JSON on
stdout (the six items per person also go to stderr), and saves the
annotated image to `outputs/<input name>` in the original's drawing style.
Unlike the original it runs deterministically: eval mode, no colour jitter,
RGB input (see the spec's §10).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

import numpy as np

from cocoer_core.api import EmotionResult, Level, PersonRegion
from cocoer_core.errors import CheckpointError

OFFICIAL_KEYS = {"pred": Level.FINAL, "VI": Level.VI, "head": Level.HEAD, "body": Level.BODY, "ctx": Level.CONTEXT}


def official_dict(result: EmotionResult) -> dict[str, list[str]]:
    """One person's output exactly as the original inference script builds it."""
    out: dict[str, list[str]] = {"pred": list(result.pred)}
    for key, level in OFFICIAL_KEYS.items():
        if level is not Level.FINAL:
            out[key] = list(result.level_pred.get(level, ()))
    out["emo_process"] = [level.sequence_name for level in result.exclusion]
    return out


def draw_official(image: np.ndarray, persons: Sequence[PersonRegion], results: Sequence[EmotionResult]) -> np.ndarray:
    """The original's drawing: green person box, yellow face box, blue index, green labels on black."""
    for index, (person, result) in enumerate(zip(persons, results, strict=True)):
        px1, py1, px2, py2 = (int(v) for v in person.body_xyxy)
        cv2.rectangle(image, (px1, py1), (px2, py2), (0, 255, 0), 1)
        cv2.putText(image, str(index), (px1, py1 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 0, 0), 2)
        if person.head_xyxy is None:
            continue
        fx1, fy1, fx2, fy2 = (int(v) for v in person.head_xyxy)
        cv2.rectangle(image, (fx1, fy1), (fx2, fy2), (0, 255, 255), 1)
        for line, label in enumerate(result.pred):
            x, y = fx2 + 10, fy1 + 10 * line
            (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.3, 1)
            cv2.rectangle(image, (x, y - h - 1), (x + w, y + base - 1), (0, 0, 0), cv2.FILLED)
            cv2.putText(image, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 255, 0), 1)
    return image


def _detect(image: np.ndarray, device: str, allow_download: bool) -> list[PersonRegion]:
    # The CLI sits at the edge of cocoer_core and borrows the pipeline's detectors
    # (insightface SCRFD like the original when available, else MTCNN + HOG).
    from streamer.config import DetectorConfig
    from streamer.detectors import build_detector

    detector = build_detector(DetectorConfig(allow_download=allow_download), device)
    logging.getLogger(__name__).info("%s", detector.describe())
    return [
        PersonRegion(d.body_box.as_tuple(), d.head_box.as_tuple() if d.head_box else None)
        for d in detector.detect(image)
        if d.head_box is not None  # like the original: persons without a face are dropped
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cocoer_core.checkpoint import find_clip_weights, load_clip_rn50, load_cocoer_weights
    from cocoer_core.config import CocoERConfig
    from cocoer_core.model import CocoER
    from cocoer_core.runtime import CocoERModel

    image = cv2.imread(str(args.input), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{args.input} is not a readable image")
    model = CocoER(CocoERConfig(inside_lr=args.inside_lr))
    load_cocoer_weights(model, args.ckpt)
    clip_path = args.clip or find_clip_weights(args.ckpt.parent, allow_download=not args.offline)
    runtime = CocoERModel(model, load_clip_rn50(clip_path).visual, args.device)
    persons = _detect(image, args.device, allow_download=not args.offline)
    if not persons:
        raise ValueError(f"no person with a face found in {args.input}")
    results = [r for r in runtime.predict(image, persons) if r is not None]
    outputs = {str(i): official_dict(r) for i, r in enumerate(results)}
    args.out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out / args.input.name), draw_official(image.copy(), persons, results))
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cocoer_core.infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="image file")
    parser.add_argument(
        "--ckpt", type=Path, default=Path("checkpoints/GWT.pth"), help="CocoER checkpoint (default checkpoints/GWT.pth)"
    )
    parser.add_argument(
        "--clip", type=Path, default=None, help="OpenAI CLIP RN50.pt (default: next to the checkpoint, or clip's cache)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("outputs"), help="folder for the annotated image (default outputs/)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--inside-lr", type=float, default=1.0, help="coordination step size (the original script: 1.0)"
    )
    parser.add_argument("--offline", action="store_true", help="never try to download detector or CLIP weights")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if not args.input.is_file():
        print(f"error: no such image: {args.input}", file=sys.stderr)
        return 2
    try:
        outputs = run(args)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key, value in outputs.items():
        for item, labels in value.items():
            logging.getLogger(__name__).info("person %s %s: %s", key, item, labels)
    print(json.dumps(outputs, indent=1))  # stdout stays machine-readable
    return 0


if __name__ == "__main__":
    sys.exit(main())
