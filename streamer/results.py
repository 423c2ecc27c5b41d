"""Machine-readable results: one JSON object per frame (JSONL) or per image.

Per person: track id, boxes (xyxy pixels), where the body box came from, and
for both the raw model output of this frame and the smoothed view: per-level
scores (label -> probability), final labels, per-level labels, and the
exclusion sequence when the model gives one.
"""

from __future__ import annotations

from typing import Any

from cocoer_core.api import EmotionResult
from streamer.types import Box, FrameResult, Person, TrackEvent

DECIMALS = 5


def _box(box: Box | None) -> list[float] | None:
    if box is None:
        return None
    return [round(v, 2) for v in box.as_tuple()]


def emotion_to_json(result: EmotionResult | None) -> dict[str, Any] | None:
    """An EmotionResult as plain JSON types."""
    if result is None:
        return None
    out: dict[str, Any] = {
        "scores": {
            level.value: {label: round(float(p), DECIMALS) for label, p in zip(result.labels, values, strict=True)}
            for level, values in result.scores.items()
        },
        "pred": list(result.pred),
        "level_pred": {level.value: list(labels) for level, labels in result.level_pred.items()},
    }
    if result.exclusion:
        out["exclusion"] = [level.sequence_name for level in result.exclusion]
    if result.level_losses:
        out["level_losses"] = {level.value: round(v, DECIMALS) for level, v in result.level_losses.items()}
    return out


def person_to_json(person: Person, raw: EmotionResult | None, smoothed: EmotionResult | None) -> dict[str, Any]:
    return {
        "track_id": person.track_id,
        "body_box": _box(person.body_box),
        "head_box": _box(person.head_box),
        "body_source": person.body_source,
        "score": round(person.score, 4),
        "raw": emotion_to_json(raw),
        "smoothed": emotion_to_json(smoothed),
    }


def event_to_json(event: TrackEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"event": f"track_{event.kind.value}", "track_id": event.track_id}
    if event.last_frame is not None:
        out["last_frame"] = event.last_frame
    return out


def frame_to_json(result: FrameResult, model_name: str) -> dict[str, Any]:
    """One JSONL line."""
    frame = result.frame
    line: dict[str, Any] = {
        "frame": frame.index,
        "pts_s": round(frame.pts_s, 6),
        "model": model_name,
        "persons": [
            person_to_json(p, r, s) for p, r, s in zip(result.persons, result.raw, result.smoothed, strict=True)
        ],
    }
    if result.events:
        line["events"] = [event_to_json(e) for e in result.events]
    if not result.detected:
        line["detected"] = False  # boxes predicted by the tracker (detector.interval)
    if frame.gap_before:
        line["gap_before"] = True
        line["gap_s"] = round(frame.gap_s, 3)
    return line
