"""CocoER exported to ONNX (`cocoer_core.export`) and run in ONNX Runtime: the goldens, real crops, the choice
of runtime, and the files or packages that are not there or not right."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2

import numpy as np
import pytest

from cocoer_core.api import Level, PersonRegion
from cocoer_core.runtime import CocoERModel
from cocoer_core.speed_choice import machine_key, record
from tests.conftest import ROOT, media_file

pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")

PERSONS = [
    PersonRegion((140, 20, 330, 299), (190, 35, 260, 120)),
    PersonRegion((0, 60, 150, 299), (40, 80, 100, 150)),
    PersonRegion((300, 40, 480, 299), (350, 50, 420, 130)),
]


@pytest.mark.integration
def test_the_exported_graph_reproduces_the_golden_forward_pass() -> None:
    """Golden A through the export and ONNX Runtime (A2, the same path with other options, passes too: ~1 min)."""
    golden = "cocoer_golden_A.json"
    path = ROOT.parent / "shared" / "design" / golden
    if not path.is_file():
        pytest.skip(f"{golden} not found")
    done = subprocess.run(
        [sys.executable, "-m", "cocoer_core.verify_golden", str(path), "--runtime", "onnxruntime"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout and "exclusion sequences: match" in done.stdout


@pytest.fixture(scope="module")
def weights(checkpoint_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder of our own (links to the shared GWT.pth and RN50.pt): the export is written into it."""
    folder = tmp_path_factory.mktemp("onnx_weights")
    for name in ("GWT.pth", "RN50.pt"):
        (folder / name).symlink_to(checkpoint_dir / name)
    return folder


@pytest.fixture(scope="module")
def exported(weights: Path) -> CocoERModel:
    """runtime=onnxruntime with no export yet: it exports (and checks) once, then runs the file."""
    return CocoERModel.from_directory(weights, allow_download=False, runtime="onnxruntime")


@pytest.fixture(scope="module")
def frame(shared_media: Path) -> np.ndarray:
    return cv2.imread(str(media_file(shared_media, "cocoer_test_o1.png")))


@pytest.mark.integration
def test_onnx_runtime_gives_pytorchs_results_on_real_crops(
    exported: CocoERModel, weights: Path, checkpoint_dir: Path, frame: np.ndarray, shared_media: Path
) -> None:
    assert exported.onnx is not None and "onnxruntime CPU" in exported.description
    meta = json.loads((weights / "cocoer.json").read_text())
    assert meta["source"]["file"] == "GWT.pth" and len(meta["labels"]) == 26 and meta["inside_lr"] == 1.0
    torch_model = CocoERModel.from_directory(checkpoint_dir, allow_download=False, runtime="torch")
    assert torch_model.onnx is None and "(torch fp32)" in torch_model.description
    other = cv2.resize(cv2.imread(str(media_file(shared_media, "cocoer_test_o2.png"))), frame.shape[1::-1])
    from cocoer_core.api import FramePersons

    frames = [FramePersons(frame, tuple(PERSONS)), FramePersons(other, tuple(PERSONS[1:]))]
    ours, theirs = exported.predict_frames(frames), torch_model.predict_frames(frames)
    for got_frame, want_frame in zip(ours, theirs, strict=True):
        for got, want in zip(got_frame, want_frame, strict=True):
            assert got is not None and want is not None
            for level in exported.levels:
                np.testing.assert_allclose(got.scores[level], want.scores[level], atol=1e-4)
            assert got.exclusion == want.exclusion and got.pred == want.pred
    alone = [exported.predict(frame, [p])[0] for p in PERSONS]
    for together, single in zip(ours[0], alone, strict=True):
        assert together is not None and single is not None
        np.testing.assert_allclose(together.scores[Level.FINAL], single.scores[Level.FINAL], atol=1e-5)


