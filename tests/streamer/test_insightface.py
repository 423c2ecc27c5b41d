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

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2

import numpy as np
import pytest

from streamer.config import DetectorConfig
from streamer.detectors import build_detector
from streamer.detectors.insightface_adapter import (
    FACE_FILE,
    FACE_PACK,
    PERSON_FILE,
    ModelUnavailable,
    ScrfdDetector,
    face_model_path,
    person_model_path,
)
from streamer.errors import UserError
from tests.conftest import media_file
from tests.support.servers import Download

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


@pytest.fixture()
def mirror(insightface_root: Path, download_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Download]:
    """insightface's release files on 127.0.0.1 (COCOER_INSIGHTFACE_URL): buffalo_l.zip as insightface packs it
    (its five models at the top; the four this project does not use are stand-ins here)."""
    pack = io.BytesIO()
    with zipfile.ZipFile(pack, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(insightface_root / "models" / FACE_PACK / FACE_FILE, FACE_FILE)
        for other in ("1k3d68.onnx", "2d106det.onnx", "genderage.onnx", "w600k_r50.onnx"):
            zipped.writestr(other, os.urandom(1 << 18))
    served = Download(pack.getvalue())
    monkeypatch.setenv("COCOER_INSIGHTFACE_URL", download_server(served))
    yield served


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_the_face_detector_is_taken_alone_out_of_its_pack(
    mirror: Download, insightface_root: Path, tmp_path: Path, photo: np.ndarray
) -> None:
    # insightface's own download unpacked all five models (280 MB) to use one, and kept the archive.
    root = tmp_path / "fetched"
    path = face_model_path(root, allow_download=True)
    assert path.read_bytes() == (insightface_root / "models" / FACE_PACK / FACE_FILE).read_bytes()
    assert _files_under(root) == [f"models/{FACE_PACK}/{FACE_FILE}"]
    detector = ScrfdDetector(path, "faces")
    assert len(detector.detect(photo)) == 1, "the fetched model runs"
    assert face_model_path(root, allow_download=True) == path and mirror.requests == 1, "fetched once"


def test_an_insightface_download_cut_short_is_one_line_leaves_nothing_and_is_tried_again(
    mirror: Download, tmp_path: Path
) -> None:
    # insightface's download raised from deep inside requests, and a pack whose unpacking failed left its
    # folder, which every later try took for the pack already there.
    whole = mirror.body
    mirror.cut_after = len(whole) // 2
    root = tmp_path / "fetched"
    with pytest.raises(ModelUnavailable) as info:
        face_model_path(root, allow_download=True)
    message = str(info.value)
    assert message.startswith(f"no {root / 'models' / FACE_PACK / FACE_FILE}, download failed (the connection ended")
    assert "\n" not in message and _files_under(root) == [] and not (root / "models" / FACE_PACK).exists()
    mirror.cut_after, mirror.body = None, whole[: len(whole) // 2] + bytes(len(whole) - len(whole) // 2)
    with pytest.raises(ModelUnavailable, match="download failed"):
        face_model_path(root, allow_download=True)  # whole, but damaged: not a zip insightface could read
    assert _files_under(root) == []
    mirror.body = whole
    assert face_model_path(root, allow_download=True).is_file() and mirror.requests == 3


def test_the_person_detector_is_fetched_whole(download_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    body = os.urandom(3 << 20)
    served = Download(body, cut_after=1 << 20)
    monkeypatch.setenv("COCOER_INSIGHTFACE_URL", download_server(served))
    with pytest.raises(ModelUnavailable, match=r"the connection ended after 1\.0 MB of 3\.1 MB"):
        person_model_path(tmp_path, allow_download=True)
    assert _files_under(tmp_path) == []
    served.cut_after = None
    assert person_model_path(tmp_path, allow_download=True).read_bytes() == body
