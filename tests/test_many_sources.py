"""Many sources in one process: the same outputs as one at a time, failures contained, live and files together."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests.conftest import ROOT, media_file
from tests.support.runs import CLIPS, assert_same_run, jsonl_lines
from tests.test_cli import ENV, OFFLINE, run_cli

pytestmark = pytest.mark.integration


def test_two_files_at_once_equal_their_single_source_runs_and_a_missing_third_is_reported(
    shared_media: Path, tmp_path: Path, single_source_runs: dict[str, list[dict]]
) -> None:
    sources = [str(media_file(shared_media, clip)) for clip in CLIPS] + [str(tmp_path / "gone.mp4")]
    args = [a for s in sources for a in ("--source", s)]
    done = run_cli(*args, "--out", str(tmp_path / "out"), "--max-frames", "30", "--no-progress", *OFFLINE[:-1])
    assert done.returncode == 2, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: no such file: {tmp_path / 'gone.mp4'}"
    ]
    for clip in CLIPS:
        stem = Path(clip).stem
        lines = jsonl_lines(tmp_path / "out" / f"{stem}.jsonl")
        assert len(lines) == 30
        assert_same_run(lines, single_source_runs[clip])
        with av.open(str(tmp_path / "out" / f"{stem}.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == 30
    assert (
        sum(
            bool(p["raw"])
            for line in jsonl_lines(tmp_path / "out" / "faces_two_people_head_pose.jsonl")
            for p in line["persons"]
        )
        > 30
    )


def test_detection_batched_across_sources_gives_the_single_source_results(
    shared_media: Path, tmp_path: Path, single_source_runs: dict[str, list[dict]]
) -> None:
    """`detector.batch_sources=yes` (what CUDA gets by default): one detector call per round of frames."""
    args = [a for clip in CLIPS for a in ("--source", str(media_file(shared_media, clip)))]
    done = run_cli(
        *args, "--out", str(tmp_path), "--max-frames", "30", "--set", "detector.batch_sources=yes",
        "--set", "sink.video=false", *OFFLINE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    calls = [line for line in done.stderr.splitlines() if "detection batched across sources" in line]
    assert calls, done.stderr
    frames, batches = (int(w) for w in calls[0].split(":")[-1].split() if w.isdigit())
    assert frames == 60 and batches < 45, calls[0]
    for clip in CLIPS:
        assert_same_run(jsonl_lines(tmp_path / f"{Path(clip).stem}.jsonl"), single_source_runs[clip], box_tol=0.05)


def test_a_sources_file_a_live_camera_and_a_file_together(shared_media: Path, rtsp_server, tmp_path: Path) -> None:
    server = rtsp_server(
        "--file",
        str(media_file(shared_media, "face_expressive_liveportrait_d12.mp4")),
        "--user",
        "al",
        "--password",
        "pw9",
    )
    listing = tmp_path / "cameras.yaml"
    listing.write_text(
        "sources:\n"
        f"  - {{name: door, spec: '{server.url('al', 'pw9')}', read_timeout_s: 3, max_frames: 125}}\n"
        f"  - {{spec: '{media_file(shared_media, 'face_woman_head_pose.mp4')}'}}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_stream.py"),
            "--sources",
            str(listing),
            "--out",
            str(tmp_path / "out"),
            "--max-frames",
            "40",
            *OFFLINE,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    assert "pw9" not in done.stderr + done.stdout
    file_lines = jsonl_lines(tmp_path / "out" / "face_woman_head_pose.jsonl")
    assert [x["frame"] for x in file_lines] == list(range(23)), "the file keeps every frame (no-drop policy)"
    live_jsonl = next((tmp_path / "out").glob("door_*.jsonl"))
    live = jsonl_lines(live_jsonl)
    assert 5 <= len(live) <= 125 and all(b["frame"] > a["frame"] for a, b in itertools.pairwise(live))
    segment = next((tmp_path / "out").glob("door_*_001.mp4"))
    with av.open(str(segment)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(live)
