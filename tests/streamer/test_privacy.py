"""Faces hidden in everything a run writes, and the declared context of use (EU AI Act, Article 5(1)(f)).

The check is the one that matters: a face detector (MTCNN, the default's)
finds the faces in the input frames and none in the outputs.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cv2

import av
import numpy as np
import pytest

from streamer.detectors.faces import MtcnnFaceDetector
from streamer.privacy.faces import MODES, hide_faces
from streamer.privacy.use import refusal
from tests.conftest import media_file
from tests.test_cli import OFFLINE, _assert_one_error_line, run_cli

CLIP = "faces_two_people_head_pose.mp4"  # two faces, 480x270


@pytest.fixture(scope="module")
def faces() -> MtcnnFaceDetector:
    return MtcnnFaceDetector()


def _frames(path: Path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="bgr24"))
            if len(out) == count:
                break
        return out


@pytest.mark.parametrize("mode", [m for m in MODES if m != "off"])
def test_each_mode_leaves_no_face_a_detector_can_find(shared_media: Path, faces: MtcnnFaceDetector, mode: str) -> None:
    for name in (CLIP, "face_woman_talking_pexels.mp4"):
        for image in _frames(media_file(shared_media, name), 3):
            found = faces.detect(image)
            assert found, f"{name}: the input shows faces"
            hidden = hide_faces(image.copy(), [f.box for f in found], mode)
            assert faces.detect(hidden) == [], f"{name}: a face survives {mode}"
            untouched = np.ones(image.shape[:2], bool)
            for f in found:
                x1, y1, x2, y2 = f.box.rounded()
                pad = round(0.3 * max(x2 - x1, y2 - y1))
                untouched[max(y1 - pad, 0) : y2 + pad, max(x1 - pad, 0) : x2 + pad] = False
            assert np.array_equal(hidden[untouched], image[untouched]), "only the faces change"


def test_blur_is_the_full_size_blur_at_a_fraction_of_its_cost(shared_media: Path, faces: MtcnnFaceDetector) -> None:
    """Blur smooths the face's few cells small and stretches them: the picture a Gaussian a quarter of the
    region's side gives on the full-size region (what blur was), within two grey levels, on a close-up."""
    from streamer.privacy.faces import CELLS

    (image,) = _frames(media_file(shared_media, "face_woman_talking_pexels.mp4"), 1)
    (face,) = faces.detect(image)
    hidden = hide_faces(image.copy(), [face.box], "blur")
    dx, dy = 0.25 * face.box.width, 0.25 * face.box.height
    x1, y1 = max(int(np.floor(face.box.x1 - dx)), 0), max(int(np.floor(face.box.y1 - dy)), 0)
    x2, y2 = min(int(np.ceil(face.box.x2 + dx)), image.shape[1]), min(int(np.ceil(face.box.y2 + dy)), image.shape[0])
    roi = image[y1:y2, x1:x2]
    h, w = roi.shape[:2]
    assert min(h, w) > 150, "a close-up: the full-size kernel is large"
    small = cv2.resize(roi, (CELLS, CELLS), interpolation=cv2.INTER_AREA)
    k = (min(w, h) // 4) | 1
    full_size = cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), (k, k), 0)
    assert np.abs(hidden[y1:y2, x1:x2].astype(int) - full_size).max() <= 2


def test_off_changes_nothing_and_a_bad_mode_is_refused(shared_media: Path, faces: MtcnnFaceDetector) -> None:
    (image,) = _frames(media_file(shared_media, CLIP), 1)
    boxes = [f.box for f in faces.detect(image)]
    assert np.array_equal(hide_faces(image.copy(), boxes, "off"), image)
    with pytest.raises(ValueError, match=r"privacy\.faces"):
        hide_faces(image.copy(), boxes, "smudge")


