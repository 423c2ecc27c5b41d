"""The HTML report and per-person CSVs, from a real run's JSONL and video; truncated input; a real browser."""

from __future__ import annotations

import base64
import csv
import re
import shutil
import subprocess
from pathlib import Path

import cv2

import numpy as np
import pytest

from streamer.report import write_report
from streamer.report.__main__ import main as report_main
from streamer.report.summary import Decimated
from tests.conftest import media_file
from tests.support.runs import jsonl_lines
from tests.test_cli import OFFLINE, run_cli

pytestmark = pytest.mark.integration
CLIP = "faces_two_people_head_pose.mp4"  # two people side by side, 480x270, 56 frames


@pytest.fixture(scope="module")
def run_dir(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    done = run_cli("--source", str(media_file(shared_media, CLIP)), "--out", str(out), *OFFLINE)
    assert done.returncode == 0, done.stderr
    return out


def _images(page: str) -> list[np.ndarray | None]:
    return [
        cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        for data in re.findall(r'src="data:image/(?:png|jpeg);base64,([^"]+)"', page)
    ]


def test_a_file_run_writes_its_report_with_a_section_per_person(run_dir: Path) -> None:
    page = (run_dir / "faces_two_people_head_pose.html").read_text()
    lines = jsonl_lines(run_dir / "faces_two_people_head_pose.jsonl")
    ids = sorted({p["track_id"] for line in lines for p in line["persons"]})
    assert len(ids) >= 2
    assert re.findall(r'<section class="track" id="track-(\d+)"', page) == [str(i) for i in ids]
    images = _images(page)
    assert len(images) >= 2 + 3 * len(ids) - 1, "session plots, and per person a face, a timeline and a strip"
    assert all(image is not None and image.shape[0] > 10 and image.std() > 5 for image in images)


def test_the_csv_rows_match_the_jsonl(run_dir: Path) -> None:
    lines = jsonl_lines(run_dir / "faces_two_people_head_pose.jsonl")
    folder = run_dir / "faces_two_people_head_pose_persons"
    for track_id in {p["track_id"] for line in lines for p in line["persons"]}:
        expected = [(line, p) for line in lines for p in line["persons"] if p["track_id"] == track_id]
        with (folder / f"track_{track_id}.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == len(expected)
        for row, (line, person) in zip(rows, expected, strict=True):
            assert int(row["frame"]) == line["frame"] and float(row["time_s"]) == pytest.approx(line["pts_s"], abs=1e-6)
            for label, value in person["smoothed"]["scores"]["final"].items():
                assert float(row[f"smoothed_{label}"]) == pytest.approx(value)
            raw = person["raw"]["scores"]["final"] if person["raw"] else {}
            assert all(
                (row[f"raw_{k}"] == "") if not raw else float(row[f"raw_{k}"]) == pytest.approx(raw[k])
                for k in person["smoothed"]["scores"]["final"]
            )


def test_a_truncated_jsonl_still_gives_a_report_and_says_what_was_skipped(run_dir: Path, tmp_path: Path) -> None:
    lines = (run_dir / "faces_two_people_head_pose.jsonl").read_bytes().splitlines(keepends=True)
    cut = tmp_path / "crashed.jsonl"
    # Lines 0-9, line 10 split by a garbage line, lines 11-20, then half of line 21: a crash mid-write.
    half, tail = len(lines[10]) // 2, len(lines[21]) // 2
    cut.write_bytes(
        b"".join([*lines[:10], lines[10][:half], b"\n{not json}\n", lines[10][half:], *lines[11:21], lines[21][:tail]])
    )
    shutil.copy(run_dir / "faces_two_people_head_pose.mp4", tmp_path / "crashed.mp4")
    done = write_report(cut)
    page = done.html.read_text()
    assert done.skipped_lines == 4, "both halves of the split line, the garbage line and the cut last line"
    assert "model fer2013-mini-xception · 20 frames" in page
    assert "4 line(s) of the JSONL could not be read" in page and '<section class="track"' in page


def test_the_report_command_names_what_is_in_its_way(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "cannot read or write the report (Not a directory)" naming nothing, and "no such file" for a folder.
    in_the_way = tmp_path / "reports"
    in_the_way.write_text("a file where the folder should be")
    assert report_main([str(run_dir / "faces_two_people_head_pose.jsonl"), "--out", str(in_the_way)]) == 2
    said = capsys.readouterr().err.strip()
    assert said.startswith(f"error: cannot read or write {in_the_way}") and said.endswith("(Not a directory)")
    assert report_main([str(run_dir)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {run_dir} is a folder: give a run's <stem>.jsonl in it"


def test_long_timelines_are_bounded() -> None:
    series = Decimated(limit=100)
    for i in range(100_000):
        series.add(i * 0.04, i)
    assert 50 <= len(series.points) <= 100
    assert series.points[0][1] == 0 and series.points[-1][1] > 99_000, "it still spans the whole session"


def test_the_report_opens_in_a_real_browser(run_dir: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    page = run_dir / "faces_two_people_head_pose.html"
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and "Person 1" in dom.stdout and "Session" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri()], capture_output=True, timeout=120
    )
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1400, 1000)
    top = image[:700]
    assert (top < 200).mean() > 0.02, "text and plots are drawn, not a blank page"


def test_people_without_a_face_get_the_reason_a_body_picture_and_every_csv_row(
    shared_media: Path, tmp_path: Path
) -> None:
    """PETS09's pedestrians are too far for a face: the face-only default model shows nothing for them, and the
    report says why, shows each one's body, and still writes a CSV row for every frame of every person."""
    clip = media_file(shared_media, "pedestrians_pets09_s2l1_480x360.avi")
    done = run_cli("--source", str(clip), "--out", str(tmp_path), "--max-frames", "8", *OFFLINE)
    assert done.returncode == 0, done.stderr
    lines = jsonl_lines(tmp_path / f"{clip.stem}.jsonl")
    persons = [p for line in lines for p in line["persons"]]
    assert persons and all(p["smoothed"] is None and p["no_emotion"] == "no_face" for p in persons)
    page = (tmp_path / f"{clip.stem}.html").read_text()
    sections = re.findall(r'<section class="track" id="track-(\d+)".*?</section>', page, re.S)
    assert len(sections) == len({p["track_id"] for p in persons})
    assert page.count("no emotion: no face seen") == len(sections)
    bodies = re.findall(r'alt="body of person \d+" src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(bodies) == len(sections), "a body thumbnail for each person never seen with a face"
    for data in bodies:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > image.shape[1], "a standing person: taller than wide"
    for track_id in {p["track_id"] for p in persons}:
        with (tmp_path / f"{clip.stem}_persons" / f"track_{track_id}.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        frames = [line["frame"] for line in lines for p in line["persons"] if p["track_id"] == track_id]
        assert [int(r["frame"]) for r in rows] == frames and all(r["no_emotion"] == "no_face" for r in rows)
