"""The original `inference.py`'s output format: its per-person dict and its drawing.

The command line that finds the people first lives at the edge, in
`streamer.tools.infer` (cocoer_core imports nothing of the pipeline).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2

import numpy as np

from cocoer_core.api import EmotionResult, Level, PersonRegion

OFFICIAL_KEYS = {"pred": Level.FINAL, "VI": Level.VI, "head": Level.HEAD, "body": Level.BODY, "ctx": Level.CONTEXT}


def official_dict(result: EmotionResult) -> dict[str, list[str]]:
    """One person's output exactly as the original inference script builds it."""
    out: dict[str, list[str]] = {"pred": list(result.pred)}
    for key, level in OFFICIAL_KEYS.items():
        if level is not Level.FINAL:
            out[key] = list(result.level_pred.get(level, ()))
    out["emo_process"] = [level.sequence_name for level in result.exclusion]
    return out


def draw_official(image: np.ndarray, persons: Sequence[PersonRegion], results: Sequence[EmotionResult]) -> np.ndarray:
    """The original's drawing: green person box, yellow face box, blue index, green labels on black."""
    for index, (person, result) in enumerate(zip(persons, results, strict=True)):
        px1, py1, px2, py2 = (int(v) for v in person.body_xyxy)
        cv2.rectangle(image, (px1, py1), (px2, py2), (0, 255, 0), 1)
        cv2.putText(image, str(index), (px1, py1 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 0, 0), 2)
        if person.head_xyxy is None:
            continue
        fx1, fy1, fx2, fy2 = (int(v) for v in person.head_xyxy)
        cv2.rectangle(image, (fx1, fy1), (fx2, fy2), (0, 255, 255), 1)
        for line, label in enumerate(result.pred):
            x, y = fx2 + 10, fy1 + 10 * line
            (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.3, 1)
            cv2.rectangle(image, (x, y - h - 1), (x + w, y + base - 1), (0, 0, 0), cv2.FILLED)
            cv2.putText(image, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 255, 0), 1)
    return image
