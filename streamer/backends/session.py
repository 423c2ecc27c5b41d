"""One source for the length of a run, the same on every backend.

A `SourceSession` holds everything of a source that is not capture and
detection: its emotion stage (who is due, smoothing), its overlay, its
outputs (video, JSONL, image, live web view) and its figures. A backend feeds
it tracked frames and the model's answers; it does the rest, in two halves
that may run on two threads:

- `smooth(tracked, due, inferred)`: the model's answers folded into the
  source's smoothing: the frame's `FrameResult` (the thread that runs the model);
- `write(result)`: the overlay drawn, the frame's `FrameRecord` built and
  written to every output, the `on_frame` callback told (the writing thread).

Whatever goes wrong in `write` (a full disk, an overlay that raises, a
callback that raises) ends this source alone: the session keeps the error,
stops writing, and `close()` finalizes what was written and (`sink.report`)
writes the source's HTML report and per-person CSVs from its JSONL.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from cocoer_core.api import EmotionResult
from streamer.backends.base import OnFrame, SourceReport
from streamer.config import PrivacyConfig
from streamer.errors import UserError
from streamer.outputs.base import Outputs
from streamer.outputs.records import record_of
from streamer.privacy.faces import hide_faces
from streamer.privacy.retention import Manifest
from streamer.sources import SourceInfo
from streamer.stages.emotion import EmotionStage
from streamer.types import FrameResult, TrackedFrame
from streamer.view.overlay import OverlayRenderer, OverlayStats
from streamer.view.progress import RateMeter, SourceStatus

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class SourceSession:
    """One source's emotion stage, overlay, outputs and figures (see the module docstring)."""

    name: str
    info: SourceInfo
    stage: EmotionStage
    renderer: OverlayRenderer
    outputs: Outputs
    on_frame: OnFrame | None = None
    report_at_end: bool = False
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    #: A local window shows `latest`: drawn only then in aggregate mode; with faces when privacy.display_faces.
    window: bool = False
    manifest: Manifest | None = None
    frames: int = 0
    #: Frames the detector ran on (the others carry the tracker's predictions: `detector.interval`).
    detections: int = 0
    persons: int = 0
    dropped: int = 0
    reconnects: int = 0
    restarts: int = 0
    node: str = ""
    error: BaseException | None = None
    finished: bool = False
    latest: np.ndarray | None = None
    started: float = field(default_factory=time.monotonic)
    meter: RateMeter = field(default_factory=RateMeter)
    _listed: int = 0
    #: The last frame's (width, height): a record says the size when it changes (and on the first frame).
    _frame_size: tuple[int, int] | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def plan(self, tracked: TrackedFrame) -> tuple[int, ...]:
        """The persons of this frame due for the model."""
        return self.stage.plan(tracked)

    def smooth(self, tracked: TrackedFrame, due: tuple[int, ...], inferred: list[EmotionResult | None]) -> FrameResult:
        """The model's answers for `due` folded into this source's smoothing."""
        return self.stage.finish(tracked, due, inferred)

    def write(self, result: FrameResult) -> bool:
        """Draw and write one frame to every output; False once this source has failed (it then ends alone)."""
        if self.error is not None:
            return False
        try:
            # Latency means something only live (a file's frames wait in queues by design: no drop policy).
            latency = 1000.0 * (time.monotonic() - result.frame.captured_at) if self.info.is_live else None
            stats = OverlayStats(self.meter.tick(), latency, self.dropped)
            aggregate = self.privacy.mode == "aggregate"
            annotated = result.frame.image  # aggregate mode: the outputs (counts) never read the image
            if not aggregate or self.window:
                # Faces hidden before the overlay (its labels stay readable) and before any output sees the
                # frame; if this raises, the source ends: no unprotected frame is written.
                clean = hide_faces(
                    result.frame.image.copy(), result.faces_to_hide, self.privacy.faces, self.privacy.face_margin
                )
                annotated = self.renderer.annotate(clean, result, stats)
            height, width = result.frame.image.shape[:2]
            size = (width, height) if (width, height) != self._frame_size else None
            self._frame_size = (width, height)
            record = record_of(result, self.stage.model.name, self.name, frame_size=size)
            self.outputs.write(annotated, record)
            self.frames += 1
            self.detections += result.detected
            self.persons = len(result.persons)
            if self.window:
                # The local window alone may show faces (privacy.display_faces): drawn again on the raw frame.
                shown = self.privacy.display_faces and self.privacy.faces != "off"
                self.latest = self.renderer.annotate(result.frame.image.copy(), result, stats) if shown else annotated
            self._list_outputs()
            if self.on_frame is not None:
                self.on_frame(record)
        except Exception as exc:  # this source's failure (a full disk, an overlay bug): the others go on
            self.fail(exc)
            return False
        return True

    def _list_outputs(self, again: bool = False) -> None:
        """New output files (a first frame, a live segment) into the folder's manifest, for retention;
        `again`: every one that exists now (a file first created by closing)."""
        paths = self.outputs.paths
        if self.manifest is not None and (again or len(paths) != self._listed):
            self.manifest.add(p for p in paths if p.exists())
            self._listed = len(paths)

    def fail(self, error: BaseException) -> None:
        """This source ends with `error` (the first one wins)."""
        if self.error is None:
            self.error = error
            logger.debug("%s failed: %r", self.name, error)

    def close(self) -> None:
        """Finalize every output (also after a failure: what was written stays readable), then the report."""
        if self.finished:
            return
        self.finished = True
        error = self.outputs.close()
        if error is not None:
            self.fail(error)
        self._list_outputs(again=True)
        if self.report_at_end:
            self.write_report()

    def write_report(self) -> None:
        """The HTML report and per-person CSVs of what this source wrote (also after a failure: what is readable)."""
        from streamer.report import write_report

        jsonl = next((p for p in self.outputs.paths if p.suffix == ".jsonl" and p.exists()), None)
        if jsonl is None:
            return
        video = next((p for p in self.outputs.paths if p.suffix == ".mp4" and p.exists()), None)
        try:
            written = write_report(jsonl, video)
        except OSError as exc:  # a full disk: the run's own outputs are already safe
            logger.warning("no report for %s (%s)", jsonl, exc.strerror or exc)
        except UserError as exc:  # e.g. a JSONL with no whole line: nothing to report
            logger.warning("no report for %s (%s)", jsonl, exc)
        else:
            logger.info("report: %s", written.describe())
            if self.manifest is not None:
                self.manifest.add(written.files())

    def status(self) -> SourceStatus:
        state = "failed" if self.error else "done" if self.finished else "running"
        return SourceStatus(
            self.name,
            state,
            self.frames,
            self.info.frame_count_hint if not self.info.is_live else None,
            self.meter.rate(),
            self.persons,
            self.dropped,
            self.reconnects,
            self.restarts,
            self.node,
            self.detections,
        )

    def report(self) -> SourceReport:
        return SourceReport(
            self.name,
            self.frames,
            self.outputs.paths,
            self.dropped,
            time.monotonic() - self.started,
            self.error,
            self.restarts,
            self.detections,
            self.reconnects,
        )
