"""Blocking opens in threads of their own: Ctrl+C reaches the caller at once, and sources open together.

FFmpeg's open of a network source blocks in C for up to the open timeout (a
FIFO with no writer, a stalled network mount: for ever). In the main thread,
Ctrl+C's handler then ran inside one of PyAV's callbacks, where the
KeyboardInterrupt was dropped: the open went on to its timeout and ended as
"Invalid data found". Run aside, it is the caller's wait that the signal
interrupts; the open is abandoned there (what it opens is closed when it
arrives) and, where it can be, cancelled. Several sources open at once, so a
dead camera among live ones costs its timeout once, not once per camera
after it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_here = threading.local()


def cancel_event() -> threading.Event:
    """The event set when the `Aside` running this thread is abandoned (a fresh one elsewhere): a call that can
    end early (HLS's fetches) watches it, so that Ctrl+C cancels it rather than leaving it to its timeout."""
    event = getattr(_here, "cancelled", None)
    return event if event is not None else threading.Event()


class Aside(Generic[T]):
    """`call()` started in a daemon thread (one that never holds the process's exit); `result()` waits for it."""

    def __init__(
        self,
        call: Callable[[], T],
        name: str,
        dispose: Callable[[T], object] | None = None,
    ) -> None:
        """`dispose`: how to let go of a result no one took (close it)."""
        self._call = call
        self._dispose = dispose
        self._lock = threading.Lock()
        self._abandoned = False
        self.cancelled = threading.Event()
        self._results: list[T] = []
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _here.cancelled = self.cancelled
        try:
            result = self._call()
        except BaseException as exc:
            self._errors.append(exc)
            return
        with self._lock:
            if not self._abandoned:
                self._results.append(result)
                return
        self._let_go([result])

    def result(self, when_slow: Callable[[], object] | None = None, slow_after_s: float = 2.0) -> T:
        """Its result (or its exception), once it has ended. Ctrl+C while waiting abandons it and is raised.
        `when_slow` is called once if it has not ended within `slow_after_s` (to say what it waits for)."""
        try:
            if when_slow is not None and not self.wait(slow_after_s):
                when_slow()
            self._thread.join()
        except KeyboardInterrupt:
            self.abandon()
            raise
        if self._errors:
            raise self._errors[0]
        with self._lock:
            return self._results.pop()

    def wait(self, timeout_s: float) -> bool:
        """Whether it has ended within `timeout_s`."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def abandon(self) -> None:
        """No one will take its result: let go of it now if it has come, or as soon as it does."""
        with self._lock:
            self._abandoned = True
            untaken, self._results = self._results, []
        self.cancelled.set()
        self._let_go(untaken)

    def _let_go(self, results: list[T]) -> None:
        if self._dispose is not None:
            for result in results:
                with contextlib.suppress(Exception):  # closing what no one uses: nothing to tell anyone
                    self._dispose(result)
