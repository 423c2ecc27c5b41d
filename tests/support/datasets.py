"""Tiny datasets in the real layouts, built from ../shared/media with made-up labels (EMOTIC and CAER-S are
not available here): the official EMOTIC `.mat` (written with scipy), the CSV layout and CAER-S folders.

Body boxes come from the faces MTCNN finds (a face grown down into a body), so every person is a real one.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2

import numpy as np

from cocoer_core.labels import EMOTIC_LABELS

#: (file in ../shared/media, EMOTIC folder, split). Each split gets people of its own.
EMOTIC_IMAGES = (
    ("group_five_friends.jpg", "mscoco/images", "train"),
    ("group_friends_poker.jpg", "framesdb/images", "train"),
    ("group_12_angry_men.jpg", "emodb_small/images", "val"),
    ("cocoer_test_p1.jpg", "ade20k/images", "test"),
    ("group_test_image.jpg", "mscoco/images", "test"),
)
#: The dataset spelling of EMOTIC's categories (as the .mat and the CSVs write them).
SPELLED = tuple("Doubt/Confusion" if x == "doubt / confusion" else x.capitalize() for x in EMOTIC_LABELS)
CAER_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


@dataclass(frozen=True)
class Person:
    body: tuple[int, int, int, int]
    categories: tuple[str, ...]  # dataset spellings
    combined: tuple[str, ...]  # val/test: the annotators' combination (train: same as categories)
    vad: tuple[int, int, int]


@dataclass(frozen=True)
class Image:
    file: str
    folder: str
    split: str
    width: int
    height: int
    persons: tuple[Person, ...]


def _bodies(path: Path) -> tuple[int, int, list[tuple[int, int, int, int]]]:
    from streamer.detectors.faces import MtcnnFaceDetector

    image = cv2.imread(str(path))
    height, width = image.shape[:2]
    bodies = []
    for face in MtcnnFaceDetector().detect(image)[:6]:
        x1, y1, x2, y2 = face.box.rounded()
        w, h = x2 - x1, y2 - y1
        bodies.append((max(x1 - w, 0), max(y1 - h // 4, 0), min(x2 + w, width), min(y2 + 3 * h, height)))
    return width, height, bodies


def emotic_images(media: Path) -> list[Image]:
    """The made-up annotations: labels drawn from a fixed generator, a few persons with none (dropped)."""
    rng = np.random.default_rng(7)
    images = []
    for name, folder, split in EMOTIC_IMAGES:
        width, height, bodies = _bodies(media / name)
        persons = []
        for k, body in enumerate(bodies):
            picked = tuple(SPELLED[i] for i in sorted(rng.choice(26, size=int(rng.integers(1, 4)), replace=False)))
            combined = picked if split == "train" else tuple(sorted({*picked, SPELLED[int(rng.integers(26))]}))
            if k == 1 and split == "train":
                picked = combined = ()  # a person nobody labelled: readers drop it
            vad = tuple(int(v) for v in rng.integers(1, 11, size=3))
            persons.append(Person(body, picked, combined, (vad[0], vad[1], vad[2])))
        images.append(Image(name, folder, split, width, height, tuple(persons)))
    return images


def _cell(items: tuple[str, ...]) -> np.ndarray:
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def _struct(rows: list[dict], fields: list[str]) -> np.ndarray:
    array = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            array[0, i][f] = row[f]
    return array


def write_emotic(root: Path, media: Path, images: list[Image]) -> None:
    """`root/emotic/<folder>/<file>`, `root/Annotations/Annotations.mat` and `root/emotic_pre/<split>.csv`."""
    from scipy.io import savemat

    for image in images:
        target = root / "emotic" / image.folder / image.file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(media / image.file, target)
    splits = {}
    for split in ("train", "val", "test"):
        records = []
        for image in (i for i in images if i.split == split):
            persons = []
            for p in image.persons:
                continuous = _struct([dict(zip(("valence", "arousal", "dominance"), p.vad, strict=True))],
                                     ["valence", "arousal", "dominance"])  # fmt: skip
                person = {
                    "body_bbox": np.array(p.body, dtype=float),
                    "annotations_categories": _struct([{"categories": _cell(p.categories)}], ["categories"]),
                    "annotations_continuous": continuous,
                    "gender": "Female",
                    "age": "Adult",
                }
                fields = list(person)
                if split != "train":
                    person["combined_categories"] = _cell(p.combined)
                    person["combined_continuous"] = continuous
                    fields += ["combined_categories", "combined_continuous"]
                persons.append((person, fields))
            size = _struct([{"n_col": image.width, "n_row": image.height}], ["n_col", "n_row"])
            records.append(
                {
                    "filename": image.file,
                    "folder": image.folder,
                    "image_size": size,
                    "person": _struct([p for p, _ in persons], persons[0][1] if persons else ["body_bbox"]),
                }
            )
        splits[split] = _struct(records, ["filename", "folder", "image_size", "person"])
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    savemat(str(root / "Annotations" / "Annotations.mat"), splits)
    (root / "emotic_pre").mkdir(exist_ok=True)
    for split in ("train", "val", "test"):
        with (root / "emotic_pre" / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Index", "Folder", "Filename", "Image Size", "BBox", "Categorical_Labels",
                             "Continuous_Labels", "Gender", "Age"])  # fmt: skip
            index = 0
            for image in (i for i in images if i.split == split):
                for p in image.persons:
                    labels = p.categories if split == "train" else p.combined
                    writer.writerow([index, image.folder, image.file, str([image.width, image.height]),
                                     str(list(p.body)), str(list(labels)), str(list(p.vad)), "Female", "Adult"])  # fmt: skip
                    index += 1


def write_caer_s(root: Path, media: Path, per_class: int = 3) -> dict[str, str]:
    """`root/{train,test}/<Class>/*.png` from frames of the shared face clips (made-up classes); file -> class."""
    import av

    clips = sorted(media.glob("face_expressive_liveportrait_d*.mp4"))
    frames = []
    for clip in clips:
        with av.open(str(clip)) as container:
            for k, frame in enumerate(container.decode(video=0)):
                if k % 7 == 0:
                    frames.append(cv2.resize(frame.to_ndarray(format="bgr24"), (160, 120)))
                if len(frames) >= 2 * per_class * len(CAER_CLASSES):
                    break
    truth = {}
    for n, image in enumerate(frames[: 2 * per_class * len(CAER_CLASSES)]):
        split = "train" if n % 2 == 0 else "test"
        label = CAER_CLASSES[(n // 2) % len(CAER_CLASSES)]
        path = root / split / label / f"{n:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
        truth[path.relative_to(root).as_posix()] = label
    return truth
