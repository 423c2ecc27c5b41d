"""The Python API: configure, open sources, run on a backend, and get every frame's record as it is written.

    from streamer import Analyzer

    analyzer = Analyzer(overrides=["sink.out_dir=results", "emotion.stride=2"])
    for record in analyzer.stream("clip.mp4"):            # FrameRecord: the JSONL line, typed
        for person in record.persons:
            if person.smoothed:
                print(record.frame, person.track_id, person.smoothed.top(1))

    report = analyzer.run(["lobby.mp4", "rtsp://cam/live"], on_frame=print)   # or a callback; several sources

`run_stream.py` is built on this class: what the CLI does, a program can do.
A run writes its outputs as the CLI does (`sink.*`: the annotated video, the
JSONL, ...; `--set sink.video=false` style overrides turn them off). The
models are built once per `Analyzer` and reused by its next runs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

from rich.console import Console

from streamer.backends import backend_named
from streamer.backends.base import Backend, ModelFactory, OnFrame, RunJob, RunReport
from streamer.backends.turns import in_turns, run_in_turns
from streamer.config import AppConfig, load_config
from streamer.errors import UserError
from streamer.outputs.records import FrameRecord
from streamer.privacy.retention import RetentionKeeper
from streamer.privacy.use import refusal
from streamer.sources.entries import SourceEntry, entries_from_specs
from streamer.view.web.board import LiveBoard

#: What `Analyzer.run` and `Analyzer.stream` take as sources.
Sources = str | Path | SourceEntry | Sequence[str | Path | SourceEntry]
_DONE = object()


class Analyzer:
    """Per-person emotion recognition on files, images, cameras and streams (see the module docstring).

    Args:
        config: every setting (default: the defaults, then `config_file`, then `overrides`).
        config_file: a YAML config, as `--config`.
        overrides: `KEY=VALUE` settings, as `--set`.
        model_factory: builds the emotion model instead of `emotion.model` (`(EmotionConfig, device) -> model`);
            on Ray it runs in the inference actors, so it must be importable there.
    """

    def __init__(
        self,
        config: AppConfig | None = None,
        *,
        config_file: str | Path | None = None,
        overrides: Sequence[str] = (),
        model_factory: ModelFactory | None = None,
    ) -> None:
        self.config = config if config is not None else load_config(config_file, overrides)
        why_not = refusal(self.config.use.context, self.config.use.purpose)
        if why_not is not None:  # before anything loads or is written
            raise UserError(why_not)
        self.model_factory = model_factory
        self.backend: Backend = backend_named(self.config.backend)
        self.last_report: RunReport | None = None

    def entries(self, sources: Sources) -> list[SourceEntry]:
        """What to open: specs (files, globs, folders, cameras, URLs, `demo`) and ready-made entries."""
        items = [sources] if isinstance(sources, (str, Path, SourceEntry)) else list(sources)
        out: list[SourceEntry] = []
        for item in items:
            if isinstance(item, SourceEntry):
                out.append(item)
            else:
                out += entries_from_specs([str(item)], self.config.source)
        return out

    def run(
        self,
        sources: Sources,
        *,
        on_frame: OnFrame | None = None,
        stop: threading.Event | None = None,
        on_open: Callable[[], None] | None = None,
        console: Console | None = None,
        show_status: bool = False,
        live_view: LiveBoard | None = None,
        on_unopened: Callable[[str, UserError], None] | None = None,
    ) -> RunReport:
        """Analyse every source to its end (or until `stop` is set); everything is finalized when it returns.

        Per-source failures and sources that could not open are in the report, not raised. Files only (a
        folder of recordings) run `source.files_at_once` at a time, in turns (`backends/turns.py`).
        """
        turns = in_turns(self.entries(sources), self.config.source.files_at_once)
        everyone = [entry.name for turn in turns for entry in turn if entry.name] if len(turns) > 1 else []
        stop = stop or threading.Event()

        def run_turn(entries: Sequence[SourceEntry]) -> RunReport:
            job = RunJob(
                self.config,
                entries,
                stop=stop,
                on_frame=on_frame,
                on_open=on_open,
                console=console,
                show_status=show_status,
                live_view=live_view,
                model_factory=self.model_factory,
                on_unopened=on_unopened,
                run_sources=everyone,
            )
            return self.backend.run(job)

        retention = self.config.retention
        out_dir = Path(self.config.sink.out_dir).expanduser()
        # Old outputs go at start and every check_every_s while the run goes on (only files of the manifest).
        keeper = RetentionKeeper(out_dir, retention.max_age, retention.max_bytes, retention.check_every_s)
        keeper.start()
        try:
            # A folder of files runs `source.files_at_once` at a time (backends/turns.py); anything else at once.
            self.last_report = run_in_turns(turns, run_turn, stop)
        finally:
            keeper.stop()
        return self.last_report

    def stream(self, sources: Sources, *, max_pending: int = 64) -> Iterator[FrameRecord]:
        """Every frame's record as it is written (all sources interleaved; `record.source` says whose).

        Breaking out of the loop stops the run (everything written so far is finalized). When the run
        ends with an error (a source that failed or did not open, the model), it is raised after the
        last record; `last_report` has the details.
        """
        records: queue.Queue[object] = queue.Queue(maxsize=max_pending)
        stop = threading.Event()
        failure: list[BaseException] = []

        def deliver(record: FrameRecord) -> None:
            while not stop.is_set():  # back-pressure: a slow loop body slows the run, never loses a record
                try:
                    records.put(record, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def work() -> None:
            try:
                self.run(sources, on_frame=deliver, stop=stop)
            except BaseException as exc:  # handed to the consumer's thread
                failure.append(exc)
            finally:
                records.put(_DONE)

        worker = threading.Thread(target=work, name="analyzer", daemon=True)
        worker.start()
        finished = False
        try:
            while (item := records.get()) is not _DONE:
                yield cast(FrameRecord, item)
            finished = True
        finally:
            stop.set()
            while worker.is_alive():  # let a blocked deliver() see the stop, then the run finalize
                try:
                    records.get(timeout=0.1)
                except queue.Empty:
                    continue
            worker.join()
        if failure:
            raise failure[0]
        report = self.last_report
        if finished and report is not None and report.errors:
            raise report.errors[0]
