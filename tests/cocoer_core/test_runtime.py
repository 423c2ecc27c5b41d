"""CocoER behind the pipeline's interface: batched per frame, thresholds, and its CLIs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2

import numpy as np
import pytest

from cocoer_core.api import EmotionModel, Level, PersonRegion
from cocoer_core.labels import EMOTIC_LABELS
from cocoer_core.postprocess import LabelRule, select_labels
from cocoer_core.runtime import CocoERModel, estimated_head
from streamer.tools.infer import annotated_path
from streamer.tools.infer import main as infer_main
from tests.conftest import ROOT, media_file
from tests.support.png_bomb import png_bomb


@pytest.fixture(scope="module")
def cocoer(checkpoint_dir: Path) -> CocoERModel:
    return CocoERModel.from_directory(checkpoint_dir, device="cpu", allow_download=False)


@pytest.fixture(scope="module")
def frame(shared_media: Path) -> np.ndarray:
    return cv2.imread(str(media_file(shared_media, "cocoer_test_o1.png")))


PERSONS = [
    PersonRegion((140, 20, 330, 299), (190, 35, 260, 120)),
    PersonRegion((0, 60, 150, 299), (40, 80, 100, 150)),
    PersonRegion((300, 40, 480, 299), (350, 50, 420, 130)),
]


def test_it_is_an_emotion_model_with_every_level(cocoer: CocoERModel) -> None:
    assert isinstance(cocoer, EmotionModel)
    assert cocoer.labels == EMOTIC_LABELS and len(cocoer.labels) == 26
    assert cocoer.levels == (Level.FINAL, Level.VI, Level.HEAD, Level.BODY, Level.CONTEXT)
    assert cocoer.model.VI_ffn[1].weight.numel() == 0, "the 708 MB unfolded VI weight is released"


def test_batch_of_a_frame_equals_each_person_alone(cocoer: CocoERModel, frame: np.ndarray) -> None:
    batch = cocoer.predict(frame, PERSONS)
    for person, together in zip(PERSONS, batch, strict=True):
        alone = cocoer.predict(frame, [person])[0]
        assert together is not None and alone is not None
        for level in cocoer.levels:
            np.testing.assert_allclose(together.scores[level], alone.scores[level], atol=1e-5)
        assert together.exclusion == alone.exclusion
        assert together.level_losses == pytest.approx(alone.level_losses, abs=1e-4)


def test_outputs_follow_the_official_thresholds(cocoer: CocoERModel, frame: np.ndarray) -> None:
    result = cocoer.predict(frame, PERSONS[:1])[0]
    assert result is not None
    final = result.scores[Level.FINAL]
    assert result.pred == tuple(label for label, p in zip(EMOTIC_LABELS, final, strict=True) if p > 0.26)
    for level in (Level.VI, Level.HEAD, Level.BODY, Level.CONTEXT):
        expected = tuple(label for label, p in zip(EMOTIC_LABELS, result.scores[level], strict=True) if p > 0.6)
        assert result.level_pred[level] == expected
    assert sorted(lv.value for lv in result.exclusion) == ["body", "context", "head"]
    order = [result.level_losses[lv] for lv in result.exclusion]
    assert order == sorted(order, reverse=True), "first excluded = largest loss"


@pytest.mark.parametrize(
    ("probs", "threshold", "expected"),
    [
        ([0.26, 0.2600001, 0.9], 0.26, ("b", "c")),  # strictly above, as the original
        ([0.1, 0.2, 0.3], 0.6, ()),
        ([0.1, 0.5, 0.3], None, ("b",)),  # single-label: argmax
    ],
)
def test_threshold_logic(probs: list[float], threshold: float | None, expected: tuple[str, ...]) -> None:
    assert select_labels(("a", "b", "c"), np.array(probs, np.float32), threshold) == expected


def test_configurable_thresholds(checkpoint_dir: Path, frame: np.ndarray, cocoer: CocoERModel) -> None:
    strict = CocoERModel.from_directory(
        checkpoint_dir, final_threshold=0.99, level_threshold=0.999, allow_download=False
    )
    assert strict.label_rule == LabelRule(0.99, 0.999)
    result = strict.predict(frame, PERSONS[:1])[0]
    assert result is not None and all(result.scores[Level.FINAL][EMOTIC_LABELS.index(p)] > 0.99 for p in result.pred)
    np.testing.assert_allclose(
        result.scores[Level.FINAL], cocoer.predict(frame, PERSONS[:1])[0].scores[Level.FINAL], atol=1e-6
    )


def test_person_without_a_face_uses_an_estimated_head(cocoer: CocoERModel, frame: np.ndarray) -> None:
    result = cocoer.predict(frame, [PersonRegion((140, 20, 330, 299), None)])[0]
    assert result is not None and result.scores[Level.HEAD].shape == (26,)
    x1, y1, x2, y2 = estimated_head((140, 20, 330, 299))
    assert 140 < x1 < x2 < 330 and y1 == 20 and y2 < 299


def test_infer_cli_prints_the_original_output_dict(checkpoint_dir: Path, shared_media: Path, tmp_path: Path) -> None:
    image = media_file(shared_media, "cocoer_test_o1.png")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer.tools.infer",
            "--input",
            str(image),
            "--ckpt",
            str(checkpoint_dir / "GWT.pth"),
            "--out",
            str(tmp_path),
            "--offline",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert list(printed) == ["0"]
    person = printed["0"]
    assert list(person) == ["pred", "VI", "head", "body", "ctx", "emo_process"]
    assert set(person["pred"]) <= set(EMOTIC_LABELS)
    assert sorted(person["emo_process"]) == ["body-level", "context-level", "head-level"]
    written = cv2.imread(str(tmp_path / "cocoer_test_o1.png"))
    original = cv2.imread(str(image))
    green = np.all(written == (0, 255, 0), axis=2) & ~np.all(original == (0, 255, 0), axis=2)
    assert green.sum() > 300, "the person box and labels are drawn in the original's green"


def test_infer_never_writes_over_its_input(checkpoint_dir: Path, shared_media: Path, tmp_path: Path) -> None:
    # The annotated copy went to `<out>/<input name>`: a photo inside `outputs/` (the default --out) was
    # replaced by its annotated copy, the original lost.
    out = tmp_path / "outputs"
    out.mkdir()
    photo = out / "family.png"
    shutil.copy(media_file(shared_media, "cocoer_test_o1.png"), photo)
    original = photo.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "streamer.tools.infer", "--input", str(photo), "--ckpt",
         str(checkpoint_dir / "GWT.pth"), "--out", str(out), "--offline"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert photo.read_bytes() == original, "the input is as it was"
    assert sorted(p.name for p in out.iterdir()) == ["family.png", "family_annotated.png"]
    assert f"wrote {out / 'family_annotated.png'}" in done.stderr


def test_infer_names_its_output_as_an_image_and_says_where_it_cannot_write(
    shared_media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo"  # a JPEG without an extension: cv2.imwrite raised "could not find a writer"
    shutil.copy(media_file(shared_media, "cocoer_test_p1.jpg"), photo)
    assert annotated_path(photo, tmp_path / "outputs") == tmp_path / "outputs" / "photo.png"
    assert annotated_path(tmp_path / "shot.heic", tmp_path) == tmp_path / "shot.png", "a format OpenCV does not write"
    in_the_way = tmp_path / "outputs"
    in_the_way.write_text("a file where the folder should be")
    # Before the models load: said at once, and not as a traceback (OSError was not caught).
    assert infer_main(["--input", str(photo), "--ckpt", str(tmp_path / "GWT.pth"), "--out", str(in_the_way)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: cannot write {in_the_way} (File exists)"


def test_infer_cli_with_a_missing_checkpoint(shared_media: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer.tools.infer",
            "--input",
            str(media_file(shared_media, "cocoer_test_o1.png")),
            "--ckpt",
            str(tmp_path / "GWT.pth"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: CocoER checkpoint")
    assert "Traceback" not in done.stderr


@pytest.mark.integration
def test_pipeline_picks_cocoer_when_its_weights_are_present(
    checkpoint_dir: Path, shared_media: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_stream.py"),
            "--source",
            str(media_file(shared_media, "person_in_context_liveportrait_s32.mp4")),
            "--weights",
            str(checkpoint_dir),
            "--out",
            str(tmp_path),
            "--max-frames",
            "6",
            "--no-progress",
            "--set",
            "detector.allow_download=false",
            "--set",
            "emotion.allow_download=false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    assert "; emotion CocoER" in done.stderr
    lines = [
        json.loads(line) for line in (tmp_path / "person_in_context_liveportrait_s32.jsonl").read_text().splitlines()
    ]
    assert len(lines) == 6
    person = lines[-1]["persons"][0]  # tracks show from their 3rd detection (tracker.n_init)
    assert lines[0]["model"] == "cocoer"
    assert set(person["raw"]["scores"]) == {"final", "vi", "head", "body", "context"}
    assert len(person["raw"]["scores"]["final"]) == 26
    assert sorted(person["raw"]["exclusion"]) == ["body-level", "context-level", "head-level"]
    assert set(person["raw"]["level_losses"]) == {"head", "body", "context"}
    assert "exclusion" in person["smoothed"]


def test_a_batch_mixing_persons_of_several_frames_equals_per_frame_calls(
    cocoer: CocoERModel, frame: np.ndarray, shared_media: Path
) -> None:
    """Each person's context is its own frame: one call over two frames (two streams) = one call per frame."""
    from cocoer_core.api import FramePersons

    other = cv2.resize(
        cv2.imread(str(media_file(shared_media, "cocoer_test_o2.png"))), (frame.shape[1], frame.shape[0])
    )
    mixed = cocoer.predict_frames(
        [FramePersons(frame, tuple(PERSONS[:2])), FramePersons(other, ()), FramePersons(other, tuple(PERSONS[1:]))]
    )
    assert [len(m) for m in mixed] == [2, 0, 2]
    for got, alone in [(mixed[0], cocoer.predict(frame, PERSONS[:2])), (mixed[2], cocoer.predict(other, PERSONS[1:]))]:
        for a, b in zip(got, alone, strict=True):
            for level in cocoer.levels:
                np.testing.assert_allclose(a.scores[level], b.scores[level], atol=1e-5)
            assert a.exclusion == b.exclusion
    assert not np.allclose(mixed[0][1].scores[Level.CONTEXT], mixed[2][0].scores[Level.CONTEXT], atol=1e-3), (
        "the same person box in another frame sees another context"
    )


def test_infer_cli_refuses_a_decompression_bomb_in_one_line(tmp_path: Path) -> None:
    # A real PNG of 20000x10000 black pixels, 0.6 MB on disk and 600 MB decoded: the tool decoded it whole and
    # went on to search it for faces. Now it is refused from its header, before any checkpoint is read.
    bomb = png_bomb(tmp_path / "bomb.png", 20000, 10000, whole=True)
    command = [sys.executable, "-m", "streamer.tools.infer", "--input", str(bomb), "--ckpt", str(tmp_path / "GWT.pth")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {bomb} is too large an image (over 179 M pixels)"]
