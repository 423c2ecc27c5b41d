"""Score tracked people against MOTChallenge ground truth (py-motmetrics).

    python -m streamer.tools.mot --gt gt.txt --jsonl recordings/clip.jsonl [--scale 1.6] [--frames 400]

`--scale` is GT pixels per pixel of the analysed video (MOT15 PETS09-S2L1 is
768x576; a 480x360 copy needs 1.6). GT frame N is our 0-based frame N-1;
only rows with confidence 1 are scored, at IoU >= 0.5. Prints MOTA, IDF1,
ID switches, recall and precision.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocoer_core.command_line import exit_with, number_within, whole_number_from
from cocoer_core.errors import first_line
from streamer.outputs.records import read_records
from streamer.redact import printable
from streamer.types import Box

#: {0-based frame: [(id, box), ...]}
Tracks = Mapping[int, Sequence[tuple[int, Box]]]


@dataclass(frozen=True)
class MotScores:
    mota: float
    idf1: float
    id_switches: int
    recall: float
    precision: float
    frames: int
    gt_boxes: int

    def line(self) -> str:
        return (
            f"MOTA {self.mota:6.1%}  IDF1 {self.idf1:6.1%}  IDsw {self.id_switches:4d}  "
            f"recall {self.recall:.3f}  precision {self.precision:.3f}  ({self.gt_boxes} GT boxes, {self.frames} frames)"
        )


def read_mot_gt(path: str | Path, scale: float = 1.0, frames: int | None = None) -> dict[int, list[tuple[int, Box]]]:
    """GT boxes per 0-based frame, in the analysed video's pixels (confidence-1 rows only)."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.size and rows.shape[1] < 7:
        raise ValueError(f"{path}: not a MOTChallenge gt.txt (frame,id,left,top,width,height,conf,...)")
    out: dict[int, list[tuple[int, Box]]] = {}
    for row in rows:
        frame, ident, left, top, width, height, conf = row[:7]
        index = int(frame) - 1
        if conf != 1 or (frames is not None and index >= frames):
            continue
        box = Box.from_ltwh(left / scale, top / scale, width / scale, height / scale)
        out.setdefault(index, []).append((int(ident), box))
    return out


def _motmetrics():  # type: ignore[no-untyped-def]
    if not hasattr(np, "asfarray"):  # py-motmetrics 1.4 calls np.asfarray, removed in NumPy 2
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]
    import motmetrics

    return motmetrics


def score(gt: Tracks, tracked: Tracks, frames: Iterable[int]) -> MotScores:
    """CLEAR-MOT and identity scores of `tracked` against `gt` over `frames`."""
    mm = _motmetrics()
    acc = mm.MOTAccumulator(auto_id=False)
    count = gt_boxes = 0
    for index in frames:
        truth, ours = gt.get(index, ()), tracked.get(index, ())
        gt_boxes += len(truth)
        distances = mm.distances.iou_matrix(
            [b.as_ltwh() for _, b in truth], [b.as_ltwh() for _, b in ours], max_iou=0.5
        )
        acc.update([i for i, _ in truth], [i for i, _ in ours], distances, frameid=index)
        count += 1
    summary = mm.metrics.create().compute(
        acc, metrics=["mota", "idf1", "num_switches", "recall", "precision"], name="run"
    )
    value = summary.loc["run"]
    return MotScores(
        float(value["mota"]),
        float(value["idf1"]),
        int(value["num_switches"]),
        float(value["recall"]),
        float(value["precision"]) if np.isfinite(value["precision"]) else 0.0,
        count,
        gt_boxes,
    )


def match_counts(truth: Sequence[Box], found: Sequence[Box], min_iou: float = 0.5) -> int:
    """How many found boxes match a GT box one-to-one at IoU >= `min_iou` (Hungarian)."""
    if not truth or not found:
        return 0
    from scipy.optimize import linear_sum_assignment

    iou = np.array([[t.iou(f) for f in found] for t in truth])
    rows, cols = linear_sum_assignment(-iou)
    return int((iou[rows, cols] >= min_iou).sum())


def read_jsonl_tracks(path: str | Path) -> dict[int, list[tuple[int, Box]]]:
    """Body boxes and track ids per frame from a run's JSONL (lines that are not records are skipped; a file
    with none at all is not a run's: ValueError)."""
    out: dict[int, list[tuple[int, Box]]] = {}
    skipped = 0
    for record in read_records(Path(path)):
        if record is None:
            skipped += 1
        else:
            out[record.frame] = [(p.track_id, Box(*p.body_box)) for p in record.persons]
    if not out:
        raise ValueError(f"no frame records of a run in {path} ({_lines(skipped)} read)")
    if skipped:
        print(printable(f"note: skipped {_lines(skipped)} of {path} that are not frame records"), file=sys.stderr)
    return out


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamer.tools.mot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True, help="MOTChallenge gt.txt")
    parser.add_argument("--jsonl", required=True, help="the run's <name>.jsonl")
    parser.add_argument("--scale", type=number_within(0.0, low_inclusive=False), default=1.0,
                        help="GT pixels per video pixel")  # fmt: skip
    parser.add_argument("--frames", type=whole_number_from(1), default=None, help="score the first N frames only")
    args = parser.parse_args(argv)
    try:
        gt = read_mot_gt(args.gt, args.scale, args.frames)
        tracked = read_jsonl_tracks(args.jsonl)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        print(printable(f"error: {first_line(exc)}"), file=sys.stderr)
        return 2
    last = max(gt, default=-1) + 1 if args.frames is None else args.frames
    print(score(gt, tracked, range(last)).line())
    return 0


if __name__ == "__main__":
    exit_with(main)
