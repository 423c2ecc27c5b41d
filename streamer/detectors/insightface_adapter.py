"""insightface SCRFD detectors: buffalo_l's face detector and scrfd_person_2.5g.

These are the detectors the official CocoER script uses. insightface ships no
weights; we use them when the ONNX files are on disk (or can be downloaded),
and otherwise the pipeline falls back to the wheel-bundled detectors.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamer.detectors.base import FrameByFrame, ScoredBox
from streamer.types import Box

logger = logging.getLogger(__name__)

FACE_PACK = "buffalo_l"
FACE_FILE = "det_10g.onnx"
PERSON_FILE = "scrfd_person_2.5g.onnx"


class ModelUnavailable(RuntimeError):
    """An insightface model file is neither on disk nor downloadable."""


def _ensure(path: Path, allow_download: bool, download: Callable[[], object]) -> Path:
    """The model file, downloading it first if allowed; ModelUnavailable otherwise."""
    if path.is_file():
        return path
    if not allow_download:
        raise ModelUnavailable(f"no {path} (downloads off)")
    try:
        # insightface prints its progress; keep stdout for our own output.
        with contextlib.redirect_stdout(io.StringIO()):
            download()
    except Exception as exc:
        path.unlink(missing_ok=True)  # it was absent before: never leave a partial file that looks present
        raise ModelUnavailable(f"no {path}, download failed ({type(exc).__name__})") from exc
    if not path.is_file():
        raise ModelUnavailable(f"the download did not produce {path}")
    return path


# insightface is imported only to download (it takes ~1 s to import; absent files must cost nothing).
def _download_pack(root: Path) -> None:
    from insightface.utils.storage import download

    download("models", FACE_PACK, root=str(root))


def _download_onnx(root: Path) -> None:
    from insightface.utils.storage import download_onnx

    download_onnx("models", PERSON_FILE, root=str(root))


def face_model_path(root: Path, allow_download: bool) -> Path:
    """buffalo_l's detector, `<root>/models/buffalo_l/det_10g.onnx`."""
    return _ensure(root / "models" / FACE_PACK / FACE_FILE, allow_download, lambda: _download_pack(root))


def person_model_path(root: Path, allow_download: bool) -> Path:
    """The SCRFD person detector, `<root>/models/scrfd_person_2.5g.onnx`."""
    return _ensure(root / "models" / PERSON_FILE, allow_download, lambda: _download_onnx(root))


class ScrfdDetector(FrameByFrame):
    """One SCRFD ONNX model (faces or people) through insightface's decoder."""

    def __init__(
        self,
        onnx_path: Path,
        name: str,
        min_score: float = 0.5,
        input_size: int = 640,
        nms_iou: float = 0.4,
        device: str = "cpu",
    ) -> None:
        from insightface.model_zoo import get_model

        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        )
        model = get_model(str(onnx_path), providers=providers)
        if model is None or not hasattr(model, "detect"):
            raise ModelUnavailable(f"{onnx_path} is not an SCRFD detector")
        model.prepare(
            0 if device.startswith("cuda") else -1,
            input_size=(input_size, input_size),
            det_thresh=min_score,
            nms_thresh=nms_iou,
        )
        self._model = model
        self.name = name

    def detect(self, image_bgr: np.ndarray) -> list[ScoredBox]:
        dets, _ = self._model.detect(image_bgr)
        h, w = image_bgr.shape[:2]
        found = []
        for x1, y1, x2, y2, score in np.asarray(dets, dtype=np.float64).reshape(-1, 5):
            box = Box(float(x1), float(y1), float(max(x2, x1)), float(max(y2, y1))).clip(w, h)
            if box.area > 0:
                found.append(ScoredBox(box, float(score)))
        return found
