"""Detectors on real photos, and the face-person association rules."""

from __future__ import annotations

from pathlib import Path

import cv2

import pytest

from streamer.config import DetectorConfig
from streamer.detectors import build_detector
from streamer.detectors.association import associate, body_from_face
from streamer.detectors.base import ScoredBox, nms
from streamer.detectors.faces import HaarFaceDetector, MtcnnFaceDetector, person_areas, search_cost
from streamer.detectors.mtcnn_cascade import SearchArea
from streamer.detectors.people import HogPeopleDetector
from streamer.types import Box
from tests.conftest import media_file


@pytest.fixture(scope="module")
def mtcnn() -> MtcnnFaceDetector:
    return MtcnnFaceDetector()


def _read(shared_media: Path, name: str):
    return cv2.imread(str(media_file(shared_media, name)))


@pytest.mark.parametrize(
    ("photo", "faces"),
    [
        pytest.param("group_five_friends.jpg", 5, id="five-friends"),
        pytest.param("group_12_angry_men.jpg", 9, id="12-angry-men"),
        pytest.param("group_test_image.jpg", 6, id="test-image"),
        pytest.param("face_single_portrait.jpg", 1, id="portrait"),
        pytest.param("no_person_landscape.jpg", 0, id="landscape"),
    ],
)
def test_mtcnn_counts_faces_in_real_photos(
    shared_media: Path, mtcnn: MtcnnFaceDetector, photo: str, faces: int
) -> None:
    found = mtcnn.detect(_read(shared_media, photo))
    assert len(found) == faces
    for face in found:
        assert face.score >= 0.9 and face.box.width > 10 and 0.6 < face.box.height / face.box.width < 2.0


def test_haar_is_the_floor_and_finds_most_faces(shared_media: Path) -> None:
    found = HaarFaceDetector().detect(_read(shared_media, "group_five_friends.jpg"))
    assert 3 <= len(found) <= 7


def test_hog_finds_pedestrians_and_no_one_in_a_landscape(shared_media: Path) -> None:
    hog = HogPeopleDetector()
    street = hog.detect(_read(shared_media, "street_pedestrians.jpg"))
    assert len(street) >= 5
    assert all(b.box.height > b.box.width for b in street)  # upright people
    assert hog.detect(_read(shared_media, "no_person_landscape.jpg")) == []


def test_downscaled_detection_maps_boxes_back_to_full_resolution(shared_media: Path) -> None:
    image = _read(shared_media, "group_five_friends.jpg")  # 1000 px wide
    full = sorted(f.box.x1 for f in MtcnnFaceDetector(max_side=0).detect(image))
    half = sorted(f.box.x1 for f in MtcnnFaceDetector(max_side=500).detect(image))
    assert len(full) == len(half) == 5
    assert max(abs(a - b) for a, b in zip(full, half, strict=True)) < 12


def test_combined_detector_pairs_faces_with_bodies(shared_media: Path) -> None:
    detector = build_detector(DetectorConfig(face="mtcnn", person="hog", allow_download=False))
    assert detector.describe().startswith("detectors: faces=mtcnn, people=hog")
    persons = detector.detect(_read(shared_media, "group_five_friends.jpg"))
    assert len(persons) == 5
    assert all(p.head_box is not None for p in persons)
    for p in persons:
        assert p.body_box.x1 <= p.head_box.center[0] <= p.body_box.x2  # type: ignore[union-attr]


def test_auto_falls_back_offline_and_says_why() -> None:
    detector = build_detector(
        DetectorConfig(insightface_root="/nonexistent/insightface", models_dir="/nonexistent", allow_download=False)
    )
    text = detector.describe()
    assert "faces=mtcnn" in text and "people=hog" in text
    assert "insightface" not in text, "auto never considers insightface (non-commercial licence)"
    assert "fetch_models" in text, "says how to get the default person detector"


def _sb(x1: float, y1: float, x2: float, y2: float, score: float = 0.9) -> ScoredBox:
    return ScoredBox(Box(x1, y1, x2, y2), score)


