"""A still image as a one-frame source: photos go through the same stages as video."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2

import numpy as np
from PIL import Image, JpegImagePlugin

from streamer.errors import SourceError
from streamer.sources import pixels
from streamer.sources.base import SourceInfo, SourceKind
from streamer.types import Frame

#: OpenCV decodes a JPEG at 1/2, 1/4 or 1/8 of its size directly, at that size's cost in memory and time;
#: other formats are decoded whole, then shrunk.
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def _header_size(path: Path) -> tuple[int, int] | None:
    """The image's width and height from its header, before anything is decoded (None where Pillow can't
    tell: OpenCV may still read it). Over Pillow's decompression bomb limit (179 M pixels) only a JPEG, which
    is decoded reduced, is read on; any other image is refused in one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a probe: the bomb warning, and Pillow's notes on odd EXIF tags
            with Image.open(path) as image:
                return image.size
    except Image.DecompressionBombError:
        try:
            with JpegImagePlugin.JpegImageFile(path) as jpeg:  # the header alone, without Image.open's check
                return jpeg.size
        except (OSError, SyntaxError, ValueError):
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
            raise SourceError(f"{path} is too large an image (over {limit:.0f} M pixels)") from None
    except Exception:  # any header Pillow cannot read: OpenCV reads the file or says it cannot
        return None


def read_image(path: Path) -> np.ndarray | None:
    """The image in BGR, upright by its EXIF orientation, scaled down to `pixels.MAX_FRAME_PIXELS` where
    larger (None if OpenCV can't read it)."""
    size = _header_size(path)
    if size is None or size[0] * size[1] <= pixels.MAX_FRAME_PIXELS:
        return cv2.imread(str(path), cv2.IMREAD_COLOR)
    width, height = size
    factor = next((k for k in _REDUCED if (width // k) * (height // k) <= pixels.MAX_FRAME_PIXELS), 8)
    image = cv2.imread(str(path), _REDUCED[factor])
    if image is None:
        return None
    fitted = pixels.fitted(image.shape[1], image.shape[0])
    if fitted != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, fitted, interpolation=cv2.INTER_AREA)
    pixels.report_scaled(str(path), (width, height), (image.shape[1], image.shape[0]))
    return image


class ImageSource:
    """A still image as a one-frame source: photos go through the same stages as video."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise SourceError(f"no such file: {path}")
        image = read_image(path)
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
