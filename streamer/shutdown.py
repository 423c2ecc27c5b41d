"""Ctrl+C and SIGTERM: stop between frames, never in the middle of writing one.

Before any output is open the first signal raises KeyboardInterrupt (model
loading, opening a source) and later ones are acknowledged and ignored.
Once `arm()` is called, the first signal only sets `event`: the run loop
finishes the frame it is writing, then every thread is stopped and joined
and every file finalized. Later signals are acknowledged and ignored,
because interrupting finalization is what used to abort the process and cut
the video short of the JSONL.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType


class GracefulStop:
    """Installs SIGINT/SIGTERM handlers for one CLI run."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._armed = False

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def arm(self) -> None:
        """From now on a signal asks for a graceful stop instead of raising."""
        self._armed = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self._armed:
            if self.event.is_set():
                # A second Ctrl+C would land in the first one's way out (its "interrupted" line): a traceback.
                os.write(2, b"already stopping, please wait\n")
                return
            self.event.set()  # and should the KeyboardInterrupt be swallowed, the run stops once armed
            raise KeyboardInterrupt
        if self.event.is_set():
            # os.write, not logging: a handler can run while the logging lock is held.
            os.write(2, b"already stopping: finalizing the files written so far, please wait\n")
            return
        self.event.set()
