"""An image source's outputs: the annotated picture and its per-person records as one JSON document."""

from __future__ import annotations

from pathlib import Path

import cv2

import numpy as np

from streamer.errors import OutputError
from streamer.outputs.base import write_json
from streamer.outputs.records import FrameRecord


class ImageOutput:
    """`<out>/<name>_annotated.<ext>`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def write(self, annotated: np.ndarray, record: FrameRecord) -> None:
        if not cv2.imwrite(str(self.path), annotated):
            raise OutputError(f"cannot write image {self.path}")

    def new_segment(self) -> None:
        """An image has one frame: nothing to do."""

    def close(self) -> None:
        """Written whole in `write`: nothing to finalize."""


class ImageJsonOutput:
    """`<out>/<name>.json`: the image's per-person records (no smoothing: one frame), written atomically."""

    def __init__(self, path: Path, image_name: str) -> None:
        self.path = path
        self.image_name = image_name

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def write(self, annotated: np.ndarray, record: FrameRecord) -> None:
        persons = []
        for person in record.persons:
            line = person.to_json()
            del line["smoothed"]
            persons.append(line)
        document = {
            "image": self.image_name,
            "width": annotated.shape[1],
            "height": annotated.shape[0],
            "model": record.model,
            "persons": persons,
        }
        write_json(self.path, document)

    def new_segment(self) -> None:
        """An image has one frame: nothing to do."""

    def close(self) -> None:
        """Written whole in `write`: nothing to finalize."""