def test_run_json_ends_saying_what_ran_when_an_input_size_fell_back_on_the_way(
    shared_media: Path, models_without_exports: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # CenterNet asked to run in ONNX Runtime, with an exports folder that can't be made: the video's input size
    # ran in PyTorch. run.json, written at the start (a file source meets its size only on its first frame),
    # said onnxruntime and kept saying it.
    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    from streamer import Analyzer

    out = tmp_path / "out"
    settings = ["source.max_frames=3", "sink.report=false", "sink.video=false", "detector.allow_download=false"]
    analyzer = Analyzer(
        overrides=[
            f"sink.out_dir={out}",
            *settings,
            "detector.runtime=onnxruntime",
            f"detector.models_dir={models_without_exports}",
        ]
    )
    with caplog.at_level("WARNING"):
        report = analyzer.run(str(media_file(shared_media, CLIP)))
    assert report.errors == [] and (out / f"{Path(CLIP).stem}.jsonl").is_file()
    assert [r.getMessage() for r in caplog.records if "export failed" in r.getMessage()], "said in one line"
    declared = json.loads((out / "run.json").read_text())
    assert declared["runtimes"]["people"] == "torch" and declared["runtimes"]["faces"] == "torch"
    assert declared["models"]["people"]["name"] == "centernet" and declared["sources"] == [Path(CLIP).stem]


@pytest.mark.integration
def test_a_default_run_writes_no_face_in_its_video_its_report_or_a_still(
    shared_media: Path, tmp_path: Path, faces: MtcnnFaceDetector
) -> None:
    clip = media_file(shared_media, CLIP)
    done = run_cli("--source", str(clip), "--out", str(tmp_path), "--max-frames", "6", *OFFLINE)
    assert done.returncode == 0, done.stderr
    inputs = _frames(clip, 6)
    assert sum(len(faces.detect(image)) for image in inputs) >= 10, "the input: two faces a frame"
    outputs = _frames(tmp_path / f"{clip.stem}.mp4", 6)
    assert len(outputs) == 6 and all(faces.detect(image) == [] for image in outputs), "no face in the MP4"
    lines = [json.loads(line) for line in (tmp_path / f"{clip.stem}.jsonl").read_text().splitlines()]
    assert sum(p["smoothed"] is not None for line in lines for p in line["persons"]) >= 6, "still analysed"
    declared = json.loads((tmp_path / "run.json").read_text())
    assert declared["use"] == {"context": "unspecified", "purpose": "unspecified"}
    assert declared["privacy"]["faces"] == "blur" and declared["privacy"]["notice"]
    assert declared["models"]["faces"] == {"name": "mtcnn", "licence": "MIT (facenet-pytorch's bundled MTCNN weights)"}
    assert declared["models"]["people"]["name"] == "centernet" and declared["sources"] == [clip.stem]
    # auto on a CPU: the runtime this machine ran faster (timed once, stored beside the exports), said in run.json.
    from cocoer_core.speed_choice import machine_key
    from streamer.config import DetectorConfig

    onnx_cache = Path(DetectorConfig().models_dir).expanduser() / "onnx"
    timed = json.loads((onnx_cache / "centernet_640x352.json").read_text())["speed"][machine_key()]
    assert declared["runtimes"]["people"] == min(timed, key=timed.__getitem__)
    assert declared["runtimes"]["faces"] == "torch" and "baseline" in declared["runtimes"]["emotion"].lower()
    from cocoer_core.baseline_onnx import DEFAULT_CACHE

    timed = json.loads((DEFAULT_CACHE.expanduser() / "fer2013-mini-xception.json").read_text())
    fastest = min(timed["speed"][machine_key()], key=timed["speed"][machine_key()].__getitem__)
    assert declared["runtimes"]["emotion"].endswith(f"(embedded baseline; {fastest}{' CPU' * (fastest != 'torch')})")
    page = (tmp_path / f"{clip.stem}.html").read_text()
    assert "declared use: context unspecified" in page and "faces in outputs: blur" in page
    assert "people: centernet — licence: MIT" in page
    thumbs = re.findall(r'class="thumb" alt="[^"]*" src="data:image/jpeg;base64,([^"]+)"', page)
    assert thumbs
    for data in thumbs:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        big = cv2.resize(image, None, fx=3, fy=3)  # MTCNN's smallest face is ~20 px
        assert faces.detect(big) == [], "no face in the report's thumbnails"

    photo = media_file(shared_media, "group_five_friends.jpg")
    done = run_cli("--source", str(photo), "--out", str(tmp_path), *OFFLINE)
    assert done.returncode == 0, done.stderr
    assert len(faces.detect(cv2.imread(str(photo)))) == 5
    assert faces.detect(cv2.imread(str(tmp_path / "group_five_friends_annotated.jpg"))) == []


def test_emotion_recognition_at_work_or_school_is_refused_unless_for_medical_or_safety(tmp_path: Path) -> None:
    for context in ("workplace", "education"):
        assert refusal(context, "unspecified") is not None and "Article 5(1)(f)" in str(refusal(context, "research"))
        assert refusal(context, "medical") is None and refusal(context, "safety") is None
    assert refusal("research", "unspecified") is None and refusal("public", "entertainment") is None
    done = run_cli("--source", "demo", "--out", str(tmp_path), "--set", "use.context=workplace", *OFFLINE)
    _assert_one_error_line(done, "Article 5(1)(f)")
    assert not any(tmp_path.iterdir()), "nothing was written"


class _Kept:
    """An output that keeps what it is given (the frames a file or the page would get)."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    @property
    def paths(self) -> list[Path]:
        return []

    def write(self, annotated: np.ndarray, record: object) -> None:
        self.images.append(annotated.copy())

    def new_segment(self) -> None: ...

    def close(self) -> None: ...


@pytest.mark.parametrize("display_faces", [False, True])
def test_only_the_local_window_may_show_faces_and_only_when_asked(
    shared_media: Path, faces: MtcnnFaceDetector, display_faces: bool
) -> None:
    from fractions import Fraction

    from cocoer_core.baseline import FaceExpressionBaseline
    from streamer.backends.session import SourceSession
    from streamer.config import OverlayConfig, PrivacyConfig, SmoothingConfig
    from streamer.outputs import Outputs
    from streamer.sources import SourceInfo, SourceKind
    from streamer.stages.emotion import EmotionStage, ModelCard, region_of
    from streamer.stages.smoothing import SmoothingBank
    from streamer.types import Frame, Person, TrackedFrame
    from streamer.view.overlay import OverlayRenderer

    image = cv2.imread(str(media_file(shared_media, "group_five_friends.jpg")))
    found = faces.detect(image)
    persons = tuple(Person(i + 1, f.box, f.box, 0.9) for i, f in enumerate(found))
    model = FaceExpressionBaseline()
    info = SourceInfo("x", "x", SourceKind.FILE, False, image.shape[1], image.shape[0], 10.0, None, Fraction(1, 10))
    stage = EmotionStage(ModelCard.of(model), SmoothingBank(SmoothingConfig(), model.label_rule))
    kept = _Kept()
    session = SourceSession(
        "x", info, stage, OverlayRenderer(OverlayConfig()), Outputs([kept]),
        privacy=PrivacyConfig(display_faces=display_faces), window=True,
    )  # fmt: skip
    tracked = TrackedFrame(Frame("x", 0, 0.0, 0.0, image), persons, faces=tuple(f.box for f in found))
    due = session.plan(tracked)
    assert session.write(session.smooth(tracked, due, model.predict(image, [region_of(persons[i]) for i in due])))
    assert faces.detect(kept.images[0]) == [], "what is written or served never shows a face"
    assert session.latest is not None
    shown = len(faces.detect(session.latest))
    assert (shown >= len(found) - 1) if display_faces else shown == 0, "the window shows faces only when asked"


def test_a_privacy_step_that_fails_ends_the_source_before_any_frame_is_written(
    shared_media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fractions import Fraction

    from streamer.backends import session as session_module
    from streamer.backends.session import SourceSession
    from streamer.config import OverlayConfig, SmoothingConfig
    from streamer.outputs import Outputs
    from streamer.sources import SourceInfo, SourceKind
    from streamer.stages.emotion import NO_MODEL, EmotionStage
    from streamer.stages.smoothing import SmoothingBank
    from streamer.types import Frame, TrackedFrame
    from streamer.view.overlay import OverlayRenderer

    def broken(*_: object, **__: object) -> np.ndarray:
        raise MemoryError("no memory for the blur")

    monkeypatch.setattr(session_module, "hide_faces", broken)
    (image,) = _frames(media_file(shared_media, CLIP), 1)
    info = SourceInfo("x", "x", SourceKind.FILE, False, image.shape[1], image.shape[0], 10.0, None, Fraction(1, 10))
    kept = _Kept()
    session = SourceSession(
        "x", info, EmotionStage(NO_MODEL, SmoothingBank(SmoothingConfig(), NO_MODEL.label_rule)), OverlayRenderer(OverlayConfig()),
        Outputs([kept]),
    )  # fmt: skip
    tracked = TrackedFrame(Frame("x", 0, 0.0, 0.0, image), ())
    assert not session.write(session.smooth(tracked, (), [])) and session.failed
    assert kept.images == [], "no frame was written unprotected"