def test_each_face_goes_to_at_most_one_person() -> None:
    bodies = [_sb(0, 0, 100, 300), _sb(20, 0, 120, 300)]  # two overlapping people
    faces = [_sb(40, 10, 70, 45)]
    persons = associate(bodies, faces, 640, 480)
    assert sum(p.head_box is not None for p in persons) == 1
    assert len(persons) == 2  # the face did not also spawn a third person


def test_faces_go_to_the_body_whose_head_spot_is_nearest() -> None:
    bodies = [_sb(0, 0, 100, 300), _sb(100, 0, 200, 300)]
    faces = [_sb(130, 10, 170, 50), _sb(30, 10, 70, 50)]
    persons = associate(bodies, faces, 640, 480)
    assert persons[0].head_box == faces[1].box and persons[1].head_box == faces[0].box


@pytest.mark.parametrize(
    "face",
    [
        pytest.param(_sb(40, 200, 60, 220), id="face-at-the-feet"),
        pytest.param(_sb(150, 10, 190, 50), id="face-outside-horizontally"),
    ],
)
def test_implausible_faces_get_their_own_extrapolated_body(face: ScoredBox) -> None:
    persons = associate([_sb(0, 0, 100, 300)], [face], 640, 480)
    assert persons[0].head_box is None
    assert persons[1].head_box == face.box and persons[1].body_source == "face"


def test_extrapolated_body_contains_the_face_and_stays_in_frame() -> None:
    face = Box(300, 100, 340, 160)  # 60 px tall: the body would reach y=520
    body = body_from_face(face, 640, 480)
    assert body.x1 <= face.x1 and body.x2 >= face.x2 and body.y1 <= face.y1
    assert body.y2 == 480 and body.x1 >= 0 and body.x2 <= 640


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    kept = nms([_sb(0, 0, 10, 10, 0.5), _sb(1, 1, 11, 11, 0.9), _sb(50, 50, 60, 60, 0.3)], 0.5)
    assert [k.score for k in kept] == [0.9, 0.3]


def _frame(shared_media: Path, clip: str, index: int):
    capture = cv2.VideoCapture(str(media_file(shared_media, clip)))
    for _ in range(index + 1):
        ok, image = capture.read()
    capture.release()
    assert ok, f"{clip} has no frame {index}"
    return image


@pytest.mark.parametrize(
    ("clip", "index"),
    [
        pytest.param("face_woman_talking_pexels.mp4", 40, id="close-up"),
        pytest.param("faces_two_people_head_pose.mp4", 10, id="two-people"),
        pytest.param("face_selfie_expressions.mp4", 80, id="selfie-face-off-the-frame"),
        pytest.param("group_five_friends.jpg", -1, id="five-friends"),
    ],
)
def test_our_cascade_finds_the_faces_facenet_pytorchs_driver_finds(
    shared_media: Path, mtcnn: MtcnnFaceDetector, clip: str, index: int
) -> None:
    """The same three networks and weights, driven by facenet-pytorch's MTCNN (the reference): the same faces
    at the same places (its boxes start a pixel later: 1-based), a face larger than the frame included."""
    from facenet_pytorch import MTCNN

    image = _read(shared_media, clip) if index < 0 else _frame(shared_media, clip, index)
    reference = MTCNN(min_face_size=20, thresholds=[0.6, 0.7, 0.7], factor=0.709, keep_all=True, device="cpu")
    boxes, probs = reference.detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    h, w = image.shape[:2]
    expected = [Box(*map(float, b)).clip(w, h) for b, p in zip(boxes, probs, strict=True) if p >= 0.9]
    found = mtcnn.detect(image)
    assert len(found) == len(expected) >= 1
    for box in expected:
        assert max(box.iou(face.box) for face in found) > 0.7


