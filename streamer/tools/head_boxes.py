"""`python -m streamer.tools.head_boxes --dataset KIND --root DIR --out FILE`: head boxes for a dataset, once.

EMOTIC and CAER-S annotate no heads, and CocoER's head level needs one per
person. This runs the pipeline's face detector (`--face`, MTCNN by default)
once over every image of every split and writes a head-box file
(`cocoer_core.data.heads`) that training and evaluation read; they never run a
detector themselves.

The rule, per image: a face may belong to a person when its centre lies
inside the person's body box and it is no wider than that box. Each pair is
scored by how far the face's centre is from where a head sits in that body
(the top centre, half a face below the top), relative to the body's size;
the closest pairs are taken first, one face per person and one person per
face. A person left without a face gets an estimated head: the top centre
of the body box, as the live pipeline guesses it (`cocoer_core.runtime`),
with score 0 and `"estimated"` as how it was found. Both counts are printed
and stored in the file, with the detector and its licence.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2

from cocoer_core.command_line import exit_with
from cocoer_core.data import KINDS, DatasetError, HeadBoxes, PersonSample, open_dataset
from cocoer_core.data.heads import Head
from cocoer_core.data.samples import Box4
from cocoer_core.runtime import estimated_head
from streamer.config import DetectorConfig
from streamer.detectors import build_face_detector
from streamer.detectors.association import closest_first
from streamer.detectors.base import FaceDetector, ScoredBox
from streamer.errors import UserError
from streamer.privacy.declaration import licence_of
from streamer.redact import printable
from streamer.tools.head_progress import Progress, progress_path

RULE = (
    "face centre inside the body box and face no wider than it; closest to the body's top centre first, "
    "one to one; else estimated (top centre of the body box)"
)


def _distance(face: ScoredBox, body: Box4) -> float | None:
    """How far a face is from where this body's head sits (None when it cannot be this body's)."""
    x1, y1, x2, y2 = body
    cx, cy = face.box.center
    if not (x1 <= cx <= x2 and y1 <= cy <= y2) or face.box.width > (x2 - x1) + 1:
        return None
    head_x, head_y = (x1 + x2) / 2, y1 + face.box.height / 2
    return math.hypot(cx - head_x, cy - head_y) / max(math.hypot(x2 - x1, y2 - y1), 1.0)


def match_heads(persons: list[PersonSample], faces: list[ScoredBox]) -> list[Head]:
    """Each person's head: the closest eligible face (one to one), else an estimate from the body box."""
    taken_p = closest_first(
        (d, p, f)
        for p, person in enumerate(persons)
        for f, face in enumerate(faces)
        if (d := _distance(face, person.body)) is not None
    )
    out = []
    for p, person in enumerate(persons):
        if p in taken_p:
            face = faces[taken_p[p]]
            out.append((face.box.as_tuple(), float(face.score), "face"))
        else:
            out.append((estimated_head(person.body), 0.0, "estimated"))
    return out


def find_heads(
    kind: str, root: Path, detector: FaceDetector, progress: Progress | None = None, show: bool = True
) -> HeadBoxes:
    """Every split's persons (each image once) through `detector`, matched to their heads; the images in
    `progress` are taken from it, and each image done is added to it."""
    persons: dict[str, dict[int, PersonSample]] = defaultdict(dict)
    for split in ("train", "val", "test"):
        dataset = open_dataset(kind, root, split)
        dataset.check_images()  # all of them now, not the first one an hour in
        for sample in dataset.samples:
            persons[sample.image][sample.person] = sample
    heads = HeadBoxes(kind, detector.name, licence_of(detector.name), RULE, created=time.strftime("%Y-%m-%d"))
    todo = []
    for image_name, by_index in persons.items():
        people = [by_index[k] for k in sorted(by_index)]
        saved = progress.saved(image_name, {p.key for p in people}) if progress is not None else None
        if saved is None:
            todo.append((image_name, people))
        else:
            heads.heads.update(saved)
    total, done = len(persons), len(persons) - len(todo)
    if show and done:
        print(f"carrying on: {done} of {total} images done before", file=sys.stderr)
    started = time.monotonic()
    try:
        for n, (image_name, people) in enumerate(todo, start=1):
            image = cv2.imread(str(root / image_name))
            if image is None:
                raise DatasetError(f"{root / image_name}: cannot be read as an image")
            found = dict(zip((p.key for p in people), match_heads(people, detector.detect(image)), strict=True))
            heads.heads.update(found)
            if progress is not None:
                progress.add(image_name, found)
            done += 1
            if show and (n % 50 == 0 or n == len(todo)):
                rate = n / max(time.monotonic() - started, 1e-9)
                print(f"\r{done}/{total} images, {rate:.1f}/s", end="" if done < total else "\n", file=sys.stderr)
    except KeyboardInterrupt:
        if show and progress is not None:
            print(f"\nstopped at {done} of {total} images: the same command carries on from there", file=sys.stderr)
        raise
    return heads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamer.tools.head_boxes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=KINDS)
    parser.add_argument("--root", required=True, type=Path, help="the dataset's own top folder")
    parser.add_argument("--out", required=True, type=Path, help="the head-box file to write (JSON)")
    parser.add_argument("--face", default="mtcnn", choices=("mtcnn", "haar", "insightface"), help="face detector")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fresh", action="store_true", help="start over, not from an interrupted pass's progress")
    args = parser.parse_args(argv)
    progress, finished = None, False
    try:
        detector = build_face_detector(DetectorConfig(face=args.face, min_face_px=10, max_side=0), args.device)
        if detector is None:  # pragma: no cover - a named detector is always built or refused
            raise UserError(f"no face detector {args.face}")
        header = {"dataset": args.dataset, "detector": detector.name, "rule": RULE}
        progress = Progress(progress_path(args.out), header, fresh=args.fresh)
        if progress.note:
            print(printable(progress.note), file=sys.stderr)
        heads = find_heads(args.dataset, args.root, detector, progress)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        heads.write(args.out)
        finished = True
    except (DatasetError, UserError) as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:
        print(printable(f"error: cannot write {exc.filename or args.out} ({exc.strerror or exc})"), file=sys.stderr)
        return 2
    finally:
        if progress is not None:
            progress.close(finished)
    counts = heads.counts()
    print(
        printable(
            f"wrote {args.out}: {len(heads.heads)} persons, {counts['face']} with a {detector.name} face, "
            f"{counts['estimated']} estimated from the body box"
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    exit_with(main)
