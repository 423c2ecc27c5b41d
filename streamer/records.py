"""Reading a run's JSONL back: each line parsed and checked against the per-frame record's shape.

A JSONL may come from anywhere (a crash cut its last line, a disk filled, a
person edited it, or it is not ours at all), so every reader goes through
`read_frame_lines`: a line that does not parse, is nested absurdly deep, or
has a field of the wrong type or shape comes back as None, to be skipped and
counted; every other line is a dict whose fields the readers can use without
checking again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: A line longer than this is not a frame record (a frame of 100 persons of CocoER is ~200 kB).
MAX_LINE_BYTES = 16 * 1024 * 1024


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _is_box(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)


def _is_labels(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_scores(value: Any) -> bool:
    """{level: {label: probability}}."""
    return isinstance(value, dict) and all(
        isinstance(level, str)
        and isinstance(per_label, dict)
        and all(isinstance(label, str) and _is_number(p) for label, p in per_label.items())
        for level, per_label in value.items()
    )


def _emotion_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return "an emotion is not an object"
    if not _is_scores(value.get("scores")) or "final" not in value["scores"]:
        return "emotion scores are not {level: {label: number}} with a final level"
    if not _is_labels(value.get("pred", [])):
        return "pred is not a list of labels"
    level_pred = value.get("level_pred", {})
    if not isinstance(level_pred, dict) or not all(_is_labels(v) for v in level_pred.values()):
        return "level_pred is not {level: [labels]}"
    if not _is_labels(value.get("exclusion", [])):
        return "exclusion is not a list of levels"
    losses = value.get("level_losses", {})
    if not isinstance(losses, dict) or not all(_is_number(v) for v in losses.values()):
        return "level_losses is not {level: number}"
    return None


def _person_problem(person: Any) -> str | None:
    if not isinstance(person, dict):
        return "a person is not an object"
    if not _is_int(person.get("track_id")):
        return "track_id is not an integer"
    if not _is_box(person.get("body_box")):
        return "body_box is not 4 numbers"
    if person.get("head_box") is not None and not _is_box(person["head_box"]):
        return "head_box is not 4 numbers or null"
    if not isinstance(person.get("body_source", ""), str) or not _is_number(person.get("score", 0.0)):
        return "body_source or score has the wrong type"
    for kind in ("raw", "smoothed"):
        problem = _emotion_problem(person.get(kind))
        if problem:
            return f"{kind}: {problem}"
    return None


def _event_problem(event: Any) -> str | None:
    if not isinstance(event, dict) or not isinstance(event.get("event"), str) or not _is_int(event.get("track_id")):
        return "an event is not {event: text, track_id: integer}"
    if "last_frame" in event and not _is_int(event["last_frame"]):
        return "an event's last_frame is not an integer"
    return None


def frame_record_problem(record: Any) -> str | None:
    """What makes `record` not a per-frame record of a run, or None when it is one."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if not _is_int(record.get("frame")) or record["frame"] < 0:
        return "frame is not a non-negative integer"
    if not _is_number(record.get("pts_s")):
        return "pts_s is not a number"
    if not isinstance(record.get("model", ""), str):
        return "model is not text"
    persons, events = record.get("persons"), record.get("events", [])
    if not isinstance(persons, list) or not isinstance(events, list):
        return "persons or events is not a list"
    for problem in (*map(_person_problem, persons), *map(_event_problem, events)):
        if problem:
            return problem
    if not _is_number(record.get("gap_s", 0.0)):
        return "gap_s is not a number"
    for flag in ("gap_before", "detected"):
        if not isinstance(record.get(flag, False), bool):
            return f"{flag} is not true or false"
    return None


def parse_frame_line(line: bytes) -> dict[str, Any] | None:
    """One JSONL line as a checked frame record, or None when it is not one."""
    if len(line) > MAX_LINE_BYTES:
        return None
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, cut short, or nested absurdly deep
        return None
    return record if frame_record_problem(record) is None else None


def read_frame_lines(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each line of a run's JSONL: a checked frame record, or None for one to skip (and count)."""
    with path.open("rb") as handle:
        while line := handle.readline(MAX_LINE_BYTES + 1):
            if len(line) > MAX_LINE_BYTES:  # never hold an endless line in memory: skip to its end
                while line and not line.endswith(b"\n"):
                    line = handle.readline(MAX_LINE_BYTES)
                yield None
            elif line.strip():
                yield parse_frame_line(line)