@pytest.mark.integration
def test_auto_takes_a_current_export_and_anything_wrong_falls_back_to_pytorch_in_one_line(
    exported: CocoERModel, weights: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx_file, sidecar = weights / "cocoer.onnx", weights / "cocoer.json"
    made = onnx_file.stat().st_mtime_ns
    # The first auto run on a machine times both runtimes and stores the figures beside the export.
    auto = CocoERModel.from_directory(weights, allow_download=False, runtime="auto")
    assert onnx_file.stat().st_mtime_ns == made, "a current export is reused as it is"
    timed = json.loads(sidecar.read_text())["speed"][machine_key()]
    assert set(timed) == {"torch", "onnxruntime"} and all(ms > 0 for ms in timed.values())
    assert (auto.onnx is not None) == (timed["onnxruntime"] < timed["torch"])
    # Later runs read them: whichever this machine ran faster is the one that runs.
    for faster_one, slower_one in (("torch", "onnxruntime"), ("onnxruntime", "torch")):
        record(sidecar, machine_key(), {faster_one: 1.0, slower_one: 2.0})
        chosen = CocoERModel.from_directory(weights, allow_download=False, runtime="auto")
        assert chosen.runtime.startswith(faster_one) and faster_one in chosen.description
        assert (chosen.onnx is not None) == (faster_one == "onnxruntime")
    # A reduced precision asked for keeps auto on PyTorch (the export is fp32).
    reduced = CocoERModel.from_directory(weights, allow_download=False, runtime="auto", precision="bf16")
    assert reduced.onnx is None
    # Made from another checkpoint (its sidecar says so): auto does not use it.
    meta = json.loads(sidecar.read_text())
    stale = {**meta, "source": {**meta["source"], "bytes": 1}}
    sidecar.write_text(json.dumps(stale))
    assert CocoERModel.from_directory(weights, allow_download=False, runtime="auto").onnx is None
    sidecar.write_text(json.dumps(meta))
    # onnxruntime missing: one line, PyTorch runs.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with caplog.at_level(logging.WARNING):
        model = CocoERModel.from_directory(weights, allow_download=False, runtime="onnxruntime")
    assert model.onnx is None and "(torch fp32)" in model.description
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "emotion.runtime: onnxruntime is not installed, CocoER runs in PyTorch"
    ]
    monkeypatch.delitem(sys.modules, "onnxruntime")
    caplog.clear()
    # A damaged export: one line naming it, PyTorch runs.
    saved = onnx_file.read_bytes()
    try:
        onnx_file.write_bytes(saved[: len(saved) // 3])
        with caplog.at_level(logging.WARNING):
            model = CocoERModel.from_directory(weights, allow_download=False, runtime="auto")
        assert model.onnx is None
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and str(onnx_file) in warnings[0] and "not a readable ONNX model" in warnings[0]
    finally:
        onnx_file.write_bytes(saved)


def test_the_export_command_on_a_bad_folder_says_so_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cocoer_core.export", "--weights", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: CocoER checkpoint {tmp_path / 'GWT.pth'} not found")


@pytest.mark.integration
def test_the_runtime_choice_reaches_the_model_builder_that_both_backends_use(
    weights: Path, exported: CocoERModel
) -> None:
    """The local pipeline and the Ray inference actors build the model with build_emotion_model."""
    from streamer.config import EmotionConfig
    from streamer.stages.models import build_emotion_model

    built = build_emotion_model(EmotionConfig(model="cocoer", weights=str(weights), runtime="onnxruntime"), "cpu")
    assert built is not None and "onnxruntime" in built.description
    with pytest.raises(ValueError, match=r"emotion\.runtime"):
        EmotionConfig(runtime="tensorflow")


def test_a_gpu_asks_for_tensorrt_in_fp16_with_a_cached_engine_then_cuda(tmp_path: Path) -> None:
    """Which execution providers a session asks for (no GPU here: the choice, not TensorRT itself)."""
    from cocoer_core.onnx_session import provider_choice

    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    gpu = provider_choice(everything, "cuda", "fp16", tmp_path / "tensorrt")
    assert gpu[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    name, options = gpu[0]
    assert name == "TensorrtExecutionProvider" and options["trt_fp16_enable"] is True
    assert options["trt_engine_cache_enable"] is True and options["trt_engine_cache_path"] == str(tmp_path / "tensorrt")
    assert provider_choice(everything, "cuda", "fp32", tmp_path)[0][1]["trt_fp16_enable"] is False
    assert provider_choice(everything, "cpu", "fp16", tmp_path) == ["CPUExecutionProvider"]
    assert provider_choice(["CPUExecutionProvider"], "cuda", "fp16", tmp_path) == ["CPUExecutionProvider"]
