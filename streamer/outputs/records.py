"""The per-frame record: its schema, its writer (the JSONL output) and its reader.

One `FrameRecord` per analysed frame is what a run hands to everyone who
wants its results: the JSONL output writes it as one line, the live web view
publishes it, the Python API yields it, and the report and the MOT tool read
it back. So its shape is defined once, here:

    {"version": 1, "frame": 12, "pts_s": 0.48, "model": "cocoer",
     "persons": [{"track_id": 3, "body_box": [x1, y1, x2, y2], "head_box": [...] | null,
                  "body_source": "person" | "face", "score": 0.98,
                  "raw": EMOTION | null, "smoothed": EMOTION | null,
                  "no_emotion": "no_face" | "face_too_small" | "no_model" | "not_inferred"}],  (when smoothed is null)
     "events": [{"event": "track_start" | "track_end", "track_id": 3, "last_frame": 9}],   (when any; an end
                says the frame it was last seen in, a start recorded late "first_frame": the frame it began in)
     "detected": false,                         (frames the detector skipped)
     "gap_before": true, "gap_s": 3.2,          (a live source's first frame after a reconnect)
     "frame_size": [640, 360]}                  (width, height: a source's first line, and when it changes)
    EMOTION = {"scores": {level: {label: p}}, "pred": [...], "level_pred": {level: [...]},
               "exclusion": ["body-level", ...], "level_losses": {level: x},   (the last two when any)
               "uncertain": true}   (when the top label is a guess: see smoothing.uncertain_*)

`record_of` builds a record from a frame's result with the rounding the JSONL
keeps, so a record read back from the file equals the one that was written.
Lines written before the record had a `version` read as version 0 (the same
shape). Every line is checked on reading: one that does not parse, is
nested absurdly deep, or has a field of the wrong type or shape is skipped
and counted, never trusted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from cocoer_core.api import EmotionResult
from streamer.errors import OutputError
from streamer.outputs.base import reason
from streamer.types import Box, FrameResult, Person, TrackEvent

#: The record's shape; raise it when a field changes meaning or disappears (adding one is compatible).
SCHEMA_VERSION = 1
SCORE_DECIMALS = 5
BOX_DECIMALS = 2
#: A line longer than this is not a frame record (a frame of 100 persons of CocoER is ~200 kB).
MAX_LINE_BYTES = 16 * 1024 * 1024


class RecordError(ValueError):
    """A JSON value that is not a per-frame record; the message says which field is wrong."""


# -- the schema ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmotionRecord:
    """One person's emotion, as the JSONL holds it: per-level scores by label, labels, exclusion."""

    scores: Mapping[str, Mapping[str, float]]
    pred: tuple[str, ...] = ()
    level_pred: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    exclusion: tuple[str, ...] = ()
    level_losses: Mapping[str, float] = field(default_factory=dict)
    uncertain: bool = False

    @property
    def final(self) -> Mapping[str, float]:
        return self.scores["final"]

    def top(self, k: int = 1, level: str = "final") -> list[tuple[str, float]]:
        """The k best (label, score) pairs of a level, best first (ties keep label order)."""
        ranked = sorted(self.scores.get(level, {}).items(), key=lambda kv: -kv[1])
        return ranked[:k]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scores": {level: dict(per_label) for level, per_label in self.scores.items()},
            "pred": list(self.pred),
            "level_pred": {level: list(labels) for level, labels in self.level_pred.items()},
        }
        if self.exclusion:
            out["exclusion"] = list(self.exclusion)
        if self.level_losses:
            out["level_losses"] = dict(self.level_losses)
        if self.uncertain:
            out["uncertain"] = True
        return out


@dataclass(frozen=True)
class PersonRecord:
    """One tracked person in one frame: boxes in pixels (x1, y1, x2, y2), the model's and the smoothed emotion."""

    track_id: int
    body_box: tuple[float, float, float, float]
    head_box: tuple[float, float, float, float] | None
    body_source: str
    score: float
    raw: EmotionRecord | None
    smoothed: EmotionRecord | None
    no_emotion: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "track_id": self.track_id,
            "body_box": list(self.body_box),
            "head_box": list(self.head_box) if self.head_box is not None else None,
            "body_source": self.body_source,
            "score": self.score,
            "raw": self.raw.to_json() if self.raw else None,
            "smoothed": self.smoothed.to_json() if self.smoothed else None,
        }
        if self.no_emotion:
            out["no_emotion"] = self.no_emotion
        return out


@dataclass(frozen=True)
class EventRecord:
    """A track's start or end (`track_start`, `track_end`; an end says the frame it was last seen in, a start
    recorded on a later frame than it began the frame it began in)."""

    event: str
    track_id: int
    last_frame: int | None = None
    first_frame: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event, "track_id": self.track_id}
        if self.last_frame is not None:
            out["last_frame"] = self.last_frame
        if self.first_frame is not None:
            out["first_frame"] = self.first_frame
        return out


