"""Aggregate-only output (`privacy.mode: aggregate`): per-interval counts, nothing per person.

One line per `privacy.interval_s` of the source's time in `<out>/<stem>.counts.jsonl`:

    {"version": 1, "start_s": 0.0, "end_s": 10.0, "frames": 250,
     "persons_mean": 1.4, "persons_max": 2, "people_seen": 3,
     "analysed": 341, "uncertain": 12, "no_emotion": {"no_face": 9},
     "final": {"Happiness": 120, ...}, "levels": {"head": {...}, "body": {...}, "context": {...}}}

Histograms count person-frames: a person analysed in 25 frames whose final
prediction holds Happiness adds 25 to `final.Happiness` (labels a prediction
holds, so a multi-label person adds to each). `people_seen` is how many
distinct people were in the interval: the ids that tell them apart stay in
memory and are gone when the interval is written. No track id, box, face,
image or per-person row is ever written.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from streamer.errors import OutputError
from streamer.outputs.base import reason
from streamer.outputs.records import FrameRecord

COUNTS_VERSION = 1


@dataclass
class Interval:
    """The counts of one interval of a source's time (see the module docstring for the line it becomes)."""

    index: int
    seconds: float
    frames: int = 0
    person_frames: int = 0
    persons_max: int = 0
    analysed: int = 0
    uncertain: int = 0
    no_emotion: Counter[str] = field(default_factory=Counter)
    final: Counter[str] = field(default_factory=Counter)
    levels: dict[str, Counter[str]] = field(default_factory=dict)
    _seen: set[int] = field(default_factory=set, repr=False)

    @staticmethod
    def index_of(pts_s: float, seconds: float) -> int:
        """Which interval a frame at `pts_s` falls in."""
        return math.floor(pts_s / seconds) if math.isfinite(pts_s) else 0

    def add(self, record: FrameRecord) -> None:
        self.frames += 1
        self.person_frames += len(record.persons)
        self.persons_max = max(self.persons_max, len(record.persons))
        for person in record.persons:
            self._seen.add(person.track_id)
            shown = person.smoothed
            if shown is None:
                self.no_emotion[person.no_emotion or "not_inferred"] += 1
                continue
            self.analysed += 1
            self.uncertain += int(shown.uncertain)
            self.final.update(shown.pred)
            for level, labels in shown.level_pred.items():
                self.levels.setdefault(level, Counter()).update(labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": COUNTS_VERSION,
            "start_s": round(self.index * self.seconds, 3),
            "end_s": round((self.index + 1) * self.seconds, 3),
            "frames": self.frames,
            "persons_mean": round(self.person_frames / self.frames, 3) if self.frames else 0.0,
            "persons_max": self.persons_max,
            "people_seen": len(self._seen),
            "analysed": self.analysed,
            "uncertain": self.uncertain,
            "no_emotion": dict(self.no_emotion),
            "final": dict(self.final.most_common()),
            "levels": {level: dict(counts.most_common()) for level, counts in sorted(self.levels.items())},
        }


@dataclass
class IntervalCounter:
    """The running interval of a source's counts: `add` returns it and the interval the frame closed, if any."""

    seconds: float
    current: Interval | None = None

    def add(self, record: FrameRecord) -> tuple[Interval, Interval | None]:
        index = Interval.index_of(record.pts_s, self.seconds)
        finished = None
        if self.current is not None and index != self.current.index:
            finished, self.current = self.current, None
        running = self.current or Interval(index, self.seconds)
        running.add(record)
        self.current = running
        return running, finished

    def take(self) -> Interval | None:
        """The running interval, ended (at the end of the source)."""
        last, self.current = self.current, None
        return last


class CountsOutput:
    """A source's counts, one JSONL line per interval (a sink like the video; it ignores the image)."""

    def __init__(self, path: Path, interval_s: float) -> None:
        self.path = path
        self.intervals = IntervalCounter(interval_s)
        self._file: IO[str] | None = None

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def write(self, annotated: np.ndarray, record: FrameRecord) -> None:
        if self._file is None:  # at the first frame, so that the run's files are all there (and listed) early
            self._open()
        _, finished = self.intervals.add(record)
        if finished is not None:
            self._write(finished)

    def _write(self, interval: Interval | None) -> None:
        if interval is None or not interval.frames:
            return
        line = json.dumps(interval.to_json(), ensure_ascii=False)
        handle = self._file or self._open()
        try:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            raise OutputError(f"cannot write {self.path} ({reason(exc)})") from exc

    def _open(self) -> IO[str]:
        try:
            self._file = self.path.open("w", encoding="utf-8")  # replaces an earlier run's, as the JSONL does
        except OSError as exc:
            raise OutputError(f"cannot write {self.path} ({reason(exc)})") from exc
        return self._file

    def new_segment(self) -> None:
        """The interval goes on across a reconnect (its counts are of the source's time)."""

    def close(self) -> None:
        try:
            self._write(self.intervals.take())
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
