"""Reading a run's JSONL once: what the report shows of the session and of each person, and the per-person CSVs.

Timelines keep at most `MAX_POINTS` points per track (halving their
resolution as they grow), so hours-long sessions with hundreds of tracks
stay small. Lines that are not frame records (a crash, a full disk, an edit)
are skipped and counted.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from streamer.outputs.records import EmotionRecord, PersonRecord, read_records

#: Timeline points kept per track (and for the session): enough for a plot, bounded for long runs.
MAX_POINTS = 1200
TOP_LABELS = 3
LEVELS = ("head", "body", "context", "vi")


class Decimated:
    """A time series that keeps at most `limit` points: when full, every other point goes and the stride doubles."""

    def __init__(self, limit: int = MAX_POINTS) -> None:
        self.limit = limit
        self.stride = 1
        self._seen = 0
        self.points: list[tuple[float, Any]] = []

    def add(self, t: float, value: Any) -> None:
        if self._seen % self.stride == 0:
            self.points.append((t, value))
            if len(self.points) > self.limit:
                self.points = self.points[::2]
                self.stride *= 2
        self._seen += 1


@dataclass
class TrackSummary:
    """What the report shows of one tracked person, gathered in one pass."""

    track_id: int
    first_s: float
    last_s: float
    frames: int = 0
    scores: Decimated = field(default_factory=Decimated)  # smoothed final scores per frame
    agreement: Decimated = field(default_factory=Decimated)  # per inference: level -> agrees with final
    label_sums: Counter = field(default_factory=Counter)
    exclusions: Counter = field(default_factory=Counter)
    best_face: tuple[float, int, float, list[float]] | None = None  # area, frame, pts, head box
    best_body: tuple[float, int, float, list[float]] | None = None  # the same for the body box
    no_emotion: Counter = field(default_factory=Counter)  # frames with nothing shown, by reason
    shown: int = 0  # frames with an emotion shown
    uncertain: int = 0  # of those, frames where it was a guess

    def top_labels(self, k: int = TOP_LABELS) -> list[str]:
        return [label for label, _ in self.label_sums.most_common(k)]


@dataclass
class SessionSummary:
    """The whole run: its tracks, people on screen over time, emotions, gaps and what could not be read."""

    model: str = ""
    labels: tuple[str, ...] = ()
    frames: int = 0
    first_s: float | None = None
    last_s: float = 0.0
    skipped_lines: int = 0
    tracks: dict[int, TrackSummary] = field(default_factory=dict)
    people: Decimated = field(default_factory=Decimated)
    dominant: Counter = field(default_factory=Counter)
    gaps: list[tuple[float, float]] = field(default_factory=list)


def _top(scores: Mapping[str, float] | None) -> str | None:
    return max(scores, key=scores.__getitem__) if scores else None


class CsvWriters:
    """One CSV per track, opened on its first row and closed when the track ends."""

    def __init__(self, folder: Path, labels: tuple[str, ...]) -> None:
        self.folder = folder
        self.labels = labels
        self.paths: dict[int, Path] = {}
        self._open: dict[int, tuple[IO[str], Any]] = {}

    def row(self, t: float, frame: int, person: PersonRecord) -> None:
        track_id = person.track_id
        if track_id not in self._open:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"track_{track_id}.csv"
            handle = path.open("a" if track_id in self.paths else "w", newline="", encoding="utf-8")
            writer = csv.writer(handle)
            if track_id not in self.paths:
                writer.writerow(
                    ["time_s", "frame", "track_id"]
                    + [f"smoothed_{x}" for x in self.labels]
                    + [f"raw_{x}" for x in self.labels]
                    + ["uncertain", "no_emotion"]
                )
            self.paths[track_id] = path
            self._open[track_id] = (handle, writer)
        smooth = person.smoothed.final if person.smoothed else {}
        now = person.raw.final if person.raw else {}
        self._open[track_id][1].writerow(
            [f"{t:.6f}", frame, track_id]
            + [smooth.get(x, "") for x in self.labels]
            + [now.get(x, "") for x in self.labels]
            + [int(person.smoothed.uncertain) if person.smoothed else "", person.no_emotion or ""]
        )

    def end(self, track_id: int) -> None:
        opened = self._open.pop(track_id, None)
        if opened is not None:
            opened[0].close()

    def close(self) -> None:
        for track_id in list(self._open):
            self.end(track_id)


def _agreement(raw: EmotionRecord) -> dict[str, bool]:
    """Per level of one inference: whether its top label is the final one."""
    top_final = _top(raw.final)
    return {level: _top(raw.scores[level]) == top_final for level in LEVELS if level in raw.scores}


def _person(session: SessionSummary, person: PersonRecord, t: float, frame: int) -> None:
    track = session.tracks.get(person.track_id)
    if track is None:
        track = session.tracks[person.track_id] = TrackSummary(person.track_id, t, t)
    track.last_s = t
    track.frames += 1
    if person.smoothed is not None:
        final = person.smoothed.final
        track.scores.add(t, final)
        track.label_sums.update(final)
        track.shown += 1
        track.uncertain += person.smoothed.uncertain
        session.dominant[_top(final)] += 1
    else:
        track.no_emotion[person.no_emotion or "unknown"] += 1
    if person.raw is not None:
        track.agreement.add(t, _agreement(person.raw))
        if person.raw.exclusion:
            track.exclusions[" > ".join(person.raw.exclusion)] += 1
    head = person.head_box
    if head is not None:
        area = (head[2] - head[0]) * (head[3] - head[1])
        if track.best_face is None or area > track.best_face[0]:
            track.best_face = (area, frame, t, list(head))
    body = person.body_box
    area = (body[2] - body[0]) * (body[3] - body[1])
    if track.best_body is None or area > track.best_body[0]:
        track.best_body = (area, frame, t, list(body))


def emotion_labels(jsonl: Path) -> tuple[str, ...]:
    """The model's labels: those of the first person with an emotion (reading stops there; () if none)."""
    for record in read_records(jsonl):
        for person in record.persons if record is not None else ():
            shown = person.smoothed or person.raw
            if shown is not None:
                return tuple(shown.final)
    return ()


def summarize(jsonl: Path, csv_folder: Path | None) -> SessionSummary:
    """Read the JSONL: the session's summary, and (when asked) the per-track CSVs, a row for every frame of
    every person (the labels, for the CSV's columns, come from a first read that stops at the first emotion).
    """
    session = SessionSummary(labels=emotion_labels(jsonl))
    writers: CsvWriters | None = None
    try:
        for record in read_records(jsonl):
            if record is None:
                session.skipped_lines += 1
                continue
            t = record.pts_s
            session.frames += 1
            session.first_s = t if session.first_s is None else session.first_s
            session.last_s = t
            session.model = session.model or record.model
            if record.gap_before:
                session.gaps.append((t - record.gap_s, t))
            session.people.add(t, len(record.persons))
            for person in record.persons:
                if csv_folder is not None:
                    writers = writers or CsvWriters(csv_folder, session.labels)
                    writers.row(t, record.frame, person)
                _person(session, person, t, record.frame)
            for event in record.events:
                if event.event == "track_end" and writers is not None:
                    writers.end(event.track_id)
    finally:
        if writers is not None:
            writers.close()
    return session
