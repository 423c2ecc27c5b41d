"""Privacy in real runs: masked and ignored zones, the video's metadata, retention, aggregate-only output and page."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.detectors.faces import MtcnnFaceDetector
from streamer.privacy.retention import LOCK, MANIFEST
from tests.conftest import ROOT, media_file
from tests.support.browser import dump_dom
from tests.support.runs import jsonl_lines
from tests.support.servers import free_port, wait_for_live_view
from tests.test_cli import ENV, OFFLINE, run_cli

pytestmark = pytest.mark.integration
CLIP = "faces_two_people_head_pose.mp4"  # 480x270: one person left (face x < 140), one right (face x > 290)
LEFT = "[[0,0],[0.45,0],[0.45,1],[0,1]]"
RIGHT = "[[0.55,0],[1,0],[1,1],[0.55,1]]"
PER_PERSON = ("track_id", "body_box", "head_box", "_persons/", "data:image")


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def test_a_masked_zone_is_flat_in_the_video_and_nobody_there_is_reported_and_old_outputs_go(
    shared_media: Path, tmp_path: Path
) -> None:
    clip = media_file(shared_media, CLIP)
    old, stranger = tmp_path / "last_week.mp4", tmp_path / "holiday.mp4"
    for path in (old, stranger):
        path.write_bytes(b"old")
        os.utime(path, (time.time() - 8 * 86400,) * 2)
    (tmp_path / MANIFEST).write_text(json.dumps({"path": old.name}) + "\n")  # an earlier run's
    done = run_cli(
        "--source", str(clip), "--out", str(tmp_path), "--max-frames", "8",
        "--set", f"privacy.mask=[{LEFT}]", "--set", "retention.max_age=7d", *OFFLINE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    frames = _frames(tmp_path / f"{clip.stem}.mp4")
    assert len(frames) == 8
    for original, image in zip(_frames(clip), frames, strict=False):
        # Inside the zone, off its edge (the codec blurs edges), the stats line and the legend: only the
        # mask's grey (128) and whatever labels the overlay draws over it.
        zone, before = image[20:230, 4:200].astype(int), original[20:230, 4:200].astype(int)
        assert before.std() > 20, "the input shows the scene there"
        assert (np.abs(zone - 128) <= 6).all(axis=2).mean() > 0.9, "a masked zone is one flat colour in the video"
        assert image[:, 260:].std() > 20, "the rest is the scene"
    lines = jsonl_lines(tmp_path / f"{clip.stem}.jsonl")
    centres = [(p["body_box"][0] + p["body_box"][2]) / 2 for line in lines for p in line["persons"]]
    assert centres and min(centres) > 0.45 * 480, "nobody inside the masked zone is detected or reported"
    assert any(p["smoothed"] for line in lines for p in line["persons"]), "the person outside is analysed"
    with av.open(str(tmp_path / f"{clip.stem}.mp4")) as container:
        assert "faces: blur" in container.metadata["comment"], "the video says how faces were hidden"
        assert json.loads(container.metadata["description"])["privacy"]["masked_zones"] == 1
    declared = json.loads((tmp_path / "run.json").read_text())
    assert declared["privacy"]["mask"] and declared["retention"]["max_age"] == "7d"
    assert not old.exists() and stranger.exists(), "retention deletes its own old files, never another's"
    listed = {json.loads(line)["path"] for line in (tmp_path / MANIFEST).read_text().splitlines()}
    assert {f"{clip.stem}.mp4", f"{clip.stem}.jsonl", f"{clip.stem}.html", "run.json"} <= listed


def test_an_ignored_zone_stays_in_the_video_but_nobody_there_is_analysed(shared_media: Path, tmp_path: Path) -> None:
    clip = media_file(shared_media, CLIP)
    done = run_cli(
        "--source", str(clip), "--out", str(tmp_path), "--max-frames", "8", "--set", f"analysis.ignore=[{RIGHT}]",
        *OFFLINE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = jsonl_lines(tmp_path / f"{clip.stem}.jsonl")
    centres = [(p["body_box"][0] + p["body_box"][2]) / 2 for line in lines for p in line["persons"]]
    assert centres and max(centres) < 0.55 * 480, "nobody in the ignored zone is tracked or analysed"
    faces = MtcnnFaceDetector()
    for image in _frames(tmp_path / f"{clip.stem}.mp4"):
        assert image[:, 270:].std() > 20, "the ignored zone is stored"
        assert faces.detect(image) == [], "the ignored person's face is hidden all the same"


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _events(port: int, count: int) -> list[dict]:
    messages = []
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/events", timeout=30) as response:
        for raw in response:
            if raw.startswith(b"data: "):
                messages.append(json.loads(raw[6:]))
                if len(messages) == count:
                    return messages
    return messages


def test_aggregate_mode_writes_and_serves_counts_and_nothing_per_person(shared_media: Path, tmp_path: Path) -> None:
    name = "face_woman_talking_pexels"  # 472 frames: the run outlasts the checks; it is stopped with Ctrl+C
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, str(ROOT / "run_stream.py"), "--source", str(media_file(shared_media, f"{name}.mp4")),
            "--out", str(tmp_path), "--serve", f"127.0.0.1:{port}",
            "--set", "privacy.mode=aggregate", "--set", "privacy.interval_s=1", *OFFLINE,
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    responses: dict[str, bytes] = {}
    try:
        wait_for_live_view(process, f"http://127.0.0.1:{port}/api/sources", frames=30)
        status, responses["sources"] = _get(port, "/api/sources")
        snapshot = json.loads(responses["sources"])
        assert status == 200 and snapshot["aggregate"] is True
        counts = snapshot["sources"][0]["counts"]
        assert counts["frames"] > 0 and counts["analysed"] > 0 and counts["final"], "the page gets counts"
        assert snapshot["sources"][0]["intervals"], "and the intervals already finished"
        for path in (f"/api/sources/{name}/frame.jpg", f"/api/sources/{name}/stream.mjpg"):
            status, responses[path] = _get(port, path)
            assert status == 404, f"{path}: no image is served in aggregate mode"
        messages = _events(port, 5)
        responses["events"] = json.dumps(messages).encode()
        assert len(messages) == 5 and all(set(m) == {"source", "counts"} for m in messages)
        if shutil.which("chromium"):
            dom = dump_dom(f"http://127.0.0.1:{port}/", budget_ms=None)
            responses["page"] = re.sub(r"<script.*?</script>", "", dom, flags=re.S).encode()  # what it shows
            assert "people on average" in dom and "<img" not in dom, "the page shows counts and no frame"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, 130), stderr
    for where, body in responses.items():
        for word in PER_PERSON:
            assert word.encode() not in body, f"{where} says {word}"
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    stem = f"{name}.counts"
    assert written == sorted([MANIFEST, LOCK, "run.json", f"{stem}.jsonl", f"{stem}.html", f"{stem}.csv"])
    for path in tmp_path.rglob("*"):
        text = path.read_text(encoding="utf-8")
        for word in PER_PERSON:
            assert word not in text, f"{path.name} says {word}"
    intervals = jsonl_lines(tmp_path / f"{stem}.jsonl")
    assert len(intervals) >= 2 and all(i["end_s"] - i["start_s"] == 1 for i in intervals)
    assert sum(i["frames"] for i in intervals) >= 30 and all(i["persons_max"] <= 2 for i in intervals)
    assert "aggregate-only" in (tmp_path / f"{stem}.html").read_text()
    rows = (tmp_path / f"{stem}.csv").read_text().splitlines()
    assert rows[0].startswith("start_s,end_s,frames") and len(rows) == len(intervals) + 1
