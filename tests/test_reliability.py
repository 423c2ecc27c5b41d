"""The CLI under faults, as a user meets them: signals, a full disk, damaged and odd inputs, two runs at once."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests.conftest import ROOT, media_file
from tests.support.damaged import corrupt_middle, encode, phone_portrait
from tests.test_cli import ENV, OFFLINE, _assert_one_error_line, run_cli

LONG_CLIP = "face_expressive_liveportrait_d6.mp4"  # 1008 frames: minutes on CPU, so runs get interrupted midway


def _popen(*args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_stream.py"), *args, *OFFLINE],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        **kwargs,
    )


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _frames_in(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return [f for f in container.decode(video=0)]


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen[str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never reached {count} lines")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(["--config", "{bad_yaml}"], "is not valid YAML at line 3", id="bad-yaml"),
        pytest.param(["--config", "{list_yaml}"], "must be a mapping", id="yaml-not-a-mapping"),
        pytest.param(["--set", "emotion.stride=abc"], "emotion.stride", id="set-wrong-type-names-key"),
        pytest.param(["--source", ""], "--source is empty", id="empty-source"),
        pytest.param(["--max-frames", "-5"], "source.max_frames must be >= 0", id="negative-max-frames"),
        pytest.param(["--set", "sink.preset=bogus"], "sink.preset must be one of", id="bad-encoder-preset"),
        pytest.param(["--source", "7"], "camera 7 does not exist", id="missing-webcam-no-opencv-noise"),
    ],
)
def test_config_and_cli_errors_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("source:\n  spec: [demo\nsink: {}\n")
    list_yaml = tmp_path / "list.yaml"
    list_yaml.write_text("- source\n- sink\n")
    args = [a.format(bad_yaml=bad_yaml, list_yaml=list_yaml) for a in args]
    done = run_cli(*args, "--out", str(tmp_path / "out"), *OFFLINE)
    _assert_one_error_line(done, needle)
    if "yaml" in args[-1]:
        assert args[-1] in done.stderr, "the error names the file"


@pytest.mark.integration
def test_repeated_signals_during_finalization_never_abort_and_lose_nothing(shared_media: Path, tmp_path: Path) -> None:
    """Ctrl+C, then Ctrl+C and SIGTERM again while finalizing: exit 130, and the MP4 has every JSONL frame."""
    process = _popen("--source", str(media_file(shared_media, LONG_CLIP)), "--out", str(tmp_path))
    jsonl = tmp_path / "face_expressive_liveportrait_d6.jsonl"
    _wait_for_lines(jsonl, 15, process)
    process.send_signal(signal.SIGINT)
    for again in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        time.sleep(0.05)
        if process.poll() is None:
            process.send_signal(again)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "terminate called" not in stderr and "Traceback" not in stderr
    lines = _lines(jsonl)
    frames = _frames_in(tmp_path / "face_expressive_liveportrait_d6.mp4")
    assert len(lines) >= 15 and len(frames) == len(lines)
    assert [round(float(f.time), 3) for f in frames] == [round(line["pts_s"], 3) for line in lines]


@pytest.mark.integration
def test_sigkill_loses_at_most_about_two_seconds(shared_media: Path, tmp_path: Path) -> None:
    process = _popen("--source", str(media_file(shared_media, LONG_CLIP)), "--out", str(tmp_path))
    jsonl = tmp_path / "face_expressive_liveportrait_d6.jsonl"
    _wait_for_lines(jsonl, 5, process)
    started, first = time.monotonic(), len(jsonl.read_text().splitlines())
    _wait_for_lines(jsonl, first + 40, process)
    rate = (len(jsonl.read_text().splitlines()) - first) / (time.monotonic() - started)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    written = len(jsonl.read_text().splitlines())
    playable = len(_frames_in(tmp_path / "face_expressive_liveportrait_d6.mp4"))
    assert playable > 0, "file-mode MP4s are crash-safe (fragmented)"
    # At most ~2 s lost: of video (60 frames at 30 fps) or of wall-clock work, whichever is less.
    assert written - playable <= min(60, rate * 2.5) + 2, (written, playable, rate)


@pytest.mark.integration
def test_a_full_disk_is_one_error_line_naming_the_output(shared_media: Path, tmp_path: Path) -> None:
    """A file-size limit stands in for a disk filling up: exit 2, no abort, what was written plays."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill, as ENOSPC would be
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    process = _popen(
        "--source", str(media_file(shared_media, LONG_CLIP)), "--out", str(tmp_path), preexec_fn=limit_file_size
    )
    _, stderr = process.communicate(timeout=600)
    video = tmp_path / "face_expressive_liveportrait_d6.mp4"
    assert process.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot write {video} (File too large)"], stderr
    assert "terminate called" not in stderr and "Traceback" not in stderr
    lines = _lines(tmp_path / "face_expressive_liveportrait_d6.jsonl")  # every line parses
    frames = _frames_in(video)
    assert 0 < len(frames) <= len(lines) < 1008


