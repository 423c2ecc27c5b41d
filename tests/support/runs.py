"""Reference single-source runs, and comparing runs' JSONL (same frames, ids, boxes; scores to float noise)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import media_file
from tests.test_cli import OFFLINE, run_cli

CLIPS = ("faces_two_people_head_pose.mp4", "face_man_smiling_short.mp4")
FRAMES = 30


def jsonl_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _boxes_close(a: list[float] | None, b: list[float] | None, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    return all(abs(u - v) <= tol for u, v in zip(a, b, strict=True))


def assert_same_run(a: list[dict], b: list[dict], box_tol: float = 0.0) -> None:
    """Same frames, ids, boxes and labels; scores equal up to float noise (batches differ).

    `box_tol` (pixels) allows for detectors run on batches, whose float noise can move a box's 0.01 rounding.
    """
    assert [x["frame"] for x in a] == [x["frame"] for x in b]
    for x, y in zip(a, b, strict=True):
        assert x["pts_s"] == y["pts_s"] and x.get("events") == y.get("events")
        assert [p["track_id"] for p in x["persons"]] == [p["track_id"] for p in y["persons"]]
        for p, q in zip(x["persons"], y["persons"], strict=True):
            assert _boxes_close(p["body_box"], q["body_box"], box_tol), (p["body_box"], q["body_box"])
            assert _boxes_close(p["head_box"], q["head_box"], box_tol), (p["head_box"], q["head_box"])
        for p, q in zip(x["persons"], y["persons"], strict=True):
            for kind in ("raw", "smoothed"):
                if p[kind] is None or q[kind] is None:
                    assert p[kind] is q[kind] is None
                    continue
                for level, scores in p[kind]["scores"].items():
                    for label, value in scores.items():
                        assert abs(value - q[kind]["scores"][level][label]) < 1e-4


def single_source_runs(shared_media: Path, out: Path) -> dict[str, list[dict]]:
    """Each clip alone through the CLI (30 frames): the reference for the multi-source and Ray runs."""
    runs = {}
    for clip in CLIPS:
        done = run_cli(
            "--source", str(media_file(shared_media, clip)), "--out", str(out), "--max-frames", str(FRAMES), *OFFLINE
        )
        assert done.returncode == 0, done.stderr
        runs[clip] = jsonl_lines(out / f"{Path(clip).stem}.jsonl")
    return runs
