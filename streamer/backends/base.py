"""What every backend is: a `Backend` runs a `RunJob` to its end and returns a `RunReport`.

The CLI and the Python API call a backend once per run. Every backend drives
the same per-source `SourceSession` (record building, smoothing, overlay,
outputs, failures, end of source) and the same `BatchPlanner`, so a
behaviour is written once and the same fault has the same outcome on each:

- a source that fails (it breaks for good, its disk fills, its overlay
  raises) ends alone: its outputs are finalized and the others go on;
- an emotion-model error ends the run: every output is finalized and the
  report names the error;
- a stop request (Ctrl+C, `RunJob.stop`) ends every source after the frame
  it is writing, and everything is finalized.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console

from cocoer_core.api import EmotionModel
from streamer.config import AppConfig, EmotionConfig
from streamer.errors import UserError
from streamer.outputs.records import FrameRecord
from streamer.sources.entries import SourceEntry

if TYPE_CHECKING:
    from streamer.view.web.board import LiveBoard

#: Called with every frame's record as it is written (from the thread that writes that source).
OnFrame = Callable[[FrameRecord], None]
#: Builds the emotion model where it runs (`None`: no model); the default follows `emotion.model`.
ModelFactory = Callable[[EmotionConfig, str], EmotionModel | None]


@dataclass
class RunJob:
    """One run: what to analyse with which settings, and who hears about it.

    Attributes:
        config: every setting.
        entries: the sources to open (a source that cannot open is reported, the others go on).
        stop: set it to end the run after the frame each source is writing.
        on_frame: gets every frame's record as it is written.
        on_open: called once every output is open, just before frames flow (the CLI arms Ctrl+C there).
        console: where the status table goes (with `show_status`).
        show_status: draw the status table.
        live_view: the web view's board, when one is served: each source publishes to it.
        model_factory: how the emotion model is built (default: from `config.emotion`).
        on_unopened: told at once of each source that cannot be opened (it is in the report too).
        run_sources: when this job is one turn of a run (`backends.turns`), every source name of the run:
            run.json lists them all.
    """

    config: AppConfig
    entries: Sequence[SourceEntry]
    stop: threading.Event = field(default_factory=threading.Event)
    on_frame: OnFrame | None = None
    on_open: Callable[[], None] | None = None
    console: Console | None = None
    show_status: bool = False
    live_view: LiveBoard | None = None
    model_factory: ModelFactory | None = None
    on_unopened: Callable[[str, UserError], None] | None = None
    run_sources: Sequence[str] = ()

    def unopened(self, failed: Sequence[tuple[str, UserError]]) -> None:
        if self.on_unopened is not None:
            for name, error in failed:
                self.on_unopened(name, error)


@dataclass
class SourceReport:
    """What one source produced."""

    name: str
    frames: int
    paths: list[Path]
    dropped: int
    seconds: float
    error: BaseException | None
    restarts: int = 0
    #: Frames the detector ran on; the others carry the tracker's predictions (`detector.interval`).
    detections: int = 0
    #: How often a live source reconnected (a camera that went away and came back).
    reconnects: int = 0


@dataclass
class RunReport:
    """What a run produced, per source.

    `error` is a failure of the whole run (the emotion model); `unopened` are
    the sources that could not be opened, with their one-line errors.
    """

    sources: list[SourceReport]
    unopened: list[tuple[str, UserError]] = field(default_factory=list)
    interrupted: bool = False
    error: BaseException | None = None
    seconds: float = 0.0
    batches: int = 0
    persons_inferred: int = 0
    stage_ms: dict[str, float] = field(default_factory=dict)
    #: Files that never had their turn (`source.files_at_once`): the run was interrupted, or its model failed.
    not_started: int = 0

    @property
    def failed(self) -> list[SourceReport]:
        return [s for s in self.sources if s.error is not None]

    @property
    def errors(self) -> list[BaseException]:
        """Every failure: sources that did not open, sources that failed, the run's own."""
        found: list[BaseException] = [e for _, e in self.unopened]
        found += [s.error for s in self.sources if s.error is not None]
        return found + ([self.error] if self.error is not None else [])


class Backend(Protocol):
    """Runs a job: `local` (threads in this process) or `ray` (actors on a Ray cluster)."""

    def run(self, job: RunJob) -> RunReport:
        """Analyse every source to its end (or until `job.stop`), finalize everything, report per source."""
        ...
