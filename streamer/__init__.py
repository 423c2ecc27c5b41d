"""CocoER stream analyzer: per-person emotion recognition on video files, images, cameras and network streams.

The path of a frame, package by package:

    sources/    files, images, cameras, RTSP/HTTP streams, the demo; which ones a run opens (entries)
    detectors/  people and faces found in a frame
    stages/     detect+track, emotion (who is due, batching), smoothing, the threads and queues between them
    outputs/    the annotated video, the per-frame record (JSONL), images, the claim on output files
    view/       the overlay, the status table, the live window, the live web view
    report/     the HTML report and per-person CSVs, read back from a run's JSONL
    backends/   where it all runs: local threads or a Ray cluster, around one per-source session
    privacy/    faces hidden in what leaves the process, the declared use (EU AI Act), run.json
    api.py      `Analyzer`: the Python API the CLI (run_stream.py) is built on

    from streamer import Analyzer
    for record in Analyzer().stream("clip.mp4"):
        print(record.frame, [(p.track_id, p.smoothed.top(1) if p.smoothed else None) for p in record.persons])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Analyzer", "AppConfig", "EmotionRecord", "FrameRecord", "PersonRecord", "RunReport", "load_config"]

if TYPE_CHECKING:
    from streamer.api import Analyzer
    from streamer.backends.base import RunReport
    from streamer.config import AppConfig, load_config
    from streamer.outputs.records import EmotionRecord, FrameRecord, PersonRecord


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (so `import streamer.sources` stays light)."""
    if name == "Analyzer":
        from streamer.api import Analyzer

        return Analyzer
    if name == "RunReport":
        from streamer.backends.base import RunReport

        return RunReport
    if name in ("AppConfig", "load_config"):
        from streamer import config

        return getattr(config, name)
    if name in ("EmotionRecord", "FrameRecord", "PersonRecord"):
        from streamer.outputs import records

        return getattr(records, name)
    raise AttributeError(f"module 'streamer' has no attribute {name!r}")