@dataclass(frozen=True)
class FrameRecord:
    """Everything a run says about one frame of one source (one JSONL line; `source` is the file it is in)."""

    frame: int
    pts_s: float
    model: str
    persons: tuple[PersonRecord, ...]
    events: tuple[EventRecord, ...] = ()
    detected: bool = True
    gap_before: bool = False
    gap_s: float = 0.0
    #: The frame's width and height, on a source's first record and when it changes (a camera that came back
    #: at another resolution): the boxes are in its pixels.
    frame_size: tuple[int, int] | None = None
    source: str = ""
    version: int = SCHEMA_VERSION
    #: Seconds from capture to write, in the run that wrote it (for latency figures; not in the JSONL).
    latency_s: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The JSONL line (without `source`: a source's lines are in its own file)."""
        line: dict[str, Any] = {
            "version": self.version,
            "frame": self.frame,
            "pts_s": self.pts_s,
            "model": self.model,
            "persons": [p.to_json() for p in self.persons],
        }
        if self.events:
            line["events"] = [e.to_json() for e in self.events]
        if not self.detected:
            line["detected"] = False  # boxes predicted by the tracker (detector.interval)
        if self.gap_before:
            line["gap_before"] = True
            line["gap_s"] = self.gap_s
        if self.frame_size is not None:
            line["frame_size"] = list(self.frame_size)
        return line


# -- the writer: a frame's result as a record -------------------------------------------------------


def _box(box: Box | None) -> tuple[float, float, float, float] | None:
    if box is None:
        return None
    x1, y1, x2, y2 = (round(v, BOX_DECIMALS) for v in box.as_tuple())
    return (x1, y1, x2, y2)


def emotion_record(result: EmotionResult | None) -> EmotionRecord | None:
    """An `EmotionResult` as the record holds it (scores rounded to `SCORE_DECIMALS`)."""
    if result is None:
        return None
    return EmotionRecord(
        scores={
            level.value: {
                label: round(float(p), SCORE_DECIMALS) for label, p in zip(result.labels, values, strict=True)
            }
            for level, values in result.scores.items()
        },
        pred=tuple(result.pred),
        level_pred={level.value: tuple(labels) for level, labels in result.level_pred.items()},
        exclusion=tuple(level.sequence_name for level in result.exclusion),
        level_losses={level.value: round(v, SCORE_DECIMALS) for level, v in result.level_losses.items()},
        uncertain=result.uncertain,
    )


def person_record(
    person: Person, raw: EmotionResult | None, smoothed: EmotionResult | None, no_emotion: str | None = None
) -> PersonRecord:
    body = _box(person.body_box)
    if body is None:  # pragma: no cover - a person always has a body box
        raise ValueError("a person without a body box")
    return PersonRecord(
        person.track_id,
        body,
        _box(person.head_box),
        person.body_source,
        round(person.score, 4),
        emotion_record(raw),
        emotion_record(smoothed),
        no_emotion if smoothed is None else None,
    )


def _event(event: TrackEvent) -> EventRecord:
    return EventRecord(f"track_{event.kind.value}", event.track_id, event.last_frame, event.first_frame)


def record_of(
    result: FrameResult, model_name: str, source: str = "", frame_size: tuple[int, int] | None = None
) -> FrameRecord:
    """The record of one frame's result, rounded as the JSONL keeps it (written now: `latency_s` from capture).
    `frame_size`: given on a source's first frame and when it changes."""
    frame = result.frame
    return FrameRecord(
        frame=frame.index,
        pts_s=round(frame.pts_s, 6),
        model=model_name,
        persons=tuple(
            person_record(p, r, s, why)
            for p, r, s, why in zip(
                result.persons,
                result.raw,
                result.smoothed,
                result.no_emotion or [None] * len(result.persons),
                strict=True,
            )
        ),
        events=tuple(_event(e) for e in result.events),
        detected=result.detected,
        gap_before=frame.gap_before,
        gap_s=round(frame.gap_s, 3) if frame.gap_before else 0.0,
        frame_size=frame_size,
        source=source,
        latency_s=time.monotonic() - frame.captured_at,
    )


class JsonlOutput:
    """`<out>/<name>.jsonl`: one record per line, flushed per frame, so it needs no close to be readable.

    A line that cannot be written whole (a full disk) is cut off again: the
    file always ends with a complete line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        self._file: IO[bytes] | None = None
        self._good_size = 0

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def write(self, annotated: np.ndarray, record: FrameRecord) -> None:
        """Append the record's line. Raises OutputError (naming the file) when it cannot be written."""
        self.write_line(record.to_json())

    def write_line(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            if self._file is None:
                self._file = self.path.open("wb")
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            self._cut_partial_line()
            raise OutputError(f"cannot write {self.path} ({reason(exc)})") from exc
        self._good_size += len(data)
        self.lines += 1

    def _cut_partial_line(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        with contextlib.suppress(OSError):
            file.close()  # may fail again flushing the same bytes: they are cut below
        with contextlib.suppress(OSError):
            os.truncate(self.path, self._good_size)

    def new_segment(self) -> None:
        """One JSONL per run: nothing to do when a live source restarts."""

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                raise OutputError(f"cannot finalize {self.path} ({reason(exc)})") from exc


# -- the reader ----------------------------------------------------------------------------------------


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError(f"{what} is not an integer")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"{what} is not a number")
    return float(value) if isinstance(value, int) else value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{what} is not text")
    return value


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise RecordError(f"{what} is not true or false")
    return value


def _size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise RecordError("frame_size is not [width, height]")
    width, height = (_int(v, "frame_size") for v in value)
    if width < 1 or height < 1:
        raise RecordError("frame_size is not positive")
    return width, height


def _labels(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{what} is not a list of text")
    return tuple(value)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"{what} is not an object")
    return value


def _box_of(value: Any, what: str) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        raise RecordError(f"{what} is not 4 numbers")
    x1, y1, x2, y2 = (_number(v, what) for v in value)
    return (x1, y1, x2, y2)


def _emotion(value: Any, what: str) -> EmotionRecord | None:
    if value is None:
        return None
    value = _object(value, what)
    scores = _object(value.get("scores"), f"{what}.scores")
    for level, per_label in scores.items():
        for label, p in _object(per_label, f"{what}.scores.{level}").items():
            _number(p, f"{what}.scores.{level}.{label}")
    if "final" not in scores:
        raise RecordError(f"{what}.scores has no final level")
    level_pred = _object(value.get("level_pred", {}), f"{what}.level_pred")
    losses = _object(value.get("level_losses", {}), f"{what}.level_losses")
    return EmotionRecord(
        scores=scores,
        pred=_labels(value.get("pred", []), f"{what}.pred"),
        level_pred={level: _labels(labels, f"{what}.level_pred") for level, labels in level_pred.items()},
        exclusion=_labels(value.get("exclusion", []), f"{what}.exclusion"),
        level_losses={level: _number(x, f"{what}.level_losses") for level, x in losses.items()},
        uncertain=_flag(value.get("uncertain", False), f"{what}.uncertain"),
    )


def _person(value: Any) -> PersonRecord:
    value = _object(value, "a person")
    head = value.get("head_box")
    return PersonRecord(
        track_id=_int(value.get("track_id"), "track_id"),
        body_box=_box_of(value.get("body_box"), "body_box"),
        head_box=None if head is None else _box_of(head, "head_box"),
        body_source=_text(value.get("body_source", "person"), "body_source"),
        score=_number(value.get("score", 0.0), "score"),
        raw=_emotion(value.get("raw"), "raw"),
        smoothed=_emotion(value.get("smoothed"), "smoothed"),
        no_emotion=None if value.get("no_emotion") is None else _text(value["no_emotion"], "no_emotion"),
    )


def _event_of(value: Any) -> EventRecord:
    value = _object(value, "an event")
    last, first = value.get("last_frame"), value.get("first_frame")
    return EventRecord(
        _text(value.get("event"), "event"),
        _int(value.get("track_id"), "an event's track_id"),
        None if last is None else _int(last, "last_frame"),
        None if first is None else _int(first, "first_frame"),
    )


def frame_record(value: Any, source: str = "") -> FrameRecord:
    """A parsed JSON value as a checked `FrameRecord`.

    Raises:
        RecordError: it is not one (the message names the field).
    """
    value = _object(value, "a line")
    frame = _int(value.get("frame"), "frame")
    if frame < 0:
        raise RecordError("frame is negative")
    persons, events = value.get("persons"), value.get("events", [])
    if not isinstance(persons, list) or not isinstance(events, list):
        raise RecordError("persons or events is not a list")
    return FrameRecord(
        frame=frame,
        pts_s=_number(value.get("pts_s"), "pts_s"),
        model=_text(value.get("model", ""), "model"),
        persons=tuple(_person(p) for p in persons),
        events=tuple(_event_of(e) for e in events),
        detected=_flag(value.get("detected", True), "detected"),
        gap_before=_flag(value.get("gap_before", False), "gap_before"),
        gap_s=_number(value.get("gap_s", 0.0), "gap_s"),
        frame_size=_size(value.get("frame_size")),
        source=source,
        version=_int(value.get("version", 0), "version"),
    )


def parse_line(line: bytes | str, source: str = "") -> FrameRecord | None:
    """One JSONL line as a checked record, or None when it is not one."""
    if len(line) > MAX_LINE_BYTES:
        return None
    try:
        return frame_record(json.loads(line), source)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, cut short, nested absurdly deep, wrong shape
        return None


def read_records(path: Path, source: str = "") -> Iterator[FrameRecord | None]:
    """Each line of a run's JSONL: a checked record, or None for one to skip (and count)."""
    with path.open("rb") as handle:
        while line := handle.readline(MAX_LINE_BYTES + 1):
            if len(line) > MAX_LINE_BYTES:  # never hold an endless line in memory: skip to its end
                while line and not line.endswith(b"\n"):
                    line = handle.readline(MAX_LINE_BYTES)
                yield None
            elif line.strip():
                yield parse_line(line, source)
