"""What the web view shows, posted by the pipeline's output threads and read by the server.

The pipeline never waits for a viewer: `publish` only swaps references and
hands each record to the subscribers' queues without blocking (a full queue
drops it: a slow viewer gets fewer records, the run goes on).

In aggregate-only mode (`privacy.mode: aggregate`) a board holds no image,
no person and no id: each source publishes the counts of its current
interval (`publish_counts`) and the page shows those and the last intervals'.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamer.outputs.counts import IntervalCounter
from streamer.outputs.records import FrameRecord, PersonRecord
from streamer.view.palette import track_hex

#: Events kept for the log, and how long a person's rolling timeline reaches back.
EVENTS_KEPT = 200
TIMELINE_S = 60.0
#: Finished intervals a source keeps for the page in aggregate mode.
INTERVALS_KEPT = 60
SUBSCRIBER_QUEUE = 256


@dataclass
class SourceView:
    """One source's newest frame, figures, persons and recent history."""

    name: str
    image: np.ndarray | None = None
    seq: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    persons: list[dict[str, Any]] = field(default_factory=list)
    timelines: dict[int, deque] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    intervals: deque = field(default_factory=lambda: deque(maxlen=INTERVALS_KEPT))


def _person_summary(person: PersonRecord) -> dict[str, Any]:
    shown = person.smoothed
    return {
        "track_id": person.track_id,
        "color": track_hex(person.track_id),
        "top": [{"label": k, "score": round(v, 3)} for k, v in shown.top(3)] if shown else [],
        "pred": list(shown.pred) if shown else [],
        "uncertain": bool(shown and (shown.uncertain or shown.top(1)[0][0] not in shown.pred)),
        "levels": {k: list(v[:1]) for k, v in shown.level_pred.items()} if shown else {},
        "exclusion": list(shown.exclusion) if shown else [],
        "head_box": list(person.head_box) if person.head_box is not None else None,
    }


class LiveBoard:
    """Thread-safe: output threads publish, the run's status loop reports, the server's event loop reads.

    Sources join as their outputs open (`add_source`), so the page can be
    served before the run knows its sources.
    """

    def __init__(self, names: list[str] | None = None, notice: str = "", aggregate: bool = False) -> None:
        #: The privacy notice the page shows (privacy.notice).
        self.notice = notice
        #: Aggregate-only: counts alone, never a frame or a person (`publish` refuses).
        self.aggregate = aggregate
        self._lock = threading.Lock()
        self.sources = {name: SourceView(name) for name in names or []}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []

    def add_source(self, name: str) -> None:
        with self._lock:
            self.sources.setdefault(name, SourceView(name))

    def publish(self, name: str, image: np.ndarray, record: FrameRecord) -> None:
        """A source wrote a frame: its annotated image and its record."""
        if self.aggregate:
            raise RuntimeError("an aggregate-only board takes counts, never frames or persons")
        persons = [_person_summary(p) for p in record.persons]
        t = record.pts_s
        line = record.to_json()
        with self._lock:
            view = self.sources[name]
            view.image, view.seq, view.persons = image, view.seq + 1, persons
            for person in persons:
                points = view.timelines.setdefault(person["track_id"], deque())
                points.append({"t": t, "top": person["top"][:1]})
                while points and t - points[0]["t"] > TIMELINE_S:
                    points.popleft()
            for event in record.events:
                self.events.append({"source": name, "frame": record.frame, "t": t, **event.to_json()})
                if event.event == "track_end":
                    view.timelines.pop(event.track_id, None)
            if record.gap_before:
                self.events.append(
                    {"source": name, "frame": record.frame, "t": t, "event": "gap", "gap_s": record.gap_s}
                )
            subscribers = list(self._subscribers)
        message = {"source": name, "record": line}
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(_offer, queue, message)

    def publish_counts(self, name: str, counts: dict[str, Any], finished: dict[str, Any] | None = None) -> None:
        """A source's counts so far in its current interval (and the interval it just finished, if any)."""
        with self._lock:
            view = self.sources[name]
            view.counts, view.seq = counts, view.seq + 1
            if finished is not None:
                view.intervals.append(finished)
            subscribers = list(self._subscribers)
        message = {"source": name, "counts": counts}
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(_offer, queue, message)

    def status(self, name: str, status: dict[str, Any]) -> None:
        """A source's figures (state, fps, frames, dropped, ...), from the run's status loop."""
        with self._lock:
            view = self.sources.setdefault(name, SourceView(name))
            dropped = int(status.get("dropped", 0)) - int(view.status.get("dropped", 0))
            if dropped > 0 and view.status:  # a live source fell behind: stale frames were skipped
                self.events.append({"source": name, "event": "dropped", "count": dropped})
            view.status = status

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        with self._lock:
            self._subscribers.append((loop, queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not queue]

    def frame(self, name: str) -> tuple[np.ndarray | None, int]:
        with self._lock:
            view = self.sources[name]
            return view.image, view.seq

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sources": [
                    {
                        "name": v.name,
                        **v.status,  # in aggregate mode its "persons" is how many are in the frame now
                        **(
                            {"counts": v.counts, "intervals": list(v.intervals)}
                            if self.aggregate
                            else {
                                "persons": v.persons,
                                "timelines": {str(k): list(line) for k, line in v.timelines.items()},
                            }
                        ),
                        "frames_published": v.seq,
                    }
                    for v in self.sources.values()
                ],
                "events": list(self.events)[-50:],
                "notice": self.notice,
                "aggregate": self.aggregate,
            }


class LiveViewOutput:
    """One source's output to the live web view: a sink like the video and the JSONL (it writes no file)."""

    def __init__(self, board: LiveBoard, name: str) -> None:
        self.board = board
        self.name = name
        board.add_source(name)

    @property
    def paths(self) -> list[Path]:
        return []

    def write(self, annotated: np.ndarray, record: FrameRecord) -> None:
        self.board.publish(self.name, annotated, record)  # a reference swap, never a wait

    def new_segment(self) -> None:
        """Nothing to start: the page shows the newest frame."""

    def close(self) -> None:
        """The page keeps showing the last frame until the server stops."""


class CountsViewOutput:
    """One source's counts to an aggregate-only live view (the running interval, then each one finished)."""

    def __init__(self, board: LiveBoard, name: str, interval_s: float) -> None:
        if not board.aggregate:
            raise ValueError("counts go to an aggregate-only board (LiveBoard(aggregate=True))")
        self.board = board
        self.name = name
        self.intervals = IntervalCounter(interval_s)
        board.add_source(name)

    @property
    def paths(self) -> list[Path]:
        return []

    def write(self, annotated: np.ndarray, record: FrameRecord) -> None:
        running, finished = self.intervals.add(record)
        self.board.publish_counts(self.name, running.to_json(), finished.to_json() if finished else None)

    def new_segment(self) -> None:
        """The interval goes on across a reconnect."""

    def close(self) -> None:
        """The page keeps the last counts until the server stops."""


def _offer(queue: asyncio.Queue, message: dict[str, Any]) -> None:
    if not queue.full():  # a slow viewer misses records; it never slows the pipeline
        queue.put_nowait(message)
