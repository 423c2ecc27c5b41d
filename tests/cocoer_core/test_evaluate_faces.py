"""`python -m streamer.tools.evaluate_faces` on a CSV of real labelled faces."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2

import numpy as np

from cocoer_core.evaluate_faces import Evaluation, read_label_csv, report
from tests.conftest import ROOT, media_file


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer.tools.evaluate_faces", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_evaluates_real_faces_and_ends_with_accuracy(shared_media: Path, tmp_path: Path) -> None:
    images = tmp_path / "faces"
    images.mkdir()
    for name in ("expr_happy_man.png", "expr_angry_man.png", "expr_sad_woman.png", "face_single_portrait.jpg"):
        shutil.copy(media_file(shared_media, name), images / name)
    # A FER2013-style 48x48 grey crop, which MTCNN cannot find a face in: used whole.
    happy = cv2.imread(str(images / "expr_happy_man.png"))
    h, w = happy.shape[:2]
    crop = cv2.cvtColor(happy[int(0.12 * h) : int(0.52 * h), int(0.28 * w) : int(0.74 * w)], cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(images / "fer_style.png"), cv2.resize(crop, (48, 48)))
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(
        "path,label\n"
        "faces/expr_happy_man.png,happy\n"
        "faces/expr_angry_man.png,Angry\n"
        "faces/expr_sad_woman.png,sad\n"
        "faces/face_single_portrait.jpg,happy\n"
        "faces/expr_happy_man.png,contempt\n"
        "faces/fer_style.png,happy\n"
    )
    done = _run(str(csv_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("accuracy=") and lines[-1].endswith(" n=5")
    accuracy = float(lines[-1].split()[0].split("=")[1])
    assert accuracy >= 0.8
    assert any("skipped 1 rows" in line and "contempt" in line for line in lines)
    assert any("confusion matrix" in line for line in lines)
    happy_row = next(line for line in lines if line.startswith("happy ") and len(line.split()) == 5)
    assert happy_row.split()[-1] == "3"


def test_bad_csv_is_one_line_exit_2(tmp_path: Path) -> None:
    done = _run(str(tmp_path / "missing.csv"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no such CSV" in done.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("just-one-column\n")
    done = _run(str(bad))
    assert done.returncode == 2 and "expected 'path,label'" in done.stderr


def test_report_maths() -> None:
    cm = np.zeros((7, 7), dtype=np.int64)
    cm[3, 3] = 3  # happy right
    cm[0, 3] = 1  # angry called happy
    text = report(Evaluation(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"), cm))
    assert text.splitlines()[-1] == "accuracy=0.750 n=4"
    happy = next(line for line in text.splitlines() if line.startswith("happy"))
    assert happy.split()[1:] == ["0.750", "1.000", "0.857", "3"]


def test_csv_paths_are_relative_to_the_csv(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    csv_path = tmp_path / "sub" / "l.csv"
    csv_path.write_text("a.png,happy\n\n../b.png,sad\n")
    rows = read_label_csv(csv_path)
    assert rows == [((tmp_path / "sub" / "a.png").resolve(), "happy"), ((tmp_path / "b.png").resolve(), "sad")]
