"""What the terminal shows while a run goes on: one status table, a row per source.

Per source: state, frames written (of the total, for files), fps, persons on
screen, stale frames dropped, reconnects. The same table serves one source
or many; it is drawn on the log's console so log lines scroll above it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table


class RateMeter:
    """Frames per second over a sliding window of recent frames."""

    def __init__(self, window: int = 30) -> None:
        self.window = window
        self._times: list[float] = []

    def tick(self, now: float | None = None) -> float:
        self._times.append(time.monotonic() if now is None else now)
        if len(self._times) > self.window:
            self._times.pop(0)
        return self.rate()

    def rate(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


@dataclass(frozen=True)
class SourceStatus:
    """One row of the status table (also what the metrics and the web view report)."""

    name: str
    state: str
    frames: int
    total: int | None
    fps: float
    persons: int
    dropped: int
    reconnects: int
    restarts: int = 0
    node: str = ""
    #: Frames the detector ran on (the others carry the tracker's predictions: `detector.interval`).
    detections: int = 0


class StatusTable:
    """A live rich table of `SourceStatus` rows; a no-op when disabled (--no-progress, tests)."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        # On a terminal the table redraws in place; into a pipe or a log file it is printed once, at the end.
        self._console = console
        self._enabled = enabled
        self._last: Sequence[SourceStatus] = ()
        self._live = Live(console=console, refresh_per_second=4) if enabled and console.is_terminal else None

    @staticmethod
    def render(rows: Sequence[SourceStatus]) -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold")
        placed = any(row.node for row in rows)  # the Ray backend: where each source runs, and its restarts
        columns = ["source", "state", "frames", "fps", "persons", "dropped", "reconnects"]
        columns += ["restarts", "node"] if placed else []
        for column in columns:
            table.add_column(column, justify="left" if column in ("source", "state", "node") else "right")
        for row in rows:
            frames = f"{row.frames}/{row.total}" if row.total else str(row.frames)
            cells = [row.name, row.state, frames, f"{row.fps:.1f}", str(row.persons), str(row.dropped)]
            cells += [str(row.reconnects)] + ([str(row.restarts), row.node] if placed else [])
            table.add_row(*cells)
        return table

    def update(self, rows: Sequence[SourceStatus]) -> None:
        self._last = rows
        if self._live is not None:
            self._live.update(self.render(rows))

    def __enter__(self) -> StatusTable:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()
        elif self._enabled and self._last:
            self._console.print(self.render(self._last))
