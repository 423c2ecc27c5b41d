"""CAER-S: `<root>/train/<Class>/*.png` and `<root>/test/<Class>/*.png`, 7 classes, one person per image.

Classes are the folder names (Angry, Disgust, Fear, Happy, Neutral, Sad,
Surprise). CAER-S has no validation split: `val` is carved from `train`,
`VAL_SHARE` of each class drawn with a fixed seed, and `train` is the rest
(the same for everyone, every time). The images are frames of TV shows with
one annotated person and no boxes: the body box is the whole image, the head
box comes from the head-box file.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image

from cocoer_core.data.samples import DatasetError, PersonDataset, PersonSample, canonical_label
from cocoer_core.labels import CAER_S_LABELS

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
VAL_SHARE = 0.1
VAL_SEED = 0


def _class_images(folder: Path) -> dict[str, list[Path]]:
    if not folder.is_dir():
        raise DatasetError(f"{folder} not found (--root is the folder holding train/ and test/)")
    out: dict[str, list[Path]] = {}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = canonical_label(class_dir.name, CAER_S_LABELS, str(class_dir))
        out[label] = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not out:
        raise DatasetError(f"{folder} holds no class folders (Angry, Disgust, ...)")
    return out


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:  # the header only
            return image.size
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not an image ({str(exc).splitlines()[0][:60]})") from None


def read_caer_s(root: Path, split: str) -> PersonDataset:
    """One split; `val` and `train` are the fixed division of CAER-S's train folder."""
    if split not in SPLITS:
        raise DatasetError(f"CAER-S has splits {', '.join(SPLITS)} (val carved from train); got {split!r}")
    by_class = _class_images(root / ("test" if split == "test" else "train"))
    chosen: list[tuple[str, Path]] = []
    for label, paths in by_class.items():
        if split == "test":
            chosen += [(label, p) for p in paths]
            continue
        rng = random.Random(f"{VAL_SEED}:{label}")  # noqa: S311 - a fixed split, not a secret
        size = max(1, round(VAL_SHARE * len(paths))) if len(paths) >= 2 else 0  # every class in val
        val = set(rng.sample(range(len(paths)), size))
        chosen += [(label, p) for k, p in enumerate(paths) if (k in val) == (split == "val")]
    samples = []
    for label, path in chosen:
        width, height = _size(path)
        samples.append(
            PersonSample(path.relative_to(root).as_posix(), 0, (0.0, 0.0, float(width), float(height)), (label,))
        )
    note = f"val is {VAL_SHARE:.0%} of each class of train/, drawn with seed {VAL_SEED}" if split != "test" else ""
    return PersonDataset("caer-s", split, root, CAER_S_LABELS, samples, note=note)
