"""Which frames go to the emotion model together, the same on every backend.

DeepStream's central idea in plain Python: the persons of many sources in
one model call. A batch takes at most one pending frame per source (so each
source's frames stay in order), visiting the sources round-robin from a
different one each time (so a busy file never starves a camera), until it
holds `batch_size` persons. It goes to the model as soon as it needs no
model call (nobody in it is due), is full, or no other source can join it;
otherwise it waits at most `batch_wait_s` for the others
(`emotion.batch_wait_ms`).

The local inference worker plans over its lanes, the Ray driver over its
source actors; `infer_batched` then splits a batch into model calls of at
most `batch_size` persons.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from streamer.types import TrackedFrame

K = TypeVar("K")


@dataclass(eq=False)
class Pending(Generic[K]):
    """One source's frame in a batch: the source (`key`), the frame and the persons due for the model."""

    key: K
    tracked: TrackedFrame
    due: tuple[int, ...]


class BatchPlanner(Generic[K]):
    """Builds one batch at a time (see the module docstring)."""

    def __init__(self, batch_size: int, batch_wait_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.clock = clock
        self.pending: list[Pending[K]] = []
        self._deadline: float | None = None
        self._offset = 0

    @property
    def persons(self) -> int:
        return sum(len(p.due) for p in self.pending)

    def holds(self, key: K) -> bool:
        return any(p.key is key for p in self.pending)

    def fill(self, keys: Sequence[K], take: Callable[[K], tuple[TrackedFrame, tuple[int, ...]] | None]) -> None:
        """Offer each source not in the batch yet, round-robin; `take(key)` gives its next frame and due persons."""
        if keys:
            start = self._offset % len(keys)
            self._offset = start + 1
            keys = [*keys[start:], *keys[:start]]
        for key in keys:
            if self.persons >= self.batch_size:
                break
            if self.holds(key):
                continue
            got = take(key)
            if got is not None:
                self.pending.append(Pending(key, *got))
        if self.pending and self._deadline is None:
            self._deadline = self.clock() + self.batch_wait_s

    def ready(self, can_join: int) -> bool:
        """Whether the batch goes now; `can_join` counts the running sources not in it that might still add a frame."""
        if not self.pending:
            return False
        persons = self.persons
        waited = self._deadline is not None and self.clock() >= self._deadline
        return persons == 0 or persons >= self.batch_size or can_join == 0 or waited

    def take(self) -> list[Pending[K]]:
        """The batch, and a fresh start for the next one."""
        batch, self.pending, self._deadline = self.pending, [], None
        return batch
