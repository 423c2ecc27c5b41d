"""insightface SCRFD detectors: buffalo_l's face detector and scrfd_person_2.5g.

These are the detectors the official CocoER script uses. insightface ships no
weights; we use them when the ONNX files are on disk (or can be downloaded),
and otherwise the pipeline falls back to the wheel-bundled detectors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cocoer_core.archives import ArchiveDamaged, extract_whole, member_names
from cocoer_core.errors import reason_of
from cocoer_core.http_body import download_to, download_whole
from cocoer_core.whole_files import scratch_beside
from streamer.detectors.base import FrameByFrame, ScoredBox
from streamer.types import Box

logger = logging.getLogger(__name__)

FACE_PACK = "buffalo_l"
FACE_FILE = "det_10g.onnx"
PERSON_FILE = "scrfd_person_2.5g.onnx"


class ModelUnavailable(RuntimeError):
    """An insightface model file is neither on disk nor downloadable."""


#: Where insightface publishes its models (its `storage.py` downloads from here); `COCOER_INSIGHTFACE_URL`
#: names a mirror holding the same files.
RELEASES_URL = "https://github.com/deepinsight/insightface/releases/download/model-zoo"
DOWNLOAD_TIMEOUT_S = 60.0


def _releases() -> str:
    return (os.environ.get("COCOER_INSIGHTFACE_URL") or RELEASES_URL).rstrip("/")


def _ensure(path: Path, allow_download: bool, download: Callable[[], object]) -> Path:
    """The model file, downloading it first if allowed; ModelUnavailable otherwise."""
    if path.is_file():
        return path
    if not allow_download:
        raise ModelUnavailable(f"no {path} (downloads off)")
    try:
        download()
    except OSError as exc:  # offline, cut short, damaged (ArchiveDamaged), disk full
        raise ModelUnavailable(f"no {path}, download failed ({reason_of(exc)})") from None
    return path


# Our own fetches, not insightface's (`storage.download`): that one has no timeout (a stalled connection waits for
# ever), leaves the pack's folder when its archive fails to unpack (every later try then takes the pack for there and
# downloads nothing), and unpacks all five of buffalo_l's models where only the detector is used.
def _download_pack(root: Path) -> None:
    """buffalo_l.zip fetched beside its folder, only the detector taken out of it, the archive removed."""
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / FACE_PACK / FACE_FILE
    with scratch_beside(models / f"{FACE_PACK}.zip") as archive:
        download_to(f"{_releases()}/{FACE_PACK}.zip", archive, DOWNLOAD_TIMEOUT_S)
        member = next((name for name in member_names(archive) or [] if Path(name).name == FACE_FILE), None)
        if member is None:
            raise ArchiveDamaged(f"{FACE_PACK}.zip holds no {FACE_FILE}")
        # The pack's folder appears only now: insightface takes it for the whole pack.
        extract_whole(archive, member, target)


def _download_onnx(root: Path) -> None:
    download_whole(f"{_releases()}/{PERSON_FILE}", root / "models" / PERSON_FILE, DOWNLOAD_TIMEOUT_S)


def face_model_path(root: Path, allow_download: bool) -> Path:
    """buffalo_l's detector, `<root>/models/buffalo_l/det_10g.onnx` (where insightface keeps it)."""
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