@pytest.mark.parametrize(
    ("clip", "index", "cheaper"),
    [
        pytest.param("face_woman_talking_pexels.mp4", 40, True, id="close-up"),
        pytest.param("face_man_head_pose.mp4", 20, True, id="head-pose"),
        pytest.param("people_walking_and_pausing_faces.mp4", 30, False, id="several-people"),
    ],
)
def test_faces_searched_inside_the_persons_are_those_of_the_whole_frame(
    shared_media: Path, centernet_dir: Path, clip: str, index: int, cheaper: bool
) -> None:
    """`detector.face_search: persons`: the body detector first, then faces only inside its boxes, each no
    smaller than its body implies: the same persons with the same faces, for a fraction of the search on a
    close-up; where the persons' areas would cost as much as the frame, the frame is searched."""
    image = _frame(shared_media, clip, index)
    frame, persons = (
        build_detector(DetectorConfig(face="mtcnn", person="centernet", face_search=where, allow_download=False))
        for where in ("frame", "persons")
    )
    assert persons.searches_in_persons and not frame.searches_in_persons
    whole = frame.detect(image)
    inside = persons.detect(image)
    heads = [p.head_box for p in whole if p.head_box is not None]
    found = [p.head_box for p in inside if p.head_box is not None]
    assert len(found) == len(heads) >= 1
    for head in heads:
        assert max(head.iou(other) for other in found) > 0.9
    h, w = image.shape[:2]
    bodies = [ScoredBox(p.body_box, 1.0) for p in whole]
    areas = person_areas(bodies, w, h, 20)
    whole_frame = SearchArea(Box(0, 0, w, h), 20)
    if cheaper:
        assert sum(map(search_cost, areas)) < 0.6 * search_cost(whole_frame)
    else:
        assert areas == [whole_frame]


def test_many_people_in_a_small_frame_are_searched_as_one_frame() -> None:
    """Overlapping areas would cost more than the frame: then the frame is searched, once."""
    crowd = [_sb(x, 10, x + 60, 200) for x in range(0, 300, 20)]
    assert person_areas(crowd, 320, 240, 20) == [SearchArea(Box(0, 0, 320, 240), 20)]
    one = person_areas([_sb(100, 50, 400, 360)], 640, 360, 20)  # a close-up: 300 px wide
    assert len(one) == 1 and one[0].min_face == 30, "no face smaller than a tenth of its body"
    assert one[0].box.x1 < 100 and one[0].box.y1 < 50 and one[0].box.x2 > 400, "a margin above and beside it"


def test_our_mtcnn_networks_give_facenet_pytorchs_outputs() -> None:
    """Built here and filled from the same weight files: the same outputs as facenet-pytorch's modules."""
    import torch
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    from streamer.detectors.mtcnn_networks import load_networks

    g = torch.Generator().manual_seed(0)
    ours = load_networks(torch.device("cpu"))
    for mine, theirs, shape in zip(
        ours, (PNet(), RNet(), ONet()), ((1, 3, 216, 384), (7, 3, 24, 24), (5, 3, 48, 48)), strict=True
    ):
        x = torch.rand(*shape, generator=g) * 2 - 1
        with torch.no_grad():
            got, want = mine(x), theirs.eval()(x)
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert a.shape == b.shape and float((a - b).abs().max()) < 1e-6


def test_mtcnn_suppression_keeps_what_torchvisions_keeps() -> None:
    """IoU suppression per frame (our NumPy one spares start-up torchvision's import) on many random boxes."""
    import numpy as np
    import torch
    from torchvision.ops import batched_nms

    from streamer.detectors.mtcnn_cascade import _nms

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 300))
        xy = rng.uniform(0, 200, (n, 2))
        rows = np.zeros((n, 10), np.float32)
        rows[:, :2], rows[:, 2:4] = xy, xy + rng.uniform(5, 60, (n, 2))
        rows[:, 4], rows[:, 9] = rng.uniform(0, 1, n), rng.integers(0, 3, n)
        for threshold in (0.5, 0.7):
            t = torch.from_numpy(rows)
            want = batched_nms(t[:, :4], t[:, 4], t[:, 9].long(), threshold).numpy()
            assert sorted(_nms(rows, threshold).tolist()) == sorted(want.tolist())


def test_a_default_run_does_not_import_torchvision() -> None:
    """Its detection ops pull in torch's compiler stack: ~2 s of every start-up, for nothing the default needs."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import sys\n"
        "from streamer.config import DetectorConfig, EmotionConfig\n"
        "from streamer.detectors import build_detector\n"
        "from streamer.stages.models import build_emotion_model\n"
        "build_detector(DetectorConfig(allow_download=False), 'cpu')\n"
        "build_emotion_model(EmotionConfig(model='baseline'), 'cpu')\n"
        "print(sorted(m for m in ('torchvision', 'facenet_pytorch', 'torch._dynamo') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
