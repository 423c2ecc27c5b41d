"""What a dataset reader yields: persons with a body box and labels, in dataset order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2

import numpy as np

from cocoer_core.labels import CAER_S_LABELS, EMOTIC_LABELS

KINDS = ("emotic", "emotic-csv", "caer-s")
Box4 = tuple[float, float, float, float]


class DatasetError(ValueError):
    """A dataset that cannot be read; the message is one line naming the file and the record."""


@dataclass(frozen=True)
class PersonSample:
    """One annotated person.

    Attributes:
        image: the image's path relative to the dataset's root (`emotic/<folder>/<file>`, `train/Happy/x.png`).
        person: the person's index among its image's annotated persons.
        body: the body box, xyxy pixels, clamped to the image.
        labels: canonical label names (`cocoer_core.labels`), in class order.
        vad: EMOTIC's continuous valence, arousal, dominance (1..10), when annotated.
    """

    image: str
    person: int
    body: Box4
    labels: tuple[str, ...]
    vad: tuple[float, float, float] | None = None

    @property
    def key(self) -> str:
        """The person's id in a head-box file: `<image>#<person>`."""
        return f"{self.image}#{self.person}"


@dataclass
class PersonDataset:
    """The persons of one split of a dataset, and what the reader dropped (counted by reason)."""

    kind: str
    split: str
    root: Path
    classes: tuple[str, ...]
    samples: list[PersonSample]
    dropped: Counter[str] = field(default_factory=Counter)
    note: str = ""

    def __len__(self) -> int:
        return len(self.samples)

    def targets(self) -> np.ndarray:
        """[N, C] 0/1 targets in class order."""
        index = {name: i for i, name in enumerate(self.classes)}
        out = np.zeros((len(self.samples), len(self.classes)), np.float32)
        for row, sample in enumerate(self.samples):
            out[row, [index[name] for name in sample.labels]] = 1.0
        return out

    def images(self) -> list[str]:
        """Each image once, in dataset order."""
        return list(dict.fromkeys(s.image for s in self.samples))

    def check_images(self) -> None:
        """Every image there, in a format OpenCV reads (its first bytes: ~0.1 ms an image, seconds for EMOTIC),
        else one DatasetError naming them all: before hours of detection or training, not when the loop meets
        the first (a dataset unpacked partly, a file of another kind under an image's name)."""
        images = self.images()
        bad = [name for name in images if not cv2.haveImageReader(str(self.root / name))]
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise DatasetError(
                f"{len(bad)} of the {len(images)} images of {self.kind} {self.split} under {self.root} are missing "
                f"or not images: {shown}"
            )


def _canonical(name: str) -> str:
    return " ".join(name.lower().replace("/", " / ").split())


#: Dataset spellings -> the model's label names (EMOTIC's "Doubt/Confusion", CAER-S's folder names).
ALIASES = {
    **{_canonical(label): label for label in EMOTIC_LABELS},
    **{_canonical(label): label for label in CAER_S_LABELS},
    "angry": "anger",
}


def canonical_label(name: str, classes: tuple[str, ...], where: str) -> str:
    label = ALIASES.get(_canonical(name))
    if label is None or label not in classes:
        raise DatasetError(f"{where}: unknown category {name[:40]!r}")
    return label


def clamp_box(box: tuple[float, ...], width: float, height: float) -> Box4 | None:
    """The box clamped to the image; None when nothing of it is left."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((min(max(x1, 0.0), width), min(max(x2, 0.0), width)))
    y1, y2 = sorted((min(max(y1, 0.0), height), min(max(y2, 0.0), height)))
    return (x1, y1, x2, y2) if x2 - x1 >= 1 and y2 - y1 >= 1 else None
