"""The progress bar: frames done, fps, ETA, drops and queue fill, on the log's console."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


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


class ProgressReporter:
    """One rich progress bar: a total and an ETA for files, a spinner for live sources."""

    def __init__(self, console: Console, description: str, total: int | None, enabled: bool = True) -> None:
        columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
        if total:
            columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        else:
            columns += [TextColumn("{task.completed} frames"), TimeElapsedColumn()]
        columns += [TextColumn("{task.fields[fps]:.1f} fps"), TextColumn("{task.fields[extra]}")]
        self._progress = Progress(*columns, console=console, transient=False, disable=not enabled)
        self._task = self._progress.add_task(description, total=total, fps=0.0, extra="")

    def update(self, done: int, fps: float, dropped: int, fill: float) -> None:
        extra = f"dropped {dropped}  " if dropped else ""
        extra += f"queues {100 * fill:.0f}%"
        self._progress.update(self._task, completed=done, fps=fps, extra=extra)

    def __enter__(self) -> ProgressReporter:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
