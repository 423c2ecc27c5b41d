"""Reading a pipeline's output as the backends do: its outbox, item by item, until END or a stop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from streamer.stages.pipeline import END, Pipeline


def drain(pipeline: Pipeline) -> Iterator[Any]:
    """The last stage's outputs in order (what the inference worker and the Ray source actor read)."""
    while True:
        item = pipeline.outbox.get(pipeline.stop)
        if item is None or item is END:
            return
        yield item
