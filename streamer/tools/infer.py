"""Single-image CocoER, with the original `inference.py`'s output format.

    python -m streamer.tools.infer --input IMG --ckpt checkpoints/GWT.pth

Finds the people and their faces (the pipeline's detectors), runs CocoER on
all of them in one batch, prints per person the same dict as the original
script (`pred`, `VI`, `head`, `body`, `ctx`, `emo_process`, keyed "0", "1",
...) as JSON on stdout (the six items per person also go to stderr), and
saves the annotated image to `outputs/<input name>` in the original's
drawing style (never over the input itself: an input inside `--out` gets
`<stem>_annotated`; a name no image format goes by gets `.png`). Unlike the
original it runs deterministically: eval mode, no colour jitter, RGB input
(see the spec's §10). A photo over 8K UHD is read
as the pipeline reads one: analysed and drawn scaled down to that size; an
image that is a decompression bomb is refused in one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import cv2

import numpy as np

from cocoer_core.api import PersonRegion
from cocoer_core.command_line import exit_with, number_within
from cocoer_core.errors import CheckpointError
from cocoer_core.infer import draw_official, official_dict
from cocoer_core.whole_files import replaced_whole
from streamer.errors import SourceError
from streamer.redact import printable
from streamer.sources.still import read_image


def annotated_path(image: Path, out: Path) -> Path:
    """Where the annotated copy of `image` goes in `out`: its own name, as the original script wrote it, with a
    suffix OpenCV can write (else `.png`), and never the input itself (an input inside `out`)."""
    suffix = image.suffix if image.suffix and cv2.haveImageWriter(f"x{image.suffix}") else ".png"
    target = out / f"{image.stem}{suffix}"
    if target.exists() and target.resolve() == image.resolve():
        target = out / f"{image.stem}_annotated{suffix}"
    return target


def _detect(image: np.ndarray, device: str, allow_download: bool, insightface: bool) -> list[PersonRegion]:
    # The default detectors (licence-clean), or insightface's SCRFD as the original script (--insightface).
    from streamer.config import DetectorConfig
    from streamer.detectors import build_detector

    choice = "insightface" if insightface else "auto"
    config = DetectorConfig(face=choice, person=choice, allow_download=allow_download)
    detector = build_detector(config, device)
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

    # As a photo source reads it: over 8K UHD scaled down (a JPEG decoded reduced), a decompression bomb refused.
    image = read_image(args.input)
    if image is None:
        raise ValueError(f"{args.input} is not a readable image")
    target = annotated_path(args.input, args.out)
    args.out.mkdir(parents=True, exist_ok=True)  # before the models load: a place it can't write is said at once
    model = CocoER(CocoERConfig(inside_lr=args.inside_lr))
    load_cocoer_weights(model, args.ckpt)
    clip_path = args.clip or find_clip_weights(args.ckpt.parent, allow_download=not args.offline)
    runtime = CocoERModel(model, load_clip_rn50(clip_path).visual, args.device)
    persons = _detect(image, args.device, allow_download=not args.offline, insightface=args.insightface)
    if not persons:
        raise ValueError(f"no person with a face found in {args.input}")
    results = [r for r in runtime.predict(image, persons) if r is not None]
    outputs = {str(i): official_dict(r) for i, r in enumerate(results)}
    encoded, data = cv2.imencode(target.suffix, draw_official(image.copy(), persons, results))
    if not encoded:  # pragma: no cover - annotated_path picks a suffix OpenCV writes
        raise ValueError(f"OpenCV cannot write {target.suffix} images")
    with replaced_whole(target) as partial:
        partial.write_bytes(data.tobytes())
    logging.getLogger(__name__).info("wrote %s", printable(str(target)))
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamer.tools.infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="image file")
    parser.add_argument(
        "--insightface",
        action="store_true",
        help="detect with insightface's SCRFD models as the original script (non-commercial research licence)",
    )
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
        "--inside-lr", type=number_within(0.0), default=1.0, help="coordination step size (the original script: 1.0)"
    )
    parser.add_argument("--offline", action="store_true", help="never try to download detector or CLIP weights")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if not args.input.is_file():
        print(printable(f"error: no such image: {args.input}"), file=sys.stderr)
        return 2
    try:
        outputs = run(args)
    except (CheckpointError, ValueError, SourceError) as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:  # the annotated image's folder: not writable, a file in the way, a full disk
        where = exc.filename or args.out
        print(printable(f"error: cannot write {where} ({exc.strerror or exc})"), file=sys.stderr)
        return 2
    for key, value in outputs.items():
        for item, labels in value.items():
            logging.getLogger(__name__).info("person %s %s: %s", key, item, labels)
    print(json.dumps(outputs, indent=1))  # stdout stays machine-readable
    return 0


if __name__ == "__main__":
    exit_with(main)
