"""EMOTIC's persons, from the official `Annotations/Annotations.mat` or the preprocessed CSV layout.

Official layout (`--dataset emotic`), under the dataset's root:

    Annotations/Annotations.mat     keys train, val, test: one struct per image
    emotic/<folder>/<filename>      the images

Each image struct holds `filename`, `folder`, `image_size` (`n_col`, `n_row`)
and `person`: per person `body_bbox` (x1 y1 x2 y2), `annotations_categories`
(one struct per annotator, each with a `categories` cell) and
`annotations_continuous` (`valence`, `arousal`, `dominance`); val and test
persons also carry `combined_categories` and `combined_continuous`, the
annotators' combination, which is what those splits are scored on. Train
persons have one annotation, used as it is.

CSV layout (`--dataset emotic-csv`, as Tandon-A/emotic's `mat2py.py` writes
it): `emotic_pre/{train,val,test}.csv` beside `emotic/`, one row per person
with columns `Index, Folder, Filename, Image Size, BBox, Categorical_Labels,
Continuous_Labels, Gender, Age`, the lists as Python literals.

Both readers drop persons with no category and boxes with nothing left after
clamping to the image (counted in `PersonDataset.dropped`); anything else
malformed is a `DatasetError` naming the file and the record.
"""

from __future__ import annotations

import ast
import csv
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from cocoer_core.data.samples import DatasetError, PersonDataset, PersonSample, canonical_label, clamp_box
from cocoer_core.labels import EMOTIC_LABELS

SPLITS = ("train", "val", "test")
CSV_COLUMNS = ("Folder", "Filename", "Image Size", "BBox", "Categorical_Labels", "Continuous_Labels")


