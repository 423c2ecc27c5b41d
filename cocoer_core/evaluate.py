"""`python -m cocoer_core.evaluate`: how good a CocoER checkpoint is on EMOTIC or CAER-S.

    python -m cocoer_core.evaluate --dataset emotic --root /data/EMOTIC --heads heads.json \\
        --split test --weights checkpoints/ --out eval/

Every person of the split goes through the model in batches of images (each
image's context once, its persons together), with the head boxes of the
head-box file (`python -m streamer.tools.head_boxes`). Writes to `--out`:

- `metrics.json`: EMOTIC: `{"mAP", "AP": {class: AP or null}, "levels": {level: mAP}, ...}`,
  AP computed as `sklearn.metrics.average_precision_score` (classes with no
  positive person have no AP and are left out of the means); CAER-S:
  `{"accuracy", "per_class": {class: accuracy}, "confusion": [[...]], ...}` (top-1 of the final scores);
- `predictions.csv`: one row per person in dataset order: `image`, `person`, then each class's final score;
- `metrics.png`: AP per class (EMOTIC) or the confusion matrix (CAER-S);
- on the validation split, `thresholds.json`: per class, the threshold where precision equals recall
  (classes with no positive keep the release's 0.26); in `--mode live` also copied beside the
  checkpoint unless `--no-save-thresholds`, where `run_stream.py --weights` uses it instead of 0.26.

`--mode paper` (the default) scores as the official training code evaluates,
which is how the paper's table was measured: no coordination step (spec
§9.4). `--mode live` scores as the live pipeline draws: the coordination step
with η = 1.0, as the official inference script; thresholds meant for the live
pipeline come from this mode.

Exit 2 with one line on a bad dataset, head-box file or checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

import numpy as np
import torch

from cocoer_core.api import PersonRegion
from cocoer_core.command_line import exit_with, whole_number_from
from cocoer_core.data import KINDS, DatasetError, HeadBoxes, PersonDataset, PersonSample, open_dataset
from cocoer_core.data import read_head_boxes as read_heads
from cocoer_core.errors import CheckpointError
from cocoer_core.metrics import confusion_matrix, equal_error_threshold, mean_ap
from cocoer_core.postprocess import FINAL_THRESHOLD
from cocoer_core.runtime import THRESHOLDS_FILE, CocoERModel, FrameBatch, prepare_frame
from cocoer_core.whole_files import replaced_whole, write_text_whole

logger = logging.getLogger(__name__)

#: Score levels reported, in the order of the table ("final" first).
LEVELS = ("final", "head", "body", "context", "vi")


@dataclass
class Scores:
    """Each person's sigmoid scores per level, [N, C], in dataset order."""

    levels: dict[str, np.ndarray]


def _batches(dataset: PersonDataset, images_per_batch: int) -> Iterator[list[tuple[str, list[PersonSample]]]]:
    """The persons grouped by image (dataset order kept), a few images at a time."""
    by_image: dict[str, list[PersonSample]] = {}
    for sample in dataset.samples:
        by_image.setdefault(sample.image, []).append(sample)
    items = list(by_image.items())
    for start in range(0, len(items), images_per_batch):
        yield items[start : start + images_per_batch]


