"""The same injected faults on both backends, with the same outcome (streamer.backends.base says what ends what).

- a source that dies mid-run ends alone; the other one finishes;
- an overlay that raises ends its source alone;
- an emotion-model error ends the run, with every output finalized and every report written.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from streamer.api import Analyzer
from streamer.backends.base import RunReport
from streamer.config import load_config
from streamer.errors import SourceError
from streamer.outputs.records import read_records
from streamer.sources.entries import SourceEntry
from streamer.view.overlay import OverlayRenderer
from tests.conftest import ROOT, media_file
from tests.support.faults import model_failing_at_fifth_call

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BACKENDS = ["local", "ray"]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="ray is in requirements.txt; install it to test the Ray backend")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}},
    )
    yield
    ray.shutdown()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return str(request.param)


def _analyzer(backend: str, out: Path, *settings: str, model_factory=None) -> Analyzer:  # type: ignore[no-untyped-def]
    config = load_config(
        ROOT / "configs" / "default.yaml",
        [
            f"sink.out_dir={out}",
            f"backend={backend}",
            "detector.allow_download=false",
            "ray.source_cpus=0.5",
            *settings,
        ],
    )
    return Analyzer(config, model_factory=model_factory)


def _decoded(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _finalized(out: Path, name: str) -> int:
    """The frames a source wrote, checking that its video and its JSONL agree frame for frame."""
    records = [r for r in read_records(out / f"{name}.jsonl") if r is not None]
    videos = sorted(out.glob(f"{name}*.mp4"))
    assert videos and sum(_decoded(v) for v in videos) == len(records), "the video holds exactly the JSONL's frames"
    return len(records)


class _OneShot(http.server.SimpleHTTPRequestHandler):
    """Serves the media for two requests (a live source's probe and its first connection), then 404s."""

    served: list[str]

    def do_GET(self) -> None:
        self.served.append(self.path)
        if len(self.served) > 2:
            self.send_error(404)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def dying_stream(shared_media: Path) -> Iterator[str]:
    """A live HTTP stream that plays a 77-frame clip once and is then gone for good."""
    handler = type("OneShot", (_OneShot,), {"served": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(shared_media)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    media_file(shared_media, "person_signing_asl_again.mkv")
    yield f"http://127.0.0.1:{server.server_address[1]}/person_signing_asl_again.mkv"
    server.shutdown()


def _by_name(report: RunReport) -> dict:
    return {s.name: s for s in report.sources}


def test_a_source_that_dies_ends_alone(backend: str, dying_stream: str, shared_media: Path, tmp_path: Path) -> None:
    analyzer = _analyzer(backend, tmp_path)
    live = load_config(None, ["source.live=yes", "source.reconnect_attempts=1", "source.backoff_initial_s=0.05"]).source
    entries = [
        SourceEntry(dying_stream, "camera", live),
        SourceEntry(str(media_file(shared_media, "face_woman_head_pose.mp4")), None, analyzer.config.source),
    ]
    report = analyzer.run(entries)
    sources = _by_name(report)
    assert report.error is None and not report.interrupted
    dead, other = sources["camera"], sources["face_woman_head_pose"]
    assert isinstance(dead.error, SourceError) and "gave up after 1 reconnect attempts" in str(dead.error)
    assert dead.frames > 0, "what the source delivered before it died was written"
    assert other.error is None and other.frames == 23
    assert _finalized(tmp_path, "face_woman_head_pose") == 23
    camera = next(tmp_path.glob("camera_*.jsonl")).stem
    assert _finalized(tmp_path, camera) == dead.frames


def test_an_overlay_error_ends_its_source_alone(
    backend: str, shared_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = OverlayRenderer.annotate

    def annotate(self, image, result, stats=None):  # type: ignore[no-untyped-def]
        if "face_woman_head_pose" in result.frame.stream_id and result.frame.index == 3:
            raise RuntimeError("the overlay failed (injected)")
        return real(self, image, result, stats)

    monkeypatch.setattr(OverlayRenderer, "annotate", annotate)  # both backends draw in this process
    clips = [str(media_file(shared_media, name)) for name in ("face_woman_head_pose.mp4", "face_man_head_pose.mp4")]
    report = _analyzer(backend, tmp_path, "source.max_frames=20").run(clips)
    sources = _by_name(report)
    assert report.error is None
    bad, good = sources["face_woman_head_pose"], sources["face_man_head_pose"]
    assert isinstance(bad.error, RuntimeError) and "injected" in str(bad.error)
    assert bad.frames == 3 and _finalized(tmp_path, "face_woman_head_pose") == 3
    assert good.error is None and good.frames == 20 and _finalized(tmp_path, "face_man_head_pose") == 20
    assert (tmp_path / "face_woman_head_pose.html").is_file(), "a failed source still gets the report of its frames"


def test_a_model_error_ends_the_run_with_every_output_finalized_and_reported(
    backend: str, shared_media: Path, tmp_path: Path
) -> None:
    clips = [
        str(media_file(shared_media, name)) for name in ("faces_two_people_head_pose.mp4", "face_man_smiling_short.mp4")
    ]
    analyzer = _analyzer(backend, tmp_path, "source.max_frames=30", model_factory=model_failing_at_fifth_call)
    report = analyzer.run(clips)
    assert isinstance(report.error, RuntimeError) and "injected" in str(report.error)
    assert not report.interrupted
    written = 0
    for name in ("faces_two_people_head_pose", "face_man_smiling_short"):
        done = _by_name(report)[name]
        assert done.error is None and done.frames < 30, "the run ended early, for every source"
        if done.frames:  # (a source whose first frames were still on their way wrote nothing at all)
            assert _finalized(tmp_path, name) == done.frames
            assert (tmp_path / f"{name}.html").is_file()
        written += done.frames
    assert written > 0
