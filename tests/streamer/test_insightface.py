"""The insightface path, offline: SCRFD-format ONNX models built here, loaded through insightface.

insightface ships no weights and nothing can be downloaded here, so these
tests write two tiny ONNX files with SCRFD's exact interface (a 640x640
input; scores and box distances at strides 8, 16 and 32, two anchors per
cell) whose outputs put one box at a known place. That exercises the real
loading (insightface's model router and SCRFD decoder via onnxruntime),
letterbox scaling, our conversion, and that `auto` leaves them alone (their
licence is non-commercial) while an explicit choice uses them.
"""

from __future__ import annotations

from pathlib import Path

import cv2

import numpy as np
import pytest

from streamer.config import DetectorConfig
from streamer.detectors import build_detector
from streamer.detectors.insightface_adapter import FACE_FILE, FACE_PACK, PERSON_FILE, ScrfdDetector
from streamer.errors import UserError
from tests.conftest import media_file

SIZE = 640
STRIDES = (8, 16, 32)


def scrfd_like_onnx(path: Path, stride: int, row: int, col: int, distances: tuple[float, float, float, float]) -> None:
    """An SCRFD-interface model that finds one box: anchor (row, col) at `stride`, (l, t, r, b) in strides."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, outputs, initializers = [], [], []
    nodes.append(helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0))
    nodes.append(helper.make_node("Mul", ["mean", "zero"], ["nothing"]))  # ties every output to the input
    initializers.append(numpy_helper.from_array(np.zeros((), np.float32), "zero"))
    for kind in ("score", "bbox"):
        for s in STRIDES:
            cells = (SIZE // s) ** 2 * 2
            value = np.zeros((cells, 1 if kind == "score" else 4), np.float32)
            if s == stride:
                anchor = (row * (SIZE // s) + col) * 2
                value[anchor] = 0.93 if kind == "score" else distances
            name = f"{kind}_{s}"
            initializers.append(numpy_helper.from_array(value, f"{name}_const"))
            nodes.append(helper.make_node("Add", [f"{name}_const", "nothing"], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "scrfd_like",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


@pytest.fixture()
def insightface_root(tmp_path: Path) -> Path:
    root = tmp_path / "insightface"
    # A face at (288, 64)-(352, 144) and a person at (224, 32)-(416, 480), in the 640 px input.
    scrfd_like_onnx(root / "models" / FACE_PACK / FACE_FILE, 16, 6, 20, (2, 2, 2, 3))
    scrfd_like_onnx(root / "models" / PERSON_FILE, 32, 5, 10, (3, 4, 3, 10))
    return root


@pytest.fixture()
def photo(shared_media: Path) -> np.ndarray:
    return cv2.resize(cv2.imread(str(media_file(shared_media, "face_single_portrait.jpg"))), (1280, 960))


def test_scrfd_boxes_come_back_in_image_pixels(insightface_root: Path, photo: np.ndarray) -> None:
    detector = ScrfdDetector(insightface_root / "models" / PERSON_FILE, "people")
    found = detector.detect(photo)  # 1280x960 is letterboxed to 640x480: a scale of 0.5
    assert len(found) == 1
    assert found[0].box.as_tuple() == pytest.approx((448.0, 64.0, 832.0, 960.0), abs=1.0)
    assert found[0].score == pytest.approx(0.93, abs=1e-3)


def test_insightface_runs_when_chosen_and_auto_stays_licence_clean(insightface_root: Path, photo: np.ndarray) -> None:
    """insightface's models are for non-commercial research only: `auto` never picks them, even when their
    files are on disk; asking for them by name does."""
    auto = build_detector(DetectorConfig(insightface_root=str(insightface_root), allow_download=False))
    assert "insightface" not in auto.describe() and auto.summary().startswith("faces mtcnn, people ")
    chosen = DetectorConfig(
        face="insightface", person="insightface", insightface_root=str(insightface_root), allow_download=False
    )
    detector = build_detector(chosen)
    assert detector.describe().startswith(
        "detectors: faces=insightface-buffalo_l, people=insightface-scrfd_person_2.5g"
    )
    persons = detector.detect(photo)
    assert len(persons) == 1
    person = persons[0]
    assert person.body_source == "person"
    assert person.head_box is not None
    assert person.head_box.as_tuple() == pytest.approx((576.0, 128.0, 704.0, 288.0), abs=1.0)


def test_asking_for_insightface_without_its_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"insightface face detector unavailable: no .*det_10g\.onnx"):
        build_detector(DetectorConfig(face="insightface", insightface_root=str(tmp_path), allow_download=False))
