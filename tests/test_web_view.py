"""The live web view over real HTTP on 127.0.0.1 during a real run: API, frames, MJPEG, push feed, a browser."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2

import numpy as np
import pytest

from streamer.detectors.faces import MtcnnFaceDetector
from streamer.view.palette import track_hex
from tests.conftest import ROOT, media_file
from tests.support.runs import jsonl_lines
from tests.support.servers import free_port, wait_for_live_view
from tests.test_cli import ENV, OFFLINE, _assert_one_error_line, run_cli

pytestmark = pytest.mark.integration
TOKEN = "t0ken-for-tests"
NAME = "face_expressive_liveportrait_d6"


class LiveRun:
    def __init__(self, process: subprocess.Popen[str], port: int, out: Path) -> None:
        self.process, self.port, self.out = process, port, out

    def url(self, path: str, token: bool = True) -> str:
        return f"http://127.0.0.1:{self.port}{path}" + (f"?token={TOKEN}" if token else "")

    def get(self, path: str, token: bool = True, timeout: float = 10) -> tuple[int, dict, bytes]:
        try:
            with urllib.request.urlopen(self.url(path, token), timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def live(shared_media: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("web")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_stream.py"),
            "--source",
            str(media_file(shared_media, f"{NAME}.mp4")),
            "--out",
            str(out),
            "--serve",
            f"127.0.0.1:{port}",
            "--serve-token",
            TOKEN,
            *OFFLINE,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    run = LiveRun(process, port, out)
    wait_for_live_view(process, run.url("/api/sources"), frames=3)
    yield run
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, 130), stderr
    assert TOKEN not in stderr, "the token is never logged"


def test_the_api_lists_the_source_and_its_persons(live: LiveRun) -> None:
    status, _, body = live.get("/api/sources")
    assert status == 200
    source = json.loads(body)["sources"][0]
    assert source["name"] == NAME and source["state"] == "running" and source["fps"] > 0
    assert 0 < source["detections"] <= source["frames"], "how many frames the detector ran on"
    person = source["persons"][0]
    assert person["top"][0]["label"] and isinstance(person["uncertain"], bool)
    assert re.fullmatch(r"#[0-9a-f]{6}", person["color"]) and person["color"] == track_hex(person["track_id"])
    assert "rtsp" not in body.decode() and str(live.out) not in body.decode()


def test_every_endpoint_checks_the_token(live: LiveRun) -> None:
    for path in (
        "/",
        "/api/sources",
        f"/api/sources/{NAME}/frame.jpg",
        f"/api/sources/{NAME}/stream.mjpg",
        "/api/events",
    ):
        assert live.get(path, token=False)[0] == 401, path
    assert live.get("/api/sources/nobody/frame.jpg")[0] == 404


def test_frame_jpg_decodes_and_changes_while_the_run_goes_on(live: LiveRun) -> None:
    status, headers, first = live.get(f"/api/sources/{NAME}/frame.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (480, 480, 3)
    assert MtcnnFaceDetector().detect(image) == [], "the face is hidden in what the page serves (privacy.faces)"
    time.sleep(1.5)
    _, later_headers, later = live.get(f"/api/sources/{NAME}/frame.jpg")
    assert int(later_headers["X-Frame-Seq"]) > int(headers["X-Frame-Seq"]) and later != first


def test_the_mjpeg_stream_yields_jpeg_parts(live: LiveRun) -> None:
    with urllib.request.urlopen(live.url(f"/api/sources/{NAME}/stream.mjpg"), timeout=20) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        data = b""
        while data.count(b"--cocoerframe") < 3:
            data += response.read1(65536)
    parts = [p for p in data.split(b"--cocoerframe")[1:3]]
    for part in parts:
        jpeg = part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and MtcnnFaceDetector().detect(image) == [], "no face in the MJPEG stream"


def test_the_push_feed_delivers_the_jsonl_records(live: LiveRun) -> None:
    messages = []
    with urllib.request.urlopen(live.url("/api/events"), timeout=20) as response:
        for raw in response:
            if raw.startswith(b"data: "):
                messages.append(json.loads(raw[6:]))
                if len(messages) == 8:
                    break
    assert {m["source"] for m in messages} == {NAME}
    frames = [m["record"]["frame"] for m in messages]
    assert frames == sorted(frames)
    time.sleep(0.5)
    by_frame = {line["frame"]: line for line in jsonl_lines(live.out / f"{NAME}.jsonl")}
    assert all(m["record"] == by_frame[m["record"]["frame"]] for m in messages), "the same records as the JSONL"


def test_the_page_shows_the_frame_and_the_labels_in_a_browser(live: LiveRun, tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    # No virtual-time budget: it can wait forever on the page's endless push feed. The page renders
    # the state it was served with before its load event, which is when these dump and shoot.
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu"]
    dom = subprocess.run([*base, "--dump-dom", live.url("/")], capture_output=True, text=True, timeout=120).stdout
    assert f'id="source-{NAME}"' in dom and 'class="person"' in dom and "%" in dom
    assert '<p id="notice" class="notice">Emotion recognition in use</p>' in dom, "the people filmed are told"
    # The headline label is marked sure or a guess, and the id wears the person's colour (as on the video).
    assert re.search(r'<span class="(sure|guess)">[^<]+%', dom), dom[:2000]
    assert re.search(r'<b class="track" style="color: rgb\(\d+, \d+, \d+\);">#\d+', dom), dom[:2000]
    assert f"/api/sources/{NAME}/frame.jpg?token={TOKEN}&amp;n=" in dom
    shot = tmp_path / "live.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,900", live.url("/")], capture_output=True, timeout=120
    )
    image = cv2.imread(str(shot))
    frame_area = image[90:640, 26:586]  # where the card's live frame is drawn
    assert frame_area.std() > 25, "the live frame is shown, not an empty box"


def test_a_non_loopback_bind_without_a_token_is_refused(tmp_path: Path) -> None:
    done = run_cli("--source", "demo", "--out", str(tmp_path), "--serve", "0.0.0.0:8089", *OFFLINE)
    _assert_one_error_line(done, "--serve 0.0.0.0:8089 is reachable from other machines: give a token")
