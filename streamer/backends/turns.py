"""A folder of recordings in turns: `source.files_at_once` files run at a time, the next ones when they end.

Every source of a run gets its own threads, queues, decoder and encoder
(~40 MB each here): a folder of a thousand videos or ten thousand photos,
all opened at once, took thousands of threads and more memory than the
machine has. When every source is a file or a photo, they now run a turn at
a time, through the same backend and the same models; their output names
are chosen for the whole run first, so two `clip.mp4` of different folders
are `clip` and `clip-2` whichever turn they fall in. A run with a camera or
a stream among its sources runs everything at once, as before: a live
source never ends, so no later turn would come.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from streamer.backends.base import RunReport
from streamer.sources import opens_in_calling_thread
from streamer.sources.entries import SourceEntry, unique_names


def is_local_file(spec: str) -> bool:
    """A file or photo on this machine (not a camera, a URL or the demo)."""
    return "://" not in spec and not opens_in_calling_thread(spec)


def in_turns(entries: Sequence[SourceEntry], at_once: int) -> list[list[SourceEntry]]:
    """The entries in the turns they run in: one turn for all when any is not a local file (or `at_once` is 0),
    else `at_once` at a time in the order given, each named for the whole run."""
    if at_once <= 0 or len(entries) <= at_once or not all(is_local_file(e.spec) for e in entries):
        return [list(entries)]
    stems = [entry.name or Path(os.path.expanduser(entry.spec)).stem for entry in entries]
    named = [replace(entry, name=name) for entry, name in zip(entries, unique_names(stems), strict=True)]
    return [named[start : start + at_once] for start in range(0, len(named), at_once)]


def run_in_turns(
    turns: Sequence[Sequence[SourceEntry]],
    run_turn: Callable[[Sequence[SourceEntry]], RunReport],
    stop: threading.Event,
) -> RunReport:
    """Each turn run to its end, the next after it; stops early when one is interrupted or fails as a whole
    (the model), or `stop` is set between two, and says in the report how many files never had their turn."""
    if len(turns) == 1:
        return run_turn(turns[0])
    reports: list[RunReport] = []
    for turn in turns:
        if stop.is_set():  # Ctrl+C as one turn ended: the next does not start
            break
        reports.append(run_turn(turn))
        if reports[-1].interrupted or reports[-1].error is not None:
            break
    merged = merged_reports(reports)
    merged.not_started = sum(len(turn) for turn in turns[len(reports) :])
    merged.interrupted = merged.interrupted or (stop.is_set() and merged.not_started > 0)
    return merged


def merged_reports(reports: Sequence[RunReport]) -> RunReport:
    """One report for the run from its turns' reports (stage times weighted by each turn's seconds)."""
    seconds = sum(report.seconds for report in reports)
    stage_ms: dict[str, float] = {}
    for report in reports:
        for stage, ms in report.stage_ms.items():
            stage_ms[stage] = stage_ms.get(stage, 0.0) + ms * (report.seconds / seconds if seconds else 1.0)
    return RunReport(
        [source for report in reports for source in report.sources],
        [failed for report in reports for failed in report.unopened],
        interrupted=any(report.interrupted for report in reports),
        error=next((report.error for report in reports if report.error is not None), None),
        seconds=seconds,
        batches=sum(report.batches for report in reports),
        persons_inferred=sum(report.persons_inferred for report in reports),
        stage_ms=stage_ms,
    )
