"""The head-box pass keeps its progress: stopped part-way (Ctrl+C, a crash, SIGKILL), the same command carries on.

Before, an interrupted pass kept nothing: an hour of MTCNN over EMOTIC's 23,000 images started over from the
first image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cocoer_core.data import DatasetError, read_head_boxes
from streamer.detectors.base import FaceDetector, ScoredBox
from streamer.tools import head_boxes
from streamer.tools.head_progress import progress_path
from tests.support.datasets import Image


class Counted:
    """The real face detector, counting its calls; Ctrl+C (KeyboardInterrupt) at call `stop_at` when set."""

    def __init__(self, inner: FaceDetector, stop_at: int | None = None) -> None:
        self.inner, self.name, self.stop_at, self.calls = inner, inner.name, stop_at, 0

    def detect(self, image_bgr: np.ndarray) -> list[ScoredBox]:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner.detect(image_bgr)


def _with_detector(monkeypatch: pytest.MonkeyPatch, stop_at: int | None = None) -> list[Counted]:
    made: list[Counted] = []
    build = head_boxes.build_face_detector

    def counted(config, device):  # type: ignore[no-untyped-def]
        made.append(Counted(build(config, device), stop_at))
        return made[-1]

    monkeypatch.setattr(head_boxes, "build_face_detector", counted)
    return made


def test_an_interrupted_pass_carries_on_where_it_stopped_and_ends_as_one_pass_would(
    emotic: tuple[Path, list[Image]],
    emotic_heads: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = emotic
    out = tmp_path / "heads" / "emotic.json"
    run = ["--dataset", "emotic", "--root", str(root), "--out", str(out)]
    first = _with_detector(monkeypatch, stop_at=4)
    with pytest.raises(KeyboardInterrupt):
        head_boxes.main(run)
    said = capsys.readouterr().err
    assert "stopped at 3 of " in said and "the same command carries on from there" in said
    progress = progress_path(out)
    lines = progress.read_text().splitlines()
    assert len(lines) == 1 + 3 and first[0].calls == 4 and not out.exists()
    with progress.open("a") as torn:
        torn.write('{"image": "emotic/mscoco/ima')  # a kill in the middle of writing a line

    again = _with_detector(monkeypatch)
    assert head_boxes.main(run) == 0
    said = capsys.readouterr().err
    expected = read_head_boxes(emotic_heads).heads
    total = len({key.rsplit("#", 1)[0] for key in expected})  # keys are <image>#<person>
    assert f"carrying on: 3 of {total} images done before" in said
    assert again[0].calls == total - 3, "only the images not done before are searched"
    assert read_head_boxes(out).heads == expected, "the same file as one pass writes"
    assert not progress.exists(), "the progress is removed once the file is written"


def test_progress_of_another_pass_or_asked_to_start_over_is_not_used(
    emotic: tuple[Path, list[Image]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = emotic
    out = tmp_path / "heads.json"
    run = ["--dataset", "emotic", "--root", str(root), "--out", str(out)]
    _with_detector(monkeypatch, stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        head_boxes.main(run)
    progress = progress_path(out)
    header, *done = progress.read_text().splitlines()
    other = {**json.loads(header), "detector": "haar"}
    progress.write_text("\n".join([json.dumps(other), *done]) + "\n")
    capsys.readouterr()
    counted = _with_detector(monkeypatch, stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        head_boxes.main(run)
    said = capsys.readouterr().err
    assert "is another pass's progress (dataset, detector or rule): starting over" in said
    assert "carrying on" not in said and counted[0].calls == 2
    assert progress.read_text().splitlines()[0] == header, "this pass's progress replaced the other's"
    fresh = _with_detector(monkeypatch, stop_at=1)
    with pytest.raises(KeyboardInterrupt):
        head_boxes.main([*run, "--fresh"])
    assert "carrying on" not in capsys.readouterr().err and fresh[0].calls == 1


def test_a_head_box_that_is_not_finite_is_refused_naming_its_entry(tmp_path: Path) -> None:
    # JSON may hold NaN and Infinity; a NaN head box was read as one, and cropped nothing.
    path = tmp_path / "heads.json"
    path.write_text('{"heads": {"a.jpg#0": [1, 2, 30, 40, 0.9, "face"], "b.jpg#1": [NaN, 2, 30, 40, 0.9, "face"]}}')
    with pytest.raises(DatasetError, match=r"entry 'b\.jpg#1' is not \[x1, y1, x2, y2, score, how\]"):
        read_head_boxes(path)