def score_dataset(
    model: CocoERModel, dataset: PersonDataset, heads: HeadBoxes, images_per_batch: int = 8, progress: bool = True
) -> Scores:
    """Every person of `dataset` through `model` (batched), scores put back in dataset order."""
    row_of = {sample.key: row for row, sample in enumerate(dataset.samples)}
    out = {level: np.zeros((len(dataset), len(model.labels)), np.float32) for level in LEVELS}
    done, started = 0, time.monotonic()
    for chunk in _batches(dataset, images_per_batch):
        frames: list[FrameBatch] = []
        keys: list[str] = []
        for image_name, people in chunk:
            image = cv2.imread(str(dataset.root / image_name))
            if image is None:
                raise DatasetError(f"{dataset.root / image_name}: cannot be read as an image")
            regions = [PersonRegion(p.body, heads.head_of(p)) for p in people]
            frames.append(prepare_frame(image, regions, model.resize))
            keys += [p.key for p in people]
        output = model.forward_frame(FrameBatch.concat(frames))
        rows = [row_of[k] for k in keys]
        for level in LEVELS:
            out[level][rows] = torch.sigmoid(getattr(output, level).float()).cpu().numpy()
        done += len(keys)
        if progress:
            rate = done / max(time.monotonic() - started, 1e-9)
            print(f"\r{done}/{len(dataset)} persons, {rate:.1f}/s", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    return Scores(out)


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def emotic_metrics(dataset: PersonDataset, scores: Scores) -> dict[str, Any]:
    targets = dataset.targets()
    final_map, per_class = mean_ap(targets, scores.levels["final"])
    levels = {level: _rounded(mean_ap(targets, scores.levels[level])[0]) for level in LEVELS}
    missing = [c for c, ap in zip(dataset.classes, per_class, strict=True) if ap is None]
    return {
        "dataset": dataset.kind,
        "split": dataset.split,
        "persons": len(dataset),
        "mAP": _rounded(final_map),
        "AP": {c: _rounded(ap) for c, ap in zip(dataset.classes, per_class, strict=True)},
        "levels": levels,
        "classes_without_positives": missing,
    }


def caer_metrics(dataset: PersonDataset, scores: Scores) -> dict[str, Any]:
    truth = dataset.targets().argmax(axis=1)
    predicted = scores.levels["final"].argmax(axis=1)
    matrix = confusion_matrix(truth, predicted, len(dataset.classes))
    per_class = {
        c: _rounded(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None for i, c in enumerate(dataset.classes)
    }
    levels = {level: _rounded(float((scores.levels[level].argmax(axis=1) == truth).mean())) for level in LEVELS}
    return {
        "dataset": dataset.kind,
        "split": dataset.split,
        "persons": len(dataset),
        "accuracy": _rounded(float((predicted == truth).mean())),
        "per_class": per_class,
        "levels": levels,
        "confusion": matrix.tolist(),
        "classes": list(dataset.classes),
        "note": dataset.note,
    }


def thresholds_for(dataset: PersonDataset, scores: Scores) -> dict[str, Any]:
    """Per-class thresholds where precision equals recall on this split (the release's 0.26 without positives)."""
    targets, final = dataset.targets(), scores.levels["final"]
    values = []
    for c in range(len(dataset.classes)):
        found = equal_error_threshold(targets[:, c], final[:, c])
        values.append(round(found, 6) if found is not None else FINAL_THRESHOLD)
    return {"labels": list(dataset.classes), "final": values, "split": dataset.split, "rule": "precision = recall"}


def write_predictions(path: Path, dataset: PersonDataset, scores: Scores) -> None:
    with replaced_whole(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "person", *dataset.classes])
        for sample, row in zip(dataset.samples, scores.levels["final"], strict=True):
            writer.writerow([sample.image, sample.person, *(f"{v:.6f}" for v in row)])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_whole(path, json.dumps(data, indent=2) + "\n")


def plot(metrics: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if "AP" in metrics:
        names = [c for c, ap in metrics["AP"].items() if ap is not None]
        figure, axis = plt.subplots(figsize=(10, 4))
        axis.bar(range(len(names)), [metrics["AP"][c] for c in names], color="#e9a23b")
        axis.set_xticks(range(len(names)), names, rotation=70, fontsize=8)
        axis.set_ylabel("average precision")
        axis.set_title(f"{metrics['dataset']} {metrics['split']}: mAP {metrics['mAP']}")
    else:
        figure, axis = plt.subplots(figsize=(5, 5))
        axis.imshow(np.asarray(metrics["confusion"]), cmap="Oranges")
        classes = metrics["classes"]
        axis.set_xticks(range(len(classes)), classes, rotation=45)
        axis.set_yticks(range(len(classes)), classes)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(f"{metrics['dataset']} {metrics['split']}: accuracy {metrics['accuracy']}")
    figure.tight_layout()
    figure.savefig(path, dpi=96)
    plt.close(figure)


def table(metrics: dict[str, Any]) -> str:
    """The terminal table: per class, then the levels."""
    lines = []
    if "AP" in metrics:
        lines.append(f"{'class':<20} {'AP':>7}")
        lines += [f"{c:<20} {'-' if ap is None else f'{ap:.4f}':>7}" for c, ap in metrics["AP"].items()]
        missing = metrics["classes_without_positives"]
        lines.append(
            f"{'mAP':<20} {metrics['mAP']:>7.4f}" + (f"  (over {26 - len(missing)} classes)" if missing else "")
        )
    else:
        lines.append(f"{'class':<20} {'accuracy':>9}")
        lines += [f"{c:<20} {'-' if a is None else f'{a:.4f}':>9}" for c, a in metrics["per_class"].items()]
        lines.append(f"{'accuracy':<20} {metrics['accuracy']:>9.4f}")
    lines.append(
        "levels: " + ", ".join(f"{k} {'-' if v is None else f'{v:.4f}'}" for k, v in metrics["levels"].items())
    )
    return "\n".join(lines)


def evaluate(
    model: CocoERModel,
    dataset: PersonDataset,
    heads: HeadBoxes,
    out: Path,
    images_per_batch: int = 8,
    mode: str = "paper",
) -> dict[str, Any]:
    """Score, measure and write `metrics.json`, `predictions.csv` and `metrics.png` (+ `thresholds.json` on val)."""
    if tuple(model.labels) != tuple(dataset.classes):
        raise DatasetError(
            f"the checkpoint's {len(model.labels)} classes are not the dataset's {len(dataset.classes)} "
            f"({', '.join(model.labels[:3])}, ... vs {', '.join(dataset.classes[:3])}, ...)"
        )
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    scores = score_dataset(model, dataset, heads, images_per_batch)
    seconds = time.monotonic() - started
    metrics = emotic_metrics(dataset, scores) if dataset.kind.startswith("emotic") else caer_metrics(dataset, scores)
    metrics["mode"] = mode
    metrics["persons_per_s"] = round(len(dataset) / max(seconds, 1e-9), 2)
    metrics["dropped"] = dict(dataset.dropped)
    metrics["heads"] = {"detector": heads.detector, "licence": heads.licence, "counts": heads.counts()}
    _write_json(out / "metrics.json", metrics)
    write_predictions(out / "predictions.csv", dataset, scores)
    plot(metrics, out / "metrics.png")
    if dataset.split == "val":
        _write_json(out / THRESHOLDS_FILE, {**thresholds_for(dataset, scores), "mode": mode})
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cocoer_core.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=KINDS)
    parser.add_argument("--root", required=True, type=Path, help="the dataset's own top folder")
    parser.add_argument("--heads", required=True, type=Path, help="its head-box file")
    parser.add_argument("--split", required=True, choices=("val", "test"))
    parser.add_argument("--weights", required=True, type=Path, help="the folder holding GWT.pth (and RN50.pt)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images-per-batch", type=whole_number_from(1), default=8)
    parser.add_argument(
        "--mode",
        choices=("paper", "live"),
        default="paper",
        help="paper: no coordination step, as the paper's numbers; live: as run_stream.py draws (eta 1.0)",
    )
    parser.add_argument("--no-save-thresholds", action="store_true", help="on val: keep thresholds.json in --out only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        dataset = open_dataset(args.dataset, args.root, args.split)
        if not dataset.samples:
            raise DatasetError(f"{args.dataset} {args.split} under {args.root} holds no annotated person")
        dataset.check_images()
        heads = read_heads(args.heads)
        model = CocoERModel.from_directory(
            args.weights, device=args.device, allow_download=False, refine=args.mode == "live"
        )
        metrics = evaluate(model, dataset, heads, args.out, args.images_per_batch, args.mode)
        save_beside = args.split == "val" and args.mode == "live" and not args.no_save_thresholds
        if save_beside:
            write_text_whole(args.weights / THRESHOLDS_FILE, (args.out / THRESHOLDS_FILE).read_text())
    except (DatasetError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(table(metrics))
    print(f"wrote {args.out / 'metrics.json'}, {args.out / 'predictions.csv'}, {args.out / 'metrics.png'}")
    if save_beside:
        print(f"per-class thresholds saved beside the checkpoint: {args.weights / THRESHOLDS_FILE}")
    elif args.split == "val":
        print(f"per-class thresholds in {args.out / THRESHOLDS_FILE} (--mode live saves them for the pipeline)")
    return 0


if __name__ == "__main__":
    exit_with(main)