def _items(value: Any) -> list[Any]:
    """A MATLAB array (squeezed by scipy into a scalar, a struct or an ndarray) as a list."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    return str(value)


def _numbers(value: Any, count: int, what: str, where: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in np.asarray(value, dtype=float).ravel())
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != count or not all(np.isfinite(numbers)):
        raise DatasetError(f"{where}: {what} is not {count} numbers")
    return numbers


def _field(record: Any, name: str, where: str) -> Any:
    if not hasattr(record, name):
        raise DatasetError(f"{where}: no field {name!r}")
    return getattr(record, name)


def _categories(person: Any, split: str, where: str) -> list[str]:
    if split != "train" and hasattr(person, "combined_categories"):
        return [_text(c) for c in _items(person.combined_categories)]
    annotations = _items(_field(person, "annotations_categories", where))
    if not annotations:
        return []
    return [_text(c) for c in _items(_field(annotations[0], "categories", where))]


def _vad(person: Any, split: str) -> tuple[float, float, float] | None:
    source = person.combined_continuous if split != "train" and hasattr(person, "combined_continuous") else None
    if source is None:
        found = _items(getattr(person, "annotations_continuous", None))
        source = found[0] if found else None
    try:
        values = tuple(float(_text(getattr(source, k))) for k in ("valence", "arousal", "dominance"))
    except (AttributeError, TypeError, ValueError):
        return None
    return (values[0], values[1], values[2]) if all(np.isfinite(values)) else None


def _person_sample(
    image: str, index: int, person: Any, size: tuple[float, float], split: str, where: str, dropped: Counter[str]
) -> PersonSample | None:
    labels = _categories(person, split, where)
    if not labels:
        dropped["no category"] += 1
        return None
    box = clamp_box(_numbers(_field(person, "body_bbox", where), 4, "body_bbox", where), *size)
    if box is None:
        dropped["empty box"] += 1
        return None
    chosen = {canonical_label(name, EMOTIC_LABELS, where) for name in labels}
    ordered = tuple(label for label in EMOTIC_LABELS if label in chosen)
    return PersonSample(image, index, box, ordered, _vad(person, split))


def read_emotic_mat(root: Path, split: str) -> PersonDataset:
    """One split of the official `Annotations/Annotations.mat` (read with scipy)."""
    from scipy.io import loadmat  # only the .mat reader needs it

    if split not in SPLITS:
        raise DatasetError(f"EMOTIC has splits {', '.join(SPLITS)}; got {split!r}")
    path = root / "Annotations" / "Annotations.mat"
    if not path.is_file():
        raise DatasetError(f"{path} not found (--root is the folder holding Annotations/ and emotic/)")
    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises anything from IndexError to MatReadError on a damaged file
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:80]
        raise DatasetError(f"{path}: not a MATLAB file scipy can read ({reason})") from None
    if split not in mat:
        raise DatasetError(f"{path}: no {split!r} split (keys: {', '.join(k for k in mat if not k.startswith('__'))})")
    samples: list[PersonSample] = []
    dropped: Counter[str] = Counter()
    for number, record in enumerate(_items(mat[split]), start=1):
        where = f"{path}, {split} image {number}"
        folder, filename = _text(_field(record, "folder", where)), _text(_field(record, "filename", where))
        size_record = _field(record, "image_size", where)
        size = (
            _numbers(_field(size_record, "n_col", where), 1, "n_col", where)[0],
            _numbers(_field(size_record, "n_row", where), 1, "n_row", where)[0],
        )
        image = f"emotic/{folder}/{filename}"
        for index, person in enumerate(_items(_field(record, "person", where))):
            sample = _person_sample(image, index, person, size, split, f"{where} person {index + 1}", dropped)
            if sample is not None:
                samples.append(sample)
    return PersonDataset("emotic", split, root, EMOTIC_LABELS, samples, dropped)


def _literal(text: str, where: str, column: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise DatasetError(f"{where}: {column} is not a list literal ({text[:40]!r})") from None


def _rows(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path}: no column {missing[0]!r} (is it mat2py.py's CSV?)")
            yield from enumerate(reader, start=2)  # row numbers as a spreadsheet shows them
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None


def read_emotic_csv(root: Path, split: str) -> PersonDataset:
    """One split of the preprocessed CSV layout (`emotic_pre/<split>.csv`)."""
    if split not in SPLITS:
        raise DatasetError(f"EMOTIC has splits {', '.join(SPLITS)}; got {split!r}")
    path = root / "emotic_pre" / f"{split}.csv"
    if not path.is_file():
        raise DatasetError(f"{path} not found (--root is the folder holding emotic_pre/ and emotic/)")
    samples: list[PersonSample] = []
    dropped: Counter[str] = Counter()
    per_image: Counter[str] = Counter()
    for line, row in _rows(path):
        where = f"{path}, row {line}"
        image = f"emotic/{row['Folder']}/{row['Filename']}"
        index = per_image[image]
        per_image[image] += 1
        size = _numbers(_literal(row["Image Size"], where, "Image Size"), 2, "Image Size", where)
        box = _numbers(_literal(row["BBox"], where, "BBox"), 4, "BBox", where)
        labels = _literal(row["Categorical_Labels"], where, "Categorical_Labels")
        if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
            raise DatasetError(f"{where}: Categorical_Labels is not a list of names")
        if not labels:
            dropped["no category"] += 1
            continue
        clamped = clamp_box(box, size[0], size[1])
        if clamped is None:
            dropped["empty box"] += 1
            continue
        chosen = {canonical_label(name, EMOTIC_LABELS, where) for name in labels}
        vad_value = _literal(row["Continuous_Labels"], where, "Continuous_Labels") if row["Continuous_Labels"] else None
        vad = _numbers(vad_value, 3, "Continuous_Labels", where) if vad_value is not None else None
        ordered = tuple(label for label in EMOTIC_LABELS if label in chosen)
        samples.append(PersonSample(image, index, clamped, ordered, (vad[0], vad[1], vad[2]) if vad else None))
    return PersonDataset("emotic-csv", split, root, EMOTIC_LABELS, samples, dropped)
