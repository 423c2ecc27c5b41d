"""What the web view shows, posted by the pipeline's output threads and read by the server.

The pipeline never waits for a viewer: `publish` only swaps references and
hands each record to the subscribers' queues without blocking (a full queue
drops it: a slow viewer gets fewer records, the run goes on).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Events kept for the log, and how long a person's rolling timeline reaches back.
EVENTS_KEPT = 200
TIMELINE_S = 60.0
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
    updated: float = 0.0


def _person_summary(person: dict[str, Any]) -> dict[str, Any]:
    shown = person.get("smoothed") or {}
    final = (shown.get("scores") or {}).get("final") or {}
    top = sorted(final.items(), key=lambda kv: -kv[1])[:3]
    return {
        "track_id": person["track_id"],
        "top": [{"label": k, "score": round(v, 3)} for k, v in top],
        "pred": shown.get("pred", []),
        "levels": {k: v[:1] for k, v in (shown.get("level_pred") or {}).items()},
        "exclusion": shown.get("exclusion", []),
        "head_box": person.get("head_box"),
    }


class LiveBoard:
    """Thread-safe: output threads publish, the server's event loop reads."""

    def __init__(self, names: list[str]) -> None:
        self._lock = threading.Lock()
        self.sources = {name: SourceView(name) for name in names}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []

    def publish(self, name: str, image: np.ndarray, record: dict[str, Any], status: dict[str, Any]) -> None:
        """A source wrote a frame: its annotated image and its JSONL record."""
        persons = [_person_summary(p) for p in record.get("persons", [])]
        t = float(record.get("pts_s", 0.0))
        with self._lock:
            view = self.sources[name]
            dropped = int(status.get("dropped", 0)) - int(view.status.get("dropped", 0))
            if dropped > 0:  # a live source fell behind: stale frames were skipped
                self.events.append(
                    {"source": name, "frame": record["frame"], "t": t, "event": "dropped", "count": dropped}
                )
            view.image, view.seq, view.status, view.persons, view.updated = (
                image,
                view.seq + 1,
                status,
                persons,
                time.time(),
            )
            for person in persons:
                line = view.timelines.setdefault(person["track_id"], deque())
                line.append({"t": t, "top": person["top"][:1]})
                while line and t - line[0]["t"] > TIMELINE_S:
                    line.popleft()
            for event in record.get("events", []):
                self.events.append({"source": name, "frame": record["frame"], "t": t, **event})
                if event.get("event") == "track_end":
                    view.timelines.pop(event["track_id"], None)
            if record.get("gap_before"):
                self.events.append(
                    {"source": name, "frame": record["frame"], "t": t, "event": "gap", "gap_s": record.get("gap_s")}
                )
            subscribers = list(self._subscribers)
        message = {"source": name, "record": record}
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(_offer, queue, message)

    def note(self, name: str, event: str, **details: Any) -> None:
        """A source-level event for the log (dropped frames, a failure)."""
        with self._lock:
            self.events.append({"source": name, "event": event, **details})

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
                        **v.status,
                        "persons": v.persons,
                        "timelines": {str(k): list(line) for k, line in v.timelines.items()},
                        "frames_published": v.seq,
                    }
                    for v in self.sources.values()
                ],
                "events": list(self.events)[-50:],
            }


def _offer(queue: asyncio.Queue, message: dict[str, Any]) -> None:
    if not queue.full():  # a slow viewer misses records; it never slows the pipeline
        queue.put_nowait(message)
