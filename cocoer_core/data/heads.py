"""Head-box files: a face detector's heads for a dataset's persons, found once, read by training and evaluation.

    {"version": 1, "dataset": "emotic", "detector": "mtcnn", "licence": "MIT ...",
     "rule": "...", "created": "...", "counts": {"face": 20311, "estimated": 3455},
     "heads": {"emotic/mscoco/images/x.jpg#0": [x1, y1, x2, y2, score, "face" | "estimated"], ...}}

`streamer.tools.head_boxes` writes them (it has the detectors); this module
only reads and writes the format, so `cocoer_core` needs nothing else of ours.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocoer_core.data.samples import Box4, DatasetError, PersonSample
from cocoer_core.whole_files import write_text_whole

HOW = ("face", "estimated")
#: One person's head: its box, the detector's score (0 when estimated) and how it was found (one of HOW).
Head = tuple[Box4, float, str]


@dataclass
class HeadBoxes:
    """Head boxes by person key, with where they came from."""

    dataset: str
    detector: str
    licence: str
    rule: str
    heads: dict[str, Head] = field(default_factory=dict)
    created: str = ""

    def head_of(self, sample: PersonSample) -> Box4:
        found = self.heads.get(sample.key)
        if found is None:
            raise DatasetError(f"no head box for {sample.key} (was the head-box file made for this dataset?)")
        return found[0]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(HOW, 0)
        for _, _, how in self.heads.values():
            out[how] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "dataset": self.dataset,
            "detector": self.detector,
            "licence": self.licence,
            "rule": self.rule,
            "created": self.created,
            "counts": self.counts(),
            "heads": {key: head_to_json(head) for key, head in self.heads.items()},
        }

    def write(self, path: Path) -> None:
        write_text_whole(path, json.dumps(self.to_json()) + "\n")


def head_to_json(head: Head) -> list[Any]:
    """One person's head as the file holds it: [x1, y1, x2, y2, score, how]."""
    box, score, how = head
    return [*box, round(score, 4), how]


def head_from_json(entry: object) -> Head | None:
    """[x1, y1, x2, y2, score, how] read back; None when the entry is not that."""
    if not isinstance(entry, list) or len(entry) != 6 or entry[5] not in HOW:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in entry[:5]):
        return None  # JSON may hold NaN or Infinity: no box
    x1, y1, x2, y2, score = (float(v) for v in entry[:5])
    return (x1, y1, x2, y2), score, str(entry[5])


def read_head_boxes(path: Path) -> HeadBoxes:
    """A head-box file; one line naming the file and the entry when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"head-box file {path} not found (make it with python -m streamer.tools.head_boxes)"
        ) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise DatasetError(f"{path}: not a head-box file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("heads"), dict):
        raise DatasetError(f"{path}: not a head-box file (no 'heads' mapping)")
    heads: dict[str, Head] = {}
    for key, entry in data["heads"].items():
        head = head_from_json(entry)
        if head is None:
            raise DatasetError(f"{path}: entry {str(key)[:80]!r} is not [x1, y1, x2, y2, score, how]")
        heads[str(key)] = head
    text = {k: str(data.get(k, "")) for k in ("dataset", "detector", "licence", "rule", "created")}
    return HeadBoxes(text["dataset"], text["detector"], text["licence"], text["rule"], heads, text["created"])