@pytest.mark.integration
def test_a_damaged_file_is_analysed_to_the_end(shared_media: Path, tmp_path: Path) -> None:
    damaged = corrupt_middle(media_file(shared_media, "face_man_smiling_short.mp4"), tmp_path / "damaged.mp4", 8000)
    done = run_cli("--source", str(damaged), "--out", str(tmp_path / "out"), *OFFLINE)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("undecodable") == 2
    lines = _lines(tmp_path / "out" / "damaged.jsonl")
    assert 55 <= len(lines) < 72 and len(_frames_in(tmp_path / "out" / "damaged.mp4")) == len(lines)
    assert sum(bool(line["persons"]) for line in lines) >= len(lines) - 3


@pytest.mark.integration
def test_a_phone_clip_is_analysed_and_written_upright(shared_media: Path, tmp_path: Path) -> None:
    phone = phone_portrait(media_file(shared_media, "person_in_context_liveportrait_s20.mp4"), tmp_path / "phone.mp4")
    done = run_cli("--source", str(phone), "--out", str(tmp_path / "out"), *OFFLINE)
    assert done.returncode == 0, done.stderr
    frames = _frames_in(tmp_path / "out" / "phone.mp4")
    assert (frames[0].width, frames[0].height) == (480, 908) and frames[0].rotation == 0
    lines = _lines(tmp_path / "out" / "phone.jsonl")
    assert len(lines) == 12 and all(any(p["head_box"] for p in line["persons"]) for line in lines[2:])


@pytest.mark.integration
@pytest.mark.parametrize("size", [(1, 1), (16, 16)], ids=["1x1", "16x16"])
def test_tiny_videos_are_processed_with_no_persons(shared_media: Path, tmp_path: Path, size: tuple[int, int]) -> None:
    import cv2

    photo = cv2.imread(str(media_file(shared_media, "face_single_portrait.jpg")))
    tiny = encode([cv2.resize(photo, size, interpolation=cv2.INTER_AREA)] * 5, tmp_path / "tiny.mp4")
    done = run_cli("--source", str(tiny), "--out", str(tmp_path / "out"), *OFFLINE)
    assert done.returncode == 0, done.stderr
    lines = _lines(tmp_path / "out" / "tiny.jsonl")
    assert len(lines) == 5 == len(_frames_in(tmp_path / "out" / "tiny.mp4"))
    assert all(line["persons"] == [] for line in lines)


@pytest.mark.integration
def test_two_runs_into_one_folder_never_splice_a_file(shared_media: Path, tmp_path: Path) -> None:
    clip = str(media_file(shared_media, "face_man_smiling_short.mp4"))
    first = _popen("--source", clip, "--out", str(tmp_path))
    jsonl = tmp_path / "face_man_smiling_short.jsonl"
    _wait_for_lines(jsonl, 3, first)
    second = run_cli("--source", clip, "--out", str(tmp_path), *OFFLINE)
    _assert_one_error_line(second, "another run is writing")
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    lines = _lines(jsonl)
    assert [line["frame"] for line in lines] == list(range(72))
    again = run_cli("--source", clip, "--out", str(tmp_path), "--max-frames", "4", *OFFLINE)
    assert again.returncode == 0 and "replacing" in again.stderr, again.stderr
    assert len(_lines(jsonl)) == 4
