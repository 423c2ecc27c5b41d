"""One detector shared by many sources, batching their frames into one call (for CUDA).

Every source's detect+track thread calls `detect(image)` on its own `Lane`
and blocks; one worker thread takes the waiting frames of all sources (at
most one per lane, waiting at most `wait_ms` for the lanes that have not
sent theirs yet) and runs the detectors once on all of them. On a GPU that
turns N small kernels per stage into one; on a CPU it gains nothing, so
`detector.batch_sources: auto` turns it on only for CUDA and several sources.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from streamer.detectors import FacePersonDetector
from streamer.types import PersonDetection

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    image: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    result: list[PersonDetection] | None = None
    error: BaseException | None = None


class SharedDetector:
    """Batches `detect` calls from several threads (one `Lane` per source)."""

    def __init__(self, detector: FacePersonDetector, wait_ms: float = 5.0) -> None:
        self.detector = detector
        self.wait_s = wait_ms / 1000.0
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._lanes = 0
        self._closed = False
        self.batches: list[int] = []  # frames per detector call, for benches and tests
        self._worker = threading.Thread(target=self._run, name="shared-detector", daemon=True)
        self._worker.start()

    def lane(self) -> Lane:
        with self._cond:
            self._lanes += 1
        return Lane(self)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout=5.0)
        if self.batches:
            logger.info("detection batched across sources: %d frames in %d calls", sum(self.batches), len(self.batches))

    def describe(self) -> str:
        return self.detector.describe() + ", batched across sources"

    def _submit(self, image: np.ndarray) -> list[PersonDetection]:
        request = _Request(image)
        with self._cond:
            if self._closed:
                raise RuntimeError("the shared detector is closed")
            self._pending.append(request)
            self._cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result or []

    def _leave(self) -> None:
        with self._cond:
            self._lanes -= 1
            self._cond.notify_all()

    def _take_batch(self) -> list[_Request] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            deadline = time.monotonic() + self.wait_s
            # A lane blocks on its own call, so at most one frame per lane is pending.
            while len(self._pending) < self._lanes and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, self._pending = self._pending, []
            return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            try:
                found = self.detector.detect_many([r.image for r in batch])
            except BaseException as exc:  # handed to every waiting source thread
                for r in batch:
                    r.error = exc
                    r.done.set()
                continue
            self.batches.append(len(batch))
            for r, persons in zip(batch, found, strict=True):
                r.result = persons
                r.done.set()


class Lane:
    """One source's handle on a `SharedDetector`: the `PersonDetector` its detect+track stage calls."""

    def __init__(self, shared: SharedDetector) -> None:
        self._shared = shared
        self._open = True

    def detect(self, image_bgr: np.ndarray) -> list[PersonDetection]:
        return self._shared._submit(image_bgr)

    def describe(self) -> str:
        return self._shared.describe()

    def close(self) -> None:
        """The source is done: the worker stops waiting for its frames."""
        if self._open:
            self._open = False
            self._shared._leave()
