"""How much to trust the face-expression baseline on your own faces: the evaluation itself.

    python -m streamer.tools.evaluate_faces LABELS.csv [--detector mtcnn|none]

LABELS.csv has rows `path,label` (an optional header row; paths relative to
the CSV's folder). Labels must be one of FER2013's seven classes; other rows
are skipped and counted. Each image goes through the same steps as in the
pipeline: find the largest face (MTCNN), crop it as the pipeline does, run
the model. When no face is found (e.g. an image that is already a tight face
crop, like FER2013's 48x48 images) the whole image is the face.

Prints a per-class table and a confusion matrix, ending with the line
`accuracy=0.xxx n=N`. The FER2013 mini-Xception is reported at about 66%
on FER2013's test split; far less means the preprocessing is wrong.
The command line (which borrows the pipeline's MTCNN) is
`streamer.tools.evaluate_faces`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2

import numpy as np

from cocoer_core.api import PersonRegion
from cocoer_core.baseline import FaceExpressionBaseline

#: A face finder: BGR image -> the face box (x1, y1, x2, y2), or None.
FaceFinder = Callable[[np.ndarray], tuple[float, float, float, float] | None]


@dataclass
class Evaluation:
    """Counts from one evaluation run."""

    labels: tuple[str, ...]
    confusion: np.ndarray
    skipped_labels: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    whole_image_faces: int = 0

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / self.n) if self.n else 0.0


def read_label_csv(path: Path) -> list[tuple[Path, str]]:
    """Rows of (absolute image path, lower-cased label); a `path,label` header is allowed."""
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for i, row in enumerate(csv.reader(handle)):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise ValueError(f"{path}:{i + 1}: expected 'path,label', got {row!r}")
            image, label = row[0].strip(), row[1].strip().lower()
            if i == 0 and (image.lower(), label) == ("path", "label"):
                continue
            rows.append(((path.parent / image).resolve(), label))
    return rows


def evaluate(
    rows: Sequence[tuple[Path, str]], model: FaceExpressionBaseline, find_face: FaceFinder | None
) -> Evaluation:
    labels = model.labels
    index = {label: i for i, label in enumerate(labels)}
    result = Evaluation(labels, np.zeros((len(labels), len(labels)), dtype=np.int64))
    for image_path, label in rows:
        if label not in index:
            result.skipped_labels[label] = result.skipped_labels.get(label, 0) + 1
            continue
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            result.unreadable.append(str(image_path))
            continue
        face = find_face(image) if find_face is not None else None
        if face is None:
            face = (0.0, 0.0, float(image.shape[1]), float(image.shape[0]))
            result.whole_image_faces += 1
        predicted = model.predict(image, [PersonRegion(face, face)])[0]
        if predicted is None:  # the baseline answers every person with a face box
            raise RuntimeError("the face model returned no result for a face")
        result.confusion[index[label], index[predicted.pred[0]]] += 1
    return result


def report(result: Evaluation) -> str:
    """The per-class table, the confusion matrix and the final accuracy line."""
    labels, cm = result.labels, result.confusion
    width = max(len(label) for label in labels) + 2
    lines = [f"{'class':<{width}}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}"]
    for i, label in enumerate(labels):
        tp = cm[i, i]
        precision = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        recall = tp / cm[i].sum() if cm[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        lines.append(f"{label:<{width}}{precision:>10.3f}{recall:>8.3f}{f1:>8.3f}{int(cm[i].sum()):>9}")
    lines.append("")
    lines.append("confusion matrix (rows: true, columns: predicted)")
    short = [label[:7] for label in labels]
    lines.append(" " * width + "".join(f"{s:>8}" for s in short))
    for i, label in enumerate(labels):
        lines.append(f"{label:<{width}}" + "".join(f"{int(v):>8}" for v in cm[i]))
    lines.append("")
    if result.skipped_labels:
        skipped = ", ".join(f"{k!r}: {v}" for k, v in sorted(result.skipped_labels.items()))
        lines.append(
            f"skipped {sum(result.skipped_labels.values())} rows with labels outside the 7 classes ({skipped})"
        )
    if result.unreadable:
        lines.append(f"skipped {len(result.unreadable)} unreadable images (first: {result.unreadable[0]})")
    if result.whole_image_faces:
        lines.append(f"{result.whole_image_faces} images had no detected face and were used whole")
    lines.append(f"accuracy={result.accuracy:.3f} n={result.n}")
    return "\n".join(lines)
