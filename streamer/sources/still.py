"""A still image as a one-frame source: photos go through the same stages as video."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2

import numpy as np

from streamer.errors import SourceError
from streamer.sources.base import SourceInfo, SourceKind
from streamer.types import Frame


class ImageSource:
    """A still image as a one-frame source: photos go through the same stages as video."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise SourceError(f"no such file: {path}")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{path} is not a readable image")
        self._image = np.ascontiguousarray(image)
        self.reconnects = 0
        self.info = SourceInfo(
            display_name=str(path),
            stem=path.stem,
            kind=SourceKind.IMAGE,
            is_live=False,
            width=image.shape[1],
            height=image.shape[0],
            fps=None,
            frame_count_hint=1,
            time_base=Fraction(1, 1),
        )

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        if not stop.is_set():
            yield Frame(self.info.display_name, 0, 0.0, time.monotonic(), self._image, is_last=True)

    def close(self) -> None:
        pass
