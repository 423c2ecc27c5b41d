"""What a run shows while it goes on, from its sessions' figures: the status table, the live view, metrics.json.

Both backends call `update` a few times a second from their main loop, so
the terminal, the web page's figures and (on Ray, where the sources run
elsewhere) `<out>/metrics.json` always say the same.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from rich.console import Console

from cocoer_core.whole_files import write_text_whole
from streamer.backends.session import SourceSession
from streamer.privacy.retention import manifest_for
from streamer.view.progress import StatusTable
from streamer.view.web.board import LiveBoard


class RunMonitor:
    """Fans each source's `SourceStatus` out to the table, the board and (when given) a metrics file."""

    def __init__(
        self,
        console: Console | None,
        show_status: bool,
        board: LiveBoard | None = None,
        metrics_path: Path | None = None,
    ) -> None:
        self.table = StatusTable(console or Console(stderr=True), show_status)
        self.board = board
        self.metrics_path = metrics_path
        self._listed = False

    def update(self, sessions: Sequence[SourceSession]) -> None:
        rows = [session.status() for session in sessions]
        self.table.update(rows)
        if self.board is not None:
            for row in rows:
                self.board.status(row.name, {k: v for k, v in vars(row).items() if k != "name"})
        if self.metrics_path is not None:
            self._write_metrics([vars(row) for row in rows])

    def _write_metrics(self, rows: list[dict]) -> None:
        """The status table as data, replaced atomically."""
        path = self.metrics_path
        if path is None:
            return
        with contextlib.suppress(OSError):  # a full disk: the last whole figures stay, and the run goes on
            write_text_whole(path, json.dumps({"time": time.time(), "sources": rows}, indent=1))
            if not self._listed:  # for retention
                manifest_for(path.parent).add([path])
                self._listed = True

    def __enter__(self) -> RunMonitor:
        self.table.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.table.__exit__(exc_type, exc, tb)
